"""The `trustmh` command's entry point.

`trustmh run` with options the fast parser reads without doubt, and that names its subtasks (or
says --yes), starts without importing typer and building every command (see trustmh.cli_run);
every other command line goes to the typer app in trustmh.cli, unchanged.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the `trustmh` command line in sys.argv and exit with its code."""
    args = sys.argv[1:]
    if args[:1] == ["run"]:
        from trustmh import cli_run

        opts = cli_run.parse_run_args(args[1:])
        if opts is not None and (opts["tasks"] is not None or opts["yes"]):
            sys.exit(cli_run.fast_run(opts))
    from trustmh.cli import main as typer_main

    typer_main()
