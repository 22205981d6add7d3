"""`--batch` against the loopback server's OpenAI Files + Batches and Anthropic Message Batches
endpoints: judge requests in a second phase, scores equal to a non-batch run's, a process killed
between submit and collect resumes polling (zero duplicate submissions, counted at the server),
a failed line and an expired batch are retried by the next run."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import run_cli, trustmh_exe

pytest.importorskip("anthropic")

KEY = "sk-ant-test-0123456789"


def scores(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        return conn.execute(
            "SELECT task, sample_id, variant, status, value, parsed FROM scores ORDER BY task, sample_id, variant"
        ).fetchall()


def submitted(server) -> Counter:
    """How many times each request (custom_id) was submitted in a batch, at the server."""
    return Counter(
        cid for e in server.log() if e["outcome"] == "batch_submitted" for cid in e["custom_ids"]
    )


def submissions(server) -> list[dict]:
    return [e for e in server.log() if e["outcome"] == "batch_submitted"]


def args(model: str, run_dir: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--model", model, "--run-dir", str(run_dir), "--cache-dir", str(tmp_path / "cache"),
            "--no-progress", "--batch", "--batch-poll", "0.05", *extra]  # fmt: skip


def reference(
    server, tmp_path: Path, model: str, *extra: str, env: dict | None = None
) -> list[tuple]:
    """The scores of the same run without --batch (and without the cache)."""
    run_dir = tmp_path / "reference"
    result = run_cli("run", "--model", model, "--run-dir", str(run_dir), "--no-cache", "--no-progress",
                     *extra, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return scores(run_dir)


def test_openai_batch_judges_in_a_second_phase_and_scores_as_without(
    fake_openai, tmp_path: Path
) -> None:
    model = f"openai:gpt-4o-mini@{fake_openai.base_url}"
    task = ("--judge", f"openai:gpt-4.1@{fake_openai.base_url}", "--tasks", "ethics.ethical_reasoning",
            "--limit", "6")  # fmt: skip
    run_dir = tmp_path / "run"
    result = run_cli(*args(model, run_dir, tmp_path, *task))
    assert result.returncode == 0, result.stderr
    first, second = submissions(fake_openai)
    assert first["model"] == "gpt-4o-mini" and second["model"] == "gpt-4.1"  # the judge's phase
    assert len(first["custom_ids"]) == len(second["custom_ids"]) == 6
    assert max(submitted(fake_openai).values()) == 1
    assert "batch batch_" in result.stderr and "completed" in result.stderr  # batch states shown
    assert "requests submitted in provider batches: 12" in result.stdout
    assert not [
        e for e in fake_openai.log() if e["path"] == "/v1/chat/completions"
    ]  # nothing direct
    batched = scores(run_dir)
    fake_openai.reset()
    assert batched == reference(fake_openai, tmp_path, model, *task)
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        states = conn.execute("SELECT state, n_requests, collected FROM batches").fetchall()
        sources = conn.execute("SELECT DISTINCT source FROM responses").fetchall()
    assert states == [("completed", 6, 1), ("completed", 6, 1)] and sources == [("batch",)]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_killed_between_submit_and_collect_resumes_polling(
    fake_openai, tmp_path: Path, provider: str
) -> None:
    model = (
        f"openai:test-model@{fake_openai.base_url}"
        if provider == "openai"
        else "anthropic:claude-test"
    )
    env = {"ANTHROPIC_BASE_URL": fake_openai.url, "ANTHROPIC_API_KEY": KEY}
    run_dir = tmp_path / "run"
    command = [*trustmh_exe(), *args(model, run_dir, tmp_path, "--tasks", "smoke", "--limit", "20")]
    fake_openai.state.batches.hold = True  # submitted, never ending while the process lives
    import os

    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not submissions(fake_openai) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # it polls meanwhile
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert len(submissions(fake_openai)) == 1
    fake_openai.state.batches.hold = False
    result = run_cli(*command[1:], env=env)
    assert result.returncode == 0, result.stderr
    counts = submitted(fake_openai)
    assert len(counts) == 20 and max(counts.values()) == 1  # zero duplicate submissions
    batched = scores(run_dir)
    fake_openai.reset()
    assert batched == reference(
        fake_openai, tmp_path, model, "--tasks", "smoke", "--limit", "20", env=env
    )


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_failed_line_is_retried_by_the_next_run(
    fake_openai, tmp_path: Path, provider: str
) -> None:
    model = (
        f"openai:test-model@{fake_openai.base_url}"
        if provider == "openai"
        else "anthropic:claude-test"
    )
    env = {"ANTHROPIC_BASE_URL": fake_openai.url, "ANTHROPIC_API_KEY": KEY}
    run_dir = tmp_path / "run"
    command = args(model, run_dir, tmp_path, "--tasks", "smoke", "--limit", "10")
    fake_openai.state.batches.fail_contains = "Item 3:"
    first = run_cli(*command, env=env)
    assert first.returncode == 3, first.stderr  # incomplete: the failed sample is retried
    assert "batch lines failed (retried by the next run): 1" in first.stdout
    assert Counter(s[3] for s in scores(run_dir)) == {"ok": 9, "error": 1}
    fake_openai.state.batches.fail_contains = None
    second = run_cli(*command, env=env)
    assert second.returncode == 0, second.stderr
    assert Counter(s[3] for s in scores(run_dir)) == {"ok": 10}
    counts = submitted(fake_openai)
    assert sorted(counts.values()) == [1] * 9 + [2]  # only the failed line went again


def test_an_expired_batch_leaves_its_unanswered_half_to_the_next_run(
    fake_openai, tmp_path: Path
) -> None:
    model = f"openai:test-model@{fake_openai.base_url}"
    run_dir = tmp_path / "run"
    command = args(model, run_dir, tmp_path, "--tasks", "smoke", "--limit", "10")
    fake_openai.state.batches.expire = True
    first = run_cli(*command)
    assert first.returncode == 3, first.stderr
    assert "expired" in first.stderr
    assert Counter(s[3] for s in scores(run_dir)) == {"ok": 5, "error": 5}
    second = run_cli(*command)
    assert second.returncode == 0, second.stderr
    assert Counter(s[3] for s in scores(run_dir)) == {"ok": 10}
    assert sorted(submitted(fake_openai).values()) == [1] * 5 + [2] * 5


def test_batch_refuses_what_it_cannot_keep(fake_openai, tmp_path: Path) -> None:
    model = f"openai:test-model@{fake_openai.base_url}"
    result = run_cli(*args(model, tmp_path / "r", tmp_path, "--tasks", "smoke", "--max-cost", "1"))
    assert result.returncode == 2 and "--max-cost cannot be combined with --batch" in result.stderr
    fake_openai.state.batches.hold = True
    process = subprocess.Popen([*trustmh_exe(), *args(model, tmp_path / "k", tmp_path, "--tasks", "smoke",
                                                      "--limit", "3")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not submissions(fake_openai) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    plain = run_cli(
        "run",
        "--model",
        model,
        "--tasks",
        "smoke",
        "--limit",
        "3",
        "--run-dir",
        str(tmp_path / "k"),
    )
    assert plain.returncode == 2 and "resume with --batch" in plain.stderr
