"""SQLite storage: one database per run directory, plus a shared response cache.

Both use WAL mode with synchronous=NORMAL: every commit survives a killed process (even SIGKILL);
only a power cut could lose the last commits. Each response and each score is committed as soon as
it exists: at once, or, while a run's requests are out (`RunStore.group_commits`), at the end of
the event-loop turn it arrived in, together with the others of that turn, so a crash loses at most
the requests in flight (a reply still in that turn counts as one). Rows are keyed so a resumed run
replaces, never duplicates: samples and scores by (task, sample_id, variant), responses by request
key (a hash of model spec, generation parameters and messages).

Secrets never reach these files: request keys hash only the spec, parameters and messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trustmh.errors import StorageError, UserError
from trustmh.types import (
    GenRequest,
    MetricValue,
    Response,
    Sample,
    SampleScore,
    ScoredSample,
    Usage,
)

RUN_DB = "trustmh.sqlite"
CACHE_DB = "cache.sqlite"
SCHEMA_VERSION = "1"

RUN_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    task TEXT NOT NULL, sample_id TEXT NOT NULL, variant TEXT NOT NULL,
    messages TEXT NOT NULL, target TEXT, meta TEXT, request_key TEXT NOT NULL,
    PRIMARY KEY (task, sample_id, variant));
CREATE TABLE IF NOT EXISTS responses (
    request_key TEXT PRIMARY KEY, model TEXT NOT NULL, role TEXT NOT NULL, text TEXT NOT NULL,
    finish_reason TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, extra TEXT,
    source TEXT NOT NULL, attempts INTEGER, latency REAL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    task TEXT NOT NULL, sample_id TEXT NOT NULL, variant TEXT NOT NULL, status TEXT NOT NULL,
    value REAL, parsed TEXT, detail TEXT, error TEXT, request_key TEXT, scored REAL NOT NULL,
    PRIMARY KEY (task, sample_id, variant));
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY, model TEXT NOT NULL, tag TEXT NOT NULL, state TEXT NOT NULL,
    n_requests INTEGER NOT NULL, done INTEGER, failed INTEGER, collected INTEGER NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batch_requests (
    request_key TEXT PRIMARY KEY, batch_id TEXT NOT NULL, role TEXT NOT NULL, line TEXT NOT NULL,
    state TEXT NOT NULL, error TEXT);
CREATE TABLE IF NOT EXISTS results (
    task TEXT NOT NULL, metric TEXT NOT NULL, value REAL, n INTEGER, direction TEXT, is_primary INTEGER,
    ci_low REAL, ci_high REAL, n_unparsed INTEGER, n_refused INTEGER, n_error INTEGER, note TEXT,
    PRIMARY KEY (task, metric));
"""

CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    request_key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT NULL, finish_reason TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, extra TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS adaptations (model TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Response fields kept in the `extra` JSON column (no schema change, old rows read as before).
_RESPONSE_EXTRAS = ("reasoning", "reasoning_tokens", "sent_params", "adapted")

# json.dumps given any option builds a new encoder on every call; these are built once (a sample
# stores some seven values and hashes one key) and write exactly what json.dumps would
_encode_key = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode
_encode_value = json.JSONEncoder(ensure_ascii=False, default=str).encode


def request_key(
    model_spec: str,
    request: GenRequest,
    include_ref: bool = False,
    extra: Any = None,
    params: dict[str, Any] | None = None,
) -> str:
    """Hash of (model spec, generation parameters, messages); the sample ref joins it for backends
    whose answer depends on the sample rather than on the prompt (replay), and `extra` (any JSON
    value) for whatever else shapes the answer (a multi-step sample's settings and other models).
    `params` are the parameters as sent when the model's profile changes them (protocol 1.7): the
    key covers the request the provider received. Unchanged requests keep the keys they always had."""
    payload: dict[str, Any] = {
        "m": model_spec,
        "p": request.params.as_dict() if params is None else params,
        "msg": request.messages,
    }
    if include_ref and request.ref is not None:
        r = request.ref
        payload["ref"] = [r.task, r.sample_id, r.variant, r.role]
    if extra is not None:
        payload["x"] = extra
    if request.epoch:
        payload["epoch"] = request.epoch
    return hashlib.sha256(_encode_key(payload).encode()).hexdigest()


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
    except (OSError, sqlite3.Error) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(
            f"{path.parent}: cannot open a database there ({detail}); choose another directory"
        ) from None
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that only reads, so that a run on a read-only directory or mount can still be
    listed, reported and exported. A WAL database closed cleanly (no -wal file beside it) on a
    read-only directory cannot be opened read-only the usual way (SQLite wants to create its -shm
    index): with no -wal, everything is in the main file, which is then read as immutable."""
    if not path.is_file():
        raise UserError(f"{path.parent}: not a run directory (no {RUN_DB}); see `trustmh runs`")
    uri = path.resolve().as_uri()
    wal = path.with_name(path.name + "-wal")
    failure: sqlite3.Error | None = None
    for query in ("mode=ro", "mode=ro&immutable=1"):
        if query.endswith("immutable=1") and wal.exists():
            break  # the WAL may hold committed rows that an immutable read would miss
        conn = None
        try:
            conn = sqlite3.connect(f"{uri}?{query}", uri=True, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA busy_timeout=30000")
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            failure = failure or exc
            continue
        if "meta" not in tables:  # an empty file, or another program's database of that name
            conn.close()
            raise UserError(
                f"{path}: not a trustmh run database (it has no run tables); point at a run "
                "directory, see `trustmh runs`"
            )
        return conn
    raise UserError(f"{path}: cannot read the run database ({failure}); see `trustmh runs`")


WAL_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default


@contextmanager
def checkpoints_deferred(conn: sqlite3.Connection) -> Iterator[None]:
    """Within the block, commits on `conn` never copy the WAL into the database themselves; call
    `checkpoint_wal` (from a worker thread) meanwhile. A commit that crosses SQLite's default
    threshold otherwise does that copy on the spot: 10-15 ms every couple of hundred replies,
    during which the event loop that committed answers nobody."""
    conn.execute("PRAGMA wal_autocheckpoint=0")
    try:
        yield
    finally:
        with suppress(sqlite3.Error):  # a connection closed meanwhile (a cache turned off)
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")


def checkpoint_wal(path: Path) -> None:
    """Copy what is committed in a database's WAL into the database file, through a connection of
    its own so that it can run in a worker thread while the owner keeps committing (sqlite3
    releases the GIL meanwhile). PASSIVE: it neither waits for nor blocks a writer, and a locked
    or missing database is left for the next call."""
    try:  # mode=rw: a database that is not there is not created
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=0)
    except sqlite3.Error:
        return
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        pass
    finally:
        conn.close()


def _dumps(value: Any) -> str | None:
    return None if value is None else _encode_value(value)


# json's C scanner, called directly: json.loads wraps it in three Python layers that cost a
# 2,000-sample run some 30 ms of CPU over the 26,000 stored values it reads back
_scan_json = json.JSONDecoder().scan_once


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:  # not JSON at its start: json.loads raises the error that says why
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def _extra_json(resp: Response) -> str | None:
    """The `extra` column of a response: its backend fields plus the reasoning, reasoning tokens
    and what was sent when those are set."""
    fields = {
        "reasoning": resp.reasoning,
        "reasoning_tokens": resp.usage.reasoning_tokens or None,
        "sent_params": resp.sent_params,
        "adapted": resp.adapted,
    }
    merged = {**(resp.extra or {}), **{k: v for k, v in fields.items() if v is not None}}
    return _dumps(merged) if merged else None


def _fetch_response(conn: sqlite3.Connection, key: str) -> Response | None:
    """The response stored under a request key in either database (same columns in both)."""
    row = conn.execute(
        "SELECT text, finish_reason, prompt_tokens, completion_tokens, extra FROM responses WHERE request_key=?",
        (key,),
    ).fetchone()
    if row is None:
        return None
    extra = _loads(row[4]) or {}
    fields = {k: extra.pop(k) for k in _RESPONSE_EXTRAS if k in extra}
    return Response(
        row[0],
        Usage(row[2] or 0, row[3] or 0, int(fields.get("reasoning_tokens") or 0)),
        row[1],
        extra or None,
        cached=True,
        reasoning=fields.get("reasoning"),
        sent_params=fields.get("sent_params"),
        adapted=fields.get("adapted"),
    )


def _commit_open(conn: sqlite3.Connection) -> None:
    """Commit the open transaction, if any (the connections are in autocommit mode otherwise)."""
    if conn.in_transaction:
        conn.commit()


@dataclass(slots=True)
class StoredSample:
    """A sample row as stored."""

    task: str
    sample_id: str
    variant: str
    request_key: str


class RunStore:
    """The database of one run directory. `readonly=True` for commands that only read (report,
    export, runs): they then work on read-only directories and mounts, and never create a
    database where there is none."""

    def __init__(self, run_dir: Path, readonly: bool = False):
        self.run_dir = run_dir
        self.path = run_dir / RUN_DB
        if readonly:
            self.conn = _connect_readonly(self.path)
            return
        self.conn = _connect(self.path)
        # group commits (see `group_commits`): the loop the commits are made on, whether one is
        # scheduled, and the error of the last one, raised by the next write
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commit_scheduled = False
        self._commit_error: sqlite3.Error | None = None
        try:
            self.conn.executescript(RUN_SCHEMA)
            if self.get_meta("schema_version") is None:
                self.set_meta("schema_version", SCHEMA_VERSION)
        except sqlite3.Error as exc:
            self.conn.close()
            raise StorageError(
                f"{self.path}: cannot write the run database ({exc}); free space or fix the "
                "directory, or choose another --run-dir"
            ) from None

    def close(self) -> None:
        """Close the connection (all work is already committed)."""
        self.conn.close()

    @contextmanager
    def group_commits(self) -> Iterator[None]:
        """Within the block (run on an event loop): the responses and scores written in one turn
        of the loop share one commit, made as soon as the turn ends, instead of one commit each
        (a commit costs about 90 us of CPU; at 200 replies in flight, most turns bring several).
        What the block wrote is committed when it ends, however it ends; a commit that fails is
        raised by the next write, or when the block ends."""
        self._loop, self._commit_error = asyncio.get_running_loop(), None
        try:
            yield
        finally:
            self._loop = None
            self._commit_scheduled = False
            _commit_open(self.conn)
        if self._commit_error is not None:
            raise self._commit_error

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        """Execute one write: in a group commit while one is on (see `group_commits`), else as
        it comes (autocommit, or the caller's open transaction)."""
        if self._loop is None:
            self.conn.execute(sql, params)
            return
        if self._commit_error is not None:
            raise self._commit_error
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
        self.conn.execute(sql, params)
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self._loop.call_soon(self._group_commit)

    def commit_group(self) -> None:
        """Commit what the current group holds now (the housekeeping does, before a checkpoint,
        which SQLite refuses inside a transaction); a failure is kept as the group's own, raised
        by the next write. Outside a group: commit an open transaction, raising a failure."""
        if self._loop is None:
            _commit_open(self.conn)
        else:
            self._group_commit()

    def _group_commit(self) -> None:
        self._commit_scheduled = False
        try:
            _commit_open(self.conn)
        except sqlite3.Error as exc:  # disk full, I/O error: the turn's rows are not kept
            self._commit_error = exc
            with suppress(sqlite3.Error):
                self.conn.rollback()

    def _commit(self) -> None:
        """Commit now, or leave it to the group commit while one is on."""
        if self._loop is None:
            _commit_open(self.conn)

    # meta -------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        """A stored meta value (JSON-decoded) or None."""
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return _loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        """Store a meta value."""
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, _dumps(value)))

    # samples ----------------------------------------------------------------------------------
    def add_samples(self, task: str, rows: Iterable[tuple[Sample, str]]) -> int:
        """Record samples with their request keys (see `SampleDeclaration`); returns how many
        stored samples were replaced because their request changed."""
        declaration = SampleDeclaration(self, task)
        rows = list(rows)
        declaration.pending([s for s, _ in rows], [key for _, key in rows])
        return declaration.replaced

    def finished(self, task: str) -> set[tuple[str, str]]:
        """(sample_id, variant) of samples whose score is final (anything but an error)."""
        rows = self.conn.execute(
            "SELECT sample_id, variant FROM scores WHERE task=? AND status != 'error'", (task,)
        )
        return {(a, b) for a, b in rows}

    # responses --------------------------------------------------------------------------------
    def get_response(self, key: str) -> Response | None:
        """The stored response for a request key."""
        return _fetch_response(self.conn, key)

    def put_response(
        self,
        key: str,
        model: str,
        role: str,
        resp: Response,
        source: str,
        attempts: int,
        latency: float,
        commit: bool = True,
    ) -> None:
        """Store a response (committed at once unless `commit` is False: then the next score commits it)."""
        self._write(
            "INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (key, model, role, resp.text, resp.finish_reason, resp.usage.prompt_tokens,
             resp.usage.completion_tokens, _extra_json(resp), source, attempts, latency, time.time()),
        )  # fmt: skip
        if commit:
            self._commit()

    def rekey_sample(self, task: str, sample: Sample, key: str) -> None:
        """Point a sample at another request key: its request was adapted to the provider's rules
        while it was being answered (protocol 1.7), and the adapted request is what is stored."""
        self._write(
            "UPDATE samples SET request_key=? WHERE task=? AND sample_id=? AND variant=?",
            (key, task, sample.id, sample.variant),
        )

    def usage_by_model(self) -> list[tuple[str, str, int, int]]:
        """(model spec, source, prompt tokens, completion tokens) summed over the stored replies
        of each model and source (what `--max-cost` prices)."""
        rows = self.conn.execute(
            "SELECT model, source, SUM(prompt_tokens), SUM(completion_tokens) FROM responses "
            "GROUP BY model, source"
        )
        return [(model, source, int(p or 0), int(c or 0)) for model, source, p, c in rows]

    # batches (--batch) --------------------------------------------------------------------------
    def add_batch(
        self, pending_id: str, model: str, tag: str, rows: list[tuple[str, str, Any]]
    ) -> None:
        """Record a chunk about to be submitted (before the provider has it, so that a process
        killed meanwhile finds it by its tag instead of submitting it twice): rows of (request
        key, role, the request's line as submitted)."""
        now = time.time()
        with self._tx():
            self.conn.execute("INSERT OR REPLACE INTO batches VALUES (?,?,?,?,?,?,?,?,?,?)",
                              (pending_id, model, tag, "submitting", len(rows), 0, 0, 0, now, now))  # fmt: skip
            self.conn.executemany(
                "INSERT OR REPLACE INTO batch_requests VALUES (?,?,?,?,?,NULL)",
                ((key, pending_id, role, _dumps(line), "submitted") for key, role, line in rows),
            )

    def batch_submitted(self, pending_id: str, batch_id: str, state: str) -> None:
        """The provider accepted a recorded chunk as `batch_id`."""
        with self._tx():
            self.conn.execute("UPDATE batches SET batch_id=?, state=?, updated=? WHERE batch_id=?",
                              (batch_id, state, time.time(), pending_id))  # fmt: skip
            self.conn.execute(
                "UPDATE batch_requests SET batch_id=? WHERE batch_id=?", (batch_id, pending_id)
            )

    def open_batches(self) -> list[tuple[str, str, str, str, int]]:
        """(batch id, model, tag, state, requests) of the batches not collected yet."""
        return list(self.conn.execute(
            "SELECT batch_id, model, tag, state, n_requests FROM batches WHERE collected=0 ORDER BY created"
        ))  # fmt: skip

    def batch_lines(self, batch_id: str) -> list[tuple[str, str, Any]]:
        """(request key, role, line) of a batch's requests."""
        rows = self.conn.execute(
            "SELECT request_key, role, line FROM batch_requests WHERE batch_id=?", (batch_id,)
        )
        return [(key, role, _loads(line)) for key, role, line in rows]

    def batch_state(self, batch_id: str, state: str, done: int, failed: int) -> None:
        """A batch's state and counts as last polled."""
        self.conn.execute("UPDATE batches SET state=?, done=?, failed=?, updated=? WHERE batch_id=?",
                          (state, done, failed, time.time(), batch_id))  # fmt: skip

    def batch_collected(self, batch_id: str, failures: dict[str, str]) -> None:
        """Every reply of an ended batch is stored: mark it collected, and its requests done or
        failed (with why); failed ones are submitted again by the next run."""
        with self._tx():
            self.conn.execute(
                "UPDATE batch_requests SET state='done' WHERE batch_id=?", (batch_id,)
            )
            self.conn.executemany(
                "UPDATE batch_requests SET state='failed', error=? WHERE request_key=?",
                ((error, key) for key, error in failures.items()),
            )
            self.conn.execute("UPDATE batches SET collected=1 WHERE batch_id=?", (batch_id,))

    def batch_summary(self) -> list[tuple[str, str, str, int, int, int]]:
        """(batch id, model, state, requests, done, failed) of every batch of the run."""
        return list(self.conn.execute(
            "SELECT batch_id, model, state, n_requests, done, failed FROM batches ORDER BY created"
        ))  # fmt: skip

    # scores -----------------------------------------------------------------------------------
    def put_score(
        self, task: str, sample: Sample, key: str, score: SampleScore, error: str | None = None
    ) -> None:
        """Store (or replace) the one score row of a sample and commit (see `group_commits`)."""
        self._write(
            "INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?,?,?,?,?)",
            (task, sample.id, sample.variant, score.status, score.value, _dumps(score.parsed),
             _dumps(score.detail) if score.detail else None, error, key, time.time()),
        )  # fmt: skip
        self._commit()

    def commit_pending(self) -> None:
        """Commit an open transaction (used before recording an interruption)."""
        _commit_open(self.conn)

    def begin(self) -> None:
        """Start a transaction that the next put_score commits (response + score in one commit)."""
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")

    def scored_samples(
        self, task: str, only: set[tuple[str, str]] | None = None
    ) -> list[ScoredSample]:
        """The scored samples of a task (those in `only` (sample_id, variant) when given), with
        their replies, in sample order."""
        rows = self.conn.execute(
            """SELECT s.sample_id, s.variant, s.target, s.meta, r.text, c.status, c.value, c.parsed, c.detail
               FROM samples s JOIN scores c USING (task, sample_id, variant)
               LEFT JOIN responses r ON r.request_key = s.request_key
               WHERE s.task=? ORDER BY s.rowid""",
            (task,),
        )
        return [
            ScoredSample(sid, var, _loads(tgt), _loads(meta) or {}, text,
                         SampleScore(val, _loads(parsed), status, _loads(detail) or {}))
            for sid, var, tgt, meta, text, status, val, parsed, detail in rows
            if only is None or (sid, var) in only
        ]  # fmt: skip

    def samples(self, task: str, only: set[tuple[str, str]] | None = None) -> list[Sample]:
        """The declared samples of a task (those in `only` (sample_id, variant) when given), as
        they were sent, in sample order."""
        rows = self.conn.execute(
            "SELECT sample_id, variant, messages, target, meta FROM samples WHERE task=? ORDER BY rowid",
            (task,),
        )
        return [
            Sample(sid, tuple(_loads(messages)), _loads(tgt), _loads(meta) or {}, var)
            for sid, var, messages, tgt, meta in rows
            if only is None or (sid, var) in only
        ]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per task: number of samples and of scores by status."""
        out: dict[str, dict[str, int]] = {}
        for task, n in self.conn.execute("SELECT task, COUNT(*) FROM samples GROUP BY task"):
            out[task] = {"samples": n}
        for task, status, n in self.conn.execute(
            "SELECT task, status, COUNT(*) FROM scores GROUP BY task, status"
        ):
            out.setdefault(task, {"samples": 0})[status] = n
        return out

    def totals(self) -> dict[str, int]:
        """`counts()` summed over tasks: samples, and scores by status."""
        totals: dict[str, int] = {}
        for per_task in self.counts().values():
            for status, n in per_task.items():
                totals[status] = totals.get(status, 0) + n
        return totals

    # results ----------------------------------------------------------------------------------
    def put_results(self, task: str, metrics: list[MetricValue]) -> None:
        """Replace a task's aggregate results."""
        with self._tx():
            self.conn.execute("DELETE FROM results WHERE task=?", (task,))
            self.conn.executemany(
                "INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (task, m.name, m.value, m.n, m.direction, int(m.primary), m.ci_low, m.ci_high,
                     m.n_unparsed, m.n_refused, m.n_error, m.note)
                    for m in metrics
                ],
            )  # fmt: skip

    def results(self) -> dict[str, list[MetricValue]]:
        """Stored aggregate results by task."""
        out: dict[str, list[MetricValue]] = {}
        for row in self.conn.execute("SELECT * FROM results ORDER BY rowid"):
            task, name, value, n, direction, primary, lo, hi, nu, nr, ne, note = row
            out.setdefault(task, []).append(
                MetricValue(name, value, n, direction, bool(primary), lo, hi, nu, nr, ne, note)
            )
        return out

    # export -----------------------------------------------------------------------------------
    def export_rows(self) -> Iterator[dict[str, Any]]:
        """One flat dict per sample: what was sent, the reply, the parsed answer and the score."""
        rows = self.conn.execute(
            """SELECT s.task, s.sample_id, s.variant, s.messages, s.target, s.meta, s.request_key,
                      r.model, r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens, r.source,
                      c.status, c.value, c.parsed, c.detail, c.error, r.extra
               FROM samples s LEFT JOIN responses r ON r.request_key = s.request_key
               LEFT JOIN scores c USING (task, sample_id, variant) ORDER BY s.rowid"""
        )
        names = ["task", "sample_id", "variant", "messages", "target", "meta", "request_key", "model",
                 "response", "finish_reason", "prompt_tokens", "completion_tokens", "response_source",
                 "status", "score", "parsed", "detail", "error"]  # fmt: skip
        decode = {"messages", "target", "meta", "parsed", "detail"}
        for *row, extra in rows:
            out = {k: (_loads(v) if k in decode else v) for k, v in zip(names, row, strict=True)}
            fields = _loads(extra) or {}
            # the reasoning kept apart from the answer, and the parameters as sent (protocol 1.7)
            out["reasoning"] = fields.get("reasoning")
            out["reasoning_tokens"] = fields.get("reasoning_tokens")
            out["sent_params"] = fields.get("sent_params")
            yield out

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One explicit transaction (the connection is in autocommit mode otherwise)."""
        _commit_open(self.conn)
        self.conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()


class SampleDeclaration:
    """A task's samples declared to the run store, in as many chunks as the caller likes (a run
    sends the first samples while it is still building the rest).

    Only new or changed samples are written: a resumed or repeated run re-declares every sample.
    A sample whose request changed since it was stored (another prompt, option or data version)
    is replaced and its old score dropped, so it is asked again instead of mixing an old prompt
    with a new reply. What is stored is read once, when the declaration starts."""

    def __init__(self, store: RunStore, task: str):
        self._store = store
        self._task = task
        self._known = {
            (sid, var): key
            for sid, var, key in store.conn.execute(
                "SELECT sample_id, variant, request_key FROM samples WHERE task=?", (task,)
            )
        }
        self._finished = store.finished(task)
        self.replaced = 0  # stored samples whose request changed

    def pending(self, samples: Sequence[Sample], keys: Sequence[str]) -> list[int]:
        """Record these samples with their request keys (one transaction) and return the
        positions of those without a final score."""
        known, task = self._known, self._task
        changed = [(task, s.id, s.variant) for s, key in zip(samples, keys, strict=True)
                   if known.get((s.id, s.variant), key) != key]  # fmt: skip
        new = [(s, key) for s, key in zip(samples, keys, strict=True)
               if known.get((s.id, s.variant)) != key]  # fmt: skip
        if new:
            conn = self._store.conn
            with self._store._tx():
                conn.executemany(
                    """INSERT INTO samples VALUES (?,?,?,?,?,?,?)
                       ON CONFLICT (task, sample_id, variant) DO UPDATE SET messages=excluded.messages,
                       target=excluded.target, meta=excluded.meta, request_key=excluded.request_key
                       WHERE samples.request_key != excluded.request_key""",
                    ((task, s.id, s.variant, _dumps(s.messages), _dumps(s.target), _dumps(s.meta), key)
                     for s, key in new),
                )  # fmt: skip
                conn.executemany(
                    "DELETE FROM scores WHERE task=? AND sample_id=? AND variant=?", changed
                )
            known.update(((s.id, s.variant), key) for s, key in new)
            self._finished.difference_update((sid, var) for _, sid, var in changed)
            self.replaced += len(changed)
        return [i for i, s in enumerate(samples) if (s.id, s.variant) not in self._finished]


class ResponseCache:
    """The shared response cache (one SQLite file for all runs of a user).

    A cache failure never fails a run (the run store keeps every reply): a cache that cannot be
    opened, read or written is turned off for the rest of the run, and `failure` says why (the
    engine shows it as a warning)."""

    # Cache writes are committed in batches: the run store already commits every reply at once
    # (durability lives there), so a crash can only cost the cache its last fraction of a second,
    # while one commit per reply in a second database cost a measurable share of client CPU.
    FLUSH_SECONDS = 0.5

    def __init__(self, cache_dir: Path, on_failure: Callable[[str], None] | None = None):
        self.path = cache_dir / CACHE_DB
        self.failure: str | None = None  # why the cache was turned off
        self._on_failure = on_failure
        self.conn: sqlite3.Connection | None = None
        try:
            self.conn = _connect(self.path)
            self.conn.executescript(CACHE_SCHEMA)
        except (UserError, sqlite3.Error) as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        """Turn the cache off for good, recording (and reporting) why."""
        conn, self.conn = self.conn, None
        if conn is not None:
            with suppress(sqlite3.Error):
                conn.rollback()
            with suppress(sqlite3.Error):
                conn.close()
        if self.failure is None:
            cause = str(exc).removeprefix(f"{self.path.parent}: ")
            self.failure = f"response cache {self.path}: {cause}"
            if self._on_failure:
                self._on_failure(
                    f"{self.failure}; the cache is off for the rest of this run (every reply is "
                    "still kept in the run directory)"
                )

    def get(self, key: str) -> Response | None:
        """A cached response, or None (also when the cache is off)."""
        if self.conn is None:
            return None
        try:
            return _fetch_response(self.conn, key)
        except sqlite3.Error as exc:
            self._fail(exc)
            return None

    def put(self, key: str, model: str, resp: Response) -> bool:
        """Cache a response; it is committed by the next `flush` (the runner flushes every
        FLUSH_SECONDS, and closing flushes). False when the cache is off or failed now."""
        return self._write(
            "INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?,?)",
            (key, model, resp.text, resp.finish_reason, resp.usage.prompt_tokens,
             resp.usage.completion_tokens, _extra_json(resp), time.time()),
        )  # fmt: skip

    def _write(self, sql: str, params: tuple[Any, ...]) -> bool:
        """One write in the open batch (begun if needed); False when the cache is off or this
        write turned it off."""
        if self.conn is None:
            return False
        try:
            if not self.conn.in_transaction:
                self.conn.execute("BEGIN")
            self.conn.execute(sql, params)
        except sqlite3.Error as exc:
            self._fail(exc)
            return False
        return True

    def flush(self) -> None:
        """Commit the pending cache writes."""
        if self.conn is None:
            return
        try:
            _commit_open(self.conn)
        except sqlite3.Error as exc:
            self._fail(exc)

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (PASSIVE) when no transaction is open."""
        if self.conn is None or self.conn.in_transaction:
            return
        try:
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            self._fail(exc)

    def adaptations(self, model: str) -> list[dict[str, Any]]:
        """The adaptations to a provider's rules learned for this model spec by earlier runs
        (protocol 1.7): a new run sends the adapted request, and finds its replies here, at once."""
        if self.conn is None:
            return []
        try:
            row = self.conn.execute(
                "SELECT value FROM adaptations WHERE model=?", (model,)
            ).fetchone()
        except sqlite3.Error as exc:
            self._fail(exc)
            return []
        return _loads(row[0]) if row else []

    def put_adaptations(self, model: str, adaptations: list[dict[str, Any]]) -> bool:
        """Record the adaptations learned for a model spec (committed with the next flush).
        False when the cache is off or failed now."""
        return self._write(
            "INSERT OR REPLACE INTO adaptations VALUES (?, ?)", (model, _dumps(adaptations))
        )

    def close(self) -> None:
        """Commit what is pending and close the connection."""
        self.flush()
        if self.conn is not None:
            with suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None
