"""Bootstrap and Wilson intervals against values computed independently."""

from __future__ import annotations

import pytest
from scipy import stats as sps

from koalign.evaluate.stats import bootstrap_ci, bootstrap_diff_ci, rate, wilson_ci


@pytest.mark.parametrize(("k", "n"), [(80, 100), (0, 10), (10, 10), (37, 250)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_ci(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-9)
    assert hi == pytest.approx(ref.high, abs=1e-9)


def test_wilson_textbook_value() -> None:
    # 0 successes in 10 trials: the Wilson upper limit is 0.2775 (Newcombe 1998, table I)
    assert wilson_ci(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_ci(0, 0) is None


def test_bootstrap_of_a_proportion_matches_binomial_quantiles() -> None:
    # For 0/1 data the bootstrap distribution of the mean is Binomial(n, p_hat) / n.
    n, k = 200, 150
    values = [1.0] * k + [0.0] * (n - k)
    lo, hi = bootstrap_ci(values, n_boot=20000, seed=0)
    assert lo == pytest.approx(sps.binom.ppf(0.025, n, k / n) / n, abs=1.5 / n)
    assert hi == pytest.approx(sps.binom.ppf(0.975, n, k / n) / n, abs=1.5 / n)


def test_bootstrap_is_deterministic_and_degenerate_cases() -> None:
    values = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1]
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)
    assert bootstrap_ci([1, 1, 1]) == (1.0, 1.0)
    assert bootstrap_ci([]) is None


def test_paired_difference_interval() -> None:
    base = [0.0] * 50 + [1.0] * 50
    tuned = [1.0] * 100  # every item improved or stayed safe: the change is 0.5
    lo, hi = bootstrap_diff_ci(base, tuned, paired=True, n_boot=5000)
    assert lo < 0.5 < hi
    assert lo > 0.35 and hi < 0.65
    # identical runs: a paired change of exactly zero
    assert bootstrap_diff_ci(base, base, paired=True) == (0.0, 0.0)
    lo_u, hi_u = bootstrap_diff_ci(base, base, paired=False, n_boot=2000)
    assert lo_u < 0 < hi_u


def test_rate_summary() -> None:
    r = rate([True, True, False, True], n_boot=500)
    assert r["n"] == 4 and r["k"] == 3 and r["rate"] == 0.75
    assert r["ci"][0] <= 0.75 <= r["ci"][1]
    assert rate([])["rate"] is None
