"""`openai:MODEL@URL1,URL2`: requests spread over the replicas of one deployment; a replica that
dies mid-run has its requests moved to the one still up, every sample completes, and the summary
shows the replies per endpoint."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from pathlib import Path

from conftest import trustmh_exe
from openai_server import FakeOpenAIServer

from trustmh.errors import UserError
from trustmh.models.spec import parse_model_spec

N = 300


def test_a_replica_killed_mid_run_hands_its_requests_to_the_other(tmp_path: Path) -> None:
    first, second = FakeOpenAIServer(latency=0.02).start(), FakeOpenAIServer(latency=0.02).start()
    try:
        spec = f"openai:test-model@{first.base_url},{second.base_url}"
        run_dir = tmp_path / "run"
        process = subprocess.Popen(
            [*trustmh_exe(), "run", "--model", spec, "--tasks", "smoke", "--limit", str(N),
             "--run-dir", str(run_dir), "--cache-dir", str(tmp_path / "cache"), "--concurrency", "4",
             "--no-progress", "--retry-base-delay", "0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while len(second.log()) < 30 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.01)
        answered_by_second = len(second.log())
        second.stop()  # the replica dies mid-run, with requests in flight
        stdout, stderr = process.communicate(timeout=300)
    finally:
        first.stop()
        second.stop()
    assert process.returncode == 0, stderr
    assert 30 <= answered_by_second < N
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        statuses = dict(
            conn.execute("SELECT status, COUNT(*) FROM scores GROUP BY status").fetchall()
        )
    assert sum(statuses.values()) == N and "error" not in statuses
    # both replicas answered, the first one the rest; the summary shows it per endpoint
    line = next(line for line in stdout.splitlines() if line.startswith("replies per endpoint"))
    counts = {url: int(n) for url, n in re.findall(r"(http://\S+) (\d+)", line)}
    assert counts[first.base_url] > counts[second.base_url] > 0
    assert counts[first.base_url] + counts[second.base_url] == N
    assert len(first.log()) >= N - answered_by_second


def test_replica_specs_are_checked() -> None:
    spec = parse_model_spec("openai:llama@http://10.0.0.1:8000/v1,http://10.0.0.2:8000/v1/")
    assert spec.urls == ("http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1") and spec.is_local
    for bad in ("openai:m@http://a/v1,http://a/v1", "openai:m@http://a/v1,ftp://b"):
        try:
            parse_model_spec(bad)
        except UserError:
            continue
        raise AssertionError(bad)
