"""Text utilities for generated prompts: normalisation, cleaning, language check, near-dup removal."""

from __future__ import annotations

import functools
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


_MERSENNE = (1 << 61) - 1
_MAX_HASH = (1 << 32) - 1
_BAND_MULT = 0x100000001B3  # the 64-bit FNV prime


@functools.lru_cache(maxsize=32)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) of MinHash-LSH for a Jaccard ``threshold``: the split of ``num_perm``
    minimising the (equally weighted) probabilities of a false positive below the threshold and
    a false negative above it, integrated numerically (datasketch's rule, without SciPy)."""
    import numpy as np

    pairs = np.array(
        [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)], dtype=float
    )
    b, r = pairs[:, :1], pairs[:, 1:]
    below = np.linspace(0.0, threshold, 201)[None, :]
    above = np.linspace(threshold, 1.0, 201)[None, :]
    fp = np.trapezoid(1 - (1 - below**r) ** b, below[0], axis=1)
    fn = np.trapezoid((1 - above**r) ** b, above[0], axis=1)
    best = int(np.argmin(fp + fn))  # the first of equal errors, as in a loop over b then r
    return int(pairs[best, 0]), int(pairs[best, 1])


class NearDuplicateFilter:
    """Incremental near-duplicate detection: :meth:`add` texts in order, earlier texts win.

    MinHash-LSH over character n-grams finds candidates (MinHash signatures of the n-grams'
    64-bit hashes, universal hashing modulo 2^61 - 1 as in datasketch, banded for a threshold
    0.1 below ``threshold`` for recall); a candidate counts only when the exact Jaccard
    similarity of the n-gram sets reaches ``threshold``, so LSH never causes a false positive.
    State per kept text: one 64-bit hash per band and a sorted array of its n-gram hashes
    (about 8 bytes per n-gram): about 2 KB for an 80-character prompt, so memory stays small
    for hundreds of thousands of texts. Deterministic for a given ``seed``.
    """

    def __init__(
        self, *, threshold: float = 0.7, ngram: int = 3, num_perm: int = 128, seed: int = 1
    ) -> None:
        self.threshold = threshold
        self.ngram = ngram
        self.num_perm = num_perm
        self.seed = seed
        self._a, self._b, self._bands, self._rows = _minhash_params(threshold, num_perm, seed)
        # band hash (64-bit: a collision only adds a candidate, which is checked exactly)
        # -> the index of the one kept text in that bucket, or a list of them
        self._tables: list[dict[int, int | list[int]]] = [{} for _ in range(self._bands)]
        self._kept: list[Any] = []  # index -> sorted n-gram hashes
        self._keys: list[str] = []  # index -> key

    def _hashes(self, text: str) -> Any:
        import numpy as np

        values = {
            int.from_bytes(hashlib.blake2b(g.encode("utf-8", "replace"), digest_size=8).digest())
            for g in shingles(text, self.ngram)
        }
        return np.array(sorted(values), dtype=np.uint64)

    def _bands_of(self, hashes: Any) -> list[int]:
        import numpy as np

        if len(hashes) == 0:
            sig = np.full(self.num_perm, _MAX_HASH, dtype=np.uint64)
        else:
            low = hashes & np.uint64(_MAX_HASH)
            with np.errstate(over="ignore"):
                perm = (np.outer(low, self._a) + self._b) % np.uint64(_MERSENNE)
            sig = (perm & np.uint64(_MAX_HASH)).min(axis=0)
        rows = sig[: self._bands * self._rows].reshape(self._bands, self._rows)
        key = np.zeros(self._bands, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(self._rows):  # a 64-bit polynomial hash of each band's rows
                key = key * np.uint64(_BAND_MULT) + rows[:, j]
        return [int(k) for k in key]

    def signature(self, text: str) -> tuple[Any, list[int]]:
        """The text's n-gram hashes (a sorted ``uint64`` array) and its LSH band keys (one int
        per band): everything :meth:`add` computes from the text alone."""
        hashes = self._hashes(text)
        return hashes, self._bands_of(hashes)

    def add(self, key: str, text: str) -> str | None:
        """The key of an earlier kept text that ``text`` nearly duplicates, or ``None`` (then
        ``text`` is kept under ``key``)."""
        import numpy as np

        signed = _PRESIGNED.pop((text, self.ngram, self.threshold, self.num_perm, self.seed), None)
        hashes, bands = signed if signed is not None else self.signature(text)
        candidates: set[int] = set()
        for table, band in zip(self._tables, bands, strict=True):
            hit = table.get(band)
            if hit is None:
                continue
            if isinstance(hit, int):
                candidates.add(hit)
            else:
                candidates.update(hit)
        for other in sorted(candidates):  # indices are the order of addition
            kept = self._kept[other]
            inter = len(np.intersect1d(hashes, kept, assume_unique=True))
            union = len(hashes) + len(kept) - inter
            if (inter / union if union else 1.0) >= self.threshold:
                return self._keys[other]
        index = len(self._keys)
        self._kept.append(hashes)
        self._keys.append(key)
        for table, band in zip(self._tables, bands, strict=True):
            hit = table.get(band)
            if hit is None:
                table[band] = index
            elif isinstance(hit, int):
                table[band] = [hit, index]
            else:
                hit.append(index)
        return None


@functools.lru_cache(maxsize=8)
def _minhash_params(threshold: float, num_perm: int, seed: int) -> tuple[Any, Any, int, int]:
    """The hash coefficients ``a`` and ``b`` (``num_perm`` each) and the LSH ``(bands, rows)``."""
    import numpy as np

    rng = np.random.RandomState(seed)
    a = rng.randint(1, _MERSENNE, size=num_perm, dtype=np.uint64)
    b = rng.randint(0, _MERSENNE, size=num_perm, dtype=np.uint64)
    bands, rows = lsh_params(min(0.9, max(0.1, threshold - 0.1)), num_perm)
    return a, b, bands, rows


#: Texts signed ahead of their :meth:`NearDuplicateFilter.add` (see :func:`presign`).
_PRESIGNED: dict[tuple[str, int, float, int, int], tuple[Any, list[int]]] = {}
#: At most this many presigned texts are held (about 1.5 KB each for an 80-character text);
#: past it :func:`presign` does nothing and :meth:`NearDuplicateFilter.add` signs the text.
PRESIGN_MAX = 20_000


def presign(
    text: str, *, threshold: float = 0.7, ngram: int = 3, num_perm: int = 128, seed: int = 1
) -> None:
    """Compute ``text``'s MinHash signature now, for a later :meth:`NearDuplicateFilter.add` of
    the same text to a filter with the same parameters, which takes it (once) instead of
    computing it. The decision is the same either way; the work moves to where the caller has
    time to spare (the seeds stage signs each candidate while other answers are awaited, so the
    stage's barrier only looks signatures up). Holds at most :data:`PRESIGN_MAX` texts.

    Nothing is done until :func:`prepare_presign` has run for these parameters (it imports
    numpy and draws the hash coefficients, 0.05-0.15 s, which a caller on the event loop should
    not wait for): until then :meth:`NearDuplicateFilter.add` signs the text itself."""
    key = (text, ngram, threshold, num_perm, seed)
    if key in _PRESIGNED or len(_PRESIGNED) >= PRESIGN_MAX:
        return
    signer = _SIGNERS.get((threshold, ngram, num_perm, seed))
    if signer is not None:
        _PRESIGNED[key] = signer.signature(text)


def prepare_presign(
    *, threshold: float = 0.7, ngram: int = 3, num_perm: int = 128, seed: int = 1
) -> None:
    """Make :func:`presign` work for these parameters: build the filter it signs with (numpy
    imported, hash coefficients drawn). Safe to call from a background thread."""
    params = (threshold, ngram, num_perm, seed)
    if params not in _SIGNERS:
        _SIGNERS[params] = NearDuplicateFilter(
            threshold=threshold, ngram=ngram, num_perm=num_perm, seed=seed
        )


#: One filter per parameters (threshold, ngram, num_perm, seed), used only for
#: :meth:`NearDuplicateFilter.signature`, which reads none of the filter's state.
_SIGNERS: dict[tuple[float, int, int, int], NearDuplicateFilter] = {}


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
