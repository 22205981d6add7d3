"""The listing and export commands of the installed CLI, on a real (baseline and replay) run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import run_cli


def test_models_lists_spec_forms_and_recorded_models() -> None:
    result = run_cli("models")
    assert result.returncode == 0, result.stderr
    for text in ("openai:MODEL@URL", "anthropic:MODEL", "baseline", "Meditron3-70B", "GPT-4o-mini"):
        assert text in result.stdout


def test_replay_run_then_runs_and_exports(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "replay-ethics"
    result = run_cli("run", "--model", "replay:GPT-4o-mini", "--judge", "replay:GPT-4o-mini",
                     "--tasks", "ethics", "--run-dir", str(run_dir), "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "replay: GPT-4o-mini" in result.stdout and "judge_mean" in result.stdout

    runs = run_cli("runs", "--runs-root", str(tmp_path / "runs"))
    assert "replay-ethics" in runs.stdout and "125/125" in runs.stdout and "complete" in runs.stdout

    assert run_cli("export", str(run_dir), "--format", "jsonl").returncode == 0
    rows = [
        json.loads(line)
        for line in (run_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(rows) == 125
    first = rows[0]
    assert first["task"] == "ethics.ethical_reasoning" and first["messages"][0]["role"] == "user"
    assert first["response"] and first["status"] == "ok" and first["parsed"] in list("ABCD")

    out = tmp_path / "samples.csv"
    assert run_cli("export", str(run_dir), "--format", "csv", "--out", str(out)).returncode == 0
    with out.open(encoding="utf-8", newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert len(csv_rows) == 125 and csv_rows[0]["sample_id"] == first["sample_id"]


def test_export_rejects_bad_input(tmp_path: Path) -> None:
    not_a_run = run_cli("export", str(tmp_path))
    assert not_a_run.returncode == 2 and "not a run directory" in not_a_run.stderr
    run_dir = tmp_path / "r"
    made = run_cli(
        "run", "--model", "baseline", "--tasks", "smoke", "--limit", "2", "--run-dir", str(run_dir)
    )
    assert made.returncode == 0, made.stderr
    bad_format = run_cli("export", str(run_dir), "--format", "xml")
    assert bad_format.returncode == 2 and "--format" in bad_format.stderr
    missing_folder = run_cli("export", str(run_dir), "--out", str(tmp_path / "nowhere" / "x.jsonl"))
    assert missing_folder.returncode == 2 and "cannot write there" in missing_folder.stderr
    assert (
        len(missing_folder.stderr.strip().splitlines()) == 1
        and "Traceback" not in missing_folder.stderr
    )


def test_unimplemented_subtask_named_explicitly(tmp_path: Path) -> None:
    result = run_cli(
        "run",
        "--model",
        "baseline",
        "--tasks",
        "reliability.knowledge",
        "--run-dir",
        str(tmp_path / "r"),
    )
    assert result.returncode == 2 and "not implemented yet" in result.stderr
    pillar = run_cli("run", "--model", "baseline", "--tasks", "privacy,reliability", "--limit", "3",
                     "--run-dir", str(tmp_path / "p"), "--no-progress")  # fmt: skip
    assert pillar.returncode == 0, pillar.stderr
    assert "skipped reliability.knowledge: not implemented yet" in pillar.stdout
