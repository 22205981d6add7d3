"""Runs against real concurrent processes and signals (issue 19, items 6 and 7): one writer per run
directory, a lock left by a dead process is taken over, SIGTERM stops a run like Ctrl-C, and a
run killed without a chance to say so shows as "interrupted", never "running" for ever."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from aiohttp import web
from conftest import run_cli
from openai_server import _completion, default_reply, messages_hash
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
    fake_openai.set_latency(
        1.0
    )  # the first holds the lock for over 12 s, however loaded the machine
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


class TricklingServer:
    """An OpenAI-compatible server whose replies trickle in: headers at once, then the body 16
    bytes at a time, `delay` seconds apart (a slow or congested provider)."""

    def __init__(self, delay: float):
        self.delay = delay
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        messages = body["messages"]
        completion = _completion(body.get("model", ""), messages, default_reply(messages), None,
                                 messages_hash(messages))  # fmt: skip
        payload = json.dumps(completion).encode()
        response = web.StreamResponse(headers={"Content-Type": "application/json",
                                               "Content-Length": str(len(payload))})  # fmt: skip
        await response.prepare(request)
        for start in range(0, len(payload), 16):
            await response.write(payload[start : start + 16])
            await asyncio.sleep(self.delay)
        await response.write_eof()
        return response

    def __enter__(self) -> TricklingServer:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = runner.addresses[0][1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc_info) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def test_sigterm_during_trickling_replies(fake_openai, tmp_path: Path) -> None:
    """Replies arriving a few bytes at a time: SIGTERM stops the run at once (it does not wait
    for the slow bodies), the database is whole, and the resumed run equals a clean one."""
    run_dir = tmp_path / "run"
    with TricklingServer(delay=0.1) as slow:  # about 3 s per reply
        proc = start(slow, run_dir, tmp_path / "cache", 60)
        wait_until(lambda: scored_count(run_dir) >= 16, timeout=120)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        assert time.monotonic() - started < 10, "the run waited for the trickling replies"
        assert proc.returncode == 130 and "Resume with: " in stderr, stderr
        assert stored_status(run_dir) == "interrupted" and integrity(run_dir) == "ok"
        assert 16 <= len(stored(run_dir)) < 60
        slow.delay = 0
        resumed = subprocess.run(command(slow, run_dir, tmp_path / "cache", 60),
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
    reference = subprocess.run(command(fake_openai, tmp_path / "ref", tmp_path / "cache2", 60),
                               capture_output=True, text=True, timeout=120)  # fmt: skip
    assert reference.returncode == 0, reference.stderr
    assert stored(run_dir) == stored(tmp_path / "ref")
