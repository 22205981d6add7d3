"""Agreement statistics between a judge and a human reference, with a cluster bootstrap.

Every statistic here is a function of the joint contingency table of the two raters' scores
(reference value x judge value), so one table per conversation is a sufficient summary:

- a bootstrap resample of conversations is a vector of multiplicities `w` (how often each
  conversation was drawn), and the resampled table is `w @ tables`;
- all 1,000 resamples are then one matrix product plus array arithmetic over the stacked tables,
  instead of 1,000 passes over the items.

The formulas are the textbook ones (two-way ANOVA ICCs of McGraw & Wong 1996 with k = 2 raters;
Pearson; Spearman as Pearson on mid-ranks; quadratic-weighted Cohen's kappa with weights
(x - y)^2 on the score values; Krippendorff's alpha with the ordinal metric). The tests check
each point estimate against pingouin, scipy, scikit-learn and the krippendorff package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# name -> what it measures (the CSV and the terminal table use these names)
STATISTICS: dict[str, str] = {
    "icc_a1": "ICC(A,1), two-way, absolute agreement, single rater",
    "icc_c1": "ICC(C,1), two-way, consistency, single rater",
    "bias": "mean of judge minus reference",
    "mse": "mean squared difference",
    "pearson": "Pearson r",
    "spearman": "Spearman rho",
    "kappa_quadratic": "Cohen's kappa, quadratic weights",
    "kripp_alpha_ordinal": "Krippendorff's alpha, ordinal metric",
    "exact_agreement": "share of items scored identically",
    "within_one": "share of items scored within one point",
}
DEFAULT_RESAMPLES = 1000
DECIMALS = 6  # score values are rounded to this before building the value grid


@dataclass(frozen=True)
class Estimate:
    """A statistic's point estimate and its bootstrap 95% percentile interval."""

    value: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class PairTables:
    """Paired scores summarised as one contingency table per conversation.

    `tables[c, a, b]` counts the items of conversation c that the reference scored
    `values[a]` and the judge scored `values[b]`.
    """

    values: np.ndarray  # (K,) sorted score values
    tables: np.ndarray  # (C, K, K) counts

    @property
    def total(self) -> np.ndarray:
        """The pooled table over all conversations."""
        return self.tables.sum(axis=0)


def pair_tables(
    reference: np.ndarray, judge: np.ndarray, cluster: np.ndarray, n_clusters: int | None = None
) -> PairTables:
    """Per-conversation contingency tables of paired scores (NaN pairs must be removed first).

    `cluster` holds each item's conversation index (0..n_clusters-1).
    """
    reference = np.asarray(reference, dtype=np.float64)
    judge = np.asarray(judge, dtype=np.float64)
    cluster = np.asarray(cluster, dtype=np.int64)
    if not (reference.shape == judge.shape == cluster.shape):
        raise ValueError("reference, judge and cluster must have the same length")
    n_clusters = int(cluster.max()) + 1 if n_clusters is None and cluster.size else n_clusters or 0
    both = np.concatenate([reference, judge])
    # group values equal up to float noise (means of 3 scores), keep an exact value per group
    keys, first, codes = np.unique(np.round(both, DECIMALS), return_index=True, return_inverse=True)
    values = both[first]
    k = len(values)
    ia, ib = codes[: reference.size], codes[reference.size :]
    flat = np.bincount((cluster * k + ia) * k + ib, minlength=n_clusters * k * k)
    return PairTables(values, flat.reshape(n_clusters, k, k).astype(np.float64))


