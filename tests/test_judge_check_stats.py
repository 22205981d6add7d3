"""judge-check statistics: hand-made tables with known answers, equality with pingouin / scipy /
scikit-learn / krippendorff on random tables, and the vectorised conversation bootstrap against an
explicit resample."""

from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd
import pingouin
import pytest
from scipy import stats as sps
from sklearn.metrics import cohen_kappa_score

from trustmh.judge_check.results import (
    INSUFFICIENT,
    NOT_TRUSTED,
    TRUSTED,
    Thresholds,
    agreement_row,
    verdict,
)
from trustmh.judge_check.stats import (
    STATISTICS,
    Estimate,
    estimate_all,
    pair_tables,
    resample_weights,
    table_statistics,
)

# pingouin's own use of a pandas keyword pandas now deprecates
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")


def point(reference, judge) -> dict[str, float]:
    """Point estimates for paired scores, one conversation per item."""
    reference, judge = np.asarray(reference, float), np.asarray(judge, float)
    pairs = pair_tables(reference, judge, np.arange(len(reference)))
    return {k: float(v) for k, v in table_statistics(pairs.total, pairs.values).items()}


def pingouin_iccs(reference, judge) -> tuple[float, float]:
    """ICC(A,1) and ICC(C,1) from pingouin (names differ across pingouin versions)."""
    n = len(reference)
    long = pd.DataFrame({"item": np.r_[np.arange(n), np.arange(n)],
                         "rater": ["reference"] * n + ["judge"] * n,
                         "score": np.r_[reference, judge]})  # fmt: skip
    table = pingouin.intraclass_corr(data=long, targets="item", raters="rater", ratings="score")
    icc = dict(zip(table["Type"], table["ICC"], strict=True))
    absolute = icc.get("ICC(A,1)", icc.get("ICC2"))
    consistency = icc.get("ICC(C,1)", icc.get("ICC3"))
    return float(absolute), float(consistency)


def library_statistics(reference, judge, labels=(1, 2, 3, 4, 5)) -> dict[str, float]:
    """Every statistic computed independently with the libraries (and numpy for the simple ones)."""
    reference, judge = np.asarray(reference, float), np.asarray(judge, float)
    icc_a1, icc_c1 = pingouin_iccs(reference, judge)
    out = {
        "icc_a1": icc_a1,
        "icc_c1": icc_c1,
        "bias": float(np.mean(judge - reference)),
        "mse": float(np.mean((judge - reference) ** 2)),
        "pearson": float(sps.pearsonr(reference, judge)[0]),
        "spearman": float(sps.spearmanr(reference, judge)[0]),
        "kripp_alpha_ordinal": float(
            krippendorff.alpha(
                reliability_data=np.vstack([reference, judge]), level_of_measurement="ordinal"
            )  # fmt: skip
        ),
        # group means of three scores carry float noise (13/3 - 10/3 > 1 by 4e-16)
        "exact_agreement": float(np.mean(np.isclose(reference, judge, rtol=0, atol=1e-9))),
        "within_one": float(np.mean(np.abs(reference - judge) <= 1 + 1e-9)),
    }
    if labels is not None:
        out["kappa_quadratic"] = float(
            cohen_kappa_score(
                reference.astype(int), judge.astype(int), weights="quadratic", labels=list(labels)
            )  # fmt: skip
        )
    return out


# --- hand-made tables with known answers ---------------------------------------------------------


def test_perfect_agreement_is_one_everywhere() -> None:
    s = point([1, 2, 3, 4, 5, 3], [1, 2, 3, 4, 5, 3])
    for name in ("icc_a1", "icc_c1", "pearson", "spearman", "kappa_quadratic",
                 "kripp_alpha_ordinal", "exact_agreement", "within_one"):  # fmt: skip
        assert s[name] == pytest.approx(1.0), name
    assert s["bias"] == 0 and s["mse"] == 0


