"""The runner against a real loopback OpenAI-compatible server with injected faults.

Every fault is retried or recorded, and the final results equal those of a fault-free run.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from conftest import run_cli

N = 40
FAST_RETRIES = ("--retry-base-delay", "0.01", "--max-retries", "6")


def smoke_run(server, run_dir: Path, *extra: str, n: int = N, env: dict[str, str] | None = None):
    """`trustmh run` on the smoke task against the server; returns the finished process."""
    return run_cli(
        "run", "--model", f"openai:test-model@{server.base_url}", "--tasks", "smoke", "--limit", str(n),
        "--run-dir", str(run_dir), "--concurrency", "8", "--no-progress", *FAST_RETRIES, *extra, env=env,
    )  # fmt: skip


def results(run_dir: Path) -> dict[str, tuple[str, float | None, str]]:
    """sample id -> (status, score, parsed) read from the run's SQLite file."""
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        rows = conn.execute(
            "SELECT sample_id, status, value, parsed FROM scores WHERE task='smoke'"
        ).fetchall()
    return {sid: (status, value, parsed) for sid, status, value, parsed in rows}


@pytest.fixture
def clean_results(fake_openai, tmp_path: Path) -> dict:
    """Results of a fault-free run (its own cache, so later runs cannot reuse it)."""
    proc = smoke_run(fake_openai, tmp_path / "clean", "--no-cache")
    assert proc.returncode == 0, proc.stderr
    fake_openai.reset()
    return results(tmp_path / "clean")


def test_normal_run_records_every_sample(fake_openai, tmp_path: Path) -> None:
    proc = smoke_run(fake_openai, tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    got = results(tmp_path / "run")
    assert len(got) == N and all(status == "ok" for status, _, _ in got.values())
    log = fake_openai.log()
    assert len(log) == N and all(e["outcome"] == "ok" for e in log)
    # token usage reported by the server is recorded per response
    with sqlite3.connect(tmp_path / "run" / "trustmh.sqlite") as conn:
        tokens = conn.execute(
            "SELECT SUM(prompt_tokens), SUM(completion_tokens) FROM responses"
        ).fetchone()
    assert tokens[0] > 0 and tokens[1] > 0
    assert f"tokens {tokens[0]}+{tokens[1]}" in proc.stdout


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param([{"kind": "429", "first": 1, "retry_after": 1}], id="429-retry-after"),
        pytest.param(
            [{"kind": "500", "after": 5, "limit": 15}, {"kind": "503", "every": 7}], id="500-bursts"
        ),
        pytest.param([{"kind": "timeout", "first": 1, "delay": 5}], id="read-timeouts"),
        pytest.param(
            [{"kind": "malformed", "first": 1, "body": "truncated"}], id="malformed-json-truncated"
        ),
        pytest.param(
            [{"kind": "malformed", "first": 1, "body": "garbage"}], id="malformed-json-garbage"
        ),
        pytest.param(
            [{"kind": "malformed", "first": 1, "body": "no_choices"}], id="malformed-no-choices"
        ),
        pytest.param([{"kind": "drop", "fraction": 0.4}], id="dropped-connections"),
    ],
)
def test_faults_are_retried_and_results_match(
    fake_openai, clean_results, tmp_path: Path, faults
) -> None:
    fake_openai.set_faults(faults, seed=7)
    proc = smoke_run(fake_openai, tmp_path / "faulty", "--request-timeout", "1")
    assert proc.returncode == 0, proc.stderr
    log = fake_openai.log()
    assert any(e["outcome"] != "ok" for e in log), "the fault was never injected"
    retries = int(re.search(r"retries (\d+)", proc.stdout).group(1))
    assert retries == sum(e["outcome"] != "ok" for e in log)
    assert results(tmp_path / "faulty") == clean_results


def test_retry_after_is_honoured(fake_openai, tmp_path: Path) -> None:
    fake_openai.set_faults([{"kind": "429", "first": 1, "retry_after": 1}])
    proc = smoke_run(fake_openai, tmp_path / "run", n=5)
    assert proc.returncode == 0, proc.stderr
    by_prompt: dict[str, list[float]] = {}
    for entry in fake_openai.log():
        by_prompt.setdefault(entry["prompt_hash"], []).append(entry["time"])
    gaps = [times[1] - times[0] for times in by_prompt.values()]
    assert len(gaps) == 5 and min(gaps) >= 0.95, gaps


