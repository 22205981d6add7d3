"""The paired statistics of `trustmh compare` (protocol 1.9), on two runs' unit tables.

A subtask's metric is `combine(column means over units)` (see `trustmh.paired`). With the units
both runs scored laid out as two n x k matrices (NaN = no value), every resample is a weight
vector over units, so column means are two matrix products: a paired bootstrap draws the same
units for both runs, a paired permutation test swaps each unit's two rows with probability 1/2.
Both recompute the metric itself, so a correlation, a std or a ratio is tested as honestly as a
mean. A plain mean of 0/1 values gets McNemar's exact test instead of the permutation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from trustmh.paired import VALUE, Paired, Units

BOOTSTRAP_RESAMPLES = 1000  # protocol 1.5
PERMUTATIONS = 10_000  # p-values down to 1e-4, below Holm's thresholds for 20-odd subtasks
CHUNK = 1000  # resamples per matrix product (memory: CHUNK x n)
POWER = 0.8  # the power at which the minimum detectable difference is given


@dataclass
class PairedTable:
    """Two runs' values on the units both scored: n x k matrices over the same units and columns."""

    units: list[str]
    columns: list[str]
    a: np.ndarray
    b: np.ndarray
    strata: np.ndarray | None  # stratum code of each unit, when the declaration has strata

    @property
    def n(self) -> int:
        """Number of shared units."""
        return len(self.units)

    def binary_mean(self, paired: Paired) -> bool:
        """True when the metric is the mean of one column of 0/1 values (McNemar applies)."""
        if not paired.is_mean or self.columns != [VALUE] or not self.n:
            return False
        values = np.concatenate([self.a[:, 0], self.b[:, 0]])
        return bool(np.isin(values, (0.0, 1.0)).all())


def table(paired: Paired, units_a: Units, units_b: Units) -> PairedTable:
    """The shared units of two runs (sorted ids) with every column either run has."""
    shared = sorted(set(units_a) & set(units_b))
    columns = sorted({c for u in shared for c in (*units_a[u], *units_b[u])})
    index = {c: j for j, c in enumerate(columns)}
    a = np.full((len(shared), len(columns)), np.nan)
    b = np.full((len(shared), len(columns)), np.nan)
    for i, unit in enumerate(shared):
        for matrix, source in ((a, units_a[unit]), (b, units_b[unit])):
            for column, value in source.items():
                matrix[i, index[column]] = value
    strata = None
    if paired.stratum is not None:
        names = [paired.stratum(u) for u in shared]
        codes = {name: k for k, name in enumerate(dict.fromkeys(names))}
        strata = np.asarray([codes[name] for name in names], dtype=int)
    return PairedTable(shared, columns, a, b, strata)


