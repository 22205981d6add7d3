"""Interval helpers of trustmh.metrics."""

from __future__ import annotations

import numpy as np
import pytest

from trustmh.metrics import BOOTSTRAP_RESAMPLES, percentile_interval, proportion_ci


def index_bootstrap(values: np.ndarray, seed: int) -> tuple[float, float]:
    """The textbook percentile bootstrap: resample item indices, take each resample's mean."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(BOOTSTRAP_RESAMPLES, values.size))
    return percentile_interval(values[picks].mean(axis=1))


@pytest.mark.parametrize(("n", "rate"), [(40, 0.5), (300, 0.9), (2000, 0.7), (5000, 0.03)])
def test_binary_interval_matches_the_index_bootstrap(n: int, rate: float) -> None:
    # for 0/1 values the resampled means are drawn from Binomial(n, p)/n directly; the interval
    # must agree with resampling indices up to Monte-Carlo noise (a tenth of its width here)
    values = (np.random.default_rng(n).random(n) < rate).astype(float)
    low, high = proportion_ci(values, seed=3)
    widths = []
    for seed in range(5):
        ref_low, ref_high = index_bootstrap(values, seed)
        widths.append(ref_high - ref_low)
        assert abs(low - ref_low) <= 0.1 * (ref_high - ref_low) + 1 / n
        assert abs(high - ref_high) <= 0.1 * (ref_high - ref_low) + 1 / n
    assert low <= values.mean() <= high
    assert proportion_ci(values, seed=3) == (low, high)  # seeded


def test_interval_edge_cases() -> None:
    assert proportion_ci([1.0], seed=0) == (None, None)
    assert proportion_ci([1.0, 1.0, 1.0], seed=0) == (1.0, 1.0)
    assert proportion_ci([0.0, 0.0], seed=0) == (0.0, 0.0)
    graded = np.array([0.0, 0.5, 1.0, 0.25, 0.75] * 20)  # not 0/1: indices are resampled
    assert proportion_ci(graded, seed=1) == index_bootstrap(graded, seed=1)
