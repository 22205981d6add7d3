"""Helpers for end-to-end tests: `trustmh run` against the loopback OpenAI-compatible server, and
reading back what the run stored in its SQLite file."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from conftest import run_cli
from openai_server import FakeOpenAIServer


def run_live(
    server: FakeOpenAIServer,
    run_dir: Path,
    *args: str,
    model: str = "test-model",
    judge: str | None = None,
    cache_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run `trustmh run` with the model (and the judge, when named) served by `server`, without a
    progress bar and with every metric printed (--verbose), and fail the test when the command fails. The response cache is
    `<run_dir>.cache` unless `cache_dir` is given; `args` are the other CLI arguments."""
    url = server.base_url
    judge_args = ("--judge", f"openai:{judge}@{url}") if judge else ()
    cache = cache_dir or run_dir.with_name(f"{run_dir.name}.cache")
    result = run_cli(
        "run", "--model", f"openai:{model}@{url}", *judge_args, "--run-dir", str(run_dir),
        "--cache-dir", str(cache), "--no-progress", "--verbose", *args, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


def query(run_dir: Path, sql: str, *args: object) -> list[tuple]:
    """The rows of one SQL query on a run's store."""
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        return conn.execute(sql, args).fetchall()
