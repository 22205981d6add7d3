"""`trustmh run` without the CLI framework: its options declared once, a strict parser of them,
and the command's body.

Every `trustmh` invocation pays for typer, click and building every command's parameters (about
0.15 s) before it does anything. `trustmh run` against a fast server feels that as the delay to
its first request (issue 23), so the entry point (`trustmh.entry`) first tries
`parse_run_args` here, which knows only `run`'s options and accepts only what it can read
without doubt; anything else (help, an unknown or misspelt flag, a value that is not plainly a
number, a repeated option, a run that must ask first) goes through the full typer command, which
is built from the same `RUN_OPTIONS` and calls the same `run_command`, so errors and help read
as everywhere else.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import re
import shlex
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from trustmh.errors import FatalBackendError, StorageError, UserError

T = TypeVar("T")


class LazyConsole:
    """A rich Console made on first use: importing rich takes some 30 ms, which a run can spend
    while its replies are out but not before its first request."""

    def __init__(self, **options: Any):
        self._options = options
        self._console: Any = None

    def console(self) -> Any:
        """The rich Console itself (made now if it was not yet)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console(), name)

    # rich's live display enters its console (`with console:`); special methods are looked up on
    # the type, never through __getattr__
    def __enter__(self) -> Any:
        return self.console().__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        self.console().__exit__(*exc_info)


out: Any = LazyConsole()
err: Any = LazyConsole(stderr=True)
INCOMPLETE_EXIT = 3  # a run that ended with failed samples (see `trustmh run --help`)
INTERRUPTED_EXIT = 130


@dataclass(frozen=True)
class RunOption:
    """One option of `trustmh run`: its parameter name, value type (`bool` for a flag, `list`
    for a repeatable text option), help text, default and, when not `--name-with-dashes`, its
    flags (`--a/--b` is a switch: the first sets True, the second False)."""

    name: str
    kind: type
    help: str
    flags: tuple[str, ...] = ()
    default: Any = None

    @property
    def switches(self) -> dict[str, Any]:
        """The command-line words of this option, each with the value a flag sets (None for an
        option that takes the next word as its value)."""
        if self.kind is not bool:
            return {flag: None for flag in self.flags or ("--" + self.name.replace("_", "-"),)}
        words: dict[str, Any] = {}
        for flag in self.flags or (f"--{self.name.replace('_', '-')}",):
            on, _, off = flag.partition("/")
            words[on] = True
            if off:
                words[off] = False
        return words


RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption(
        "model",
        str,
        "Model spec: openai:MODEL, openai:MODEL@URL, anthropic:MODEL, local:smollm2, local:PATH.gguf, replay:NAME or baseline.",
    ),
    RunOption(
        "tasks",
        str,
        "Comma-separated subtask ids, pillar names or `all`, e.g. `privacy,ethics`. Default: all, every subtask; without --tasks, run asks first on a terminal and refuses in a pipe (pass --tasks all there).",
    ),
    RunOption("judge", str, "Judge model spec, e.g. openai:gpt-4.1 (the paper's judge)."),
    RunOption(
        "simulator",
        str,
        "Model spec of the simulated user that multi-turn subtasks (crisis.multiturn_safety) talk to, e.g. openai:gpt-4o.",
    ),
    RunOption(
        "config",
        Path,
        "TOML or YAML file with any of these settings (keys = option names with _), e.g. run.toml.",
    ),
    RunOption(
        "limit",
        int,
        "At most N items per subtask, each with all its variants (smoke runs), e.g. 20.",
    ),
    RunOption(
        "run_dir", Path, "Run directory; reuse it to resume. Default: runs/<timestamp>-<model>."
    ),
    RunOption("runs_root", Path, "Where new run directories are created. Default: runs."),
    RunOption(
        "cache_dir",
        Path,
        "Shared response cache directory. Default: the user cache ($TRUSTMH_CACHE_DIR).",
    ),
    RunOption(
        "no_cache", bool, "Neither read nor write the shared response cache.", flags=("--no-cache",)
    ),
    RunOption(
        "data_dir",
        Path,
        "Data directory searched first (then $TRUSTMH_DATA_DIR, the fetched cache, the bundled subset).",
    ),
    RunOption(
        "concurrency",
        int,
        "Requests in flight per endpoint. Default: 32; e.g. 200 for a local vLLM.",
    ),
    RunOption("judge_concurrency", int, "Judge requests in flight. Default: --concurrency."),
    RunOption("rpm", int, "Requests-per-minute limit per endpoint, e.g. 500."),
    RunOption(
        "tpm",
        int,
        "Tokens-per-minute limit per endpoint (estimated from prompt length), e.g. 200000.",
    ),
    RunOption(
        "request_timeout",
        float,
        "Seconds one attempt of a request may take in all, a reply that trickles in included (then it is retried). Default: 60; raise it for slow local or reasoning models.",
    ),
    RunOption(
        "max_retries",
        int,
        "Retries after 429/5xx/timeouts/dropped connections. Default: 3 (a sample on a server that hangs gives up after about 4 minutes).",
    ),
    RunOption(
        "retry_base_delay",
        float,
        "First backoff delay in seconds; doubles with jitter. Default: 1.",
    ),
    RunOption(
        "api_key_env",
        str,
        "Environment variable holding the model's API key, e.g. DEEPSEEK_API_KEY; `none` for no key.",
    ),
    RunOption(
        "judge_api_key_env",
        str,
        "Environment variable holding the judge's API key. Default: OPENAI_API_KEY for openai: judges.",
    ),
    RunOption(
        "simulator_api_key_env",
        str,
        "Environment variable holding the simulator's API key. Default: as for --model.",
    ),
    RunOption(
        "temperature",
        float,
        "Override every subtask's temperature (default: each subtask's protocol value, usually 0).",
    ),
    RunOption("max_tokens", int, "Override every subtask's max_tokens."),
    RunOption(
        "reasoning_effort",
        str,
        "Reasoning effort of a reasoning model, e.g. low (values per model profile: `trustmh models`). Default: the provider's.",
    ),
    RunOption(
        "judge_reasoning_effort",
        str,
        "Reasoning effort of a reasoning judge, e.g. low. Default: the provider's.",
    ),
    RunOption(
        "model_profiles",
        Path,
        "TOML file of model parameter profiles tried before the built-in table (docs/protocol.md 1.7), e.g. profiles.toml.",
    ),
    RunOption(
        "epochs",
        int,
        "Ask every item N times and report the spread, e.g. 5 for a model whose temperature cannot be set. Default: 1.",
    ),
    RunOption("system_prompt", str, "Replace or add the system message of every request."),
    RunOption("seed", int, "Run seed for every random choice. Default: 0."),
    RunOption(
        "levels",
        str,
        "Robustness perturbation levels (task option `levels`), e.g. 'char@0.05,char@0.1+word@0.1+sentence@1'. Default: the protocol's six.",
    ),
    RunOption(
        "refusal_detector",
        str,
        "Jailbreak refusal detector (safety task option `refusal_detector`): auto, judge, keyword or longformer. Default: auto (the judge when --judge is given, else keyword).",
    ),
    RunOption(
        "option",
        list,
        "A task option NAME=VALUE (repeatable), e.g. --option turns=30 --option runs=5; the same as [options] in --config.",
    ),
    RunOption(
        "judge_reask",
        bool,
        "Ask the judge once more, with the rubric's stricter instruction, when a verdict does not parse. Default: off (protocol 1.4 asks once); every number it touched says so.",
        flags=("--judge-reask",),
    ),
    RunOption(
        "reask_unparsed",
        int,
        "Ask the model up to N more times when its reply does not parse (protocol 1.2; the authors' privacy runs did). Default: 0; every number it touched says so.",
    ),
    RunOption(
        "min_coverage",
        float,
        "Minimum parsed share of a subtask; below it the value is flagged and kept out of ranks and the radar (protocol 1.8). Default: 0.8.",
    ),
    RunOption(
        "prices",
        Path,
        'TOML file of model prices (USD per million tokens) laid over the bundled table, e.g. prices.toml with [models] "openai:my-model@http://host/v1" = { input = 0.2, output = 0.8 }.',
    ),
    RunOption(
        "max_cost",
        float,
        "Stop sending requests before the run's spend (priced from the usage the APIs report, over every invocation of this --run-dir) would pass this many USD, e.g. 5. Rerun with a higher cap to go on.",
    ),
    RunOption(
        "batch",
        bool,
        "Send the requests of openai: and anthropic: models (judge included, in a second phase) through the providers' batch APIs: about half price, replies within 24 h. Stop and rerun at any time: submitted batches are polled, never submitted twice.",
        flags=("--batch",),
    ),
    RunOption("batch_poll", float, "Seconds between two polls of a batch. Default: 30."),
    RunOption(
        "dry_run",
        bool,
        "Send nothing: print per subtask the model and judge requests, tokens and estimated cost of this run, then exit.",
        flags=("--dry-run",),
        default=False,
    ),
    RunOption(
        "yes",
        bool,
        "Run every subtask without asking (a run without --tasks asks first).",
        flags=("--yes", "-y"),
        default=False,
    ),
    RunOption("progress", bool, "Show the live progress bar.", ("--progress/--no-progress",), True),
    RunOption(
        "verbose",
        bool,
        "Also print every metric and breakdown (the report has them all).",
        flags=("--verbose", "-v"),
        default=False,
    ),
)
# the options that are not run settings (RunConfig fields): the command handles them itself
COMMAND_ONLY = ("config", "progress", "levels", "refusal_detector", "option", "verbose",
                "dry_run", "yes")  # fmt: skip

