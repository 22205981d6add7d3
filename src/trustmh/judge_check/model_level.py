"""Model-level agreement (protocol 11.2): does a judge rank response sources like the experts?

MentalBench-Align (Badawi et al. 2025, arXiv 2510.19032) measures a judge with the *model* as the
unit: for a judge and an attribute, each response source (nine LLMs and the original human reply)
is one point, the experts' mean rating and the judge's mean rating of its replies over the
conversations both rated; the judge's own model is left out (nine points). ICC(C,1) (consistency)
and ICC(A,1) (absolute agreement) are taken over those points. The item-level check
(`mentalalign.py`) asks another question: does the judge rate each reply like the experts.

UPSTREAM, from the authors' `Codes/analysis/icc_corrected_with_bootstrap_ci.py` (MIT), read and
re-implemented here:
- the points and the self-exclusions (Claude-3.7-Sonnet leaves out Claude-3.5-Haiku, GPT-4o
  GPT-4o, Gemini-2.5-Flash Gemini-2.0-Flash, o4-mini GPT-4o-Mini);
- the ICC formulas (two-way ANOVA over point x rater, k = 2);
- the bootstrap: 1,000 resamples of the points with replacement; the resample seeds are
  `RandomState(42).randint(0, 100000, 1000)` and resample i is `RandomState(seed_i).choice(n, n)`
  over the points in the upstream order (`UPSTREAM_ORDER`); the 95% interval is the 2.5th and
  97.5th percentile of the resampled values that are finite and within [0, 1], none when fewer
  than 10 are;
- the CI width of ICC(C,1) and the published table's status rule: GR (good) when the width is at
  most 0.355, MR (moderate) up to 0.560, PR (poor) above.

DEFAULT (ours):
- the verdict: a judge is trusted *to rank models* on an attribute when the lower 95% bound of
  ICC(C,1) reaches the threshold (0.6). Consistency, not absolute agreement, because an offset
  shared by every model leaves their ranking unchanged. The bound is taken over every finite
  resample: the paper's interval drops resamples below 0, which would let a judge whose resamples
  are often negative look better than it is;
- the CSS and ARS group rows: a source's group point is the mean of its attribute points;
- `bound_spread`: how far the interval's bounds move when the 1,000 resamples are drawn again
  (other seeds), so a published interval can be compared with ours fairly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

import numpy as np

from trustmh.data.loaders import mentalalign as ma
from trustmh.judge_check.mentalalign import GROUPS, SOURCE, judge_key
from trustmh.judge_check.rating_sums import HUMAN, RatingSums
from trustmh.judge_check.results import (
    INSUFFICIENT,
    NOT_TRUSTED,
    TRUSTED,
    JudgeAgreement,
    Thresholds,
)
from trustmh.judge_check.stats import STATISTICS, Estimate

# recorded judges in the paper's table order, with the paper's names
PAPER_JUDGES: dict[str, str] = {
    "claude-3.7-sonnet": "Claude-3.7-Sonnet",
    "gpt-4o": "GPT-4o",
    "gemini-2.5-flash": "Gemini-2.5-Flash",
    "o4-mini": "o4-mini",
}
# response sources with the paper's model names (the original reply is not in its tables)
PAPER_MODELS: dict[str, str] = {
    "gpt4o": "GPT-4o",
    "gemini": "Gemini-2.0-Flash",
    "gpt4omini": "GPT-4o-Mini",
    "llama_3": "LLaMA-3.1-8B",
    "ds_llama": "DeepSeek-LLaMA-8B",
    "qwen_2": "Qwen-2.5-7B",
    "claude": "Claude-3.5-Haiku",
    "ds_qwen": "DeepSeek-Qwen-7B",
    "qwen_3": "Qwen-3-4B",
    "original": "Human (original reply)",
}
SELF_SOURCE: dict[str, str] = {
    "claude-3.7-sonnet": "claude",
    "gpt-4o": "gpt4o",
    "gemini-2.5-flash": "gemini",
    "o4-mini": "gpt4omini",
}
# upstream's MODEL_NAME_TO_KEY order: which point each seeded draw picks depends on it
UPSTREAM_ORDER = (
    "claude", "ds_llama", "ds_qwen", "gemini", "gpt4o", "gpt4omini", "llama_3", "qwen_2",
    "qwen_3", "original",
)  # fmt: skip
UPSTREAM_SEED = 42
UPSTREAM_RESAMPLES = 1000
MIN_VALID_RESAMPLES = 10
GOOD_MAX_WIDTH = 0.355  # GR: width <= 0.355
MODERATE_MAX_WIDTH = 0.560  # MR: 0.355 < width <= 0.560; PR above
ATTRIBUTES: tuple[str, ...] = (*ma.ATTRIBUTES, *GROUPS)
ATTRIBUTE_TYPE = {**dict.fromkeys(ma.CSS, "Cognitive"), **dict.fromkeys(ma.ARS, "Affective"),
                  "CSS": "Cognitive", "ARS": "Affective"}  # fmt: skip
STATUS_MEANING = {"GR": "good reliability", "MR": "moderate", "PR": "poor"}


def self_source_note() -> str:
    """Which recorded source each judge leaves out (the paper's self-evaluation rule)."""
    return "; ".join(
        f"{PAPER_JUDGES[j]} leaves out {PAPER_MODELS[s]}" for j, s in SELF_SOURCE.items()
    )


def iccs(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ICC(C,1) and ICC(A,1) of points (..., n, 2) (columns: experts, judge), vectorised over the
    leading axes; NaN or inf where a denominator is 0 (e.g. a resample of one point n times)."""
    points = np.asarray(points, dtype=np.float64)
    n, k = points.shape[-2], points.shape[-1]
    grand = points.mean(axis=(-2, -1))
    row_means, col_means = points.mean(axis=-1), points.mean(axis=-2)
    ss_rows = k * ((row_means - grand[..., None]) ** 2).sum(axis=-1)
    ss_cols = n * ((col_means - grand[..., None]) ** 2).sum(axis=-1)
    ss_total = ((points - grand[..., None, None]) ** 2).sum(axis=(-2, -1))
    ss_error = ss_total - ss_rows - ss_cols
    msr, msc = ss_rows / (n - 1), ss_cols / (k - 1)
    mse = ss_error / ((n - 1) * (k - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        c1 = (msr - mse) / (msr + (k - 1) * mse)
        a1 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    return c1, a1


@cache
def upstream_draws(n_points: int, resamples: int = UPSTREAM_RESAMPLES,
                   seed: int = UPSTREAM_SEED) -> np.ndarray:  # fmt: skip
    """The resampled point indices (resamples x n_points), seeded as upstream seeds them."""
    seeds = np.random.RandomState(seed).randint(0, 100000, resamples)
    draws = np.stack(
        [np.random.RandomState(s).choice(n_points, size=n_points, replace=True) for s in seeds]
    )
    draws.setflags(write=False)
    return draws


def upstream_interval(values: np.ndarray) -> tuple[float | None, float | None]:
    """The 2.5th and 97.5th percentiles of the resampled values that are finite and within
    [0, 1] (upstream's filter); (None, None) when fewer than 10 are."""
    values = np.asarray(values, dtype=np.float64)
    kept = values[np.isfinite(values) & (values >= 0) & (values <= 1)]
    if kept.size < MIN_VALID_RESAMPLES:
        return None, None
    low, high = np.percentile(kept, [2.5, 97.5])
    return float(low), float(high)


def reliability_status(width: float | None) -> str:
    """The published table's status from the ICC(C,1) CI width: GR, MR or PR ("" without one)."""
    if width is None:
        return ""
    if width <= GOOD_MAX_WIDTH:
        return "GR"
    return "MR" if width <= MODERATE_MAX_WIDTH else "PR"


@dataclass(frozen=True)
class Spread:
    """The 2.5th-97.5th percentile range of each interval bound and of the width over repeats
    of the bootstrap with other draws."""

    low: tuple[float, float]
    high: tuple[float, float]
    width: tuple[float, float]
    repeats: int


def icc_c1_weighted(points: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ICC(C,1) of two raters in closed form, 2 cov(x, y) / (var x + var y) (equal to
    `iccs(...)[0]` for k = 2), for resamples given as multiplicities `counts` (..., n) of the
    points (n, 2): a few matrix products instead of one reduction per resample."""
    x, y = points[:, 0], points[:, 1]
    m = counts.sum(axis=-1)
    sx, sy = counts @ x, counts @ y
    cxy = counts @ (x * y) - sx * sy / m
    cxx, cyy = counts @ (x * x) - sx**2 / m, counts @ (y * y) - sy**2 / m
    with np.errstate(invalid="ignore", divide="ignore"):
        return 2 * cxy / (cxx + cyy)


def bound_spread(points: np.ndarray, repeats: int = 100, resamples: int = UPSTREAM_RESAMPLES,
                 seed: int = 0) -> Spread | None:  # fmt: skip
    """How much the ICC(C,1) interval moves when its resamples are drawn again: `repeats`
    bootstraps of `resamples` draws each (seeded), each giving an upstream interval."""
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    draws = np.random.default_rng(seed).integers(0, n, size=(repeats * resamples, n))
    rows = np.repeat(np.arange(repeats * resamples), n)
    counts = np.bincount(rows * n + draws.ravel(), minlength=repeats * resamples * n)
    c1 = icc_c1_weighted(points, counts.reshape(repeats, resamples, n).astype(np.float64))
    c1 = np.where(np.isfinite(c1) & (c1 >= 0) & (c1 <= 1), c1, np.nan)
    valid = np.isfinite(c1).sum(axis=1)
    usable = valid >= MIN_VALID_RESAMPLES
    if not usable.any():
        return None
    ordered, valid = np.sort(c1[usable], axis=1), valid[usable]  # NaN sort last
    lows, highs = _row_percentile(ordered, valid, 2.5), _row_percentile(ordered, valid, 97.5)

    def band(x: np.ndarray) -> tuple[float, float]:
        lo, hi = np.percentile(x, [2.5, 97.5])
        return float(lo), float(hi)

    return Spread(band(lows), band(highs), band(highs - lows), int(usable.sum()))


def _row_percentile(ordered: np.ndarray, valid: np.ndarray, q: float) -> np.ndarray:
    """Each row's q-th percentile over its first `valid` (sorted) values, with numpy's default
    linear interpolation."""
    position = (valid - 1) * q / 100
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, valid - 1)
    low = np.take_along_axis(ordered, below[:, None], axis=1)[:, 0]
    high = np.take_along_axis(ordered, above[:, None], axis=1)[:, 0]
    return low + (position - below) * (high - low)


@dataclass(frozen=True)
class ModelLevelResult:
    """One judge x attribute at model level: the points, the ICCs with the paper's intervals,
    and the bias figures over the pooled paired ratings (self-evaluations left out)."""

    judge: str  # recorded judge name, e.g. gpt-4o
    attribute: str
    sources: tuple[str, ...]  # response sources of the points, in upstream order
    human_means: np.ndarray
    judge_means: np.ndarray
    n_pairs: int  # paired ratings behind the points
    icc_c1: Estimate
    icc_a1: Estimate
    c1_low_all: float | None  # ICC(C,1) 2.5th percentile over every finite resample
    width: float | None  # ICC(C,1) CI width
    status: str  # GR / MR / PR
    human_mean: float | None  # pooled over the paired ratings
    judge_mean: float | None
    bias: float | None
    mse: float | None
    pearson: float | None
    spearman: float | None

    @property
    def points(self) -> np.ndarray:
        """(n points, 2): experts' mean, judge's mean per source."""
        return np.column_stack([self.human_means, self.judge_means])


def _pooled(sums: RatingSums, rater: int, sources: list[int], attribute: int) -> dict:
    n = sums.n_paired[rater, sources, attribute].sum()
    if n == 0:
        return dict.fromkeys(("human_mean", "judge_mean", "bias", "mse"))
    h = sums.sum_paired_human[rater, sources, attribute].sum()
    j = sums.sum_paired_rater[rater, sources, attribute].sum()
    hh = sums.sum_sq_paired_human[rater, sources, attribute].sum()
    jj = sums.sum_sq_paired_rater[rater, sources, attribute].sum()
    hj = sums.sum_paired_product[rater, sources, attribute].sum()
    return {"human_mean": h / n, "judge_mean": j / n, "bias": (j - h) / n,
            "mse": (hh + jj - 2 * hj) / n}  # fmt: skip


def _correlations(points: np.ndarray) -> tuple[float | None, float | None]:
    """Pearson's r and Spearman's rho (Pearson on mid-ranks) of the two columns."""
    if len(points) < 3 or np.ptp(points[:, 0]) == 0 or np.ptp(points[:, 1]) == 0:
        return None, None
    ranks = np.column_stack([_midranks(points[:, 0]), _midranks(points[:, 1])])
    return float(np.corrcoef(points.T)[0, 1]), float(np.corrcoef(ranks.T)[0, 1])


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def model_level(sums: RatingSums, judge: str, attribute: str, *,
                resamples: int = UPSTREAM_RESAMPLES, seed: int = UPSTREAM_SEED) -> ModelLevelResult:  # fmt: skip
    """The model-level statistics of one recorded judge on one attribute (or group)."""
    rater = ma.RATERS.index(judge)
    columns = [ma.ATTRIBUTES.index(a) for a in GROUPS.get(attribute, (attribute,))]
    wanted = [s for s in UPSTREAM_ORDER if s != SELF_SOURCE.get(judge)]
    index = [ma.RESPONSE_SOURCES.index(s) for s in wanted]
    n_pair = sums.n_paired[rater][np.ix_(index, columns)]
    kept = (n_pair > 0).all(axis=1)  # a source with no paired rating gives no point (upstream)
    sources = [s for s, keep in zip(wanted, kept, strict=True) if keep]
    index = [i for i, keep in zip(index, kept, strict=True) if keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        human = (sums.sum_paired_human[rater][np.ix_(index, columns)] / n_pair[kept]).mean(axis=1)
        rated = (sums.sum_paired_rater[rater][np.ix_(index, columns)] / n_pair[kept]).mean(axis=1)
    points = np.column_stack([human, rated])
    pooled = [_pooled(sums, rater, index, c) for c in columns]
    figures = {key: _mean_or_none([p[key] for p in pooled]) for key in pooled[0]}
    if len(columns) > 1:
        figures["mse"] = None  # a group's MSE needs per-reply group scores, not these sums
    if len(points) < 2:
        empty = Estimate(None, None, None)
        return ModelLevelResult(judge, attribute, tuple(sources), human, rated,
                                int(n_pair.sum()), empty, empty, None, None, "",
                                **figures, pearson=None, spearman=None)  # fmt: skip
    c1, a1 = iccs(points)
    boot_c1, boot_a1 = iccs(points[upstream_draws(len(points), resamples, seed)])
    c1_low, c1_high = upstream_interval(boot_c1)
    a1_low, a1_high = upstream_interval(boot_a1)
    finite = boot_c1[np.isfinite(boot_c1)]
    width = None if c1_low is None else c1_high - c1_low  # type: ignore[operator]
    pearson, spearman = _correlations(points)
    return ModelLevelResult(
        judge=judge,
        attribute=attribute,
        sources=tuple(sources),
        human_means=human,
        judge_means=rated,
        n_pairs=int(n_pair[kept].sum()),
        icc_c1=Estimate(_finite(c1), c1_low, c1_high),
        icc_a1=Estimate(_finite(a1), a1_low, a1_high),
        c1_low_all=float(np.percentile(finite, 2.5))
        if finite.size >= MIN_VALID_RESAMPLES
        else None,
        width=width,
        status=reliability_status(width),
        pearson=pearson,
        spearman=spearman,
        **figures,
    )


def _mean_or_none(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _finite(x: np.ndarray) -> float | None:
    value = float(x)
    return value if np.isfinite(value) else None


def model_verdict(result: ModelLevelResult, thresholds: Thresholds) -> tuple[str, str]:
    """(verdict, reason): trusted to rank models when the lower 95% bound of ICC(C,1) over every
    resample reaches the threshold."""
    low, minimum = result.c1_low_all, thresholds.min_icc_a1_low
    if low is None:
        return INSUFFICIENT, "too few models for an interval"
    basis = f"model level ({len(result.sources)} models): ICC(C,1) lower bound {low:.2f}" + (
        f" over every resample (the paper's interval, which drops resamples below 0, "
        f"has {result.icc_c1.ci_low:.2f})"
        if result.icc_c1.ci_low is not None and abs(result.icc_c1.ci_low - low) >= 0.005
        else ""
    )
    why = "ranking models depends on consistency: an offset shared by every model leaves the ranking as it is"
    c1 = result.icc_c1
    flag = (
        f"; the paper's interval [{c1.ci_low:.2f}, {c1.ci_high:.2f}] excludes the estimate "
        f"{c1.value:.2f} because it drops resamples outside [0, 1]"
        if c1.value is not None
        and c1.ci_low is not None
        and not c1.ci_low <= c1.value <= c1.ci_high  # type: ignore[operator]
        else ""
    )
    if low >= minimum:
        return TRUSTED, f"{basis} >= {minimum:g}; {why}{flag}"
    return NOT_TRUSTED, f"{basis} < {minimum:g}{flag}"


def as_agreement(result: ModelLevelResult, thresholds: Thresholds, created: str = "",
                 resamples: int = UPSTREAM_RESAMPLES) -> JudgeAgreement:  # fmt: skip
    """A model-level result as a judge-check row (`unit="model"`): ICCs with the paper's
    intervals, bias and MSE over the pooled paired ratings, Pearson and Spearman over the
    points; the other item-level statistics are undefined here."""
    stats = dict.fromkeys(STATISTICS, Estimate(None, None, None))
    stats.update(
        icc_c1=result.icc_c1,
        icc_a1=result.icc_a1,
        bias=Estimate(result.bias, None, None),
        mse=Estimate(result.mse, None, None),
        pearson=Estimate(result.pearson, None, None),
        spearman=Estimate(result.spearman, None, None),
    )
    verdict, reason = model_verdict(result, thresholds)
    return JudgeAgreement(
        judge=judge_key(result.judge),
        attribute=result.attribute,
        reference=HUMAN,
        source=SOURCE,
        stats=stats,
        n_items=len(result.sources),
        n_conversations=0,
        mean_reference=result.human_mean,
        mean_judge=result.judge_mean,
        verdict=verdict,
        reason=reason,
        resamples=resamples,
        created=created,
        thresholds=thresholds,
        unit="model",
        reliability=result.status,
    )


def check_model_level(sums: RatingSums, judges: list[str], *, attributes: tuple[str, ...] = ATTRIBUTES,
                      thresholds: Thresholds | None = None, resamples: int = UPSTREAM_RESAMPLES,
                      seed: int = UPSTREAM_SEED) -> list[JudgeAgreement]:  # fmt: skip
    """One model-level row per judge x attribute, judges in the order given."""
    thresholds = thresholds or Thresholds()
    created = datetime.now().isoformat(timespec="seconds")
    return [
        as_agreement(
            model_level(sums, judge, attribute, resamples=resamples, seed=seed),
            thresholds,
            created,
            resamples,
        )
        for judge in judges
        for attribute in attributes
    ]
