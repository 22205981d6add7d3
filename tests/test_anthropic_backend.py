"""The anthropic: backend through the official client against the loopback server's Messages API
(the client honours ANTHROPIC_BASE_URL)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from conftest import run_cli

pytest.importorskip("anthropic")

KEY = "sk-ant-test-0123456789"


def test_anthropic_run_end_to_end(fake_openai, tmp_path: Path) -> None:
    env = {"ANTHROPIC_BASE_URL": fake_openai.url, "ANTHROPIC_API_KEY": KEY}
    run_dir = tmp_path / "run"
    result = run_cli("run", "--model", "anthropic:claude-test", "--tasks", "smoke", "--limit", "12",
                     "--run-dir", str(run_dir), "--no-progress", "--system-prompt", "Answer briefly.", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    log = fake_openai.log()
    assert len(log) == 12 and {e["path"] for e in log} == {"/v1/messages"}
    assert {e["temperature"] for e in log} == {0.0}  # the smoke task's temperature reached the API
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        statuses = conn.execute("SELECT status, COUNT(*) FROM scores GROUP BY status").fetchall()
        tokens = conn.execute(
            "SELECT MIN(prompt_tokens), MIN(completion_tokens) FROM responses"
        ).fetchone()
    assert statuses == [("ok", 12)]
    assert tokens[0] > 0 and tokens[1] > 0
    assert all(
        KEY not in p.read_bytes().decode("latin-1") for p in run_dir.iterdir() if p.is_file()
    )
    assert hashlib.sha256(KEY.encode()).hexdigest() not in result.stdout


def test_anthropic_missing_key_is_one_line(tmp_path: Path) -> None:
    result = run_cli("run", "--model", "anthropic:claude-test", "--tasks", "smoke", "--run-dir", str(tmp_path / "r"),
                     env={"ANTHROPIC_API_KEY": ""})  # fmt: skip
    assert result.returncode == 2 and "ANTHROPIC_API_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr
