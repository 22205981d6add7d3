"""One evaluation run: resolve tasks and models, prepare samples, run them, aggregate, store.

`run_evaluation` is what `trustmh run` calls; `trustmh reproduce` calls it once per recorded model.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from trustmh import run_index, runlock, settled
from trustmh.cache_root import user_cache_root
from trustmh.config import MAX_SEED, RunConfig
from trustmh.data.sources import DataContext, require_sources, resolve_data_context
from trustmh.data.verify import data_fingerprint, default_hash_cache
from trustmh.epochs import aggregate_epochs, epoch_of, with_epochs
from trustmh.errors import FatalBackendError, StorageError, UserError
from trustmh.metrics import warm_up as warm_up_intervals
from trustmh.models.base import ModelBackend
from trustmh.models.factory import build_backend
from trustmh.models.profiles import Adaptation, Profile, RequestPlan, load_profiles, plan_for
from trustmh.progress import ProgressDisplay
from trustmh.run_notes import cut_short_note, plans_record, request_notes, with_notes
from trustmh.runner import (
    Endpoint,
    RetryPolicy,
    Runner,
    RunStats,
    WorkItem,
    collector_tuned_for_requests,
)
from trustmh.store import ResponseCache, RunStore, SampleDeclaration, request_key
from trustmh.tasks.base import Task
from trustmh.tasks.registry import select_tasks
from trustmh.types import GenParams, GenRequest, Message, MetricValue, Sample, SampleRef
from trustmh.validity import floor_memo
from trustmh.validity.assess import assess_task, null_metrics


@dataclass
class RunSummary:
    """What a run did and found."""

    run_dir: Path
    model: str
    model_label: str
    judge: str | None
    tasks: list[str]
    results: dict[str, list[MetricValue]]
    stats: RunStats
    skipped: dict[str, str] = field(default_factory=dict)
    n_samples: int = 0
    n_pending: int = 0
    n_replaced: int = 0  # stored samples whose request changed, asked again
    n_failed: int = 0  # samples of this invocation that ended as errors (retried by a rerun)
    limit: int | None = None  # --limit: items per subtask (a smoke run)
    stand_ins: dict[str, str] = field(default_factory=dict)  # subtask -> the STAND-IN it ran on
    status: str = "complete"
    seconds: float = 0.0
    # protocol 1.7: the parameter profile of the model (and judge), the notes every table of the
    # run carries, and the adaptations learned from the providers' 400s
    profiles: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    adaptations: list[str] = field(default_factory=list)
    validity: dict[str, dict[str, Any]] = field(default_factory=dict)  # protocol 1.8, per task
    warnings: list[str] = field(default_factory=list)  # also printed as they happen
    data_notes: dict[str, str] = field(default_factory=dict)  # task id -> fewer items than declared
    stopped: str | None = None  # why the run stopped before its end (--max-cost), if it did
    # per model with several replicas: per URL (replies given, requests it did not answer)
    endpoints: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)

    @property
    def n_requests(self) -> int:
        """Requests sent to the model and judge backends (retries included)."""
        return self.stats.requests

    @property
    def n_cache_hits(self) -> int:
        """Replies served from the shared cache or already stored in this run."""
        return self.stats.cache_hits + self.stats.reused


def default_cache_dir() -> Path:
    """The shared response cache directory ($TRUSTMH_CACHE_DIR or the user cache)."""
    return user_cache_root() / "responses"


def slug(text: str) -> str:
    """A filesystem-safe short name for a model spec."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.split("@")[0]).strip("-")[:60] or "model"


def runtime_versions() -> dict[str, str]:
    """The versions that shape a run's numbers (shown in its report)."""
    import platform

    import numpy

    from trustmh import __version__

    return {"trustmh": __version__, "python": platform.python_version(),
            "numpy": numpy.__version__, "platform": platform.platform(terse=True)}  # fmt: skip


def resolve_run_dir(cfg: RunConfig) -> Path:
    """The run directory: --run-dir, or a new timestamped one under --runs-root."""
    if cfg.run_dir is not None:
        return cfg.run_dir
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return cfg.runs_root / f"{stamp}-{slug(cfg.model)}"


def choose_tasks(selection: list[str]) -> tuple[list[Task], dict[str, str]]:
    """Runnable tasks, and the skipped ones with the reason. Naming an unimplemented subtask
    explicitly is an error; pillars and `all` skip such subtasks with a note."""
    chosen = select_tasks(selection)
    explicit = set(selection) & {t.id for t in chosen}  # named by id, not through a pillar
    runnable, skipped = [], {}
    for task in chosen:
        if task.implemented:
            runnable.append(task)
        elif task.id in explicit:
            raise UserError(
                f"--tasks {task.id}: this subtask is registered (protocol section {task.section}) but not implemented yet; "
                "run `trustmh tasks` to see which subtasks can run"
            )
        else:
            skipped[task.id] = "not implemented yet"
    if not runnable:
        raise UserError(
            f"--tasks {','.join(selection)}: none of these subtasks is implemented yet; see `trustmh tasks`"
        )
    return runnable, skipped


def check_options(options: dict[str, Any], tasks: list[Task]) -> None:
    """Reject task options no selected task reads (a typo would otherwise silently fall back to
    the default). Options are flat (`name = value`, for every task reading `name`) or grouped
    under a subtask id (`[options."privacy.awareness"]`)."""
    by_id = {t.id: t for t in tasks}
    known = {"seed"}.union(*(t.option_names for t in tasks))
    for key, value in options.items():
        _check_seed(key, value)
        if isinstance(value, dict):
            for name, inner in value.items():
                _check_seed(f"{key}.{name}", inner)
            if key not in by_id:
                raise UserError(
                    f"options: {key!r} is not a subtask of this run; group options under one of {', '.join(by_id)}"
                )
            for name in value:
                if name not in ("seed", *by_id[key].option_names):
                    valid = ", ".join(by_id[key].option_names) or "none"
                    raise UserError(f"options.{key}: unknown option {name!r}; {key} reads: {valid}")
        elif key in by_id:
            raise UserError(
                f'options: {key!r} must be a table of that subtask\'s options, e.g. [options."{key}"]'
            )
        elif key not in known:
            raise UserError(
                f"options: unknown option {key!r}; the selected subtasks read: {', '.join(sorted(known))}"
            )


def _check_seed(key: str, value: Any) -> None:
    if key.rpartition(".")[2] == "seed" and (
        isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED
    ):
        raise UserError(
            f"options.{key} = {value!r}: a seed is a whole number from 0 to {MAX_SEED}, e.g. 0"
        )


def task_options(cfg: RunConfig, task: Task) -> dict[str, Any]:
    """Options for one task: the flat options plus those under the task's id."""
    flat = {k: v for k, v in cfg.options.items() if not isinstance(v, dict)}
    return {"seed": cfg.seed, **flat, **cfg.options.get(task.id, {})}


def gen_params(cfg: RunConfig, task: Task) -> GenParams:
    """The task's generation parameters with the run's overrides applied."""
    gen = task.gen
    return GenParams(
        temperature=cfg.temperature if cfg.temperature is not None else gen.temperature,
        max_tokens=cfg.max_tokens if cfg.max_tokens is not None else gen.max_tokens,
        top_p=gen.top_p,
    )


def with_system_prompt(messages: tuple[Message, ...], system: str | None) -> tuple[Message, ...]:
    """Replace (or add) the system message when the run overrides it."""
    if system is None:
        return messages
    rest = tuple(m for m in messages if m["role"] != "system")
    return ({"role": "system", "content": system}, *rest)


NO_JUDGE_NOTE = "not scored: no judge (pass --judge SPEC; the paper's judge is openai:gpt-4.1)"


def not_scored_no_judge(task: Task) -> MetricValue:
    """The result row of a judge-scored subtask in a run without a judge."""
    return MetricValue("score", None, 0, task.direction, primary=True, note=NO_JUDGE_NOTE)


def _checked_data(
    data: DataContext, tasks: list[Task], warn: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Per task, the record of the data files it reads, each checked against its checksum (see
    `data_fingerprint`); a file read from a later data root than its source's folder is said."""
    hashes = default_hash_cache()
    try:
        fingerprints = {
            t.id: data_fingerprint(data, (*t.sources, *t.optional_sources), hashes) for t in tasks
        }
    finally:
        hashes.save()
    said: set[str] = set()
    for records in fingerprints.values():
        for key, record in records.items():
            if "fallback" in record and key not in said:
                said.add(key)
                warn(f"data {key}: {record['fallback']}; read from {record['path']}")
    return fingerprints


def _refuse_shrinking(store: RunStore, cfg: RunConfig, tasks: list[Task]) -> None:
    """Refuse a --limit below what the run directory already holds of a task: its stored results
    cover those items, and recomputing them over fewer would shrink them silently. (Aggregating
    over every stored sample instead could mix samples built under other options or data that
    this invocation no longer declares, so their requests are not checked against it.)"""
    if cfg.limit is None:
        return
    for task in tasks:
        (held,) = store.conn.execute(
            "SELECT COUNT(DISTINCT sample_id) FROM samples WHERE task=?", (task.id,)
        ).fetchone()
        if held > cfg.limit:
            raise UserError(
                f"--limit {cfg.limit}: {store.run_dir} already holds {held} items of {task.id} and "
                f"its stored results cover them; resume it without --limit (or with --limit {held} "
                "or more), or choose another --run-dir for a smaller run"
            )


def _check_same_run(store: RunStore, cfg: RunConfig) -> None:
    stored = store.get_meta("config")
    if stored is None:
        return
    current = cfg.model_dump(mode="json")
    for key in ("model", "judge", "simulator", "seed", "temperature", "max_tokens",
                "system_prompt", "reasoning_effort", "judge_reasoning_effort", "judge_reask",
                "reask_unparsed"):  # fmt: skip
        if key not in stored and key in ("judge_reask", "reask_unparsed"):
            continue  # a run stored before these settings existed used neither
        old, new = stored.get(key), current.get(key)
        if old != new:
            raise UserError(
                f"--run-dir {store.run_dir} holds a run with {key}={old!r}, not {new!r}; "
                "resume it with the same settings or choose another --run-dir"
            )


async def run_evaluation(
    cfg: RunConfig, *, progress: bool = True, console: Any = None
) -> RunSummary:
    """Run (or resume) an evaluation and return its summary. Everything finished is stored even
    when the run is interrupted or a backend fails."""
    # The collector is tuned for the whole run, not only while requests are in flight: preparing
    # and aggregating thousands of samples is allocation-heavy too, and with the collector at its
    # defaults its passes over everything imported cost a 2,000-sample run a fifth of a second
    # before the first request and again after the last.
    with collector_tuned_for_requests():
        return await _run_evaluation(cfg, progress, console)


async def _run_evaluation(cfg: RunConfig, progress: bool, console: Any) -> RunSummary:
    started = time.monotonic()
    if cfg.batch and cfg.max_cost is not None:
        raise UserError(
            "--max-cost cannot be combined with --batch yet: a batch's cost is known only when "
            "it ends; use --dry-run --batch to see the estimate"
        )
    data = resolve_data_context(cfg.data_dir)
    tasks, skipped = choose_tasks(cfg.tasks)
    check_options(cfg.options, tasks)
    # Judge-scored subtasks without a judge are neither sent (no money spent on replies nobody
    # scores) nor dropped silently: they get a "not scored: no judge" result row.
    unjudged = [] if cfg.judge else [t for t in tasks if t.needs_judge == "required"]
    selected_ids = [t.id for t in tasks]
    tasks = [t for t in tasks if t not in unjudged]
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        if console is not None:
            console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)

    for task in tasks:
        require_sources(data, task)  # fail early, naming the missing data and how to get it
    fingerprints = _checked_data(data, tasks, warn)  # a damaged file stops the run here
    profiles = load_profiles(cfg.model_profiles) if cfg.model_profiles else None
    model = build_backend(cfg.model, api_key_env=cfg.api_key_env, timeout=cfg.request_timeout,
                          concurrency=cfg.concurrency, data=data, profiles=profiles,
                          reasoning_effort=cfg.reasoning_effort)  # fmt: skip
    if cfg.epochs > 1 and not model.cacheable:
        await _close_backends(model)
        raise UserError(
            f"--epochs {cfg.epochs}: {model.spec} gives the same reply every time; "
            "epochs repeat requests to a live model (openai: or anthropic:)"
        )
    judge: ModelBackend | None = None
    role_backends: dict[str, ModelBackend] = {}
    try:
        if cfg.judge:
            judge = build_backend(cfg.judge, api_key_env=cfg.judge_api_key_env, timeout=cfg.request_timeout,
                                  concurrency=cfg.judge_concurrency or cfg.concurrency, data=data, flag="--judge",
                                  profiles=profiles, reasoning_effort=cfg.judge_reasoning_effort)  # fmt: skip
        role_backends = _role_backends(cfg, tasks, model, data, profiles)
        run_dir = resolve_run_dir(cfg)
        # one writer per run directory: a second process would pay for the same requests again
        lock = runlock.acquire(run_dir)
        try:
            store = RunStore(run_dir)
        except BaseException:
            lock.release()
            raise
    except BaseException:
        await _close_backends(model, judge, *role_backends.values())
        raise
    cache = (
        None
        if cfg.no_cache
        else ResponseCache(cfg.cache_dir or default_cache_dir(), on_failure=warn)
    )
    stats = RunStats()
    summary = RunSummary(
        run_dir,
        model.spec,
        model.label,
        judge.spec if judge else None,
        selected_ids,
        {t.id: [not_scored_no_judge(t)] for t in unjudged},
        stats,
        skipped,
        warnings=warnings,
    )
    summary.limit = cfg.limit
    # per subtask, its null responders' metrics (protocol 1.8 floors), computed while the replies
    # are out, and the subtasks whose stored numbers still hold (see `_pending_work`, `settled`)
    floors: dict[str, asyncio.Future[NullFloors]] = {}
    prepared = Prepared(floors)
    try:
        _check_same_run(store, cfg)
        _refuse_shrinking(store, cfg, tasks)
        store.set_meta("config", cfg.model_dump(mode="json", exclude={"run_dir"}))
        store.set_meta("model_label", model.label)
        live = (model, judge, *role_backends.values())
        _seed_adaptations(store, cache, *live)
        summary.profiles = _profiles(*live)
        store.set_meta("model_profiles", summary.profiles)
        # protocol Appendix B: the rule set's status label and the data files behind each subtask
        store.set_meta(
            "task_info",
            {
                **(store.get_meta("task_info") or {}),
                **{
                    t.id: {
                        "status_label": t.status,
                        "section": t.section,
                        "data": fingerprints[t.id],
                        "stand_in": t.stand_in(data, task_options(cfg, t)) if t.stand_in else None,
                    }  # fmt: skip
                    for t in tasks
                },
            },
        )
        summary.stand_ins = {
            t: info["stand_in"]
            for t, info in (store.get_meta("task_info") or {}).items()
            if t in selected_ids and info.get("stand_in")
        }
        store.set_meta(
            "tasks", list(dict.fromkeys([*(store.get_meta("tasks") or []), *summary.tasks]))
        )
        store.set_meta("status", "running")
        store.set_meta(
            "started", store.get_meta("started") or datetime.now().isoformat(timespec="seconds")
        )
        unindexed = run_index.register(run_dir, model=cfg.model, started=store.get_meta("started"))
        if unindexed and console is not None:
            console.print(unindexed, markup=False, highlight=False, soft_wrap=True)
        for task_id, metrics in summary.results.items():
            store.put_results(task_id, metrics)
        selection: dict[str, set[tuple[str, str]]] = {}
        role_specs = {role: backend.spec for role, backend in role_backends.items()}
        pending = _pending_work(
            cfg, tasks, data, model, role_specs, store, summary, stats, selection, warn, prepared
        )
        policy = RetryPolicy(
            cfg.max_retries, cfg.retry_base_delay, max_retry_after=cfg.max_retry_after
        )
        model_ep = Endpoint(
            model, in_flight(model, cfg.concurrency), policy, stats, cfg.rpm, cfg.tpm
        )
        judge_ep = (
            Endpoint(
                judge, in_flight(judge, cfg.judge_concurrency or cfg.concurrency), policy, stats
            )
            if judge
            else None
        )
        role_eps = {
            role: Endpoint(backend, in_flight(backend, cfg.concurrency), policy, stats)
            for role, backend in role_backends.items()
        }
        display = ProgressDisplay(console, enabled=progress, label=model.label)
        guard = _cost_guard(cfg, store, [model, judge, *role_backends.values()])
        batches = _batch_runner(cfg, store, cache, stats, console,
                                {"model": model_ep, "judge": judge_ep, **role_eps})  # fmt: skip
        runner = Runner(store, cache, model_ep, judge_ep, stats, cfg.seed,
                        on_progress=display.update, roles=role_eps, data=data, guard=guard,
                        judge_reask=cfg.judge_reask, reask_unparsed=cfg.reask_unparsed)  # fmt: skip
        with display:
            try:
                if batches is None:
                    await runner.run(pending, cfg.concurrency)
                else:
                    await _batched_rounds(batches, runner, pending, stats, summary, cfg.concurrency,
                                          lambda: _pending_work(cfg, tasks, data, model, role_specs, store,
                                                                summary, stats, selection, warn, prepared))  # fmt: skip
            except FatalBackendError:
                store.set_meta("status", "failed")
                raise
        remaining = 0
        plans: dict[str, Any] = {**(store.get_meta("request_plans") or {})}
        applied: set[str] = set()  # plan notes of this run (adaptations that changed a request)
        validity = store.get_meta("validity") or {}
        stamps = {**(store.get_meta(settled.META_KEY) or {})}
        for task in tasks:
            options = task_options(cfg, task)
            model_plan = plan_for(model, gen_params(cfg, task))
            # a subtask whose samples were all judged by an earlier invocation keeps its plans
            judge_plans = list(runner.judge_plans.get(task.id, {}).values()) or [
                RequestPlan.from_record(r) for r in (plans.get(task.id) or {}).get("judge", [])
            ]
            notes = request_notes(model_plan, judge_plans, cfg.epochs)
            summary.notes.extend(n for n in notes if n not in summary.notes)
            plans[task.id] = plans_record(model_plan, judge_plans)
            applied.update(n for plan in (model_plan, *judge_plans) for n in plan.notes)
            reused = prepared.settled.get(task.id)
            if reused is not None:  # nothing asked, nothing changed: its stored numbers hold
                summary.results[task.id] = reused
                continue
            # only this invocation's samples: a run dir resumed with another --limit or --tasks
            # keeps its other rows, but they do not enter this run's numbers
            scored = store.scored_samples(task.id, only=selection[task.id])
            remaining += sum(s.score.status == "error" for s in scored)
            metrics = aggregate_epochs(scored, task.aggregate, options)  # type: ignore[arg-type]
            extra = [cut_short_note(scored), summary.data_notes.get(task.id)]
            metrics = with_notes(metrics, [*notes, *filter(None, extra)])
            # protocol 1.8: floors, coverage and flags (re-asks disclosed in the metrics' notes);
            # the null responders' metrics were computed while the replies were out
            found = floors.pop(task.id, None)
            samples, by_null = (
                await found if found else (store.samples(task.id, only=selection[task.id]), None)
            )
            validity[task.id] = await assess_task(task, samples, scored, metrics, options,
                                                  cfg.seed, cfg.min_coverage, by_null=by_null)  # fmt: skip
            store.put_results(task.id, metrics)
            summary.results[task.id] = metrics
            stamps[task.id] = settled.stamp(task, cfg, options, selection[task.id],
                                            model_plan.record())  # fmt: skip
        store.set_meta("validity", validity)
        store.set_meta(settled.META_KEY, stamps)  # after the validity the stamps vouch for
        summary.validity = {t: validity[t] for t in summary.results if t in validity}
        store.set_meta("request_plans", plans)
        store.set_meta("request_notes", summary.notes)
        summary.adaptations = [
            f"{spec}: {a.describe()}"
            for spec, a in _record_adaptations(store, *live)
            if a.describe() in applied
        ]
        # in the order the user selected them ("not scored: no judge" rows were set up first)
        summary.results = {t: summary.results[t] for t in selected_ids if t in summary.results}
        summary.n_failed = remaining
        if guard is not None and guard.stopped:
            summary.stopped = guard.describe()
        for backend in (model, judge, *role_backends.values()):
            if hasattr(backend, "endpoint_counts"):
                summary.endpoints[backend.spec] = backend.endpoint_counts()
        summary.status = "complete" if remaining == 0 and not summary.stopped else "incomplete"
        store.set_meta("status", summary.status)
        store.set_meta("finished", datetime.now().isoformat(timespec="seconds"))
    except sqlite3.Error as exc:
        # The run store failed (disk full, read-only, I/O error); the cache never raises. What
        # was committed stays (WAL: a failed commit leaves the database as it was before it).
        _record_interruption(store)
        raise StorageError(
            f"{store.path}: cannot write the run database ({exc}); the run stopped and its "
            "finished samples are kept: free space or fix the directory, then resume"
        ) from None
    except BaseException:
        _record_interruption(store)
        raise
    finally:
        for unfinished in floors.values():
            unfinished.cancel()
        summary.seconds = time.monotonic() - started
        store.close()
        lock.release()
        if cache:
            cache.close()
        await _close_backends(model, judge, *role_backends.values())
    return summary


def _seed_adaptations(store: RunStore, cache: ResponseCache | None,
                      *backends: ModelBackend | None) -> None:  # fmt: skip
    """Give the live backends what earlier runs learned from their providers' 400s (this run's
    store, then the shared cache), so their first requests are already adapted (protocol 1.7)."""
    stored = store.get_meta("adaptations") or {}
    for backend in backends:
        rules = getattr(backend, "rules", None)
        if backend is None or rules is None:
            continue
        known = [*stored.get(backend.spec, []), *(cache.adaptations(backend.spec) if cache else [])]
        for record in known:
            rules.learn(Adaptation.from_dict(record))


def _record_adaptations(
    store: RunStore, *backends: ModelBackend | None
) -> list[tuple[str, Adaptation]]:
    """Store what the live backends know of their providers' rules from 400s (learned in this
    run or earlier ones) and return them as (spec, adaptation)."""
    known = {
        backend.spec: backend.rules.learned  # type: ignore[attr-defined]
        for backend in backends
        if backend is not None and getattr(backend, "rules", None) is not None
    }
    stored = store.get_meta("adaptations") or {}
    store.set_meta(
        "adaptations", {**stored, **{s: [a.as_dict() for a in v] for s, v in known.items() if v}}
    )
    return [(spec, a) for spec, learned in known.items() for a in learned]


def _profiles(*backends: ModelBackend | None) -> dict[str, str]:
    """spec -> "profile: what it does" for the live backends whose requests a profile changes."""
    out = {}
    for backend in backends:
        rules = getattr(backend, "rules", None)
        if backend is not None and rules is not None and rules.profile.models:
            effort = f"; reasoning effort {rules.effort}" if rules.effort else ""
            out[backend.spec] = f"{rules.profile.name}: {rules.profile.about}{effort}"
    return out


def _record_interruption(store: RunStore) -> None:
    """Commit what is pending and mark a running run interrupted, as far as the store still can
    (on a failing disk it may not: `trustmh runs` then tells it from the lock)."""
    try:
        store.commit_pending()  # a reply stored just before the interruption is kept
        if store.get_meta("status") == "running":
            store.set_meta("status", "interrupted")
    except sqlite3.Error:
        with suppress(sqlite3.Error):
            store.conn.rollback()


def in_flight(backend: ModelBackend, concurrency: int) -> int:
    """Requests sent to a backend at once: the concurrency asked for (a replica set's own total,
    `concurrency` per replica), capped by what the backend's server can serve in parallel when
    the backend says (`parallel`; the llama.cpp server of `local:` models serves one). More would
    wait inside the backend, and their waiting would be counted as request latency."""
    limit = getattr(backend, "concurrency", concurrency)
    parallel = getattr(backend, "parallel", None)
    return min(limit, parallel) if parallel else limit


def _batch_runner(cfg: RunConfig, store: RunStore, cache: ResponseCache | None, stats: RunStats,
                  console: Any, endpoints: dict[str, Endpoint | None]) -> Any:  # fmt: skip
    """With --batch, the batch runner, each batchable endpoint collecting into it; without, None
    (and a run directory with batches still out must be resumed with --batch)."""
    if not cfg.batch:
        if store.open_batches():
            raise UserError(
                f"--run-dir {store.run_dir} has batches submitted and not collected yet; resume "
                "with --batch, or their requests would be paid twice"
            )
        return None
    from trustmh.batch import BatchCollector, BatchRunner

    apis = {}
    for endpoint in endpoints.values():
        backend = endpoint.backend if endpoint is not None else None
        if backend is None or not hasattr(backend, "batch_api"):
            continue  # replay and the baseline answer at once
        apis[backend.spec] = backend.batch_api()
    if not apis:
        raise UserError(
            "--batch: none of this run's models has a batch API (openai: or anthropic:)"
        )
    collector = BatchCollector(apis)
    for endpoint in endpoints.values():
        if endpoint is not None and endpoint.backend.spec in apis:
            endpoint.batch = collector
    from rich.console import Console

    shown = console or Console(stderr=True)
    return BatchRunner(store, cache, collector, cfg.batch_poll,
                       lambda line: shown.print(line, highlight=False, markup=False), stats)  # fmt: skip


async def _batched_rounds(batches: Any, runner: Runner, first: AsyncIterator[WorkItem], stats: RunStats,
                          summary: RunSummary, concurrency: int,
                          again: Callable[[], AsyncIterator[WorkItem]]) -> None:  # fmt: skip
    """--batch: rounds of (collect what the pending samples need, submit, wait for the batches,
    store their replies) until a round needs nothing new (see `trustmh.batch`)."""
    await batches.settle()  # batches a killed process left out
    work, counts = first, None
    while True:
        stats.total = stats.done = 0
        await runner.run(work, concurrency)
        if counts is None:  # the run's sample counts are those of its first round
            counts = (summary.n_samples, summary.n_pending, summary.n_replaced)
        if not batches.collector.count:
            break
        await batches.submit()
        await batches.settle()
        summary.n_samples = summary.n_pending = summary.n_replaced = 0
        work = again()
    summary.n_samples, summary.n_pending, summary.n_replaced = counts
    stats.batched += batches.submitted


def _cost_guard(cfg: RunConfig, store: RunStore, backends: list[ModelBackend | None]) -> Any:
    """The --max-cost guard (None without the flag), counting what the run directory's earlier
    invocations spent."""
    if cfg.max_cost is None:
        return None
    from trustmh.budget import cost_guard, spend_so_far
    from trustmh.prices import load_prices

    prices = load_prices(cfg.prices)
    specs = [b.spec for b in backends if b is not None]
    return cost_guard(cfg.max_cost, specs, prices, spend_so_far(store.usage_by_model(), prices))


async def _close_backends(*backends: ModelBackend | None) -> None:
    closed: set[int] = set()
    for backend in backends:
        if backend is not None and id(backend) not in closed:  # a replay may play two roles
            closed.add(id(backend))
            await backend.aclose()


# The roles a multi-step task may ask for, with the run setting (and flag) that names its model.
ROLE_FLAGS = {"simulator": ("simulator", "simulator_api_key_env")}


def _role_backends(cfg: RunConfig, tasks: list[Task], model: ModelBackend, data: DataContext,
                   profiles: tuple[Profile, ...] | None = None) -> dict[str, ModelBackend]:  # fmt: skip
    """The backends of the roles the selected tasks ask for (besides the model under test): the
    model given by the role's flag, or the model itself when it replays a recording that holds
    that role's turns too (`plays`). UserError naming the flag when neither exists."""
    out: dict[str, ModelBackend] = {}
    for role in dict.fromkeys(r for t in tasks for r in t.roles):
        needing = ", ".join(t.id for t in tasks if role in t.roles)
        if role not in ROLE_FLAGS:
            raise UserError(
                f"--tasks {needing}: asks for a {role!r} model, which trustmh cannot supply"
            )
        spec_field, key_field = ROLE_FLAGS[role]
        flag = "--" + spec_field.replace("_", "-")
        spec = getattr(cfg, spec_field)
        plays = role in getattr(model, "plays", ())
        if spec and plays:
            raise UserError(
                f"{flag} {spec}: {model.spec} replays a recording that holds the {role}'s turns "
                f"too; drop {flag}"
            )
        if plays:
            out[role] = model
        elif spec:
            out[role] = build_backend(spec, api_key_env=getattr(cfg, key_field), timeout=cfg.request_timeout,
                                      concurrency=cfg.concurrency, data=data, flag=flag,
                                      profiles=profiles)  # fmt: skip
        else:
            raise UserError(
                f"--tasks {needing}: needs a {role} model; pass {flag} SPEC (any model spec, e.g. "
                f"{flag} openai:gpt-4o)"
            )
    return out


def iter_limited(samples: Iterable[Sample], limit: int | None) -> Iterator[Sample]:
    """The samples of the first `limit` items: every variant of an item (a perturbation level, a
    demographic group) is kept with it, so --limit never leaves an item half-measured. Tasks yield
    an item's variants together (see `Task`), so reading stops at the first item past the limit
    and a smoke run never builds the whole dataset's variants."""
    if limit is None:
        yield from samples
        return
    items: set[str] = set()
    for sample in samples:
        if sample.id not in items:
            if len(items) >= limit:
                break
            items.add(sample.id)
        yield sample


def steps_key(task: Task, sample: Sample, role_specs: dict[str, str]) -> Any:
    """What a multi-step sample's key covers besides its first messages: its meta (where the
    task keeps what shapes the steps: number of turns, seeds...) and the models of its roles; so
    changing any of them asks the sample again. None for a one-request task."""
    if task.solve is None:
        return None
    return {"meta": sample.meta, "roles": {r: role_specs[r] for r in task.roles}}


_DECLARED_SIZE = re.compile(r"\s*(\d[\d,]*)\s*(?:\(.*\))?\s*")


def fewer_items_note(task: Task, n_items: int, limit: int | None) -> str | None:
    """A note when a subtask read fewer items than its declared size (a plain number in
    `n_items`, e.g. "125" or "190 (16 unlabeled dropped)") and --limit does not explain it: a
    truncated or emptied data file must not pass for a complete result."""
    match = _DECLARED_SIZE.fullmatch(task.n_items)
    if match is None:
        return None
    declared = int(match.group(1).replace(",", ""))
    if n_items >= declared or (limit is not None and n_items >= limit):
        return None
    return (
        f"only {n_items} items, fewer than the {declared} it declares: check the data files "
        "(`trustmh data verify`) or the options that select items"
    )


# A subtask's samples of this invocation and their null responders' metrics (protocol 1.8 floors)
NullFloors = tuple[list[Sample], dict[str, list[MetricValue]]]


@dataclass
class Prepared:
    """What `_pending_work` readies for aggregating while the replies are out."""

    floors: dict[str, asyncio.Future[NullFloors]]  # per subtask, its null responders' metrics
    asked: set[str] = field(default_factory=set)  # subtasks with samples to ask or re-declared
    settled: dict[str, list[MetricValue]] = field(default_factory=dict)  # their numbers hold


# Samples built and recorded between two turns of the event loop while the run is under way.
PREPARE_CHUNK = 64


async def _pending_work(cfg: RunConfig, tasks: list[Task], data: DataContext, model: ModelBackend,
                        role_specs: dict[str, str], store: RunStore, summary: RunSummary,
                        stats: RunStats, selection: dict[str, set[tuple[str, str]]],
                        warn: Callable[[str], None],
                        prepared: Prepared,
                        ) -> AsyncIterator[WorkItem]:  # fmt: skip
    """Every task's samples not finished yet, built and recorded a chunk at a time while the
    runner already asks the first ones (building all subtasks' 24,000 samples takes seconds).
    Fills in, as it goes, the run's sample counts, the progress total and per task the
    (sample_id, variant) pairs this invocation covers; once everything is queued, finds the
    subtasks whose stored numbers still hold (`settled`) and, for the others, starts the
    computation of their null-responder metrics into `prepared.floors`."""
    for task in tasks:
        options = task_options(cfg, task)
        params = gen_params(cfg, task)
        declared = SampleDeclaration(store, task.id)
        covered = selection.setdefault(task.id, set())
        items = iter_limited(task.samples(data, options), cfg.limit)  # type: ignore[misc]
        samples = with_epochs(items, cfg.epochs)
        while chunk := list(islice(samples, PREPARE_CHUNK)):
            # what the model's profile sends (and the key covers); learned adaptations included
            sent = plan_for(model, params).wire
            requests = [
                GenRequest(with_system_prompt(s.messages, cfg.system_prompt), params,
                           SampleRef(task.id, s.id, s.variant, "model"), epoch_of(s.meta))
                for s in chunk
            ]  # fmt: skip
            keys = [request_key(model.spec, r, include_ref=not model.cacheable,
                                extra=steps_key(task, s, role_specs), params=sent)
                    for r, s in zip(requests, chunk, strict=True)]  # fmt: skip
            pending = declared.pending(chunk, keys)
            covered.update((s.id, s.variant) for s in chunk)
            summary.n_samples += len(chunk)
            summary.n_pending += len(pending)
            stats.total += len(pending)
            if pending:
                prepared.asked.add(task.id)
            for i in pending:
                yield WorkItem(task, chunk[i], requests[i], keys[i], options, sent)
            await asyncio.sleep(0)  # let replies in between chunks
        summary.n_replaced += declared.replaced
        short = fewer_items_note(task, len({sid for sid, _ in covered}), cfg.limit)
        if short:
            summary.data_notes[task.id] = short
            warn(f"{task.id}: {short}")
    prepared.settled = _settled_results(cfg, tasks, model, store, selection, prepared.asked)
    to_aggregate = [t for t in tasks if t.id not in prepared.settled]
    # Everything is queued and the replies are out: load what aggregating and the report need
    # (numpy, a fifth of a second on first use; the versions record imports it too; the report's
    # modules and template) and score the null responders (protocol 1.8) now, while they are,
    # rather than before the first request or between the last reply and the summary.
    if to_aggregate:
        warm_up_intervals()
        store.set_meta("versions", runtime_versions())
    await asyncio.sleep(0)
    _warm_up_report()
    floors = prepared.floors
    for task in to_aggregate:
        if not task.relative and task.id not in floors:
            samples = store.samples(task.id, only=selection[task.id])
            floors[task.id] = asyncio.ensure_future(
                _remembered_null_metrics(store, task, samples, task_options(cfg, task), cfg.seed)
            )


def _settled_results(cfg: RunConfig, tasks: list[Task], model: ModelBackend, store: RunStore,
                     selection: dict[str, set[tuple[str, str]]],
                     asked: set[str]) -> dict[str, list[MetricValue]]:  # fmt: skip
    """The stored results of the subtasks that had nothing to ask in this invocation and were
    aggregated under the same stamp (see `settled`), with their stored validity."""
    stamps = store.get_meta(settled.META_KEY) or {}
    candidates = [t for t in tasks if t.id not in asked and t.id in stamps]
    if not candidates:
        return {}
    results, validity = store.results(), store.get_meta("validity") or {}
    out = {}
    for task in candidates:
        if task.id not in results or task.id not in validity:
            continue
        plan = plan_for(model, gen_params(cfg, task)).record()
        if stamps[task.id] == settled.stamp(
            task, cfg, task_options(cfg, task), selection[task.id], plan
        ):
            out[task.id] = results[task.id]
    return out


async def _remembered_null_metrics(store: RunStore, task: Task, samples: list[Sample],
                                   options: dict[str, Any], seed: int) -> NullFloors:  # fmt: skip
    """The samples with their `null_metrics`, taken from the run store or the user cache when an
    earlier run computed them on the very same items and code (see `floor_memo`), else computed
    and kept in both.
    (The samples go along so that aggregating after the last reply does not load them again.)"""
    key = floor_memo.fingerprint(task, samples, options, seed)
    known = floor_memo.recall(store.get_meta(floor_memo.META_KEY), task.id, key)
    if known is not None:
        return samples, known
    by_null = floor_memo.recall_shared(task.id, key)
    if by_null is None:
        by_null = await null_metrics(task, samples, options, seed)
        floor_memo.keep_shared(key, by_null)
    # read again: another subtask's computation may have kept its own meanwhile
    memo = store.get_meta(floor_memo.META_KEY) or {}
    store.set_meta(floor_memo.META_KEY, {**memo, task.id: floor_memo.entry(key, by_null)})
    return samples, by_null


def _warm_up_report() -> None:
    """Import the report's and the summary's modules (rich among them), read the subtasks' facts
    they show and compile the report's template; a failure here is left for the report itself to
    tell."""
    try:
        from trustmh import render  # noqa: F401 - the summary printed after the run
        from trustmh.report import reference
        from trustmh.report.html import warm_up
        from trustmh.tasks.catalogue import task_catalogue

        task_catalogue()
        warm_up()
        reference.warm_up()
    except Exception:  # noqa: BLE001 - the report, written after the run, says what failed
        pass