def test_constant_offset_separates_absolute_from_consistency() -> None:
    # judge = reference + 1 on x = 1..4: sum of squares of x around its mean = 5, n = 4, so
    # MS(items) = 2 * 5 / 3 = 10/3, MS(error) = 0, and ICC(A,1) = MSR / (MSR + d^2) = 10/13;
    # weighted kappa = 2 cov / (var_x + var_y + d^2) = 2.5 / 3.5 = 5/7
    s = point([1, 2, 3, 4], [2, 3, 4, 5])
    assert s["icc_c1"] == pytest.approx(1.0)
    assert s["icc_a1"] == pytest.approx(10 / 13)
    assert s["kappa_quadratic"] == pytest.approx(5 / 7)
    assert s["pearson"] == pytest.approx(1.0) and s["spearman"] == pytest.approx(1.0)
    assert s["bias"] == pytest.approx(1.0) and s["mse"] == pytest.approx(1.0)
    assert s["exact_agreement"] == 0 and s["within_one"] == 1


def test_agreement_shares_bias_and_mse_by_hand() -> None:
    s = point([1, 2, 3, 5], [1, 3, 5, 5])
    assert s["exact_agreement"] == pytest.approx(2 / 4)
    assert s["within_one"] == pytest.approx(3 / 4)
    assert s["bias"] == pytest.approx((0 + 1 + 2 + 0) / 4)
    assert s["mse"] == pytest.approx((0 + 1 + 4 + 0) / 4)


def test_reversed_ranking_is_negative() -> None:
    s = point([1, 2, 3, 4, 5], [5, 4, 3, 2, 1])
    assert s["pearson"] == pytest.approx(-1.0) and s["spearman"] == pytest.approx(-1.0)
    assert s["icc_c1"] == pytest.approx(-1.0)
    assert s["kripp_alpha_ordinal"] < 0


def test_undefined_statistics_are_none_not_numbers() -> None:
    # no variance at all: correlations and ICCs are undefined, shares and bias are not
    pairs = pair_tables(np.array([4.0, 4, 4]), np.array([4.0, 4, 4]), np.arange(3))
    est = estimate_all(pairs, resample_weights(3, 50, seed=1))
    assert est["pearson"].value is None and est["icc_a1"].value is None
    assert est["icc_a1"].ci_low is None
    assert est["exact_agreement"].value == 1.0 and est["bias"].value == 0.0
    one = estimate_all(pair_tables(np.array([2.0]), np.array([3.0]), np.array([0])), None)
    assert all(one[name].value is None for name in STATISTICS)  # n < 2


# --- equality with the libraries ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_point_estimates_equal_the_libraries(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 150
    reference = rng.integers(1, 6, n).astype(float)
    judge = np.clip(reference + rng.integers(-1, 3, n), 1, 5)
    mine, theirs = point(reference, judge), library_statistics(reference, judge)
    for name in STATISTICS:
        assert mine[name] == pytest.approx(theirs[name], abs=1e-9), name


def test_missing_category_kappa_uses_value_distances() -> None:
    # no score 2 at all: kappa must weigh 1 vs 3 as two steps (scikit-learn with labels 1..5)
    reference = np.array([1, 3, 3, 4, 5, 1, 4, 5, 3, 1], float)
    judge = np.array([3, 3, 4, 4, 5, 1, 5, 5, 1, 3], float)
    assert point(reference, judge)["kappa_quadratic"] == pytest.approx(
        cohen_kappa_score(
            reference.astype(int), judge.astype(int), weights="quadratic", labels=[1, 2, 3, 4, 5]
        )  # fmt: skip
    )


def test_group_means_on_a_finer_grid_equal_the_libraries() -> None:
    # attribute-group scores are means of four 1-5 scores (a 0.25 grid)
    rng = np.random.default_rng(7)
    reference = rng.integers(1, 6, (200, 4)).mean(axis=1)
    judge = np.clip(reference + rng.choice([-0.5, 0, 0.25, 0.75], 200), 1, 5)
    mine, theirs = point(reference, judge), library_statistics(reference, judge, labels=None)
    for name in theirs:
        assert mine[name] == pytest.approx(theirs[name], abs=1e-9), name


# --- the bootstrap ------------------------------------------------------------------------------


