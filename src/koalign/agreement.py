"""Several raters' verdicts: reducing them to one, and their agreement.

Reducing (one rule everywhere, pipeline filter and evaluation alike): ``unanimous`` is true
when every vote is true; ``majority`` is true when more votes are true than false; a tie gives
the caller's cautious outcome (``on_tie``: the pipeline's filter fails a tied triplet, the
safety evaluation counts a tied answer unsafe). Votes of raters whose answer could not be read
(``None``) are left out.

Agreement: percent agreement, Cohen's kappa (two raters) and Fleiss' kappa.

Labels are any hashable values (e.g. ``True``/``False`` verdicts). Items a rater did not label
(``None``) are left out of the pairs that need them. Undefined values (no items, or no variation
at all in expected agreement) are returned as ``None`` rather than NaN, so they serialise to JSON.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from itertools import combinations
from typing import Literal

Reducer = Literal["unanimous", "majority"]


def majority(votes: Sequence[bool | None], *, on_tie: bool) -> tuple[bool | None, bool]:
    """``(verdict, was_tie)`` of a majority over the non-``None`` votes; ``None`` when no vote
    was cast; a tie gives ``on_tie``."""
    cast = [v for v in votes if v is not None]
    if not cast:
        return None, False
    yes = sum(cast)
    no = len(cast) - yes
    if yes == no:
        return on_tie, True
    return yes > no, False


def reduce(votes: Sequence[bool], rule: Reducer, *, on_tie: bool = False) -> bool:
    """One verdict from several: ``unanimous`` (every vote true) or ``majority`` (more true
    than false, a tie gives ``on_tie``). Raises ``ValueError`` for no votes."""
    if not votes:
        raise ValueError("no votes to reduce")
    if rule == "unanimous":
        return all(votes)
    verdict, _ = majority(votes, on_tie=on_tie)
    return bool(verdict)


def percent_agreement(a: Sequence[Hashable | None], b: Sequence[Hashable | None]) -> float | None:
    """Share (0-1) of the items both raters labelled on which they gave the same label (``None``
    labels are skipped); None when no item has both labels.

    Raises:
        ValueError: ``a`` and ``b`` differ in length.
    """
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    if not pairs:
        return None
    return sum(x == y for x, y in pairs) / len(pairs)


def cohen_kappa(a: Sequence[Hashable | None], b: Sequence[Hashable | None]) -> float | None:
    """Cohen's kappa of two raters over the items both labelled; ``None`` when it is undefined:
    no such item, or expected agreement 1 (both raters gave every item the same one label,
    so agreement beyond chance cannot be measured; ``1.0`` would claim a perfect agreement
    that a constant rater reaches by itself)."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    n = len(pairs)
    if n == 0:
        return None
    po = sum(x == y for x, y in pairs) / n
    ca = Counter(x for x, _ in pairs)
    cb = Counter(y for _, y in pairs)
    pe = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    if pe == 1.0:
        return None
    return (po - pe) / (1 - pe)


def pairwise_cohen(ratings: Mapping[str, Sequence[Hashable | None]]) -> dict[str, float | None]:
    """Cohen's kappa for every pair of raters, keyed ``"a|b"``."""
    return {
        f"{x}|{y}": cohen_kappa(ratings[x], ratings[y]) for x, y in combinations(sorted(ratings), 2)
    }


def fleiss_kappa(items: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa; ``items[i]`` holds the labels the raters gave item i (same count per item).

    Items with fewer than two labels are skipped; items must all have the same number of labels.
    ``None`` when no item is left or every label is the same one (undefined, as for
    :func:`cohen_kappa`).
    """
    rows = [tuple(r) for r in items if len(r) >= 2]
    if not rows:
        return None
    m = len(rows[0])
    if any(len(r) != m for r in rows):
        raise ValueError("Fleiss' kappa needs the same number of ratings for every item")
    n = len(rows)
    # items share few distinct label patterns (8 for three raters and two labels): count each
    # pattern once; the per-item agreements are still summed in item order
    patterns = Counter(rows)
    totals: Counter[Hashable] = Counter()
    p_of: dict[tuple[Hashable, ...], float] = {}
    for row, times in patterns.items():
        counts = Counter(row)
        for label, c in counts.items():
            totals[label] += c * times
        p_of[row] = (sum(c * c for c in counts.values()) - m) / (m * (m - 1))
    p_bar = sum(p_of[r] for r in rows) / n
    pe = sum((t / (n * m)) ** 2 for t in totals.values())
    if pe == 1.0:
        return None
    return (p_bar - pe) / (1 - pe)
