"""`trustmh run`'s fast start (trustmh.cli_run, trustmh.entry): the options are declared once, the
strict parser gives exactly what the typer command gives or hands the command line to typer, and
the entry point starts a plain run without importing typer at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustmh import cli, cli_run
from trustmh.cli_run import RUN_OPTIONS, parse_run_args

FLAG_WORDS = sorted({word for option in RUN_OPTIONS for word in option.switches})
VALUES = ["smoke", "baseline", "", " ", "0", "7", "-3", "+4", "007", "2.5", "-0.5", ".5", "1e3",
          "inf", "nan", "1_000", "abc", "--", "-", "x=y", "turns=30", "runs/a b", "٣"]  # fmt: skip


def typer_options(args: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any] | None:
    """What the typer `run` command hands to run_command for these arguments (None when typer
    rejects them)."""
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(cli, "run_command", lambda opts, confirm=None: seen.append(opts) or 0)
    try:
        cli.app(["run", *args], standalone_mode=False)
    except (cli._ClickException, typer.Exit, typer.Abort):
        return None
    return seen[0] if seen else None


def test_the_typer_command_is_built_from_the_one_table() -> None:
    command = typer_command_params()
    assert [param.name for param in command] == [option.name for option in RUN_OPTIONS]
    for param, option in zip(command, RUN_OPTIONS, strict=True):
        words = set(param.opts) | set(param.secondary_opts)
        assert words == set(option.switches), option.name
        assert param.help == option.help


def typer_command_params() -> list[Any]:
    """The parameters of the click command typer builds for `run` (click is vendored by typer)."""
    import typer.main

    group = typer.main.get_command(cli.app)
    return [p for p in group.commands["run"].params if p.name != "help"]


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "baseline", "--tasks", "smoke", "--limit", "5"],
        ["--model=openai:m@http://127.0.0.1:9/v1", "--tasks=privacy,ethics", "--concurrency", "200",
         "--no-cache", "--run-dir", "runs/a b", "--no-progress", "-y", "-v"],
        ["--tasks", "smoke", "--option", "turns=30", "--option", "names=Omar,Lena", "--seed", "0",
         "--request-timeout", "2.5", "--temperature", "0", "--dry-run", "--progress"],
        ["--tasks", "smoke", "--judge-reask", "--batch", "--max-cost", "5", "--config", "run.toml"],
    ],
)  # fmt: skip
def test_plain_command_lines_read_as_typer_reads_them(args, monkeypatch) -> None:
    fast = parse_run_args(args)
    assert fast is not None
    assert fast == typer_options(args, monkeypatch)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"], ["-h"], ["--tasks"], ["--limit", "-3"], ["--limit", "+4"], ["--limit", "1e3"],
        ["--temperature", ".5"], ["--limit", "5", "--limit", "6"], ["--model", "a", "extra"],
        ["--no-cache=1"], ["--bogus"], ["-vy"], ["--", "--tasks", "x"], ["--run-dir", ""],
        ["--limit", "٣"], ["--tasks", "--model"],
    ],
)  # fmt: skip
def test_anything_doubtful_goes_to_typer(args) -> None:
    assert parse_run_args(args) is None


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(args=st.lists(st.sampled_from(FLAG_WORDS) | st.sampled_from(VALUES), max_size=8))
def test_fast_reading_never_differs_from_typer(args: list[str], monkeypatch) -> None:
    fast = parse_run_args(args)
    if fast is not None:  # what the fast parser accepts, typer accepts and reads the same
        assert fast == typer_options(args, monkeypatch), args


def _entry(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the entry point in a child that reports, at exit, whether typer and numpy were ever
    imported."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('typer imported:', 'typer' in sys.modules, "
            "'numpy imported:', 'numpy' in sys.modules))\n"
            f"sys.argv = ['trustmh', *{args!r}]\n"
            "from trustmh.entry import main\nmain()\n")  # fmt: skip
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "COLUMNS": "200"}, timeout=120)  # fmt: skip


def test_a_plain_run_starts_without_typer_and_others_use_it(tmp_path: Path) -> None:
    plain = _entry(["run", "--model", "baseline", "--tasks", "smoke", "--limit", "2",
                    "--run-dir", "r1", "--no-progress"], tmp_path)  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert "status complete" in plain.stdout
    assert "typer imported: False" in plain.stdout
    assert (tmp_path / "r1" / "report.html").is_file()
    # the same command again: its numbers are settled, so neither typer nor numpy is loaded
    again = _entry(["run", "--model", "baseline", "--tasks", "smoke", "--limit", "2",
                    "--run-dir", "r1", "--no-progress"], tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "typer imported: False numpy imported: False" in again.stdout
    # a bad value: typer's one-line error, exit 2
    bad = _entry(["run", "--model", "baseline", "--tasks", "smoke", "--limit", "x"], tmp_path)
    assert bad.returncode == 2
    assert "typer imported: True" in bad.stdout
    assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
    # a user error found after the fast parse: the same one line and exit 2, no typer
    unknown = _entry(["run", "--model", "nope:x", "--tasks", "smoke"], tmp_path)
    assert unknown.returncode == 2
    assert "typer imported: False" in unknown.stdout
    assert unknown.stderr.startswith("error: --model 'nope:x'")
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_fast_run_returns_the_commands_exit_code(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    opts = parse_run_args(["--model", "baseline", "--tasks", "smoke", "--limit", "2",
                           "--run-dir", "r", "--no-progress"])  # fmt: skip
    assert opts is not None
    assert cli_run.fast_run(opts) == 0
    missing = parse_run_args(["--tasks", "smoke"])
    assert missing is not None
    assert cli_run.fast_run(missing) == 2  # no --model: one error line, exit 2


def test_what_a_run_imports_before_its_first_request_leaves_out_the_heavy_parts() -> None:
    # the entry point, the run command, its settings and the engine: everything a run loads
    # before its first request, and none of the CLI framework, rich, numpy or the report
    code = ("import sys\nimport trustmh.entry, trustmh.cli_run, trustmh.config, trustmh.engine\n"
            "heavy = ('typer', 'click', 'rich', 'numpy', 'jinja2', 'trustmh.report', 'trustmh.render')\n"
            "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n")  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60).stdout.strip()  # fmt: skip
    assert loaded == "[]"
