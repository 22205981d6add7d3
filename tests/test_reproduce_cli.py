"""`trustmh reproduce`, the offline default main job, through the installed command: from the real
data and from the bundled subset alone, with the same numbers."""

from __future__ import annotations

import csv
from pathlib import Path

from conftest import run_cli


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_reproduce_from_bundled_subset_equals_real_data(real_data: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-data"
    empty.mkdir()
    bundled = run_cli(
        "reproduce", "--out", str(tmp_path / "bundled"), env={"TRUSTMH_DATA_DIR": str(empty)}
    )
    assert bundled.returncode == 0, bundled.stderr
    full = run_cli(
        "reproduce", "--out", str(tmp_path / "full"), env={"TRUSTMH_DATA_DIR": str(real_data)}
    )
    assert full.returncode == 0, full.stderr

    rows = read_rows(tmp_path / "bundled" / "reproduction.csv")
    assert rows == read_rows(tmp_path / "full" / "reproduction.csv")
    assert list(rows[0])[:7] == [
        "model",
        "pillar",
        "subtask",
        "metric",
        "value",
        "ci_low",
        "ci_high",
    ]
    assert {"n_scored", "n_unparseable", "rank", "paper_rank"} <= set(rows[0])

    primary = [r for r in rows if r["primary"] == "True"]
    by_task: dict[str, dict[str, dict]] = {}
    for r in primary:
        by_task.setdefault(r["subtask"], {})[r["model"]] = r
    assert len(by_task["ethics.ethical_reasoning"]) == 12
    assert len(by_task["privacy.awareness"]) == 6 and len(by_task["privacy.leakage"]) == 6
    # the ethics ranks computed from the recorded replies are the paper's published ranks
    ethics = by_task["ethics.ethical_reasoning"].values()
    assert all(r["rank"] == r["paper_rank"] for r in ethics)

    # each model is stored as a run, and the table names every model
    runs = sorted(p.parent.name for p in (tmp_path / "bundled" / "runs").glob("*/trustmh.sqlite"))
    assert len(runs) == 12
    assert "Meditron3-70B" in bundled.stdout and "unparsed" in bundled.stdout
    assert (
        (tmp_path / "bundled" / "reproduction.md")
        .read_text(encoding="utf-8")
        .startswith("# Reproduction")
    )

    # MentalBench-Align's tables: the same file from the bundled sums as from ratings.csv
    mentalalign = read_rows(tmp_path / "bundled" / "mentalalign_reproduction.csv")
    assert mentalalign == read_rows(tmp_path / "full" / "mentalalign_reproduction.csv")
    assert {r["table"] for r in mentalalign} == {"icc", "bias", "human_eval"}
    for result in (bundled, full):
        assert "230 of 231 published numbers reproduced" in result.stdout
        assert "MentalBench-Align reliability" in result.stdout
    assert "bundled with trustmh" in bundled.stdout and "ratings.csv" in full.stdout
    markdown = (tmp_path / "bundled" / "mentalalign_reproduction.md").read_text(encoding="utf-8")
    assert (
        markdown.startswith("# MentalBench-Align reproduced")
        and "| Qwen-3-4B | 2.76 (3.07)" in markdown
    )


def test_reproduce_single_model(tmp_path: Path) -> None:
    result = run_cli("reproduce", "--out", str(tmp_path), "--model", "GPT-4o-mini")
    assert result.returncode == 0, result.stderr
    models = {r["model"] for r in read_rows(tmp_path / "reproduction.csv")}
    assert models == {"GPT-4o-mini"}
    assert "MentalBench-Align tables not built: --model selects" in result.stdout
    assert not (tmp_path / "mentalalign_reproduction.csv").exists()
