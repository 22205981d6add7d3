"""judge-check on the real MentalAlign-70k ratings, against an independent computation: the CSV
read with pandas, items paired by hand, every statistic from pingouin / scipy / scikit-learn /
krippendorff."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import NO_DATA
from test_judge_check_stats import library_statistics

from trustmh.data.sources import DataContext
from trustmh.judge_check.mentalalign import GROUPS, RECORDED_JUDGES, check_mentalalign, judge_key
from trustmh.judge_check.stats import STATISTICS

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")
ATTRIBUTES = ("Guidance", "Informativeness", "Relevance", "Safety", "Empathy", "Helpfulness",
              "Understanding")  # fmt: skip
N_ITEMS = 1000 * 10  # conversations x response sources


@pytest.fixture(scope="module")
def data_root() -> Path:
    from conftest import data_dir

    path = data_dir()
    if path is None or not (path / "mentalalign" / "ratings.csv").is_file():
        pytest.skip(NO_DATA + " (MentalAlign ratings)")
    return path


@pytest.fixture(scope="module")
def wide(data_root: Path) -> pd.DataFrame:
    """Scores as (conv_id, response_source, attribute) x rater, NaN outside the 1-5 rubric."""
    frame = pd.read_csv(data_root / "mentalalign" / "ratings.csv")
    frame.loc[~frame["score"].between(1, 5), "score"] = np.nan
    return frame.pivot_table(index=["conv_id", "response_source", "attribute"], columns="rater",
                             values="score", aggfunc="first", dropna=False)  # fmt: skip


@pytest.fixture(scope="module")
def rows(data_root: Path):
    found = check_mentalalign(DataContext((data_root,)), resamples=40, seed=3)
    return {(r.judge, r.attribute): r for r in found}


def scores(wide: pd.DataFrame, rater: str, attribute: str) -> pd.Series:
    """One rater's score per (conversation, reply): an attribute, or a group's mean over items
    where every attribute of the group is scored."""
    column = wide[rater].unstack("attribute")
    if attribute in GROUPS:
        return column[list(GROUPS[attribute])].mean(axis=1, skipna=False)
    return column[attribute]


def test_every_judge_and_attribute_has_a_row(rows) -> None:
    expected = {(judge_key(j), a) for j in RECORDED_JUDGES for a in (*ATTRIBUTES, "CSS", "ARS")}
    assert set(rows) == expected


@pytest.mark.parametrize("judge", RECORDED_JUDGES)
def test_statistics_equal_an_independent_computation(rows, wide, judge: str) -> None:
    for attribute in (*ATTRIBUTES, "CSS", "ARS"):
        human = scores(wide, "human", attribute).reindex(
            pd.MultiIndex.from_product([range(1, 1001), sorted(wide.index.levels[1])])
        )
        rated = scores(wide, judge, attribute).reindex(human.index)
        both = human.notna() & rated.notna()
        x, y = human[both].to_numpy(), rated[both].to_numpy()
        labels = None if attribute in GROUPS else (1, 2, 3, 4, 5)
        expected = library_statistics(x, y, labels=labels)
        row = rows[(judge_key(judge), attribute)]
        assert row.n_items == both.sum(), attribute
        assert row.n_skipped_reference == N_ITEMS - human.notna().sum(), attribute
        assert row.n_skipped_judge == (human.notna() & rated.isna()).sum(), attribute
        assert row.mean_reference == pytest.approx(x.mean())
        assert row.mean_judge == pytest.approx(y.mean())
        for name, value in expected.items():
            assert row.get(name) == pytest.approx(value, abs=1e-9), (attribute, name)
        for name in STATISTICS:
            est = row.stats[name]
            assert est.ci_low <= est.value <= est.ci_high, (attribute, name)


def test_out_of_rubric_human_scores_are_skipped(rows, wide) -> None:
    # the human file holds 0s and 6s; they count as unscored, never as ratings
    raw = wide["human"]
    assert raw.notna().sum() < len(raw)
    row = rows[(judge_key("gpt-4o"), "Guidance")]
    assert row.n_items + row.n_skipped_reference + row.n_skipped_judge == N_ITEMS
