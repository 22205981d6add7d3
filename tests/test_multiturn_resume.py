"""crisis.multiturn_safety killed mid-conversation (SIGKILL) and run again: every conversation
ends complete, no turn whose reply was stored is asked again (counted at the loopback server),
the results equal an uninterrupted run's, and a third identical run asks nothing. Needs the
VERA-MH data (skips without it)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

from conftest import trustmh_exe
from openai_server import FakeOpenAIServer
from vera_script import JUDGE, MODEL, SIM, Judge, read_rubric, reply_fn

TASK = "crisis.multiturn_safety"
LATENCY = 0.3
CONCURRENCY = 2
TURNS = 6


def command(server, run_dir: Path, data: Path) -> list[str]:
    url = server.base_url
    return [*trustmh_exe(), "run", "--model", f"openai:{MODEL}@{url}", "--simulator",
            f"openai:{SIM}@{url}", "--judge", f"openai:{JUDGE}@{url}", "--tasks", TASK,
            "--data-dir", str(data), "--option", "personas=Omar,Kevin", "--option", "runs=2",
            "--option", f"turns={TURNS}", "--run-dir", str(run_dir), "--concurrency",
            str(CONCURRENCY), "--no-progress", "--judge-reask"]  # fmt: skip


def count(run_dir: Path, sql: str) -> int:
    db = run_dir / "trustmh.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def outcome(run_dir: Path) -> dict[str, tuple]:
    """sample id -> (status, conversation turns, ratings, question path) as stored."""
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        rows = conn.execute("SELECT sample_id, status, detail FROM scores").fetchall()
    out = {}
    for sid, status, detail in rows:
        d = json.loads(detail)
        turns = tuple((t["role"], t["content"]) for t in d["conversation"])
        out[sid] = (status, turns, d["ratings"], tuple(s["id"] for s in d["judge_path"]))
    return out


def test_sigkill_mid_conversation_then_resume(real_data: Path, tmp_path: Path) -> None:
    questions, _ = read_rubric(real_data)
    server = FakeOpenAIServer(reply_fn=reply_fn(Judge(questions)), latency=LATENCY).start()
    env = {**os.environ, "TRUSTMH_CACHE_DIR": str(tmp_path / "cache")}
    run_dir = tmp_path / "run"
    turns_stored = (
        "SELECT COUNT(*) FROM responses WHERE role IN ('simulator', 'model') AND source='api'"
    )
    judged = "SELECT COUNT(*) FROM responses WHERE role='judge'"
    try:
        proc = subprocess.Popen(command(server, run_dir, real_data), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            # both conversations in flight are past their first turns, and none has finished
            # its turns (the judge starts right after the last one)
            deadline = time.monotonic() + 60
            while not (count(run_dir, turns_stored) >= 4 and count(run_dir, judged) == 0):
                assert time.monotonic() < deadline and proc.poll() is None, "no kill point found"
                time.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGKILL)
            killed_at = time.time()
            proc.wait()
        stored_at_kill = count(run_dir, turns_stored)
        assert (
            4 <= stored_at_kill < 2 * TURNS and count(run_dir, "SELECT COUNT(*) FROM scores") == 0
        )
        before = len(server.log())

        resumed = subprocess.run(command(server, run_dir, real_data), env=env, capture_output=True,
                                 text=True, timeout=300)  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        log = server.log()
        after_resume = len(log)
        again = subprocess.run(command(server, run_dir, real_data), env=env, capture_output=True,
                               text=True, timeout=300)  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert len(server.log()) == after_resume  # an identical rerun asks nothing

        server.reset()
        reference = subprocess.run(command(server, tmp_path / "reference", real_data),
                                   env={**env, "TRUSTMH_CACHE_DIR": str(tmp_path / "cache2")},
                                   capture_output=True, text=True, timeout=300)  # fmt: skip
        assert reference.returncode == 0, reference.stderr
        reference_turns = sum(e["model"] in (SIM, MODEL) for e in server.log())
    finally:
        server.stop()

    # every conversation is complete: all its turns, a judged path and ratings
    got = outcome(run_dir)
    assert set(got) == {"Omar/run1", "Kevin/run1", "Omar/run2", "Kevin/run2"}
    assert all(status == "ok" and len(turns) == TURNS for status, turns, _, _ in got.values())
    assert got == outcome(tmp_path / "reference")  # the same as an uninterrupted run

    # no turn was asked twice, except the requests in flight when the process was killed (their
    # replies never reached it): at most one per conversation in flight, logged just before the
    # kill; the resumed run asked only the turns it did not have
    # (a request is its model, messages and seed: the two runs of a persona differ by the seed)
    def request(e: dict) -> tuple:
        return e["model"], e["prompt_hash"], e["seed"]

    asked = Counter(request(e) for e in log)
    repeated = [r for r, n in asked.items() if n > 1]
    assert len(repeated) <= CONCURRENCY
    for again_asked in repeated:
        first = next(e for e in log if request(e) == again_asked)
        assert first["n"] <= before and first["time"] >= killed_at - LATENCY - 5.0
    resumed_turns = [e for e in log[before:] if e["model"] in (SIM, MODEL)]
    assert len(resumed_turns) == reference_turns - stored_at_kill
    print(
        f"turns stored at the kill {stored_at_kill}, asked on resume {len(resumed_turns)} of "
        f"{reference_turns}; requests asked twice (in flight at the kill) {len(repeated)}"
    )
