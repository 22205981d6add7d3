"""Real filesystems for storage-failure tests: a size-limited tmpfs (a disk that fills up) and a
read-only bind mount. Both need root with mount rights (CI runs as root); elsewhere a read-only
view falls back to removing write permission, and a test needing a tmpfs is skipped."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> bool:
    try:
        result = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _umount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "300k") mounted on `path` (created) for the block."""
    path.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)):
        pytest.skip("cannot mount a tmpfs here (needs root with mount rights)")
    try:
        yield path
    finally:
        _umount(path)


@contextmanager
def readonly_view(source: Path, view: Path) -> Iterator[Path]:
    """`source` seen read-only: a read-only bind mount at `view` where mounting works, else (not
    root) `source` itself with write permission removed."""
    view.mkdir(parents=True, exist_ok=True)
    if _mount("--bind", str(source), str(view)):
        try:
            if not _mount("-o", "remount,bind,ro", str(view)):
                pytest.skip("cannot remount a bind mount read-only here")
            yield view
        finally:
            _umount(view)
        return
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions and cannot mount here: no read-only view")
    modes = {p: p.stat().st_mode for p in [source, *source.rglob("*")]}
    for p, mode in modes.items():
        p.chmod(mode & ~0o222)
    try:
        yield source
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
