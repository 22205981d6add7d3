"""Runs against real concurrent processes and signals (issue 19, items 6 and 7): one writer per run
directory, a lock left by a dead process is taken over, SIGTERM stops a run like Ctrl-C, and a
run killed without a chance to say so shows as "interrupted", never "running" for ever."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

from conftest import run_cli
from test_crash_resume import command, scored_count, stored, wait_until

from trustmh.runlock import LOCK_NAME, holder


def integrity(run_dir: Path) -> str:
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def stored_status(run_dir: Path) -> str:
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        return conn.execute("SELECT value FROM meta WHERE key='status'").fetchone()[0].strip('"')


def runs_status(root: Path) -> str:
    result = run_cli("runs", "--runs-root", str(root), env={"COLUMNS": "300"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def start(server, run_dir: Path, cache: Path, n: int) -> subprocess.Popen:
    return subprocess.Popen(command(server, run_dir, cache, n), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_second_process_on_a_run_dir_is_refused_naming_the_holder(
    fake_openai, tmp_path: Path
) -> None:
    fake_openai.set_latency(2.0)  # 300 replies at 16 in flight: over 30 s, while we look
    run_dir = tmp_path / "runs" / "run"
    first = start(fake_openai, run_dir, tmp_path / "cache", 300)
    try:
        wait_until(lambda: scored_count(run_dir) >= 20, timeout=60)
        assert f"running (pid {first.pid})" in runs_status(tmp_path / "runs")
        second = subprocess.run(command(fake_openai, run_dir, tmp_path / "cache2", 300),
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert f"in use by process {first.pid}" in lines[0] and str(run_dir) in lines[0]
        fake_openai.set_latency(0)  # let the first run finish
        assert first.wait(120) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        first.stdout.close(), first.stderr.close()
    asked = Counter(e["prompt_hash"] for e in fake_openai.log())
    assert len(asked) == 300 and max(asked.values()) == 1  # no request was paid for twice
    assert "complete" in runs_status(tmp_path / "runs")


def test_two_processes_started_together_never_duplicate_requests(
    fake_openai, tmp_path: Path
) -> None:
    fake_openai.set_latency(0.02)
    run_dir = tmp_path / "run"
    procs = [start(fake_openai, run_dir, tmp_path / f"cache{i}", 200) for i in range(2)]
    codes = []
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        codes.append((proc.returncode, stderr))
    assert sorted(c for c, _ in codes) == [0, 2], codes
    refused = next(err for c, err in codes if c == 2)
    assert "in use by process" in refused
    asked = Counter(e["prompt_hash"] for e in fake_openai.log())
    assert len(asked) == 200 and max(asked.values()) == 1
    assert integrity(run_dir) == "ok"


def test_lock_of_a_killed_process_is_taken_over(fake_openai, tmp_path: Path) -> None:
    fake_openai.set_latency(0.05)
    runs = tmp_path / "runs"
    run_dir = runs / "run"
    proc = start(fake_openai, run_dir, tmp_path / "cache", 300)
    wait_until(lambda: scored_count(run_dir) >= 30, timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert (run_dir / LOCK_NAME).exists() and f'"pid": {proc.pid}' in (
        run_dir / LOCK_NAME
    ).read_text()
    assert holder(run_dir) is None
    assert stored_status(run_dir) == "running"  # the killed process had no chance to say more
    listing = runs_status(runs)
    assert "interrupted" in listing and "running" not in listing
    assert integrity(run_dir) == "ok"

    fake_openai.set_latency(0)
    resumed = subprocess.run(command(fake_openai, run_dir, tmp_path / "cache", 300),
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    reference = subprocess.run(command(fake_openai, tmp_path / "ref", tmp_path / "cache-ref", 300),
                               capture_output=True, text=True, timeout=120)  # fmt: skip
    assert reference.returncode == 0, reference.stderr
    assert stored(run_dir) == stored(tmp_path / "ref")
    assert "complete" in runs_status(runs)


def test_sigterm_stops_like_ctrl_c(fake_openai, tmp_path: Path) -> None:
    fake_openai.set_latency(0.05)
    run_dir = tmp_path / "runs" / "run"
    proc = start(fake_openai, run_dir, tmp_path / "cache", 300)
    wait_until(lambda: scored_count(run_dir) >= 30, timeout=60)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    resume = next(line for line in stderr.splitlines() if line.startswith("Resume with: "))
    assert "--run-dir" in resume and str(run_dir) in resume
    assert stored_status(run_dir) == "interrupted"
    assert "interrupted" in runs_status(tmp_path / "runs")
    assert integrity(run_dir) == "ok"
    before = len(stored(run_dir))
    assert 30 <= before < 300

    fake_openai.set_latency(0)
    resumed = subprocess.run(command(fake_openai, run_dir, tmp_path / "cache", 300),
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    after = stored(run_dir)
    assert len(after) == 300 and all(v[1] == "ok" for v in after.values())
