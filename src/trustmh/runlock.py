"""An advisory lock on a run directory: one process writes to a run at a time.

`trustmh run` holds an exclusive `flock` on `<run_dir>/trustmh.lock` for as long as it writes; a
second process on the same directory is refused with one line naming the holder's process id
(two processes on one run would pay for the same requests twice). The lock is on a file of its
own, not on the database: SQLite takes POSIX locks on the database file, and all of a process's
POSIX locks on a file are dropped when any of its descriptors of that file is closed.

The kernel drops a flock when its holder exits, however it exits (SIGKILL and power loss included),
so a lock file left behind by a dead process is simply taken over; the pid written in it is only
there to name the holder. `holder()` tells readers (`trustmh runs`, reports) whether a live
process holds the lock, so a run whose stored status says "running" without one shows as
"interrupted". The standard library's fcntl is used rather than the `filelock` package: it needs
no dependency, and the holder's pid must be read back from the lock file, which filelock does
not offer. Where fcntl does not exist (Windows), runs are not locked.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from trustmh.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "trustmh.lock"
# `holder()` takes a shared lock for an instant to test the exclusive one; a run starting in that
# instant tries again for this long before it names a holder.
ACQUIRE_GRACE_SECONDS = 0.5


@dataclass
class RunLock:
    """A held run-directory lock; `release()` (or the process's exit) frees it."""

    path: Path
    fd: int | None

    def release(self) -> None:
        """Free the lock (the lock file stays: removing it would race with a process opening it)."""
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


def acquire(run_dir: Path) -> RunLock:
    """Take the run directory's lock (creating the directory), or raise a UserError naming the
    process that holds it."""
    path = run_dir / LOCK_NAME
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(
            f"--run-dir {run_dir}: cannot write there ({exc.strerror or exc}); choose another directory"
        ) from None
    if fcntl is None:  # pragma: no cover - Windows
        return RunLock(path, fd)
    deadline = time.monotonic() + ACQUIRE_GRACE_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            info = _read_info(fd)
            os.close(fd)
            raise UserError(
                f"--run-dir {run_dir} is in use by {describe(info)}; wait for it to finish or stop "
                "it, or choose another --run-dir"
            ) from None
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now().isoformat(timespec="seconds"),
    }
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
    except OSError:
        pass  # the lock holds all the same; only the holder's name is missing
    return RunLock(path, fd)


def holder(run_dir: Path) -> dict[str, Any] | None:
    """The live process holding the run directory's lock ({"pid", "host", "since"}, possibly
    empty while it is being written), or None when no process holds it. Works on a read-only
    directory, and never creates the lock file."""
    if fcntl is None:  # pragma: no cover - Windows
        return None
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None  # no lock file: no run ever held it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_info(fd)
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def describe(info: dict[str, Any]) -> str:
    """ "process 1234 (since 2026-...)" for a holder's info."""
    pid = info.get("pid")
    text = f"process {pid}" if pid else "another process"
    if info.get("host") and info["host"] != socket.gethostname():
        text += f" on {info['host']}"
    if info.get("since"):
        text += f" (since {info['since']})"
    return text


def effective_status(run_dir: Path, stored: str | None) -> str:
    """A run's status as shown: a stored "running" without a live lock holder is "interrupted"
    (the process was killed before it could record that)."""
    if stored == "running" and holder(run_dir) is None:
        return "interrupted"
    return str(stored)


def _read_info(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
