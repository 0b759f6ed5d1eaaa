"""Interval estimates for rates: percentile bootstrap (fixed seed) and Wilson score intervals.

Every function is deterministic for a given ``seed`` and returns plain floats or ``None`` (for
empty input), so results serialise to JSON unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

DEFAULT_BOOT = 2000
DEFAULT_SEED = 0
_Z95 = 1.959963984540054


def _percentiles(values: Any, level: float) -> tuple[float, float]:
    import numpy as np

    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_means(
    values: Sequence[float], *, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED
) -> Any:
    """``n_boot`` bootstrap replicates of the mean of ``values`` (a numpy array).

    Resampling is done in chunks so memory stays small for large ``values``.
    """
    import numpy as np

    arr = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    n = len(arr)
    out = np.empty(n_boot)
    chunk = max(1, 2_000_000 // max(n, 1))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = arr[idx].mean(axis=1)
    return out


def bootstrap_ci(
    values: Sequence[float],
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval of the mean; ``None`` when ``values`` is empty."""
    if len(values) == 0:
        return None
    return _percentiles(bootstrap_means(values, n_boot=n_boot, seed=seed), level)


def bootstrap_diff_ci(
    base: Sequence[float],
    tuned: Sequence[float],
    *,
    paired: bool,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Bootstrap interval of ``mean(tuned) - mean(base)``.

    ``paired=True`` resamples items jointly (``base[i]`` and ``tuned[i]`` are the same prompt);
    otherwise the two samples are resampled independently.
    """
    import numpy as np

    if len(base) == 0 or len(tuned) == 0:
        return None
    if paired:
        if len(base) != len(tuned):
            raise ValueError("paired bootstrap needs samples of the same length")
        diffs = np.asarray(tuned, dtype=float) - np.asarray(base, dtype=float)
        return bootstrap_ci(diffs, n_boot=n_boot, seed=seed, level=level)
    b = bootstrap_means(base, n_boot=n_boot, seed=seed)
    t = bootstrap_means(tuned, n_boot=n_boot, seed=seed + 1)
    return _percentiles(t - b, level)


def wilson_ci(k: int, n: int, *, z: float = _Z95) -> tuple[float, float] | None:
    """Wilson score interval for ``k`` successes out of ``n`` (95% by default)."""
    if n == 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(
    flags: Sequence[bool], *, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED
) -> dict[str, Any]:
    """``{"n", "k", "rate", "ci", "wilson"}`` for a list of booleans (``rate`` is None if empty)."""
    n = len(flags)
    k = sum(bool(f) for f in flags)
    ci = bootstrap_ci([float(f) for f in flags], n_boot=n_boot, seed=seed) if n else None
    wil = wilson_ci(k, n)
    return {
        "n": n,
        "k": k,
        "rate": k / n if n else None,
        "ci": list(ci) if ci else None,
        "wilson": list(wil) if wil else None,
    }


def kappa_ci(
    a: Sequence[bool],
    b: Sequence[bool],
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of Cohen's kappa between two binary raters over paired
    items (replicates where kappa is undefined, i.e. no variation, are left out); ``None``
    when there are no items or no replicate is defined."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError("kappa needs paired ratings of the same length")
    if len(a) == 0 or n_boot <= 0:
        return None
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    xs, ys = x[idx], y[idx]
    po = (xs == ys).mean(axis=1)
    px, py = xs.mean(axis=1), ys.mean(axis=1)
    pe = px * py + (1 - px) * (1 - py)
    defined = pe < 1.0
    if not defined.any():
        return None
    kappas = (po[defined] - pe[defined]) / (1.0 - pe[defined])
    return _percentiles(kappas, level)
