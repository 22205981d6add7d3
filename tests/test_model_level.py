"""Model-level agreement (protocol 11.2) without the real data: the ICCs against pingouin, the
bootstrap against upstream's own seeding loop written out here, the status rule at its edges, the
sums file's round trip and errors, and null judges (constant, random, offset) on synthetic
ratings: none may look trusted without reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_judge_check_stats import pingouin_iccs

from trustmh.data.loaders import mentalalign as ma
from trustmh.errors import DataError
from trustmh.judge_check.mentalalign import analyse
from trustmh.judge_check.model_level import (
    PAPER_JUDGES,
    SELF_SOURCE,
    UPSTREAM_ORDER,
    as_agreement,
    bound_spread,
    icc_c1_weighted,
    iccs,
    model_level,
    reliability_status,
    upstream_draws,
    upstream_interval,
)
from trustmh.judge_check.rating_sums import from_ratings, read_sums
from trustmh.judge_check.results import NOT_TRUSTED, TRUSTED, Thresholds

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")


def test_iccs_equal_pingouin_on_random_points() -> None:
    rng = np.random.default_rng(5)
    for _ in range(5):
        points = rng.uniform(2, 5, size=(9, 2))
        c1, a1 = iccs(points)
        a1_ref, c1_ref = pingouin_iccs(points[:, 0], points[:, 1])
        assert float(c1) == pytest.approx(c1_ref, abs=1e-12)
        assert float(a1) == pytest.approx(a1_ref, abs=1e-12)


def upstream_loop(points: np.ndarray) -> tuple[list[float], list[float]]:
    """Upstream's bootstrap as its code runs it: a global seed, then one global reseed per
    resample (compute_icc_with_bootstrap_ci / bootstrap_icc_sample), ICCs by pingouin."""
    state = np.random.get_state()
    try:
        np.random.seed(42)
        seeds = np.random.randint(0, 100000, 1000)
        c1s, a1s = [], []
        for seed in seeds[:60]:  # pingouin is slow; the first 60 resamples are enough to compare
            np.random.seed(seed)
            index = np.random.choice(len(points), size=len(points), replace=True)
            if len(set(index)) < 2:
                c1s.append(np.nan)
                a1s.append(np.nan)
                continue
            a1, c1 = pingouin_iccs(points[index, 0], points[index, 1])
            c1s.append(c1)
            a1s.append(a1)
        return c1s, a1s
    finally:
        np.random.set_state(state)


def test_resamples_are_upstreams_draws() -> None:
    points = np.random.default_rng(1).uniform(3, 5, size=(9, 2))
    c1_ref, a1_ref = upstream_loop(points)
    c1, a1 = iccs(points[upstream_draws(9)])
    np.testing.assert_allclose(c1[:60], c1_ref, atol=1e-9)
    np.testing.assert_allclose(a1[:60], a1_ref, atol=1e-9)
    assert upstream_draws(9).shape == (1000, 9)


def test_interval_keeps_only_resamples_in_0_1_and_needs_ten() -> None:
    values = np.r_[np.linspace(0, 1, 41), [-0.5, 1.5, np.nan, np.inf]]
    low, high = upstream_interval(values)
    assert (low, high) == pytest.approx(tuple(np.percentile(np.linspace(0, 1, 41), [2.5, 97.5])))
    assert upstream_interval(np.r_[np.linspace(0, 1, 9), [-1.0] * 50]) == (None, None)


@pytest.mark.parametrize(
    ("width", "status"),
    [(0.0, "GR"), (0.355, "GR"), (0.3551, "MR"), (0.56, "MR"), (0.5601, "PR"), (None, "")],
)
def test_status_rule_at_its_edges(width, status) -> None:
    # the published table: GR = CI width <= 0.355, MR 0.355-0.560 (0.560 is MR), PR above
    assert reliability_status(width) == status


def test_weighted_closed_form_equals_the_anova_icc() -> None:
    points = np.random.default_rng(2).uniform(1, 5, size=(9, 2))
    draws = upstream_draws(9)
    counts = np.stack([np.bincount(row, minlength=9) for row in draws]).astype(float)
    np.testing.assert_allclose(icc_c1_weighted(points, counts), iccs(points[draws])[0], atol=1e-12)
    spread = bound_spread(points, repeats=20)
    assert spread is not None and spread.repeats == 20
    assert spread.low[0] <= spread.low[1] <= spread.high[0] <= spread.high[1]


# -- synthetic ratings: the experts' quality per source, and judges that follow it or not ----

QUALITY = dict(
    zip(ma.RESPONSE_SOURCES, np.linspace(2.0, 4.7, len(ma.RESPONSE_SOURCES)), strict=True)
)


def synthetic_table(judge_rule, n_conv: int = 60, seed: int = 0) -> ma.RatingsTable:
    """Ratings of every source by the experts (their quality plus noise) and by every recorded
    judge (`judge_rule(expert score, rng)`), rounded to 1-5."""
    rng = np.random.default_rng(seed)
    conv, src, rater, attr, score = [], [], [], [], []
    for c in range(1, n_conv + 1):
        for s, source in enumerate(ma.RESPONSE_SOURCES):
            for a in range(len(ma.ATTRIBUTES)):
                expert = float(np.clip(np.round(QUALITY[source] + rng.normal(0, 0.6)), 1, 5))
                for r, name in enumerate(ma.RATERS):
                    value = expert if name == "human" else judge_rule(expert, rng)
                    conv.append(c)
                    src.append(s)
                    rater.append(r)
                    attr.append(a)
                    score.append(float(np.clip(value, 1, 5)))
    return ma.RatingsTable(np.asarray(conv, np.int32), np.asarray(src, np.int8),
                           np.asarray(rater, np.int8), np.asarray(attr, np.int8),
                           np.asarray(score, np.float32))  # fmt: skip


def model_rows(table: ma.RatingsTable, attribute: str = "Guidance"):
    sums = from_ratings(table)
    return [model_level(sums, judge, attribute) for judge in PAPER_JUDGES]


def test_an_honest_judge_is_trusted_and_its_own_model_is_left_out() -> None:
    results = model_rows(synthetic_table(lambda e, rng: e))
    for result in results:
        assert SELF_SOURCE[result.judge] not in result.sources and len(result.sources) == 9
        assert list(result.sources) == [s for s in UPSTREAM_ORDER if s in result.sources]
        assert result.icc_c1.value == pytest.approx(1.0) and result.bias == 0
        row = as_agreement(result, Thresholds())
        assert row.verdict == TRUSTED and row.unit == "model" and "model level" in row.reason


@pytest.mark.parametrize(
    "rule",
    [lambda e, rng: 4.0, lambda e, rng: float(rng.integers(1, 6))],
    ids=["constant judge", "random judge"],
)
def test_null_judges_are_not_trusted_to_rank(rule) -> None:
    for result in model_rows(synthetic_table(rule)):
        row = as_agreement(result, Thresholds())
        assert row.verdict != TRUSTED, (result.judge, result.icc_c1, result.c1_low_all)


def test_an_offset_judge_ranks_like_the_experts_but_does_not_rate_like_them() -> None:
    # +1 on every reply (clipped at 5): the ranking survives, absolute agreement does not
    table = synthetic_table(lambda e, rng: e + 1)
    for result in model_rows(table):
        assert as_agreement(result, Thresholds()).verdict == TRUSTED
        assert result.icc_a1.value < result.icc_c1.value and result.bias > 0.5
    items = [r for r in analyse(table, resamples=50) if r.attribute == "Guidance"]
    assert all(r.verdict == NOT_TRUSTED and "|bias|" in r.reason for r in items)


def test_a_weak_judge_keeps_its_negative_resamples_and_is_flagged() -> None:
    # a judge that reads the reply 5% of the time: its resampled ICCs are often negative. The
    # paper's interval drops them (and may then exclude its own estimate); the verdict's bound
    # keeps them, so it is lower, and the row says when the paper's interval misses the estimate
    table = synthetic_table(lambda e, rng: e if rng.random() < 0.05 else float(rng.integers(1, 6)))
    lower, excluded = [], []
    for result in model_rows(table):
        assert result.icc_c1.ci_low is not None and result.c1_low_all is not None
        assert result.c1_low_all <= result.icc_c1.ci_low + 1e-12
        lower.append(result.c1_low_all < result.icc_c1.ci_low - 0.01)
        row = as_agreement(result, Thresholds())
        assert row.verdict == NOT_TRUSTED
        if not result.icc_c1.ci_low <= result.icc_c1.value <= result.icc_c1.ci_high:
            excluded.append(result.judge)
            assert "excludes the estimate" in row.reason
    assert any(lower), "the weak judge should have resamples below 0"
    assert excluded, "with this seed one judge's paper interval misses its estimate"


def test_sums_round_trip_and_bad_files_name_the_row(tmp_path: Path) -> None:
    sums = from_ratings(synthetic_table(lambda e, rng: e, n_conv=3))
    path = tmp_path / "model_sums.csv"
    path.write_text(sums.to_csv(), encoding="utf-8")
    assert read_sums(path) == sums
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], *lines[1:5], "human,nowhere,Guidance,1,2,3"]) + "\n")
    with pytest.raises(DataError, match="row 6"):
        read_sums(path)
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match="no row for o4-mini"):
        read_sums(path)
    path.write_text("a,b\n")
    with pytest.raises(DataError, match="columns must be"):
        read_sums(path)
