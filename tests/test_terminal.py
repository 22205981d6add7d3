"""The terminal as a new user meets it: 80 columns with no id broken across lines, a one-screen
run summary, --version, the models table, run --help, the anti-sycophancy alias, and the question
asked before running everything (asked on a terminal, refused in a pipe)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

from conftest import run_cli, trustmh_exe
from rich.cells import cell_len

from trustmh import __version__
from trustmh.tasks.registry import all_tasks

IDS = sorted(all_tasks())
PILLARS = sorted({i.split(".", 1)[0] for i in IDS if "." in i})
FRAGMENT = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*\.?")


def broken_ids(text: str) -> list[str]:
    """Pieces of a subtask id split across lines: a fragment with a dot that is a proper prefix or
    suffix of an id, or a line ending in `pillar.` whose next line starts the rest of an id."""
    found = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        for fragment in FRAGMENT.findall(line):
            piece = fragment.rstrip(".")
            partial = any(x.startswith(piece) or x.endswith(piece) for x in IDS)
            if "." in piece and piece not in IDS and partial:
                found.append(f"line {i + 1}: {line.strip()}")
        tail = line.rstrip()
        if i + 1 < len(lines) and any(tail.endswith(f"{p}.") for p in PILLARS):
            head = lines[i + 1].split()[0] if lines[i + 1].split() else ""
            if any(x == tail.split()[-1] + head for x in IDS):
                found.append(f"line {i + 1}: {tail}")
    return found


def too_wide(text: str, width: int = 80) -> list[str]:
    """Lines wider than the terminal, except those holding a path too long to break (printed
    whole so that it can be copied; the terminal folds it)."""
    return [
        line
        for line in text.splitlines()
        if cell_len(line) > width
        and not any("/" in word and len(word) > 40 for word in line.split())
    ]


def at_80(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_cli(*args, env={"COLUMNS": "80", **(env or {})})


def test_broken_id_detector_catches_a_break() -> None:
    assert broken_ids("│ reliability.psycholo │\n│ gical_diagnosis │")
    assert broken_ids("x reliabilit\ny.knowledge")
    assert not broken_ids("reliability.knowledge 0.5\nknowledge is power")


def test_tasks_at_80_columns() -> None:
    result = at_80("tasks")
    assert result.returncode == 0, result.stderr
    assert not broken_ids(result.stdout)
    assert not too_wide(result.stdout)
    for task_id in (t.id for t in all_tasks().values() if t.in_protocol):
        assert re.search(rf"^  {re.escape(task_id)}\s", result.stdout, re.M), task_id


def test_models_at_80_columns_keeps_brackets() -> None:
    result = at_80("models")
    assert result.returncode == 0, result.stderr
    assert "trustmh[anthropic]" in result.stdout  # text, not a style tag
    assert not broken_ids(result.stdout) and not too_wide(result.stdout)


def test_run_all_limit_2_at_80_columns(tmp_path: Path, real_data: Path) -> None:
    """The acceptance check: every subtask, a smoke run, an 80-column terminal."""
    result = at_80("run", "--model", "baseline", "--judge", "baseline", "--tasks", "all", "--limit",
                   "2", "--run-dir", str(tmp_path / "run"), "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert not broken_ids(out), broken_ids(out)
    assert not too_wide(out), too_wide(out)
    assert len(out.splitlines()) < 70  # one screen, not the 435 lines of every metric
    for task in (t for t in all_tasks().values() if t.in_protocol):
        assert re.search(rf"^  {re.escape(task.id)}\s", out, re.M), task.id
    # every pillar line says how many of its subtasks its score covers
    for pillar in ("reliability", "crisis", "safety", "fairness", "privacy", "robustness",
                   "sycophancy", "ethics"):  # fmt: skip
        assert re.search(rf"^{pillar} \S+ \(\d+ of \d+ subtasks\)$", out, re.M), pillar
    assert "--limit 2: only the first 2 items of each subtask" in out
    assert "STAND-IN" in out and "not in the pillar score" in out
    assert "reliability 0.20 (4 of 5 subtasks)" in out or "(4 of 5 subtasks)" in out

    verbose = at_80("run", "--model", "baseline", "--judge", "baseline", "--tasks", "all",
                    "--limit", "2", "--run-dir", str(tmp_path / "run"), "--no-progress",
                    "--verbose")  # fmt: skip
    assert verbose.returncode == 0, verbose.stderr
    assert not broken_ids(verbose.stdout), broken_ids(verbose.stdout)
    assert "every metric" in verbose.stdout and len(verbose.stdout) > len(out)


def test_run_summary_without_data_at_80_columns(tmp_path: Path) -> None:
    """The subtasks that run on the bundled subset, on a machine with no data folder."""
    result = at_80("run", "--model", "baseline", "--tasks", "privacy,ethics", "--limit", "2",
                   "--run-dir", str(tmp_path / "run"), "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not broken_ids(result.stdout) and not too_wide(result.stdout)
    assert re.search(r"^privacy \S+ \(\d of 2 subtasks\)$", result.stdout, re.M)
    assert "add --verbose" in result.stdout


def test_version_flag() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"trustmh {__version__}"


def test_run_help_says_tasks_defaults_to_everything() -> None:
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", at_80("run", "--help").stdout).split())
    assert "Default: all, every subtask" in text


def test_anti_sycophancy_alias(tmp_path: Path) -> None:
    result = run_cli("tasks", "--pillar", "anti-sycophancy")
    assert result.returncode == 0, result.stderr
    assert "sycophancy.oeq" in result.stdout
    # as --tasks: the pillar resolves (without a judge its subtasks say so, and nothing is sent)
    run = run_cli("run", "--model", "baseline", "--tasks", "anti-sycophancy", "--limit", "1",
                  "--run-dir", str(tmp_path / "run"), "--no-progress")  # fmt: skip
    assert "unknown subtask or pillar" not in run.stderr
    assert "sycophancy.pas" in run.stdout


def test_run_without_tasks_refuses_in_a_pipe(tmp_path: Path) -> None:
    result = subprocess.run(
        [*trustmh_exe(), "run", "--model", "baseline", "--run-dir", str(tmp_path / "run")],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: no --tasks given") and "--tasks all" in line
    assert not (tmp_path / "run").exists()  # nothing ran


def read_until(fd: int, wanted: str, timeout: float = 60) -> str:
    text, deadline = "", time.monotonic() + timeout
    while wanted not in text and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            text += chunk.decode(errors="replace")
    return text


def ask_on_a_terminal(tmp_path: Path, env: dict[str, str], answer: bytes) -> tuple[int, str]:
    """`trustmh run --model baseline` with no --tasks on a terminal: its exit code and all it
    printed, `answer` typed once it asked (or failed)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*trustmh_exe(), "run", "--model", "baseline", "--run-dir", str(tmp_path / "run")],
        stdin=follower, stdout=follower, stderr=follower, close_fds=True,
        env={**os.environ, "COLUMNS": "80", **env},
    )  # fmt: skip
    os.close(follower)
    try:
        asked = read_until(leader, "[y/N]" if answer else "error:")
        if answer:
            os.write(leader, answer)
        rest = read_until(leader, "\x00")  # everything until it closes the terminal
        return proc.wait(timeout=60), asked + rest
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)


def test_run_without_tasks_asks_on_a_terminal(tmp_path: Path, real_data: Path) -> None:
    """On a terminal the run says what it would do and asks; answering no runs nothing."""
    code, printed = ask_on_a_terminal(tmp_path, {}, b"n\n")
    assert "No --tasks given: this runs every subtask of the protocol" in printed
    assert code == 0 and "Run them all (" in printed and "Nothing run" in printed
    assert not (tmp_path / "run").exists()


def test_run_without_tasks_and_without_data_names_what_to_fetch(tmp_path: Path) -> None:
    """A fresh machine: the plan behind the question cannot be built without the datasets; the
    run says which one is missing and how to get it (one line, exit 2) instead of asking."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    code, printed = ask_on_a_terminal(tmp_path, {"TRUSTMH_DATA_DIR": str(empty)}, b"")
    assert code == 2 and "Run them all" not in printed
    assert "not found in any data root; run `trustmh data fetch" in " ".join(printed.split())
    assert "Traceback" not in printed and not (tmp_path / "run").exists()
    assert not (tmp_path / "run").exists()