def test_vectorised_bootstrap_equals_explicit_resamples() -> None:
    rng = np.random.default_rng(3)
    n_conv = 40
    sizes = rng.integers(1, 6, n_conv)  # conversations of 1-5 items
    cluster = np.repeat(np.arange(n_conv), sizes)
    reference = rng.integers(1, 6, cluster.size).astype(float)
    judge = np.clip(reference + rng.integers(-2, 2, cluster.size), 1, 5)
    pairs = pair_tables(reference, judge, cluster, n_conv)
    weights = resample_weights(n_conv, 5, seed=11)
    k = len(pairs.values)
    stacked = (weights @ pairs.tables.reshape(n_conv, k * k)).reshape(-1, k, k)
    vectorised = table_statistics(stacked, pairs.values)
    for b, multiplicity in enumerate(weights.astype(int)):
        # the resample as items: each conversation's items repeated as often as it was drawn
        take = np.concatenate([np.flatnonzero(cluster == c).repeat(m)
                               for c, m in enumerate(multiplicity) if m])  # fmt: skip
        x, y = reference[take], judge[take]
        assert vectorised["pearson"][b] == pytest.approx(sps.pearsonr(x, y)[0])
        assert vectorised["spearman"][b] == pytest.approx(sps.spearmanr(x, y)[0])
        assert vectorised["icc_a1"][b] == pytest.approx(pingouin_iccs(x, y)[0])
        assert vectorised["bias"][b] == pytest.approx(np.mean(y - x))
    assert weights.sum(axis=1).tolist() == [n_conv] * 5  # n conversations drawn each time


def test_intervals_are_seeded_and_bracket_the_estimate() -> None:
    rng = np.random.default_rng(5)
    reference = rng.integers(1, 6, 300).astype(float)
    judge = np.clip(reference + rng.integers(0, 2, 300), 1, 5)
    pairs = pair_tables(reference, judge, np.arange(300) // 3)
    first = estimate_all(pairs, resample_weights(100, 200, seed=4))
    again = estimate_all(pairs, resample_weights(100, 200, seed=4))
    other = estimate_all(pairs, resample_weights(100, 200, seed=5))
    assert first == again and first != other
    for name, est in first.items():
        assert est.ci_low <= est.value <= est.ci_high, name


# --- verdicts -----------------------------------------------------------------------------------


def test_verdict_follows_the_thresholds() -> None:
    def stats(low: float | None, bias: float) -> dict[str, Estimate]:
        return {"icc_a1": Estimate(0.7, low, 0.8), "bias": Estimate(bias, None, None)}

    limits = Thresholds(0.6, 0.5)
    assert verdict(stats(0.6, 0.49), limits)[0] == TRUSTED
    assert verdict(stats(0.59, 0.1), limits)[0] == NOT_TRUSTED
    label, reason = verdict(stats(0.7, -0.5), limits)
    assert label == NOT_TRUSTED and "|bias| 0.50" in reason
    assert verdict(stats(None, 0.0), limits)[0] == INSUFFICIENT
    assert verdict(stats(0.55, 0.1), Thresholds(0.5, 0.5))[0] == TRUSTED  # configurable


def test_agreement_row_counts_and_means() -> None:
    reference = np.array([1, 2, 3, 4, 5, 5], float)
    judge = np.array([2, 2, 4, 4, 5, 5], float)
    row = agreement_row(judge="j", attribute="a", reference="h", source="s",
                        pairs=pair_tables(reference, judge, np.array([0, 0, 1, 1, 2, 4]), 6),
                        weights=resample_weights(6, 30, 0), thresholds=Thresholds(),
                        n_skipped_reference=3)  # fmt: skip
    assert row.n_items == 6 and row.n_conversations == 4 and row.n_skipped_reference == 3
    assert row.mean_reference == pytest.approx(reference.mean())
    assert row.mean_judge == pytest.approx(judge.mean())
    assert row.resamples == 30
    flat = row.flat()
    assert flat["pearson"] == pytest.approx(sps.pearsonr(reference, judge)[0])
    assert {"pearson_ci_low", "pearson_ci_high", "icc_a1_ci_low"} <= set(flat)
    assert type(row).from_flat(flat) == row
