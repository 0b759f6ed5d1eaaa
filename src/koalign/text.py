"""Text utilities for generated prompts: normalisation, cleaning, language check, near-dup removal."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.S)


def nfc(text: str) -> str:
    """Unicode NFC normalisation (Hangul jamo sequences become precomposed syllables)."""
    return unicodedata.normalize("NFC", text)


def clean_generation(text: str, *, labels: Sequence[str] = ()) -> str:
    """Strip what models wrap around a single requested text: code fences, one leading label
    from ``labels`` (e.g. ``질문:``), matching outer quotes, surrounding whitespace."""
    t = nfc(text).strip()
    m = _FENCE.match(t)
    if m:
        t = m.group(1).strip()
    for label in labels:
        for variant in (label, f"**{label}**"):
            for colon in (":", "："):
                prefix = variant + colon
                if t.startswith(prefix):
                    t = t[len(prefix) :].strip()
    pairs = [('"', '"'), ("“", "”"), ("'", "'"), ("「", "」"), ("『", "』")]
    for lo, hi in pairs:
        inner = t[1:-1]
        if (
            len(t) >= 2
            and t.startswith(lo)
            and t.endswith(hi)
            and lo not in inner
            and hi not in inner
        ):
            t = t[1:-1].strip()
    return t


def stable_hash(*parts: Any, n: int = 16) -> str:
    """Short hex digest of the parts (deterministic across runs and machines)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(repr(p).encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:n]


def record_digest(record: Any, n: int = 16) -> str:
    """Digest of a whole JSON record (key order does not matter). A downstream stage derives its
    item ids from it, so any change in an upstream record makes a new item instead of leaving a
    stale copy in place."""
    text = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def stable_int(*parts: Any) -> int:
    return int(stable_hash(*parts, n=15), 16)


def shingles(text: str, n: int) -> set[str]:
    t = re.sub(r"\s+", " ", nfc(text).lower()).strip()
    if len(t) <= n:
        return {t} if t else set()
    return {t[i : i + n] for i in range(len(t) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def near_duplicates(
    texts: Sequence[str],
    *,
    threshold: float = 0.7,
    ngram: int = 3,
    num_perm: int = 128,
    seed: int = 1,
) -> list[int | None]:
    """For each text, the index of an earlier kept text it nearly duplicates, or ``None``.

    MinHash-LSH over character n-grams finds candidates; a candidate counts only when the exact
    Jaccard similarity of the n-gram sets reaches ``threshold`` (no false positives from LSH).
    Earlier texts win, so the result depends only on the order of ``texts``.
    """
    from datasketch import MinHash, MinHashLSH

    # LSH retrieves candidates at a slightly lower threshold (better recall; datasketch also needs
    # at least two bands, so it is capped at 0.9); the exact Jaccard check decides.
    lsh = MinHashLSH(threshold=min(0.9, max(0.1, threshold - 0.1)), num_perm=num_perm)
    # One set of permutations for every sketch (building them is the costly part of MinHash()).
    template = MinHash(num_perm=num_perm, seed=seed)
    kept_sets: dict[int, set[str]] = {}  # only kept texts can be matched later
    out: list[int | None] = []
    for i, text in enumerate(texts):
        sh = shingles(text, ngram)
        mh = MinHash(
            num_perm=num_perm,
            seed=seed,
            permutations=template.permutations,
            scheme=template.scheme,
        )
        mh.update_batch([s.encode("utf-8") for s in sorted(sh)])
        dup = None
        for key in sorted(lsh.query(mh), key=int):
            if jaccard(sh, kept_sets[int(key)]) >= threshold:
                dup = int(key)
                break
        out.append(dup)
        if dup is None:
            kept_sets[i] = sh
            lsh.insert(str(i), mh)
    return out
