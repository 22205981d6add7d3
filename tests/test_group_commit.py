"""Group commits of the run store: while a run's requests are out, the replies and scores of one
turn of the event loop share one commit, made as soon as the turn ends; nothing written is left
uncommitted when the block ends, and a commit that fails is raised, never dropped silently."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from mounts import tmpfs

from trustmh.store import RunStore
from trustmh.types import Response, Sample, SampleScore


def sample(n: int) -> Sample:
    return Sample(id=str(n), messages=({"role": "user", "content": f"item {n}"},), target="A")


def committed_scores(path: Path) -> int:
    """Scores another connection sees: only what is committed."""
    with sqlite3.connect(path) as other:
        return other.execute("SELECT COUNT(*) FROM scores").fetchone()[0]


def test_one_commit_per_turn_of_the_loop(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    commits: list[str] = []
    store.conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)

    async def run() -> None:
        with store.group_commits():
            for n in range(5):  # five replies arriving in the same turn
                store.put_response(f"k{n}", "m", "model", Response(f"reply {n}"), "api", 1, 0.1)
                store.put_score("t", sample(n), f"k{n}", SampleScore(1.0, "A"))
            assert committed_scores(store.path) == 0 and commits == []
            await asyncio.sleep(0)  # the turn ends
            assert committed_scores(store.path) == 5 and len(commits) == 1
            store.put_score("t", sample(5), "k5", SampleScore(0.0, "B"))
        # the block ended before its turn did: committed on the way out
        assert committed_scores(store.path) == 6 and len(commits) == 2

    asyncio.run(run())
    store.put_score("t", sample(6), "k6", SampleScore(0.0, "B"))  # outside: at once
    assert committed_scores(store.path) == 7 and len(commits) == 2  # autocommit: no COMMIT
    store.close()


def test_a_commit_that_fails_is_raised(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "400k") as disk:
        store = RunStore(disk)
        (disk / "filler").write_bytes(b"x" * (disk_free(disk) - 8192))  # almost full

        async def run() -> None:
            with store.group_commits():
                # fits SQLite's page cache, not the disk: the commit is what fails
                store.put_response("k0", "m", "model", Response("r" * 200_000), "api", 1, 0.1)
                await asyncio.sleep(0)
                for n in range(2):  # every later write raises it (a caller may swallow one)
                    with pytest.raises(sqlite3.OperationalError, match="full"):
                        store.put_score("t", sample(n), "k0", SampleScore(1.0, "A"))

        with pytest.raises(sqlite3.OperationalError, match="full"):  # and so does the block's end
            asyncio.run(run())
        assert committed_scores(store.path) == 0
        store.close()


def disk_free(path: Path) -> int:
    import os

    found = os.statvfs(path)
    return found.f_bavail * found.f_frsize
