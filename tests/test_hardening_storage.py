"""Storage failures (issue 19, items 5 and 9): a failing run store stops the run with one line
naming the database and the cause, keeps what was committed (the database passes
`PRAGMA integrity_check`) and resumes to the same results as an uninterrupted run; a failing
response cache is turned off with one warning and never fails the run; a reply holding a lone
surrogate is stored and scored with U+FFFD, and counted.

Full disks are real tmpfs mounts (root); the in-process tests simulate the same failures at the
SQLite layer (`max_page_count`, `query_only`), so they also run where mounting is not allowed."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli
from mounts import readonly_view, tmpfs
from test_crash_resume import command, stored

from trustmh import engine, store
from trustmh.config import RunConfig
from trustmh.errors import StorageError

WIDE = {**os.environ, "COLUMNS": "300"}  # summary lines unwrapped


def integrity(run_dir: Path) -> str:
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def baseline_args(run_dir: Path, n: int) -> list[str]:
    return ["run", "--model", "baseline", "--tasks", "smoke", "--limit", str(n),
            "--run-dir", str(run_dir), "--no-cache", "--no-progress"]  # fmt: skip


def assert_storage_error(result, path: Path, cause: str) -> None:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(f"error: {path}: cannot write the run database ({cause}")
    assert lines[1].startswith("Finished samples are saved in") and "--run-dir" in lines[1]
    assert len(lines) == 2, result.stderr


def test_full_disk_stops_the_run_cleanly_and_it_resumes(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "400k") as disk:
        run_dir = disk / "run"
        full = run_cli(*baseline_args(run_dir, 2000))
        assert_storage_error(full, run_dir / "trustmh.sqlite", "database or disk is full")
        assert integrity(run_dir) == "ok"
        partial = stored(run_dir)
        assert len(partial) < 2000
        subprocess.run(["mount", "-o", "remount,size=256m", str(disk)], check=True)  # space freed
        resumed = run_cli(*baseline_args(run_dir, 2000))
        assert resumed.returncode == 0, resumed.stderr
        after = stored(run_dir)
        for sid, row in partial.items():
            assert after[sid] == row
    reference = run_cli(*baseline_args(tmp_path / "reference", 2000))
    assert reference.returncode == 0, reference.stderr
    assert after == stored(tmp_path / "reference")


def test_run_on_a_read_only_directory_is_one_line(tmp_path: Path) -> None:
    base = tmp_path / "base"
    assert run_cli(*baseline_args(base / "run", 5)).returncode == 0
    with readonly_view(base, tmp_path / "view") as view:
        result = run_cli(*baseline_args(view / "run", 10))
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert str(view / "run") in lines[0] and "Read-only file system" in lines[0]


def test_full_cache_disk_turns_the_cache_off_with_one_warning(fake_openai, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "cachedisk", "96k") as disk:
        result = subprocess.run(command(fake_openai, tmp_path / "run", disk, n=400),
                                capture_output=True, text=True, env=WIDE, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr
        warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
        assert len(warnings) == 1, result.stderr
        assert (
            str(disk / "cache.sqlite") in warnings[0] and "database or disk is full" in warnings[0]
        )
        assert "the cache is off" in warnings[0]
        assert "status complete" in result.stdout
        assert "Traceback" not in result.stderr
    reference = subprocess.run(command(fake_openai, tmp_path / "ref", tmp_path / "cache2", n=400),
                               capture_output=True, text=True, env=WIDE, timeout=300)  # fmt: skip
    assert reference.returncode == 0
    assert stored(tmp_path / "run") == stored(tmp_path / "ref")


def test_read_only_cache_is_turned_off_with_one_warning(fake_openai, tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    with readonly_view(tmp_path / "cache", tmp_path / "view") as view:
        result = subprocess.run(command(fake_openai, tmp_path / "run", view, n=50),
                                capture_output=True, text=True, env=WIDE, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "response cache" in warnings[0], result.stderr
    assert len(stored(tmp_path / "run")) == 50


# ------------------------------------------------------------ the same failures at the SQLite layer


def config(run_dir: Path, n: int) -> RunConfig:
    return RunConfig(model="baseline", tasks=["smoke"], limit=n, run_dir=run_dir, no_cache=True)


def test_sqlite_full_database_is_a_storage_error(tmp_path: Path, monkeypatch) -> None:
    connect = store._connect

    def small_disk(path: Path) -> sqlite3.Connection:
        conn = connect(path)
        conn.execute("PRAGMA max_page_count=40")  # about 160 kB: a disk that fills up
        return conn

    monkeypatch.setattr(store, "_connect", small_disk)
    run_dir = tmp_path / "run"
    with pytest.raises(
        StorageError,
        match=r"trustmh\.sqlite: cannot write the run database \(database or disk is full\)",
    ):
        asyncio.run(engine.run_evaluation(config(run_dir, 1500), progress=False))
    monkeypatch.setattr(store, "_connect", connect)
    assert integrity(run_dir) == "ok"
    summary = asyncio.run(engine.run_evaluation(config(run_dir, 1500), progress=False))
    assert summary.status == "complete"
    reference = asyncio.run(engine.run_evaluation(config(tmp_path / "ref", 1500), progress=False))
    assert reference.results == summary.results
    assert stored(run_dir) == stored(tmp_path / "ref")


def test_database_turning_read_only_midway_is_a_storage_error(tmp_path: Path, monkeypatch) -> None:
    put_score = store.RunStore.put_score
    calls = {"n": 0}

    def failing_midway(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 100:
            self.conn.execute("PRAGMA query_only=ON")  # from now on every write is refused
        return put_score(self, *args, **kwargs)

    monkeypatch.setattr(store.RunStore, "put_score", failing_midway)
    run_dir = tmp_path / "run"
    with pytest.raises(StorageError, match="attempt to write a readonly database"):
        asyncio.run(engine.run_evaluation(config(run_dir, 300), progress=False))
    monkeypatch.setattr(store.RunStore, "put_score", put_score)
    assert integrity(run_dir) == "ok"
    assert 0 < len(stored(run_dir)) < 300
    summary = asyncio.run(engine.run_evaluation(config(run_dir, 300), progress=False))
    assert summary.status == "complete"
    asyncio.run(engine.run_evaluation(config(tmp_path / "ref", 300), progress=False))
    assert stored(run_dir) == stored(tmp_path / "ref")


# ------------------------------------------------------------------------------ lone surrogates


def test_lone_surrogate_replies_are_stored_and_scored(fake_openai, tmp_path: Path) -> None:
    from openai_server import default_reply

    def reply(messages, model):  # every third prompt gets a reply with a lone surrogate
        text = default_reply(messages)
        return text + " \ud800" if len(str(messages)) % 3 == 0 else text

    fake_openai.set_reply_fn(reply)
    run_dir = tmp_path / "run"
    first = subprocess.run(command(fake_openai, run_dir, tmp_path / "cache", n=60),
                           capture_output=True, text=True, env=WIDE, timeout=120)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "status complete" in first.stdout
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        texts = [t for (t,) in conn.execute("SELECT text FROM responses")]
        statuses = {s for (s,) in conn.execute("SELECT status FROM scores")}
        marked = conn.execute(
            "SELECT COUNT(*) FROM responses WHERE json_extract(extra, '$.surrogates_replaced') = 1"
        ).fetchone()[0]
    repaired = [t for t in texts if t.endswith(" \ufffd")]
    assert repaired and marked == len(repaired)
    assert "error" not in statuses
    assert f"replaced by U+FFFD: {len(repaired)}" in first.stdout
    n_requests = len(fake_openai.log())
    again = subprocess.run(command(fake_openai, run_dir, tmp_path / "cache", n=60),
                           capture_output=True, text=True, env=WIDE, timeout=120)  # fmt: skip
    assert again.returncode == 0 and len(fake_openai.log()) == n_requests  # nothing asked again
    shutil.rmtree(run_dir)
    cached = subprocess.run(command(fake_openai, run_dir, tmp_path / "cache", n=60),
                            capture_output=True, text=True, env=WIDE, timeout=120)  # fmt: skip
    assert cached.returncode == 0 and len(fake_openai.log()) == n_requests  # the cache held them


@pytest.mark.parametrize("content", ["empty", "foreign"])
def test_a_file_named_like_a_run_database_that_is_not_one_is_one_line(
    tmp_path: Path, content: str
) -> None:
    # an empty trustmh.sqlite (a stray `sqlite3.connect` leaves one) or another program's database
    # of that name: the reading commands say so in one line instead of a traceback
    run_dir = tmp_path / "not-a-run"
    run_dir.mkdir()
    db = run_dir / "trustmh.sqlite"
    db.touch()
    if content == "foreign":
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE notes (text TEXT)")
        conn.close()
    for args in (["report", str(run_dir), "-o", str(tmp_path / "r.html")],
                    ["export", str(run_dir), "--format", "jsonl"]):  # fmt: skip
        result = run_cli(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (args, result.stderr)
        assert str(db) in lines[0] and "not a trustmh run database" in lines[0], lines[0]
    assert not (tmp_path / "r.html").exists()
