"""Text utilities for generated prompts: normalisation, cleaning, language check, near-dup removal."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.S)


def nfc(text: str) -> str:
    """Unicode NFC normalisation (Hangul jamo sequences become precomposed syllables)."""
    return unicodedata.normalize("NFC", text)


def clean_generation(text: str, *, labels: Sequence[str] = ()) -> str:
    """Strip what models wrap around a single requested text: reasoning blocks (``<think>``
    ...), code fences, one leading label from ``labels`` (e.g. ``질문:``), matching outer
    quotes, surrounding whitespace."""
    from koalign.extract import split_reasoning

    t = nfc(split_reasoning(text)[1]).strip()
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


def shingles(text: str, n: int) -> set[str]:
    """Character ``n``-grams of ``text`` after NFC, lower-casing and collapsing whitespace; a text
    of ``n`` characters or fewer is its own single shingle (empty text: none)."""
    t = re.sub(r"\s+", " ", nfc(text).lower()).strip()
    if len(t) <= n:
        return {t} if t else set()
    return {t[i : i + n] for i in range(len(t) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """Jaccard similarity ``|a & b| / |a | b|`` (0-1); 1.0 for two empty sets."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class NearDuplicateFilter:
    """Incremental near-duplicate detection: :meth:`add` texts in order, earlier texts win.

    MinHash-LSH over character n-grams finds candidates; a candidate counts only when the exact
    Jaccard similarity of the n-gram sets reaches ``threshold`` (no false positives from LSH).
    State per kept text: its LSH bands and a sorted array of 64-bit n-gram hashes (about 8
    bytes per n-gram), so memory stays small for hundreds of thousands of texts.
    """

    def __init__(
        self, *, threshold: float = 0.7, ngram: int = 3, num_perm: int = 128, seed: int = 1
    ) -> None:
        from datasketch import MinHash, MinHashLSH

        self.threshold = threshold
        self.ngram = ngram
        self.num_perm = num_perm
        self.seed = seed
        # LSH retrieves candidates at a slightly lower threshold (better recall; datasketch
        # needs at least two bands, so it is capped at 0.9); the exact Jaccard check decides.
        self._lsh = MinHashLSH(threshold=min(0.9, max(0.1, threshold - 0.1)), num_perm=num_perm)
        # one set of permutations for every sketch (building them is the costly part)
        self._template = MinHash(num_perm=num_perm, seed=seed)
        self._kept: dict[str, Any] = {}
        self._order: dict[str, int] = {}

    def _hashes(self, text: str) -> Any:
        import numpy as np

        grams = shingles(text, self.ngram)
        values = {
            int.from_bytes(hashlib.blake2b(g.encode("utf-8", "replace"), digest_size=8).digest())
            for g in grams
        }
        return np.array(sorted(values), dtype=np.uint64)

    def add(self, key: str, text: str) -> str | None:
        """The key of an earlier kept text that ``text`` nearly duplicates, or ``None`` (then
        ``text`` is kept under ``key``)."""
        import numpy as np
        from datasketch import MinHash

        hashes = self._hashes(text)
        mh = MinHash(
            num_perm=self.num_perm,
            seed=self.seed,
            permutations=self._template.permutations,
            scheme=self._template.scheme,
        )
        mh.update_batch([int(h).to_bytes(8, "big") for h in hashes])
        for other in sorted(self._lsh.query(mh), key=self._order.__getitem__):
            kept = self._kept[other]
            inter = len(np.intersect1d(hashes, kept, assume_unique=True))
            union = len(hashes) + len(kept) - inter
            if (inter / union if union else 1.0) >= self.threshold:
                return str(other)
        self._kept[key] = hashes
        self._order[key] = len(self._order)
        self._lsh.insert(key, mh)
        return None


def near_duplicate_filter(
    *, threshold: float = 0.7, ngram: int = 3, num_perm: int = 128, seed: int = 1
) -> NearDuplicateFilter:
    """A fresh :class:`NearDuplicateFilter`."""
    return NearDuplicateFilter(threshold=threshold, ngram=ngram, num_perm=num_perm, seed=seed)


def near_duplicates(
    texts: Sequence[str],
    *,
    threshold: float = 0.7,
    ngram: int = 3,
    num_perm: int = 128,
    seed: int = 1,
) -> list[int | None]:
    """For each text, the index of an earlier kept text it nearly duplicates, or ``None``
    (the result depends only on the order of ``texts``)."""
    f = NearDuplicateFilter(threshold=threshold, ngram=ngram, num_perm=num_perm, seed=seed)
    out: list[int | None] = []
    for i, text in enumerate(texts):
        dup = f.add(str(i), text)
        out.append(None if dup is None else int(dup))
    return out
