"""Writing output files (reports, exports, tables) safely.

- Never over a database: an output path named like a run's or the cache's database (or their
  -wal/-shm files, or a run's lock), one of the databases being read, or any existing file that
  starts with SQLite's header is refused with one line, before anything is computed.
- Atomically: the content goes to a temporary file beside the target, which is flushed to disk
  and then renamed over the target in one step. A reader, a crash or a kill (even SIGKILL) at any
  instant sees the old file or the new one, never half of either; a failed write removes the
  temporary file and leaves the old one as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from trustmh.errors import UserError

SQLITE_HEADER = b"SQLite format 3\x00"
# file names a trustmh output must never take (see store.py and runlock.py)
RESERVED_NAMES = frozenset(
    f"{db}{suffix}" for db in ("trustmh.sqlite", "cache.sqlite") for suffix in ("", "-wal", "-shm", "-journal")
) | {"trustmh.lock"}  # fmt: skip


def is_sqlite_file(path: Path) -> bool:
    """True when `path` is a regular file that starts with SQLite's 16-byte header (a pipe or a
    device such as /dev/stdout is never opened for reading: that could block)."""
    if not path.is_file():
        return False
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def check_output(path: Path, flag: str, protected: Iterable[Path] = ()) -> None:
    """Refuse, with one line naming `flag`, an output path that is a directory or a database (by
    name, by being one of `protected`, or by its SQLite header)."""
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory; name a file")
    target = path.resolve()
    is_protected = any(target == p.resolve() for p in protected)
    if path.name in RESERVED_NAMES or is_protected or is_sqlite_file(path):
        raise UserError(
            f"{flag} {path}: this is a database (a run's results or the response cache); writing "
            "there would destroy it; choose another file"
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(
    path: Path,
    flag: str,
    *,
    binary: bool = False,
    newline: str | None = None,
    make_parents: bool = False,
) -> Iterator[IO[Any]]:
    """A file object whose content replaces `path` in one rename when the block succeeds; on any
    failure (or interruption) `path` is left as it was. An OSError becomes one line naming `flag`.
    `make_parents` creates missing folders (else a missing folder is that one-line error).

    A path that is not a regular file (`/dev/stdout`, a named pipe) is written to directly: a
    rename would replace the device or pipe itself. A symbolic link is followed, so the file it
    points to is the one replaced."""
    mode = "wb" if binary else "w"
    encoding = None if binary else "utf-8"
    if path.exists() and not path.is_file():
        try:
            with open(path, mode, encoding=encoding, newline=newline) as handle:
                yield handle
        except OSError as exc:
            raise UserError(
                f"{flag} {path}: cannot write there ({exc.strerror or exc}); choose another path"
            ) from None
        return
    path = path.resolve()
    try:
        if make_parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UserError(
            f"{flag} {path}: cannot write there ({exc.strerror or exc}); choose another path"
        ) from None
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, mode, encoding=encoding, newline=newline) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide a shared report
            os.replace(tmp, path)
        except OSError as exc:
            raise UserError(
                f"{flag} {path}: cannot write there ({exc.strerror or exc}); "
                "the previous file, if any, is unchanged"
            ) from None
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomic(path: Path, text: str, flag: str, make_parents: bool = False) -> None:
    """Write a whole text file atomically (see `atomic_output`)."""
    with atomic_output(path, flag, make_parents=make_parents) as handle:
        handle.write(text)