_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
_CONVERT: dict[type, Callable[[str], Any] | None] = {
    str: str,
    Path: lambda text: Path(text) if text else None,
    int: lambda text: int(text) if _INTEGER.fullmatch(text) else None,
    float: lambda text: float(text) if _DECIMAL.fullmatch(text) else None,
    list: str,
}


def _flag_table() -> dict[str, tuple[RunOption, Any]]:
    return {word: (option, value) for option in RUN_OPTIONS
            for word, value in option.switches.items()}  # fmt: skip


def parse_run_args(args: list[str]) -> dict[str, Any] | None:
    """`trustmh run`'s arguments (after `run`) as the options the typer command would receive, or
    None whenever any of them is not read without doubt (the caller then hands the whole command
    line to typer, which parses it or explains what is wrong)."""
    flags = _flag_table()
    values: dict[str, Any] = {option.name: option.default for option in RUN_OPTIONS}
    seen: set[str] = set()
    position = 0
    while position < len(args):
        word = args[position]
        position += 1
        name_part, has_inline, inline = word.partition("=")
        if not name_part.startswith("--") and name_part not in flags:
            return None  # a positional argument, `--`, `-vy` or `-h`: typer's to judge
        found = flags.get(name_part if word.startswith("--") else word)
        if found is None:
            return None
        option, flag_value = found
        if option.name in seen and option.kind is not list:
            return None  # click keeps the last; say nothing clever here
        seen.add(option.name)
        if option.kind is bool:
            if has_inline:
                return None
            values[option.name] = flag_value
            continue
        if has_inline:
            text = inline
        elif position < len(args) and not args[position].startswith("-"):
            text = args[position]
            position += 1
        else:
            return None  # a missing value, or one starting with `-` (a negative number, a flag)
        value = _CONVERT[option.kind](text)
        if value is None:
            return None
        if option.kind is list:
            values[option.name] = [*(values[option.name] or []), value]
        else:
            values[option.name] = value
    return values


def parse_options(items: list[str]) -> dict[str, object]:
    """`--option NAME=VALUE` flags as task options: the value is read as a TOML value when it is
    one (30, 0.7, true, "a,b", [1, 2]), else kept as text (Omar,Lena)."""
    import tomllib

    parsed: dict[str, object] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UserError(f"--option {item!r}: write NAME=VALUE, e.g. --option turns=30")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        parsed[name] = value
    return parsed


def run_command(opts: dict[str, Any], confirm: Callable[[Any], None] | None = None) -> int:
    """The body of `trustmh run` on parsed options: builds the run settings, runs them, writes the
    report, prints the summary, and returns the exit code (0 complete, 3 failed samples or the
    cost cap, 2 a storage or backend failure, 130 interrupted). A run without --tasks calls
    `confirm(config)` first (the typer command passes its terminal prompt); user errors raise
    UserError."""
    from trustmh.blas_threads import one_blas_thread

    one_blas_thread()  # before anything loads numpy
    from trustmh.config import build_config
    from trustmh.engine import resolve_run_dir, run_evaluation

    config = opts["config"]
    cfg = build_config(config, {k: v for k, v in opts.items() if k not in COMMAND_ONLY})
    if opts["levels"] is not None:
        cfg.options = {**cfg.options, "levels": opts["levels"]}
    if opts["refusal_detector"] is not None:
        cfg.options = {**cfg.options, "refusal_detector": opts["refusal_detector"]}
    if opts["option"]:
        cfg.options = {**cfg.options, **parse_options(opts["option"])}
    if opts["dry_run"]:
        from trustmh.plan import build_plan
        from trustmh.render import print_plan

        print_plan(build_plan(cfg, batch=cfg.batch), out)
        return 0
    if opts["tasks"] is None and not config_sets_tasks(config) and not opts["yes"]:
        if confirm is None:
            raise RuntimeError("a run without --tasks needs a confirm callback")
        confirm(cfg)
    cfg.run_dir = resolve_run_dir(cfg)
    try:
        summary = run_async(run_evaluation(cfg, progress=opts["progress"], console=err))
    except KeyboardInterrupt:
        err.print(f"[yellow]Interrupted.[/] Finished samples are saved in {cfg.run_dir}.")
        say(f"Resume with: {resume_command(cfg.run_dir)}")
        return INTERRUPTED_EXIT
    except StorageError as exc:  # the run store failed: what it committed is kept
        print_error(str(exc))
        print_saved(cfg.run_dir)
        return 2
    except FatalBackendError as exc:  # an unreachable server, a rejected key, an unknown model
        print_error(str(exc))
        if finished_samples(cfg.run_dir):  # e.g. the model answered, then the judge was down
            print_saved(cfg.run_dir)
        return 2
    from trustmh.cli_report import REPORT_NAME, write_run_report
    from trustmh.render import print_summary
    from trustmh.runner import collector_tuned_for_requests

    # The collector as the run had it: what the run left alive (modules, samples, its store's
    # rows) frozen, so the collections that building the report sets off walk only the report's
    # own objects (otherwise some 20 ms of the 0.15 s between the last reply and the prompt).
    with collector_tuned_for_requests():
        write_run_report([cfg.run_dir], cfg.run_dir / REPORT_NAME, out)
        print_summary(summary, out, verbose=opts["verbose"])
    if summary.stopped:
        say(f"Stopped before the cost cap: {summary.stopped}. To go on, rerun with a higher "
            f"--max-cost (or none): {resume_command(cfg.run_dir)}")  # fmt: skip
        return INCOMPLETE_EXIT
    if summary.status != "complete":
        say(f"incomplete: {summary.n_failed} of {summary.n_samples} samples failed "
            f"(first error: {summary.stats.first_error}); their numbers above leave them out. "
            f"Rerun to retry only them: {resume_command(cfg.run_dir)}")  # fmt: skip
        return INCOMPLETE_EXIT
    return 0


def say(line: str) -> None:
    """One line on stderr, printed as written (no markup, no highlighting, never cut)."""
    err.print(line, markup=False, highlight=False, soft_wrap=True)


def print_error(message: str) -> None:
    """One `error: ...` line on stderr (never rich markup: messages quote user input)."""
    say(f"error: {message}")


def print_saved(run_dir: Path) -> None:
    """After a failed run: where its finished samples are and the command that resumes it."""
    say(f"Finished samples are saved in {run_dir}; resume with: {resume_command(run_dir)}")


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


def resume_command(run_dir: Path | None) -> str:
    """The command line that resumes this run: the same arguments with --run-dir set."""
    kept: list[str] = []
    skip = False
    for arg in sys.argv[1:]:
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


def _skip_final_collections() -> None:
    """At interpreter exit: no more cyclic garbage collection. Python's shutdown otherwise walks
    every object left (some 85,000 after a run: about a tenth of a second between the printed
    summary and the prompt coming back). Nothing then needs it: every store, cache and report
    file is closed and written before the command returns, module teardown and the other exit
    handlers still run, and what is left is freed with the process."""
    gc.disable()
    gc.freeze()


def skip_final_collections_at_exit() -> None:
    """Register `_skip_final_collections` once per process, however often a main runs."""
    atexit.unregister(_skip_final_collections)
    atexit.register(_skip_final_collections)


def fast_run(opts: dict[str, Any]) -> int:
    """`trustmh run` on options `parse_run_args` read (one that names its subtasks or says --yes):
    what the typer command does, user errors as one line, the exit code returned."""
    skip_final_collections_at_exit()
    try:
        return run_command(opts)
    except UserError as exc:
        print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:  # before the run started (the run itself handles its own)
        err.print("Aborted.")
        return 1
