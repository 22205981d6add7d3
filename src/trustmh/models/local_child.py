"""The process trustmh starts for a `local:` model: llama.cpp's OpenAI-compatible server, bound to
the life of the trustmh process that started it.

Run as `python -m trustmh.models.local_child WATCH_FD PARENT_PID -- <llama_cpp.server arguments>`.
Before the server starts, two guards make sure it never outlives trustmh, however trustmh ends
(normal exit and Ctrl-C are handled by trustmh itself, which stops the server's process group):
- Linux: PR_SET_PDEATHSIG, so the kernel sends this process SIGKILL when its parent dies, even by
  SIGKILL; if the parent already died before the flag was set, exit at once;
- every platform: a watchdog thread blocks on the read end of a pipe whose write end only trustmh
  holds; the read returns end-of-file when trustmh exits in any way, and this process exits.
Then the server runs in this same process (no further child), as `python -m llama_cpp.server`.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGKILL when the parent dies (Linux); exit if it is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog pipe still covers it
    if os.getppid() != parent_pid:  # the parent died before the flag was set
        os._exit(1)


def watch(fd: int) -> None:
    """Exit this whole process once the pipe reaches end-of-file (the parent has gone)."""
    try:
        while os.read(fd, 1024):
            pass
    except OSError:
        pass
    os._exit(0)


def main(argv: list[str]) -> None:
    """Install both guards, then run llama.cpp's server with the remaining arguments."""
    if len(argv) < 3 or argv[2] != "--":
        sys.exit("usage: python -m trustmh.models.local_child WATCH_FD PARENT_PID -- SERVER_ARGS")
    fd, parent_pid = int(argv[0]), int(argv[1])
    die_with_parent(parent_pid)
    threading.Thread(target=watch, args=(fd,), name="trustmh-watchdog", daemon=True).start()
    sys.argv = ["llama_cpp.server", *argv[3:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
