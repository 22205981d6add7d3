"""MentalBench-Align's published tables from `trustmh reproduce` (protocol 11.2).

With the real data, every cell is recomputed here independently of the production path: the
ratings read with pandas, the model points and the bias figures by groupby, the ICCs with
pingouin, upstream's bootstrap by its own seeding loop, and the bundled sums checked against
ratings.csv. Without it, the bundled sums alone must rebuild the same tables (what a fresh clone's
`trustmh reproduce` does), and the published values must be read as data, never used to compute.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_judge_check_stats import pingouin_iccs

from trustmh.data.sources import BUNDLED_DIR, DataContext
from trustmh.judge_check.model_level import PAPER_JUDGES, PAPER_MODELS, SELF_SOURCE, UPSTREAM_ORDER
from trustmh.judge_check.rating_sums import SUMS_FILE, from_ratings, load_sums, read_sums
from trustmh.reproduce_mentalalign import (
    AVERAGE,
    CSV_NAME,
    EXPERTS,
    TOLERANCE,
    build,
    load_published,
    reproduce_mentalalign,
)

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")
BUNDLED_SUMS = BUNDLED_DIR / "mentalalign" / SUMS_FILE
QWEN3_GUIDANCE = ("human_eval", EXPERTS, "Qwen-3-4B", "Guidance", "human_mean")


@pytest.fixture(scope="module")
def bundled():
    """The three tables from the bundled sums only (no data folder), as a fresh clone gets them."""
    loaded = load_sums(DataContext((BUNDLED_DIR,)))
    return build(loaded.sums, loaded.origin, spread_repeats=20)


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    from conftest import NO_DATA, data_dir

    path = data_dir()
    if path is None or not (path / "mentalalign" / "ratings.csv").is_file():
        pytest.skip(f"{NO_DATA}: needs the MentalAlign ratings (TRUSTMH_DATA_DIR)")
    return pd.read_csv(path / "mentalalign" / "ratings.csv")


def cells_by_key(result) -> dict:
    return {c.key: c for c in result.cells}


# -- without the real data -------------------------------------------------------------------


def test_published_values_are_data_with_their_source() -> None:
    published = load_published()
    counted = [k for k in published if k[3] != AVERAGE]
    assert len(counted) == 231  # 28 x 2 ICCs + 28 x 4 bias figures + 9 x 7 human means
    assert {k[0] for k in published} == {"icc", "bias", "human_eval"}
    assert all(
        "abeerbadawi/MentalBench-Align@03cfc4b Results/" in p.source for p in published.values()
    )
    assert published[("icc", "GPT-4o", "", "Guidance", "icc_c1")].value == 0.849
    assert published[QWEN3_GUIDANCE].value == 3.07


def test_the_bundled_sums_rebuild_the_tables_offline(bundled) -> None:
    assert "bundled" in bundled.origin
    assert (len(bundled.reproduced), len(bundled.counted)) == (230, 231)
    [missed] = [c for c in bundled.counted if not c.reproduced]
    assert missed.key == QWEN3_GUIDANCE
    assert missed.value == pytest.approx(2.76, abs=0.005) and missed.published == 3.07
    assert "row average 3.64 implies" in missed.note and "transcription error" in missed.note
    assert "230 of 231" in bundled.summary()


def test_every_cell_that_differs_after_rounding_has_a_note(bundled) -> None:
    for cell in bundled.cells:
        if cell.published is None:
            assert cell.model == PAPER_MODELS["original"] or cell.table != "human_eval"
            continue
        decimals = 2 if cell.table == "human_eval" else 3
        if round(cell.value, decimals) != pytest.approx(cell.published, abs=1e-9):
            assert cell.note, cell.key
        if not cell.reproduced:
            assert "NOT REPRODUCED" in cell.note
    # the paper's intervals differ from upstream's code on the released data: every ICC(C,1)
    # row compares the two, and says how far redrawn resamples move the bounds when they differ
    for cell in bundled.cells:
        if cell.metric == "icc_c1":
            assert "95% CI [" in cell.note and "published [" in cell.note


def test_csv_has_exactly_the_issue_columns(bundled, tmp_path: Path) -> None:
    result = build(load_sums(DataContext((BUNDLED_DIR,))).sums, "bundled", spread_repeats=0)
    from trustmh.reproduce_mentalalign import write_csv

    path = write_csv(result.cells, tmp_path)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["table", "judge", "model", "attribute", "metric", "value", "ci_low",
                             "ci_high", "published", "note"]  # fmt: skip
    assert {r["table"] for r in rows} == {"icc", "bias", "human_eval"}
    assert {r["metric"] for r in rows} == {
        "icc_c1",
        "icc_a1",
        "human_mean",
        "llm_mean",
        "bias",
        "mse",
    }
    assert {r["judge"] for r in rows if r["table"] != "human_eval"} == set(PAPER_JUDGES.values())
    assert {r["model"] for r in rows if r["table"] == "human_eval"} == set(PAPER_MODELS.values())
    assert len(rows) == 28 * 2 + 28 * 4 + 10 * 8


def test_intervals_contain_their_estimates(bundled) -> None:
    for (judge, attribute), r in bundled.icc.items():
        for est in (r.icc_c1, r.icc_a1):
            assert est.ci_low <= est.value <= est.ci_high, (judge, attribute)


# -- with the real data: an independent computation ------------------------------------------


@pytest.fixture(scope="module")
def independent(ratings: pd.DataFrame) -> dict:
    """Every cell of the three tables from the raw ratings with pandas and pingouin."""
    human = ratings[ratings.rater == "human"].drop(columns="rater").rename(columns={"score": "h"})
    out: dict = {"points": {}}
    for judge, name in PAPER_JUDGES.items():
        rated = ratings[ratings.rater == judge].drop(columns="rater").rename(columns={"score": "j"})
        pairs = human.merge(rated, on=["conv_id", "response_source", "attribute"])
        pairs = pairs[pairs.response_source != SELF_SOURCE[judge]]
        for attribute, group in pairs.groupby("attribute"):
            points = group.groupby("response_source")[["h", "j"]].mean()
            points = points.reindex([s for s in UPSTREAM_ORDER if s in points.index])
            out["points"][(judge, attribute)] = points.to_numpy()
            diff = group.j - group.h
            out[("bias", name, "", attribute, "human_mean")] = group.h.mean()
            out[("bias", name, "", attribute, "llm_mean")] = group.j.mean()
            out[("bias", name, "", attribute, "bias")] = diff.mean()
            out[("bias", name, "", attribute, "mse")] = (diff**2).mean()
    means = human.groupby(["response_source", "attribute"]).h.mean()
    for source, model in PAPER_MODELS.items():
        for attribute, value in means[source].items():
            out[("human_eval", EXPERTS, model, attribute, "human_mean")] = value
        out[("human_eval", EXPERTS, model, AVERAGE, "human_mean")] = means[source].mean()
    return out


@pytest.fixture(scope="module")
def from_ratings_csv(ratings, tmp_path_factory):
    from conftest import data_dir

    out = tmp_path_factory.mktemp("mentalalign")
    return reproduce_mentalalign(DataContext((data_dir(),)), out)


def test_the_bundled_sums_are_those_of_ratings_csv(ratings: pd.DataFrame) -> None:
    from conftest import data_dir

    from trustmh.data.loaders.mentalalign import read_ratings

    bundled = read_sums(BUNDLED_SUMS)
    assert from_ratings(read_ratings(DataContext((data_dir(),)))) == bundled
    assert BUNDLED_SUMS.read_text(encoding="utf-8") == bundled.to_csv()
    # and independently: counts and sums by pandas
    keys = ["rater", "response_source", "attribute"]
    own = ratings.groupby(keys).score.agg(
        count="count", total="sum", squares=lambda s: (s**2).sum()
    )
    text = pd.read_csv(BUNDLED_SUMS).set_index(keys)
    joined = own.join(text, how="outer")
    assert len(joined) == 350 and (joined["count"] == joined["n"]).all()
    assert np.allclose(joined["total"], joined["sum"]) and np.allclose(
        joined["squares"], joined["sum_sq"]
    )
    # the paired columns of one judge, by merging its ratings with the experts'
    human = ratings[ratings.rater == "human"].drop(columns="rater")
    rated = ratings[ratings.rater == "o4-mini"].drop(columns="rater")
    pairs = human.merge(rated, on=keys[1:] + ["conv_id"], suffixes=("_h", "_j"))
    paired = pairs.groupby(keys[1:]).agg(n=("score_h", "count"), h=("score_h", "sum"),
                                         j=("score_j", "sum"))  # fmt: skip
    mine = text.loc["o4-mini"].reindex(paired.index)
    assert (paired["n"] == mine["n_paired"]).all()
    assert np.allclose(paired["h"], mine["sum_paired_human"]) and np.allclose(
        paired["j"], mine["sum_paired_rater"]
    )


def test_point_cells_equal_the_independent_computation(from_ratings_csv, independent) -> None:
    cells = cells_by_key(from_ratings_csv)
    for key, value in independent.items():
        if key == "points":
            continue
        assert cells[key].value == pytest.approx(value, abs=1e-12), key
    sample = [("gpt-4o", "Guidance"), ("claude-3.7-sonnet", "Empathy"), ("o4-mini", "Safety"),
              ("gemini-2.5-flash", "Understanding")]  # fmt: skip
    for judge, attribute in sample:
        points = independent["points"][(judge, attribute)]
        assert len(points) == 9
        np.testing.assert_allclose(from_ratings_csv.icc[(judge, attribute)].points, points)
        icc_a1, icc_c1 = pingouin_iccs(points[:, 0], points[:, 1])
        name = PAPER_JUDGES[judge]
        assert cells[("icc", name, "", attribute, "icc_c1")].value == pytest.approx(icc_c1)
        assert cells[("icc", name, "", attribute, "icc_a1")].value == pytest.approx(icc_a1)


def upstream_interval_loop(points: np.ndarray) -> tuple[float, float]:
    """Upstream's ICC(C,1) interval written out as its code runs it (global reseeding, a loop)."""
    state = np.random.get_state()
    try:
        np.random.seed(42)
        values = []
        for seed in np.random.randint(0, 100000, 1000):
            np.random.seed(seed)
            y = points[np.random.choice(len(points), size=len(points), replace=True)]
            n, k = y.shape
            grand = y.mean()
            msr = k * ((y.mean(axis=1) - grand) ** 2).sum() / (n - 1)
            ss_cols = n * ((y.mean(axis=0) - grand) ** 2).sum()
            mse = (((y - grand) ** 2).sum() - msr * (n - 1) - ss_cols) / ((n - 1) * (k - 1))
            with np.errstate(invalid="ignore", divide="ignore"):
                c1 = (msr - mse) / (msr + (k - 1) * mse)
            if np.isfinite(c1) and 0 <= c1 <= 1:
                values.append(c1)
        return tuple(np.percentile(values, [2.5, 97.5]))
    finally:
        np.random.set_state(state)


