"""Judge failures, and resuming a run directory with another selection or changed prompts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import run_cli
from openai_server import FakeOpenAIServer, default_reply

VERDICT = "```json\n" + json.dumps({f"sc{i}": 4 for i in range(1, 6)}) + "\n```"


def judge_reply(messages: list[dict], model: str) -> str:
    return VERDICT if "impartial judge" in messages[-1]["content"] else default_reply(messages)


def ethics_run(model_url: str, judge_url: str, run_dir: Path, *extra: str):
    return run_cli(
        "run", "--model", f"openai:test-model@{model_url}", "--judge", f"openai:test-model@{judge_url}",
        "--tasks", "ethics", "--limit", "6", "--run-dir", str(run_dir), "--no-progress",
        "--retry-base-delay", "0.01", "--max-retries", "1", "--no-cache", "--verbose", *extra,
    )  # fmt: skip


def statuses(run_dir: Path, task: str = "ethics.ethical_reasoning") -> dict[str, str]:
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        return dict(
            conn.execute("SELECT sample_id, status FROM scores WHERE task=?", (task,)).fetchall()
        )


def test_rejected_judge_key_stops_the_run(fake_openai, tmp_path: Path) -> None:
    judge = FakeOpenAIServer(faults=[{"kind": "401"}]).start()
    try:
        result = ethics_run(fake_openai.base_url, judge.base_url, tmp_path / "run")
    finally:
        judge.stop()
    assert result.returncode == 2, result.stdout
    assert (
        "rejected the API key" in result.stderr.splitlines()[0] and "Traceback" not in result.stderr
    )


def test_failed_judge_marks_the_sample_and_resume_only_rejudges(
    fake_openai, tmp_path: Path
) -> None:
    judge = FakeOpenAIServer(
        reply_fn=judge_reply, faults=[{"kind": "500", "contains": "impartial judge"}]
    ).start()
    try:
        fake_openai.set_reply_fn(judge_reply)
        first = ethics_run(fake_openai.base_url, judge.base_url, tmp_path / "run")
        assert first.returncode == 3, first.stderr  # incomplete: the judge failed
        assert set(statuses(tmp_path / "run").values()) == {"error"}
        assert (
            "first error: judge failed: HTTP 500" in first.stdout
            and "incomplete: 6 of 6 samples failed" in first.stderr
        )
        model_requests = len(fake_openai.log())
        judge.set_faults([])
        judge.reset()
        second = ethics_run(fake_openai.base_url, judge.base_url, tmp_path / "run")
        assert second.returncode == 0, second.stderr
    finally:
        judge.stop()
    assert len(fake_openai.log()) == model_requests  # the stored replies were reused
    assert len(judge.log()) == 6  # only the judge was asked again
    assert set(statuses(tmp_path / "run").values()) == {"ok"}
    assert "judge_mean" in second.stdout and "status complete" in second.stdout


def stored_n(run_dir: Path) -> tuple[int, int | None]:
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        n = conn.execute(
            "SELECT n FROM results WHERE task='smoke' AND metric='accuracy'"
        ).fetchone()[0]
        config = json.loads(conn.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0])
    return n, config["limit"]


def test_resume_with_other_limit_and_tasks(tmp_path: Path) -> None:
    """A larger --limit extends a run; a smaller one would shrink its stored results and is
    refused before any work (issue 19); other --tasks add to the run."""
    run_dir = tmp_path / "run"
    base = ("run", "--model", "baseline", "--run-dir", str(run_dir), "--no-progress")
    assert run_cli(*base, "--tasks", "smoke", "--limit", "10").returncode == 0
    smaller = run_cli(*base, "--tasks", "smoke", "--limit", "3")
    lines = smaller.stderr.strip().splitlines()
    assert smaller.returncode == 2 and len(lines) == 1, smaller.stderr
    assert "--limit 3" in lines[0] and "already holds 10 items of smoke" in lines[0]
    assert stored_n(run_dir) == (10, 10)  # neither the result nor the recorded config shrank
    larger = run_cli(*base, "--tasks", "smoke", "--limit", "12")
    assert larger.returncode == 0 and "samples 12 (pending at start 2)" in larger.stdout
    assert stored_n(run_dir) == (12, 12)
    other = run_cli(*base, "--tasks", "ethics", "--limit", "2")
    assert other.returncode == 0, other.stderr
    runs = run_cli("runs", "--runs-root", str(tmp_path))
    assert "smoke,ethics.ethical_reasoning" in runs.stdout


def test_changed_prompts_are_asked_again(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    base = (
        "run",
        "--model",
        "baseline",
        "--tasks",
        "ethics",
        "--run-dir",
        str(run_dir),
        "--no-progress",
    )
    assert run_cli(*base).returncode == 0
    config = tmp_path / "fixed.toml"
    config.write_text("[options]\nrepair_mojibake = true\n", encoding="utf-8")
    repaired = run_cli(*base, "--config", str(config))
    assert repaired.returncode == 0, repaired.stderr
    pending = int(repaired.stdout.split("pending at start ")[1].split(")")[0])
    assert 0 < pending < 125  # only the items whose text the repair changed
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        stale = conn.execute(
            "SELECT COUNT(*) FROM samples s JOIN scores c USING (task, sample_id, variant) "
            "WHERE c.request_key != s.request_key"
        ).fetchone()[0]
    assert stale == 0


def test_unknown_task_option_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        'model = "baseline"\ntasks = "privacy"\n[options]\nawareness_agregate = "tier_mean"\n'
    )
    result = run_cli("run", "--config", str(config), "--run-dir", str(tmp_path / "r"))
    assert result.returncode == 2 and "unknown option 'awareness_agregate'" in result.stderr
    config.write_text(
        'model = "baseline"\ntasks = "privacy"\n[options."privacy.awareness"]\nrating_parsr = "strict"\n'
    )
    result = run_cli("run", "--config", str(config), "--run-dir", str(tmp_path / "r"))
    assert (
        result.returncode == 2
        and "options.privacy.awareness: unknown option 'rating_parsr'" in result.stderr
    )
