"""Shared fixtures: the real data directory, isolated caches, the installed CLI, and the loopback
OpenAI-compatible server."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests read the real data through TRUSTMH_DATA_DIR, defaulting to ../shared/data when it exists.
if not os.environ.get("TRUSTMH_DATA_DIR") and SHARED_DATA.is_dir():
    os.environ["TRUSTMH_DATA_DIR"] = str(SHARED_DATA)

# No test writes into the user's data directory (the index of runs): this process gets a home of
# its own (module-scoped runs start before `isolated_cache`), and every test one of its own.
_SESSION_HOME = tempfile.mkdtemp(prefix="trustmh-home-")
atexit.register(shutil.rmtree, _SESSION_HOME, True)
os.environ["TRUSTMH_HOME"] = _SESSION_HOME
# Every test that needs the real data skips with a reason starting with this, so that the summary
# can count them and say how to run them (`pytest_terminal_summary`).
NO_DATA = "real data not available"
HOW_TO_GET_DATA = (
    "set TRUSTMH_DATA_DIR to a data folder laid out as in docs/data.md "
    "(`trustmh data fetch` fills one with the public sets) to run them"
)


def pytest_terminal_summary(terminalreporter) -> None:
    """After the run: how many tests skipped for want of the real data, and how to give it."""
    skipped = terminalreporter.stats.get("skipped", [])
    n = sum(1 for report in skipped if NO_DATA in str(getattr(report, "longrepr", "")))
    if n:
        terminalreporter.write_line(f"{n} tests skipped: {NO_DATA}; {HOW_TO_GET_DATA}")


def data_dir() -> Path | None:
    """The real data directory, or None when this checkout has none."""
    value = os.environ.get("TRUSTMH_DATA_DIR")
    return Path(value) if value and Path(value).is_dir() else None


@pytest.fixture(scope="module")
def real_data_module() -> Path:
    """The real data directory, for module-scoped fixtures too (one live run shared by a module's
    tests); the tests are skipped when it is absent."""
    path = data_dir()
    if path is None:
        pytest.skip(f"{NO_DATA} (TRUSTMH_DATA_DIR)")
    return path


@pytest.fixture
def real_data(real_data_module: Path) -> Path:
    """The real data directory; the test is skipped when it is absent."""
    return real_data_module


@pytest.fixture(scope="module")
def user_cache(tmp_path_factory) -> dict[str, str]:
    """The environment for a module's CLI runs: one user cache of their own (module-scoped runs
    start before `isolated_cache`), shared so work cached there (the report's reference
    placement) is done once per module."""
    return {"TRUSTMH_CACHE_DIR": str(tmp_path_factory.mktemp("user-cache"))}


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own user cache (responses and fetched data) and its own user data
    directory (the index of runs, `$TRUSTMH_HOME`)."""
    cache = tmp_path / "user-cache"
    monkeypatch.setenv("TRUSTMH_CACHE_DIR", str(cache))
    monkeypatch.setenv("TRUSTMH_HOME", str(tmp_path / "user-home"))
    return cache


def trustmh_exe() -> list[str]:
    """The installed `trustmh` command (falls back to `python -m trustmh`)."""
    exe = shutil.which("trustmh", path=str(Path(sys.executable).parent)) or shutil.which("trustmh")
    return [exe] if exe else [sys.executable, "-m", "trustmh"]


def ctrl_c_default() -> None:
    """`preexec_fn` of a child a test interrupts with SIGINT: give it the default disposition. A
    test run started in the background (`cmd &` in a script) ignores SIGINT, and its children
    inherit that, so the Ctrl-C the test sends would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run the real `trustmh` command in a subprocess and capture its output."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [*trustmh_exe(), *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture
def fake_openai() -> Iterator:
    """A real OpenAI-compatible HTTP server on 127.0.0.1 (random port) with fault injection."""
    from openai_server import FakeOpenAIServer

    server = FakeOpenAIServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def full_ctx():
    """A data context over the real data folder (with the recorded responses); skips without it."""
    from trustmh.data.sources import DataContext

    path = data_dir()
    if path is None or not (path / "trustmh_recorded").is_dir():
        pytest.skip(f"{NO_DATA} (recorded responses)")
    return DataContext((path,))


@pytest.fixture(scope="module")
def ctx():
    """A data context over the bundled subset only: always present, holds every input and
    recording the privacy and ethics tasks need."""
    from trustmh.data.sources import BUNDLED_DIR, DataContext

    return DataContext((BUNDLED_DIR,))
