"""Folders of the user cache that only this user can have written, and small JSON entries in them.

What is read from here is trusted (compiled template code is executed; remembered null floors
decide validity flags), so a folder is used only when it is this user's own: created 0700, and
owned by the current user when it already existed. Every entry is a convenience: a folder or entry
that cannot be made, read or parsed just means computing the value again."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any

from trustmh.cache_root import user_cache_root


def private_folder(*parts: str) -> Path | None:
    """`user_cache_root()/parts...`, created if needed; None when it cannot be made or belongs to
    someone else."""
    folder = user_cache_root().joinpath(*parts)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        owner = folder.stat().st_uid
    except OSError:
        return None
    if hasattr(os, "getuid") and owner != os.getuid():
        return None
    return folder


def read_entry(folder: Path | None, key: str) -> Any:
    """The JSON value stored under `key`, or None when there is none (or it cannot be read)."""
    if folder is None:
        return None
    try:
        return json.loads((folder / f"{key}.json").read_bytes())
    except (OSError, ValueError):
        return None


def write_entry(folder: Path | None, key: str, value: Any) -> None:
    """Store `value` under `key` in one rename (a reader never sees half an entry); failures are
    ignored."""
    if folder is None:
        return
    with suppress(OSError, TypeError, ValueError):
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(value, handle, separators=(",", ":"))
            os.replace(tmp, folder / f"{key}.json")
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise
