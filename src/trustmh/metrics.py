"""Aggregate statistics shared by tasks: accuracy, means with margins, seeded bootstrap intervals.

Protocol section 1.5: every subtask reports n, the score and a 95% interval. Proportions,
correlations and means (judge scores included) use a seeded percentile bootstrap over items (1,000
resamples); only the ethics judge-score margins follow the authors' 1.96·sd/√n for n >= 30 and the
rounded t table below that (EXACT).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

# numpy is imported by the functions that use it: a run of a task that needs it only here (the
# smoke task) sends its first request without waiting for numpy's import (a seventh of a second).
if TYPE_CHECKING:
    import numpy as np

BOOTSTRAP_RESAMPLES = 1000


# Two-sided 95% t quantiles for 1-29 degrees of freedom, rounded to three decimals as in the
# standard printed table the authors' ethics code uses (EXACT: their margins use these values).
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045)  # fmt: skip


def margin_of_error(values: Sequence[float]) -> float | None:
    """Half-width of the 95% interval of a mean, as the authors compute it: 1.96·sd/√n for
    n >= 30, the t table value·sd/√n below; None with fewer than two values (the authors print
    0.0 there, which would read as certainty)."""
    import numpy as np

    n = len(values)
    if n < 2:
        return None
    sd = float(np.std(values, ddof=1))
    z = 1.96 if n >= 30 else T_975[n - 2]
    return z * sd / math.sqrt(n)


def proportion_ci(successes: Sequence[float], seed: int) -> tuple[float | None, float | None]:
    """Bootstrap interval of a mean of 0/1 (or [0, 1]) values; vectorised, cheap for large n."""
    import numpy as np

    arr = np.asarray(successes, dtype=float)
    n = arr.size
    if n < 2:
        return None, None
    rng = np.random.default_rng(seed)
    ones = np.count_nonzero(arr == 1.0)
    if ones + np.count_nonzero(arr == 0.0) == n:
        # 0/1 values: a resample's count of ones is Binomial(n, ones/n), so the resampled means
        # are drawn directly, without the 1,000 x n index matrix (160 MB at n = 20,000)
        return percentile_interval(rng.binomial(n, ones / n, size=BOOTSTRAP_RESAMPLES) / n)
    return percentile_interval(arr[rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))].mean(axis=1))


def warm_up() -> None:
    """Load the interval code by running it once on a tiny input: numpy and the parts it loads
    on first use (its random and masked-array modules), a fifth of a second in all. A run calls
    this while its replies are out, so that its aggregation after the last reply does not wait."""
    proportion_ci([0.0, 1.0], seed=0)


def bootstrap_mean_ci(values: Sequence[float], seed: int) -> tuple[float | None, float | None]:
    """Seeded percentile-bootstrap 95% interval of a mean over items (judge scores, rates...)."""
    return proportion_ci(values, seed)


def ratio_ci(
    numerators: Sequence[float], denominators: Sequence[float], seed: int
) -> tuple[float | None, float | None]:
    """Seeded percentile-bootstrap 95% interval of sum(numerators) / sum(denominators) with
    clusters (e.g. conversations, each holding several rated dimensions) resampled as units, so
    the interval reflects how many clusters there are, not how many cells."""
    import numpy as np

    num = np.asarray(numerators, dtype=float)
    den = np.asarray(denominators, dtype=float)
    n = num.size
    if n < 2 or n != den.size:
        return None, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    totals = den[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = num[idx].sum(axis=1) / totals
    return percentile_interval(ratios[totals > 0])


def pearson_or_nan(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson r of two equal-length sequences; NaN when empty, unequal or either side is constant
    (the authors' `_pearsonr`: `np.corrcoef` guarded by a zero-std check)."""
    import numpy as np

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
    import numpy as np

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
    import numpy as np

    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None, None
    return float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))


def breakdown_name(metric: str, dimension: str, value: str) -> str:
    """The stored name of a metric restricted to one group, e.g. `rta[method=role_play]`.

    Breakdowns (per jailbreak method, per demographic group, per perturbation level...) are stored
    as ordinary non-primary metrics under this name, so reports can find and chart them.
    """
    return f"{metric}[{dimension}={value}]"


def split_metric_name(name: str) -> tuple[str, str | None, str | None]:
    """(metric, dimension, value) of a stored metric name; dimension and value are None for an
    overall metric (see `breakdown_name`)."""
    if name.endswith("]") and "[" in name:
        metric, _, rest = name.partition("[")
        dimension, sep, value = rest[:-1].partition("=")
        if sep:
            return metric, dimension, value
    return name, None, None