def test_intervals_follow_upstreams_seeding(from_ratings_csv, independent) -> None:
    for key in (("gpt-4o", "Guidance"), ("claude-3.7-sonnet", "Empathy")):
        low, high = upstream_interval_loop(independent["points"][key])
        est = from_ratings_csv.icc[key].icc_c1
        assert (est.ci_low, est.ci_high) == pytest.approx((low, high), abs=1e-12)


def test_230_of_the_231_published_numbers_come_out_of_ratings_csv(independent) -> None:
    published = load_published()
    missed = []
    for key, pub in published.items():
        if key[3] == AVERAGE:
            continue
        if key[0] == "icc":
            judge = next(j for j, n in PAPER_JUDGES.items() if n == key[1])
            points = independent["points"][(judge, key[3])]
            icc_a1, icc_c1 = pingouin_iccs(points[:, 0], points[:, 1])
            value = icc_c1 if key[4] == "icc_c1" else icc_a1
        else:
            value = independent[key]
        if abs(value - pub.value) > TOLERANCE[key[0]]:
            missed.append(key)
    assert missed == [QWEN3_GUIDANCE]


def test_ratings_csv_and_the_bundled_sums_give_the_same_file(
    from_ratings_csv, bundled, tmp_path
) -> None:
    from trustmh.reproduce_mentalalign import write_csv

    same = build(read_sums(BUNDLED_SUMS), "bundled")  # the default number of redraws, as run
    written = write_csv(same.cells, tmp_path).read_text(encoding="utf-8")
    assert written == (from_ratings_csv.csv_path.parent / CSV_NAME).read_text(encoding="utf-8")
