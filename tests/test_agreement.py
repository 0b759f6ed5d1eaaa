"""Agreement statistics: Cohen's and Fleiss' kappa, with the undefined cases."""

from __future__ import annotations

import pytest

from koalign.agreement import cohen_kappa, fleiss_kappa


def test_cohen_kappa_on_a_hand_computed_table() -> None:
    # 2x2 table: both yes 20, a yes b no 5, a no b yes 10, both no 15 (n = 50)
    a = [True] * 25 + [False] * 25
    b = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    # po = 35/50 = 0.7; pe = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = 0.2 / 0.5 = 0.4
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa([None, True, False], [True, True, False]) == pytest.approx(1.0)


def test_kappa_is_undefined_when_every_label_is_the_same() -> None:
    """Two raters who give every item the same single label agree by chance alone: kappa is
    undefined (None), not 1.0 (a constant rater would otherwise look perfect)."""
    assert cohen_kappa([False] * 10, [False] * 10) is None
    assert cohen_kappa([], []) is None
    assert fleiss_kappa([["pass", "pass", "pass"]] * 5) is None
    assert fleiss_kappa([]) is None
    assert fleiss_kappa([["pass", "fail"], ["pass", "pass"]]) is not None


def test_fleiss_kappa_matches_the_item_by_item_formula() -> None:
    """Fleiss (1971): P_i = (sum_j n_ij^2 - m) / (m (m - 1)), P_e = sum_j p_j^2, computed here
    item by item on random ratings; the function counts label patterns once and must agree to
    the last bit."""
    import random
    from collections import Counter

    rng = random.Random(7)
    for m, labels in ((2, (True, False)), (3, (True, False)), (4, ("a", "b", "c"))):
        items = [[rng.choice(labels) for _ in range(m)] for _ in range(500)]
        totals: Counter[object] = Counter()
        p_items = []
        for r in items:
            counts = Counter(r)
            totals.update(counts)
            p_items.append((sum(c * c for c in counts.values()) - m) / (m * (m - 1)))
        p_bar = sum(p_items) / len(items)
        pe = sum((t / (len(items) * m)) ** 2 for t in totals.values())
        assert fleiss_kappa(items) == (p_bar - pe) / (1 - pe)
