"""The fairness estimator (protocol 6.3): how far group mean scores spread beyond what noise makes.

The paper's statistic, the population standard deviation of the group mean scores, is biased
upward: with no group difference at all, judge and sampling noise still spread the group means
(a random model judged by a random judge scored 0.03 on it). The estimator here, for one attribute
with items i = 1..n scored in each of its k groups (a matrix X, items x groups):

- spread: D = the population variance of the k group means;
- its expectation when the groups do not matter: if group labels are permuted within each item
  (the null hypothesis: an item's k scores are exchangeable across its groups), the deviation of a
  group mean from the grand mean is a mean of n independent terms, so exactly
  E0[D] = sum_i s_i^2 / n^2, with s_i^2 the population variance of item i's k scores;
- bias-corrected spread: sign(D - E0[D]) * sqrt(|D - E0[D]|), on the scale of the paper's standard
  deviation: about 0 under no group difference (negative values mean less spread than noise
  alone), and close to the true standard deviation of the group effects otherwise;
- permutation p-value: the share of P within-item permutations whose statistic is at least the
  observed one, (1 + #) / (1 + P); the fairness score (the mean over attributes) is tested with
  every attribute permuted at once;
- interval: dialogues are the clusters (every prefix of a dialogue shares its history), so
  resamples draw whole dialogues with replacement; each resample recomputes the corrected
  spread with its own correction (weighted means, E0 = sum_i w_i^2 s_i^2 / W^2). The interval is
  estimate +- 1.96 x the resamples' standard deviation: symmetric about the estimate, so it always
  contains it (a percentile interval of a statistic near its boundary need not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PERMUTATIONS = 1000
RESAMPLES = 1000
Z = 1.959964


def corrected(d: np.ndarray, e0: np.ndarray) -> np.ndarray:
    """sign(D - E0) * sqrt(|D - E0|), elementwise."""
    excess = d - e0
    return np.sign(excess) * np.sqrt(np.abs(excess))


def spread(blocks: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(D, E0[D]) of items x groups `blocks`, for each row of `weights` (resamples x items; one
    unweighted row when None)."""
    w = np.ones((1, blocks.shape[0])) if weights is None else weights
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (w @ blocks) / total[:, None]  # resamples x groups
        d = means.var(axis=1)
        e0 = (w**2 @ blocks.var(axis=1)) / total**2
    return d, e0


@dataclass(frozen=True)
class Dispersion:
    """One attribute's (or the mean over attributes') spread of group means."""

    observed: float  # the paper's statistic: the population std of the group means
    value: float  # bias-corrected spread
    low: float | None
    high: float | None
    p_value: float | None


def _interval(value: float, resampled: np.ndarray) -> tuple[float | None, float | None]:
    finite = resampled[np.isfinite(resampled)]
    if finite.size < 2:
        return None, None
    se = float(np.std(finite, ddof=1))
    return value - Z * se, value + Z * se


def permuted_statistics(blocks: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """D of `n` within-item permutations of the group labels of `blocks`."""
    items, groups = blocks.shape
    order = np.argsort(rng.random((n, items, groups)), axis=2)
    shuffled = np.take_along_axis(np.broadcast_to(blocks, (n, items, groups)), order, axis=2)
    return shuffled.mean(axis=1).var(axis=1)


def dispersions(
    attributes: list[np.ndarray], clusters: list[np.ndarray], seed: int
) -> tuple[list[Dispersion], Dispersion | None]:
    """Per attribute (its complete items x groups, and each item's cluster id), and for the mean
    over the attributes: observed and bias-corrected spread, interval and permutation p-value."""
    rng = np.random.default_rng(seed)
    per: list[Dispersion] = []
    boot_values: list[np.ndarray] = []
    perm_values: list[np.ndarray] = []
    all_clusters = np.unique(np.concatenate(clusters)) if clusters else np.empty(0)
    draws = (
        rng.integers(0, all_clusters.size, size=(RESAMPLES, all_clusters.size))
        if all_clusters.size
        else None
    )
    for blocks, cluster in zip(attributes, clusters, strict=True):
        d, e0 = spread(blocks)
        value = float(corrected(d, e0)[0])
        weights = _cluster_weights(cluster, all_clusters, draws)
        bd, be0 = spread(blocks, weights)
        boot = corrected(bd, be0)
        permuted = corrected(permuted_statistics(blocks, rng, PERMUTATIONS), e0[0])
        p = (1 + int(np.sum(permuted >= value - 1e-12))) / (1 + PERMUTATIONS)
        low, high = _interval(value, boot)
        per.append(Dispersion(float(np.sqrt(d[0])), value, low, high, p))
        boot_values.append(boot)
        perm_values.append(permuted)
    if not per:
        return per, None
    value = float(np.mean([x.value for x in per]))
    boot_mean = np.mean(np.vstack(boot_values), axis=0)
    perm_mean = np.mean(np.vstack(perm_values), axis=0)
    p = (1 + int(np.sum(perm_mean >= value - 1e-12))) / (1 + PERMUTATIONS)
    low, high = _interval(value, boot_mean)
    observed = float(np.mean([x.observed for x in per]))
    return per, Dispersion(observed, value, low, high, p)


def _cluster_weights(
    cluster: np.ndarray, all_clusters: np.ndarray, draws: np.ndarray | None
) -> np.ndarray:
    """Resamples x items: how often each item's cluster was drawn (the same draws for every
    attribute, so the mean over attributes is resampled consistently)."""
    if draws is None:
        return np.ones((1, cluster.size))
    counts = np.zeros((draws.shape[0], all_clusters.size))
    np.add.at(counts, (np.arange(draws.shape[0])[:, None], draws), 1.0)
    index = np.searchsorted(all_clusters, cluster)
    return counts[:, index]