def metric(paired: Paired, matrix: np.ndarray, columns: Sequence[str],
           options: dict[str, Any]) -> float:  # fmt: skip
    """The metric over all rows of one run's matrix (NaN when undefined)."""
    if matrix.shape[0] == 0:
        return math.nan
    present = np.isfinite(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(present, matrix, 0.0).sum(axis=0) / present.sum(axis=0)
    return float(_combine(paired, means[None, :], columns, options)[0])


def units_metric(paired: Paired, units: Units, options: dict[str, Any]) -> float:
    """The metric over every unit of one run (what the run's own aggregate should give)."""
    data = table(paired, units, units)
    return metric(paired, data.a, data.columns, options)


def _combine(paired: Paired, means: np.ndarray, columns: Sequence[str],
             options: dict[str, Any]) -> np.ndarray:  # fmt: skip
    if paired.combine is None:
        return means[..., columns.index(VALUE)] if VALUE in columns else means[..., 0] * np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(paired.combine(means, columns, options), dtype=float)


def _dot(rows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """rows (r x n) times matrix (n x k) without BLAS: einsum's own loop runs in a few ms here,
    where OpenBLAS's threads on a busy machine took ten times as long for these thin products."""
    return np.einsum("rn,nk->rk", rows, matrix)


def _weighted(weights: np.ndarray, zeros: np.ndarray, present: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return _dot(weights, zeros) / _dot(weights, present)


def bootstrap_differences(paired: Paired, data: PairedTable, options: dict[str, Any], seed: int,
                          resamples: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:  # fmt: skip
    """metric(A) - metric(B) on `resamples` paired bootstrap resamples of the shared units (the
    same units for both runs; within strata when declared). NaN where a resample is undefined."""
    rng = np.random.default_rng(seed)
    zeros_a, present_a = np.nan_to_num(data.a), np.isfinite(data.a).astype(float)
    zeros_b, present_b = np.nan_to_num(data.b), np.isfinite(data.b).astype(float)
    out = []
    for start in range(0, resamples, CHUNK):
        weights = _bootstrap_weights(rng, data, min(CHUNK, resamples - start))
        stat_a = _combine(paired, _weighted(weights, zeros_a, present_a), data.columns, options)
        stat_b = _combine(paired, _weighted(weights, zeros_b, present_b), data.columns, options)
        out.append(stat_a - stat_b)
    return np.concatenate(out) if out else np.empty(0)


def _bootstrap_weights(rng: np.random.Generator, data: PairedTable, rows: int) -> np.ndarray:
    """rows x n multiplicities of a bootstrap draw (within each stratum when there are strata)."""
    groups = (
        [np.arange(data.n)]
        if data.strata is None
        else [np.flatnonzero(data.strata == k) for k in np.unique(data.strata)]
    )
    weights = np.zeros((rows, data.n))
    offsets = np.arange(rows) * data.n
    for members in groups:
        size = members.size
        draws = members[rng.integers(0, size, size=(rows, size))]
        flat = (offsets[:, None] + draws).ravel()
        weights += np.bincount(flat, minlength=rows * data.n).reshape(rows, data.n)
    return weights


def permutation_p(paired: Paired, data: PairedTable, options: dict[str, Any], seed: int,
                  observed: float, permutations: int = PERMUTATIONS) -> tuple[float, int]:  # fmt: skip
    """Two-sided p of the paired permutation test of metric(A) - metric(B): each unit's two rows are
    swapped with probability 1/2 (exchangeable under "the two runs are equally good"); (p, number
    of permutations on which the metric was defined). p counts the observed arrangement."""
    rng = np.random.default_rng(seed)
    zeros_a, present_a = np.nan_to_num(data.a), np.isfinite(data.a).astype(float)
    zeros_b, present_b = np.nan_to_num(data.b), np.isfinite(data.b).astype(float)
    sum_a, sum_b = zeros_a.sum(axis=0), zeros_b.sum(axis=0)
    count_a, count_b = present_a.sum(axis=0), present_b.sum(axis=0)
    delta_sum, delta_count = zeros_b - zeros_a, present_b - present_a
    threshold = abs(observed) * (1 - 1e-9) - 1e-12  # ties count as extreme
    extreme = valid = 0
    for start in range(0, permutations, CHUNK):
        swap = (rng.random((min(CHUNK, permutations - start), data.n)) < 0.5).astype(float)
        moved_sum, moved_count = _dot(swap, delta_sum), _dot(swap, delta_count)
        with np.errstate(invalid="ignore", divide="ignore"):
            means_a = (sum_a + moved_sum) / (count_a + moved_count)
            means_b = (sum_b - moved_sum) / (count_b - moved_count)
        t = _combine(paired, means_a, data.columns, options) - _combine(
            paired, means_b, data.columns, options
        )
        finite = np.isfinite(t)
        valid += int(finite.sum())
        extreme += int((np.abs(t[finite]) >= threshold).sum())
    return (1 + extreme) / (1 + valid), valid


def mcnemar_p(data: PairedTable) -> tuple[float, int, int]:
    """McNemar's exact test on 0/1 pairs: (two-sided p, units only A got, units only B got)."""
    a, b = data.a[:, 0], data.b[:, 0]
    only_a, only_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    return binomial_two_sided(min(only_a, only_b), only_a + only_b), only_a, only_b


def binomial_two_sided(k: int, n: int) -> float:
    """Two-sided p of the exact binomial test of k successes in n at 1/2 (symmetric, so twice
    the lower tail): sum C(n, i) / 2^n for i <= k, in log space. scipy.stats gives the same but
    costs a second to import."""
    if n == 0:
        return 1.0
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(k + 1)]
    top = max(logs)
    tail = top + math.log(sum(math.exp(x - top) for x in logs)) - n * math.log(2)
    return min(1.0, 2 * math.exp(tail))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def minimum_detectable(standard_error: float, alpha: float, power: float = POWER) -> float | None:
    """The difference a two-sided test at `alpha` detects with probability `power`, given the
    standard error of the difference: (z(1 - alpha/2) + z(power)) * se. None when se is 0 (the
    runs agree on every shared unit: the spread of a difference is unknown)."""
    if not math.isfinite(standard_error) or standard_error <= 0:
        return None
    z = NormalDist()
    return (z.inv_cdf(1 - alpha / 2) + z.inv_cdf(power)) * standard_error
