"""Aggregate statistics shared by tasks: accuracy, means with margins, seeded bootstrap intervals.

Protocol section 1.5: every subtask reports n, the score and a 95% interval. Proportions and
correlations use a seeded percentile bootstrap over items (1,000 resamples); judge-score means use
1.96·sd/√n for n >= 30 and a t quantile below that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 1000


def mean_or_none(values: Sequence[float]) -> float | None:
    """Arithmetic mean, or None for an empty sequence."""
    return float(sum(values) / len(values)) if values else None


def margin_of_error(values: Sequence[float]) -> float | None:
    """Half-width of the 95% interval of a mean: 1.96·sd/√n for n >= 30, t(0.975, n-1)·sd/√n below."""
    n = len(values)
    if n < 2:
        return None
    sd = float(np.std(values, ddof=1))
    if n >= 30:
        z = 1.96
    else:
        from scipy import (
            stats,  # imported here: scipy.stats costs ~0.9 s of start-up for every command
        )

        z = float(stats.t.ppf(0.975, n - 1))
    return z * sd / math.sqrt(n)


def bootstrap_ci(
    data: Sequence,
    statistic: Callable[[np.ndarray], float],
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> tuple[float | None, float | None]:
    """Seeded 95% percentile bootstrap interval of `statistic` over resampled items.

    `data` is a sequence of items (scalars or rows); resampling draws item indices with
    replacement. Resamples where the statistic is NaN are dropped.
    """
    arr = np.asarray(data)
    n = len(arr)
    if n < 2:
        return None, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    values = np.array([statistic(arr[i]) for i in idx], dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None, None
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def proportion_ci(successes: Sequence[float], seed: int) -> tuple[float | None, float | None]:
    """Bootstrap interval of a mean of 0/1 (or [0, 1]) values; vectorised, cheap for large n."""
    arr = np.asarray(successes, dtype=float)
    n = arr.size
    if n < 2:
        return None, None
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def pearson_or_nan(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson r of two equal-length sequences; NaN when empty, unequal or either side is constant
    (the authors' `_pearsonr`: `np.corrcoef` guarded by a zero-std check)."""
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.size == 0 or xa.size != ya.size or np.std(xa) == 0 or np.std(ya) == 0:
        return float("nan")
    return float(np.corrcoef(xa, ya)[0, 1])


def pearson_bootstrap_samples(
    x: Sequence[float], y: Sequence[float], seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> np.ndarray:
    """Pearson r of `resamples` seeded bootstrap resamples of the item pairs (vectorised); NaN where
    a resample is constant on either side. Empty when there are fewer than 3 pairs."""
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    n = xa.size
    if n < 3 or n != ya.size:
        return np.empty(0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    xc = xa[idx] - xa[idx].mean(axis=1, keepdims=True)
    yc = ya[idx] - ya[idx].mean(axis=1, keepdims=True)
    sxx = (xc**2).sum(axis=1)
    syy = (yc**2).sum(axis=1)
    constant = (sxx < 1e-12) | (syy < 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / np.sqrt(sxx * syy)
    r[constant] = np.nan
    return r


def percentile_interval(values: np.ndarray) -> tuple[float | None, float | None]:
    """The 2.5th and 97.5th percentiles of the finite values, or (None, None)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None, None
    return float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))


def pearson_bootstrap_ci(
    x: Sequence[float], y: Sequence[float], seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float | None, float | None]:
    """Seeded 95% percentile bootstrap interval of Pearson r over item pairs (constant resamples dropped)."""
    return percentile_interval(pearson_bootstrap_samples(x, y, seed, resamples))