def table_statistics(tables: np.ndarray, values: np.ndarray) -> dict[str, np.ndarray]:
    """Every statistic of `STATISTICS` for a stack of contingency tables (..., K, K).

    Rows (axis -2) are the reference's values, columns (axis -1) the judge's. NaN where a
    statistic is undefined (fewer than two items, no variance).
    """
    p = np.asarray(tables, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = p.sum(axis=(-2, -1))
        ref_counts = p.sum(axis=-1)
        judge_counts = p.sum(axis=-2)
        sx, sy = ref_counts @ v, judge_counts @ v
        sxx, syy = ref_counts @ v**2, judge_counts @ v**2
        sxy = np.einsum("...ab,a,b->...", p, v, v)
        mx, my = sx / n, sy / n
        var_x, var_y = sxx / n - mx**2, syy / n - my**2  # population moments
        cov = sxy / n - mx * my
        out: dict[str, np.ndarray] = {}
        out["icc_a1"], out["icc_c1"] = _iccs(n, sx, sy, sxx, syy, sxy)
        out["bias"] = my - mx
        out["mse"] = (sxx + syy - 2 * sxy) / n
        out["pearson"] = cov / np.sqrt(var_x * var_y)
        out["spearman"] = _spearman(p, ref_counts, judge_counts, n)
        # quadratic-weighted kappa with weights (x - y)^2 equals this moment form (Lin's CCC with
        # population moments); it matches the usual index-weighted kappa on a full 1..5 scale
        out["kappa_quadratic"] = 2 * cov / (var_x + var_y + (mx - my) ** 2)
        out["kripp_alpha_ordinal"] = _kripp_alpha_ordinal(p, ref_counts + judge_counts, n)
        diff = np.abs(v[:, None] - v[None, :])
        out["exact_agreement"] = np.einsum("...aa->...", p) / n
        out["within_one"] = (p * (diff <= 1 + 1e-9)).sum(axis=(-2, -1)) / n
        small = n < 2
        for name in out:
            out[name] = np.where(small, np.nan, out[name])
    return out


def _iccs(n, sx, sy, sxx, syy, sxy) -> tuple[np.ndarray, np.ndarray]:
    """ICC(A,1) and ICC(C,1) of the two-way ANOVA over (item, rater) with k = 2 raters."""
    grand = (sx + sy) / (2 * n)
    item_mean_sq = (sxx + syy + 2 * sxy) / 4  # sum over items of the squared item means
    ss_items = 2 * (item_mean_sq - n * grand**2)
    ss_raters = n * ((sx / n - grand) ** 2 + (sy / n - grand) ** 2)
    ss_total = sxx + syy - 2 * n * grand**2
    ss_error = ss_total - ss_items - ss_raters
    ms_items = ss_items / (n - 1)
    ms_raters = ss_raters  # k - 1 = 1 degree of freedom
    ms_error = ss_error / (n - 1)  # (n - 1)(k - 1)
    icc_a1 = (ms_items - ms_error) / (ms_items + ms_error + 2 / n * (ms_raters - ms_error))
    icc_c1 = (ms_items - ms_error) / (ms_items + ms_error)
    return icc_a1, icc_c1


def _midranks(counts: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of each value given its counts (..., K)."""
    below = np.cumsum(counts, axis=-1) - counts
    return below + (counts + 1) / 2


def _spearman(p, ref_counts, judge_counts, n) -> np.ndarray:
    """Spearman's rho: Pearson's r of the mid-ranks."""
    rx, ry = _midranks(ref_counts), _midranks(judge_counts)
    sx, sy = (ref_counts * rx).sum(-1), (judge_counts * ry).sum(-1)
    sxx, syy = (ref_counts * rx**2).sum(-1), (judge_counts * ry**2).sum(-1)
    sxy = np.einsum("...ab,...a,...b->...", p, rx, ry)
    cov = sxy / n - sx * sy / n**2
    return cov / np.sqrt((sxx / n - (sx / n) ** 2) * (syy / n - (sy / n) ** 2))


def _kripp_alpha_ordinal(p, value_counts, n) -> np.ndarray:
    """Krippendorff's alpha (ordinal) for two coders who both scored every item.

    The coincidence matrix is p + p^T (each item contributes one ordered pair each way);
    the ordinal distance between values c <= k is (sum of n_g for g in c..k - (n_c + n_k)/2)^2,
    i.e. the squared difference of the values' cumulative-frequency midpoints.
    """
    coincidences = p + np.swapaxes(p, -1, -2)
    mid = np.cumsum(value_counts, axis=-1) - value_counts / 2
    delta = (mid[..., :, None] - mid[..., None, :]) ** 2
    observed = (coincidences * delta).sum(axis=(-2, -1))
    expected = np.einsum("...a,...b,...ab->...", value_counts, value_counts, delta)
    return 1 - (2 * n - 1) * observed / expected


def resample_weights(n_clusters: int, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap multiplicities (resamples x n_clusters): conversations drawn with replacement."""
    rng = np.random.default_rng(seed)
    if n_clusters == 0:
        return np.zeros((resamples, 0))
    return rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=resamples).astype(
        np.float64
    )


def estimate_all(pairs: PairTables, weights: np.ndarray | None) -> dict[str, Estimate]:
    """Point estimates on the pooled table and percentile 95% intervals over `weights`
    (from `resample_weights`; None for no intervals)."""
    point = table_statistics(pairs.total, pairs.values)
    boot: dict[str, np.ndarray] = {}
    if weights is not None and weights.shape[0] and pairs.tables.shape[0]:
        c, k, _ = pairs.tables.shape
        if weights.shape[1] != c:
            raise ValueError(f"weights cover {weights.shape[1]} conversations, tables {c}")
        resampled = (weights @ pairs.tables.reshape(c, k * k)).reshape(-1, k, k)
        boot = table_statistics(resampled, pairs.values)
    result = {}
    for name in STATISTICS:
        value = _finite(point[name])
        low = high = None
        if name in boot:
            finite = boot[name][np.isfinite(boot[name])]
            if finite.size:
                low, high = (float(x) for x in np.percentile(finite, [2.5, 97.5]))
        result[name] = Estimate(value, low, high)
    return result


def _finite(x: np.ndarray) -> float | None:
    value = float(x)
    return value if np.isfinite(value) else None
