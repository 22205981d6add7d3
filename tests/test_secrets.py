"""The API key never appears in the SQLite files, logs, progress output or exports."""

from __future__ import annotations

import hashlib
from pathlib import Path

from conftest import run_cli
from openai_server import FakeOpenAIServer

FAKE_KEY = "sk-trustmh-test-SECRET-4b1d9e7f0c2a"


def test_api_key_never_stored_or_printed(tmp_path: Path) -> None:
    server = FakeOpenAIServer(api_key=FAKE_KEY).start()
    try:
        run_dir, cache_dir = tmp_path / "run", tmp_path / "cache"
        env = {"TRUSTMH_TEST_KEY": FAKE_KEY}
        args = ["run", "--model", f"openai:test-model@{server.base_url}", "--api-key-env", "TRUSTMH_TEST_KEY",
                "--tasks", "smoke", "--limit", "10", "--run-dir", str(run_dir), "--cache-dir", str(cache_dir)]  # fmt: skip
        result = run_cli(*args, "--progress", env=env)
        assert result.returncode == 0, result.stderr
        # the key was really used: the server accepted only requests carrying it
        expected = hashlib.sha256(f"Bearer {FAKE_KEY}".encode()).hexdigest()
        assert {e["auth_sha256"] for e in server.log()} == {expected}
        exports = [run_cli("export", str(run_dir), "--format", fmt) for fmt in ("jsonl", "csv")]
        assert all(e.returncode == 0 for e in exports)
        runs = run_cli("runs", "--runs-root", str(tmp_path))
        printed = (
            result.stdout
            + result.stderr
            + runs.stdout
            + "".join(e.stdout + e.stderr for e in exports)
        )
        assert FAKE_KEY not in printed
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert any(p.suffix == ".jsonl" for p in files) and any(
            p.name == "trustmh.sqlite" for p in files
        )
        for path in files:
            assert FAKE_KEY.encode() not in path.read_bytes(), path
        # a wrong key is refused by the server, and the error line does not echo the key either
        bad_args = [a if a != str(run_dir) else str(tmp_path / "run-bad") for a in args]
        bad = run_cli(
            *bad_args, "--no-cache", env={"TRUSTMH_TEST_KEY": "sk-wrong-" + FAKE_KEY[::-1]}
        )
        assert bad.returncode == 2 and FAKE_KEY[::-1] not in bad.stderr + bad.stdout
    finally:
        server.stop()