def test_persistent_failure_is_recorded_then_retried_next_run(fake_openai, tmp_path: Path) -> None:
    fake_openai.set_faults([{"kind": "500", "contains": "Item 3:"}])
    proc = smoke_run(fake_openai, tmp_path / "run", "--max-retries", "2", n=6)
    assert proc.returncode == 3, proc.stderr  # incomplete
    assert "incomplete: 1 of 6 samples failed" in proc.stderr and "--run-dir" in proc.stderr
    assert "first error: HTTP 500" in proc.stdout
    got = results(tmp_path / "run")
    assert got["3"][0] == "error" and sum(s == "ok" for s, _, _ in got.values()) == 5
    fake_openai.set_faults([])
    fake_openai.reset()
    proc = smoke_run(fake_openai, tmp_path / "run", n=6)
    assert proc.returncode == 0, proc.stderr
    assert len(fake_openai.log()) == 1  # only the failed sample is asked again
    assert results(tmp_path / "run")["3"][0] == "ok"


def test_rejected_key_stops_the_run_with_one_line(fake_openai, tmp_path: Path) -> None:
    fake_openai.set_faults([{"kind": "401"}])
    proc = smoke_run(fake_openai, tmp_path / "run", n=5)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "rejected the API key" in proc.stderr.splitlines()[0]


def test_identical_second_run_sends_no_request(fake_openai, tmp_path: Path) -> None:
    first = smoke_run(fake_openai, tmp_path / "first")
    assert first.returncode == 0, first.stderr
    fake_openai.reset()
    second = smoke_run(fake_openai, tmp_path / "second")  # new run dir, same shared cache
    assert second.returncode == 0, second.stderr
    assert fake_openai.log() == []
    assert "requests sent 0" in second.stdout and f"cache hits {N}" in second.stdout
    assert "zero requests sent" in second.stdout
    assert results(tmp_path / "second") == results(tmp_path / "first")
    third = smoke_run(fake_openai, tmp_path / "second")  # same run dir: nothing left to do
    assert third.returncode == 0 and fake_openai.log() == []
    assert "pending at start 0" in third.stdout


def test_rate_limit_spaces_requests(fake_openai, tmp_path: Path) -> None:
    # 60 requests per minute: the bucket lets the first 60 through at once, then one per second,
    # so request 64 cannot leave before about 4 s after the bucket started. Measured from the
    # first request's arrival, which a loaded machine delays by up to about a second (the bucket
    # leaks meanwhile), the span is still well over 2 s; without the limit it is a fraction of one.
    proc = smoke_run(fake_openai, tmp_path / "run", "--rpm", "60", n=64)
    assert proc.returncode == 0, proc.stderr
    times = sorted(e["time"] for e in fake_openai.log())
    assert len(times) == 64
    assert times[-1] - times[0] >= 2.0, times[-1] - times[0]


def test_cache_write_failure_keeps_the_paid_reply(fake_openai, tmp_path: Path, monkeypatch) -> None:
    """A shared cache that refuses writes (a real SQLite read-only error) costs the cache, not the
    reply: every sample is scored from the reply the server sent, and the failure is reported."""
    import asyncio

    import trustmh.engine as engine
    from trustmh.config import RunConfig
    from trustmh.store import ResponseCache

    class ReadOnlyCache(ResponseCache):
        def __init__(self, cache_dir: Path, **kwargs):
            super().__init__(cache_dir, **kwargs)
            self.conn.execute("PRAGMA query_only=ON")

    monkeypatch.setattr(engine, "ResponseCache", ReadOnlyCache)
    cfg = RunConfig(model=f"openai:test-model@{fake_openai.base_url}", tasks=["smoke"], limit=5,
                    run_dir=tmp_path / "run", cache_dir=tmp_path / "cache")  # fmt: skip
    summary = asyncio.run(engine.run_evaluation(cfg, progress=False))
    assert summary.stats.cache_errors == 5 and summary.stats.errors == 0
    # the first failed write turns the cache off for the rest of the run, with one warning
    assert len(summary.warnings) == 1 and "response cache" in summary.warnings[0]
    assert "readonly database" in summary.warnings[0]
    assert summary.status == "complete"
    assert {status for status, _, _ in results(tmp_path / "run").values()} == {"ok"}
