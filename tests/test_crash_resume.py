"""Crash safety: a run killed with SIGKILL (or stopped with Ctrl-C) midway resumes with the same
command, never asks twice for a stored sample, and ends with the results of an uninterrupted run."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from conftest import ctrl_c_default, run_cli, trustmh_exe
from openai_server import messages_hash

N = 600


def command(server, run_dir: Path, cache_dir: Path, n: int = N) -> list[str]:
    return [
        *trustmh_exe(), "run", "--model", f"openai:test-model@{server.base_url}", "--tasks", "smoke",
        "--limit", str(n), "--run-dir", str(run_dir), "--cache-dir", str(cache_dir), "--concurrency", "16",
        "--no-progress",
    ]  # fmt: skip


def scored_count(run_dir: Path) -> int:
    db = run_dir / "trustmh.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def stored(run_dir: Path) -> dict[str, tuple]:
    """sample id -> (messages hash, status, value, parsed) of every scored sample."""
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        rows = conn.execute(
            "SELECT s.sample_id, s.messages, c.status, c.value, c.parsed FROM samples s "
            "JOIN scores c USING (task, sample_id, variant)"
        ).fetchall()
        n_scores = conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        n_distinct = conn.execute(
            "SELECT COUNT(DISTINCT task || sample_id || variant) FROM scores"
        ).fetchone()[0]
    assert n_scores == n_distinct  # never two results for one sample
    return {
        sid: (messages_hash(json.loads(msgs)), status, value, parsed)
        for sid, msgs, status, value, parsed in rows
    }


def wait_until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_sigkill_midway_then_resume(fake_openai, tmp_path: Path) -> None:
    fake_openai.set_latency(0.1)
    run_dir, cache_dir = tmp_path / "run", tmp_path / "cache"
    proc = subprocess.Popen(
        command(fake_openai, run_dir, cache_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: scored_count(run_dir) >= 150, timeout=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = stored(run_dir)
    assert 150 <= len(before) < N, "the kill should land midway"
    n_requests_before = len(fake_openai.log())

    result = subprocess.run(
        command(fake_openai, run_dir, cache_dir), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    after = stored(run_dir)
    assert len(after) == N and all(v[1] == "ok" for v in after.values())
    for sid, value in before.items():
        assert after[sid] == value  # finished work was kept as it was

    later = fake_openai.log()[n_requests_before:]
    asked_again = {e["prompt_hash"] for e in later} & {v[0] for v in before.values()}
    assert not asked_again, f"{len(asked_again)} stored samples were requested again"
    assert (
        len(fake_openai.log()) <= N + 16
    )  # at most the requests in flight at the kill were repeated

    fake_openai.set_latency(0)
    reference = tmp_path / "reference"
    clean = subprocess.run(
        command(fake_openai, reference, tmp_path / "cache2"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert clean.returncode == 0, clean.stderr
    assert stored(reference) == after


def test_ctrl_c_keeps_work_and_prints_resume_command(fake_openai, tmp_path: Path) -> None:
    fake_openai.set_latency(0.1)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(command(fake_openai, run_dir, tmp_path / "cache", n=300), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_default)  # fmt: skip
    try:
        wait_until(lambda: scored_count(run_dir) >= 50, timeout=60)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    line = next(ln for ln in stderr.splitlines() if ln.startswith("Resume with: "))
    resume = shlex.split(line.removeprefix("Resume with: "))
    assert resume[0] == "trustmh" and "--run-dir" in resume
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        assert (
            conn.execute("SELECT value FROM meta WHERE key='status'").fetchone()[0]
            == '"interrupted"'
        )
    done = scored_count(run_dir)
    assert 50 <= done < 300
    fake_openai.set_latency(0)
    result = run_cli(
        *resume[1:],
        env={"PATH": os.path.dirname(trustmh_exe()[0]) + os.pathsep + os.environ["PATH"]},
    )
    assert result.returncode == 0, result.stderr
    assert scored_count(run_dir) == 300


def test_ctrl_c_during_judged_run_records_interrupted(fake_openai, tmp_path: Path) -> None:
    from test_judge_and_resume import judge_reply

    fake_openai.set_reply_fn(judge_reply)
    fake_openai.set_latency(0.2)
    run_dir = tmp_path / "run"
    url = f"openai:test-model@{fake_openai.base_url}"
    cmd = [*trustmh_exe(), "run", "--model", url, "--judge", url, "--tasks", "ethics", "--run-dir", str(run_dir),
           "--no-cache", "--concurrency", "4", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_default)  # fmt: skip
    try:
        wait_until(lambda: scored_count(run_dir) >= 8, timeout=60)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        status = conn.execute("SELECT value FROM meta WHERE key='status'").fetchone()[0]
        model_replies = conn.execute(
            "SELECT COUNT(*) FROM responses WHERE role='model'"
        ).fetchone()[0]
    assert status == '"interrupted"'
    assert model_replies >= scored_count(run_dir)  # replies awaiting their judge were kept too
