"""Where the runs are: an index of every run directory trustmh has written, so `trustmh runs`,
`trustmh compare` and `trustmh report` find runs by name from any folder.

The index is one small SQLite file in the user data directory (`$TRUSTMH_HOME`, else the
platform's user data dir for "trustmh"): one row per run directory (absolute path, name, model,
when it started), added when `trustmh run` (or `reproduce`, `judge-check`) opens the run and
refreshed on every resume. It only points at runs; the runs' own databases stay the truth. An
entry whose directory was deleted or moved is "stale": listed as such, never opened, and
forgotten with `trustmh runs --prune`. A run directory trustmh cannot index (read-only home, a
locked file) still runs: indexing is best effort.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_data_dir

from trustmh.errors import UserError
from trustmh.store import RUN_DB

INDEX_DB = "runs-index.sqlite"
HOME_ENV = "TRUSTMH_HOME"
SCHEMA = """CREATE TABLE IF NOT EXISTS runs (
    path TEXT PRIMARY KEY, name TEXT NOT NULL, model TEXT, started TEXT, registered REAL NOT NULL)"""


def home_dir() -> Path:
    """The user data directory of trustmh: `$TRUSTMH_HOME`, else the platform's."""
    return Path(os.environ.get(HOME_ENV) or user_data_dir("trustmh"))


def index_path() -> Path:
    """The index file."""
    return home_dir() / INDEX_DB


@dataclass(frozen=True)
class IndexedRun:
    """One index entry."""

    path: Path
    name: str
    model: str | None
    started: str | None

    @property
    def exists(self) -> bool:
        """True while the directory still holds a run database."""
        return (self.path / RUN_DB).is_file()


def _connect(create: bool) -> sqlite3.Connection | None:
    path = index_path()
    if not create and not path.is_file():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10)
    conn.execute(SCHEMA)
    return conn


def register(run_dir: Path, model: str | None = None, started: str | None = None) -> str | None:
    """Add (or refresh) a run directory in the index. Returns None, or one line saying why the
    index could not be written (the run itself is not affected)."""
    path = run_dir.resolve()
    try:
        conn = _connect(create=True)
        assert conn is not None
        with closing(conn), conn:
            conn.execute(
                """INSERT INTO runs VALUES (?,?,?,?,?) ON CONFLICT (path) DO UPDATE SET
                   model=excluded.model, started=COALESCE(runs.started, excluded.started),
                   registered=excluded.registered""",
                (str(path), path.name, model, started, time.time()),
            )
    except (OSError, sqlite3.Error) as exc:
        return f"run not added to the index of runs {index_path()} ({exc}); set {HOME_ENV} to a writable folder"
    return None


def indexed() -> list[IndexedRun]:
    """Every index entry (existing or stale), oldest first."""
    try:
        conn = _connect(create=False)
        if conn is None:
            return []
        with closing(conn):
            rows = conn.execute(
                "SELECT path, name, model, started FROM runs ORDER BY started, registered"
            ).fetchall()
    except sqlite3.Error as exc:
        raise UserError(
            f"{index_path()}: the index of runs cannot be read ({exc}); delete it, or set {HOME_ENV}"
        ) from None
    return [IndexedRun(Path(p), n, m, s) for p, n, m, s in rows]


def forget(paths: Iterable[Path]) -> int:
    """Remove these directories from the index; returns how many entries went."""
    keys = [(str(p),) for p in paths]
    if not keys:
        return 0
    conn = _connect(create=False)
    if conn is None:
        return 0
    with closing(conn), conn:
        before = conn.total_changes
        conn.executemany("DELETE FROM runs WHERE path=?", keys)
        return conn.total_changes - before


def runs_under(root: Path) -> list[Path]:
    """The run directories directly under `root` (sorted)."""
    return sorted(db.parent for db in root.glob(f"*/{RUN_DB}")) if root.is_dir() else []


def find(ref: str) -> Path | None:
    """The indexed run named `ref`: its directory name, or its last path components
    (`results/runs/GPT-4o-mini`). None when no existing run matches; UserError when several do."""
    parts = Path(ref).parts
    if not parts:
        return None
    matches = [r for r in indexed() if r.path.parts[-len(parts) :] == parts and r.exists]
    if len(matches) > 1:
        listed = "; ".join(str(r.path) for r in matches[:5])
        more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
        raise UserError(
            f"{ref}: {len(matches)} indexed runs have this name ({listed}{more}); "
            "give the run directory's path, or more of it (e.g. parent/name)"
        )
    return matches[0].path if matches else None


def expand_run_dirs(refs: Sequence[Path | str]) -> list[Path]:
    """Run directories from what a user typed: a run directory, a folder whose subfolders are runs
    (e.g. the `runs/` of `trustmh reproduce`), or the name of an indexed run (`trustmh runs`).
    UserError naming the argument otherwise."""
    out: list[Path] = []
    for ref in refs:
        path = Path(ref)
        if (path / RUN_DB).is_file():
            out.append(path)
            continue
        inner = runs_under(path)
        if inner:
            out.extend(inner)
            continue
        found = None if path.exists() else find(str(ref))
        if found is None:
            raise UserError(
                f"{ref}: not a run directory (no {RUN_DB}), nor a folder of runs, nor the name of "
                "an indexed run; see `trustmh runs`"
            )
        out.append(found)
    if not out:
        raise UserError(
            "no run given; pass one or more run directories or run names, e.g. 2026...-baseline"
        )
    return out


def discover(runs_root: Path | None) -> tuple[list[Path], list[IndexedRun]]:
    """(run directories, stale index entries). With `runs_root`: the runs under it. Without: every
    indexed run plus the runs under `./runs` (runs written before the index existed). Runs found by
    scanning a folder are added to the index, so their names resolve from then on."""
    stale: list[IndexedRun] = []
    if runs_root is not None:
        found = runs_under(runs_root)
    else:
        entries = indexed()
        stale = [r for r in entries if not r.exists]
        found = [r.path for r in entries if r.exists]
        known = {p.resolve() for p in found}
        found += [p for p in runs_under(Path("runs")) if p.resolve() not in known]
    indexed_paths = {r.path for r in indexed()}
    for run_dir in found:
        if run_dir.resolve() not in indexed_paths:
            register(run_dir)
    return found, stale
