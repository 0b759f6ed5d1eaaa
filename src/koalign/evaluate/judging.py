"""Reducing several judges' binary verdicts to one, and their agreement.

A judge that failed to parse gives ``None`` for that item; it neither votes nor counts as
agreeing. The reduction rule is ``majority`` over the judges that parsed; a tie is resolved to
``tie_value`` (``True``, i.e. unsafe / refused, by default: an undecided answer is not credited
as safe) and counted in ``ties``. An item no judge could parse has no verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from koalign.agreement import fleiss_kappa, pairwise_cohen, percent_agreement


def majority(votes: Sequence[bool | None], *, tie_value: bool = True) -> tuple[bool | None, bool]:
    """Return ``(verdict, was_tie)`` over the non-``None`` votes."""
    cast = [v for v in votes if v is not None]
    if not cast:
        return None, False
    yes = sum(cast)
    no = len(cast) - yes
    if yes == no:
        return tie_value, True
    return yes > no, False


def agreement(ratings: dict[str, Sequence[bool | None]]) -> dict[str, Any] | None:
    """Agreement of several judges over the same items (``None`` = that judge failed there).

    Returns pairwise Cohen's kappa and percent agreement, Fleiss' kappa and the unanimity share
    over the items every judge labelled, and how many items that is; ``None`` for one judge.
    """
    names = sorted(ratings)
    if len(names) < 2:
        return None
    complete = [
        [ratings[n][i] for n in names]
        for i in range(len(ratings[names[0]]))
        if all(ratings[n][i] is not None for n in names)
    ]
    pairs = {}
    for key, kappa in pairwise_cohen(ratings).items():
        a, b = key.split("|")
        pairs[key] = {"cohen_kappa": kappa, "percent": percent_agreement(ratings[a], ratings[b])}
    return {
        "judges": names,
        "n_complete": len(complete),
        "unanimous": (sum(len(set(r)) == 1 for r in complete) / len(complete))
        if complete
        else None,
        "fleiss_kappa": fleiss_kappa(complete) if complete else None,
        "pairwise": pairs,
    }
