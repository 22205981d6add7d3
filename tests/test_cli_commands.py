"""The listing and export commands of the installed CLI, on a real (baseline and replay) run."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
from conftest import run_cli

from trustmh.errors import UserError


def test_models_lists_spec_forms_and_recorded_models() -> None:
    result = run_cli("models")
    assert result.returncode == 0, result.stderr
    for text in ("openai:MODEL@URL", "anthropic:MODEL", "baseline", "Meditron3-70B", "GPT-4o-mini"):
        assert text in result.stdout


def test_replay_run_then_runs_and_exports(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "replay-ethics"
    result = run_cli("run", "--model", "replay:GPT-4o-mini", "--judge", "replay:GPT-4o-mini",
                     "--tasks", "ethics", "--run-dir", str(run_dir), "--no-progress", "--verbose")  # fmt: skip
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


def test_unimplemented_subtask_named_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    # every built-in subtask is implemented now, so a declared-only one is added for this test
    from trustmh import engine
    from trustmh.tasks import registry
    from trustmh.tasks.base import Task

    declared = Task(id="smoke.declared", pillar="smoke-pillar", title="declared only", section="0",
                    status="DEFAULT", metric="accuracy", direction="higher", sources=(), n_items="0")  # fmt: skip
    tasks = {**registry.all_tasks(), declared.id: declared}
    smoke = tasks["smoke"]
    tasks["smoke"] = dataclasses.replace(smoke, pillar="smoke-pillar")
    monkeypatch.setattr(registry, "all_tasks", lambda: tasks)
    with pytest.raises(
        UserError, match="smoke.declared: this subtask is registered .* not implemented yet"
    ):
        engine.choose_tasks(["smoke.declared"])
    runnable, skipped = engine.choose_tasks(["smoke-pillar"])
    assert [t.id for t in runnable] == ["smoke"]
    assert skipped == {"smoke.declared": "not implemented yet"}
