"""`trustmh run` has numpy's OpenBLAS start no threads of its own (they spin at import: CPU for
nothing), unless the user chose a thread count; child processes get the user's environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trustmh import blas_threads, cli_run


@pytest.fixture
def numpy_not_loaded(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A process as `trustmh run` starts: numpy not loaded yet, no thread count chosen."""
    monkeypatch.delitem(sys.modules, "numpy", raising=False)
    for name in blas_threads.CHOSEN_BY:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(blas_threads, "_set_here", False)
    return monkeypatch


def test_one_thread_is_set_for_the_run_and_not_passed_to_children(numpy_not_loaded) -> None:
    blas_threads.one_blas_thread()
    assert os.environ[blas_threads.VARIABLE] == "1"
    assert blas_threads.VARIABLE not in blas_threads.environment_for_children()
    from trustmh.models.local_server import server_environment

    assert blas_threads.VARIABLE not in server_environment()


@pytest.mark.parametrize("name", blas_threads.CHOSEN_BY)
def test_a_thread_count_the_user_chose_stands(numpy_not_loaded, name: str) -> None:
    numpy_not_loaded.setenv(name, "3")
    blas_threads.one_blas_thread()
    assert os.environ[name] == "3"
    assert blas_threads.VARIABLE not in os.environ or name == blas_threads.VARIABLE
    assert blas_threads.environment_for_children()[name] == "3"


def test_nothing_is_set_once_numpy_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy  # noqa: F401 - loaded: its BLAS threads are already there

    for name in blas_threads.CHOSEN_BY:
        monkeypatch.delenv(name, raising=False)
    blas_threads.one_blas_thread()
    assert blas_threads.VARIABLE not in os.environ


def test_the_run_command_sets_it_before_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(blas_threads, "one_blas_thread", lambda: calls.append("set"))
    opts = cli_run.parse_run_args(["--model", "baseline", "--tasks", "smoke", "--dry-run"])
    assert cli_run.run_command(opts) == 0
    assert calls == ["set"]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc (Linux)")
def test_numpy_loaded_after_it_runs_on_the_main_thread_alone() -> None:
    probe = (
        "import os; from trustmh.blas_threads import one_blas_thread; one_blas_thread(); "
        "import numpy; numpy.ones((64, 64)) @ numpy.ones((64, 64)); "
        "print(len(os.listdir('/proc/self/task')))"
    )
    env = {k: v for k, v in os.environ.items() if k not in blas_threads.CHOSEN_BY}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 1
