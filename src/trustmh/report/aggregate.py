"""Load runs and compute what a report shows: per-subtask cells, ranks among the runs, placement
among the paper's recorded models, pillar scores for the radar, breakdowns and judges.

Everything is generic: subtasks come from the runs' results and the task registry (pillar, title,
direction); no task is named here. Ranking follows protocol 1.6 through `reproduce_table.rank_models`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from trustmh import __version__
from trustmh.compare.runs import unique_labels
from trustmh.errors import UserError
from trustmh.metrics import split_metric_name
from trustmh.pillars import Entry, PillarScore, pillar_score, value_scale
from trustmh.report.reference import PaperRank, PaperRanks, ReproducedScores, recorded_subtasks
from trustmh.reproduce_table import pillar_of, primary_metric, rank_models
from trustmh.run_index import expand_run_dirs
from trustmh.runlock import effective_status
from trustmh.store import RunStore
from trustmh.tasks.base import Task
from trustmh.tasks.catalogue import TaskFacts, task_catalogue
from trustmh.types import MetricValue
from trustmh.validity.assess import excluded

# sample statuses without a usable score, each named for what it is: "failed" is only a request or
# scorer that failed (a rerun retries it); a replayed model's unrecorded item is "not recorded"
FAILED = ("error",)
GENERATION_OVERRIDES = ("temperature", "max_tokens", "system_prompt")
LEVEL_DIMENSION = "level"  # metrics.py convention: perturbation intensities, charted as curves


@dataclass
class TaskInfo:
    """What the report knows about a subtask (from the registry when it is registered)."""

    id: str
    title: str
    pillar: str
    section: str
    status_label: str
    metric: str
    direction: str
    in_protocol: bool
    judge_attribute: str | None
    option_names: tuple[str, ...] = ()
    scale: tuple[float, float] | None = None  # declared value range, if the task declares one
    judge_unit: str = "item"  # the claim of its judge-scored number: item (scores) or model (ranks)


@dataclass
class RunData:
    """One run as read from its store."""

    index: int
    run_dir: Path
    label: str
    spec: str
    judge: str | None
    config: dict[str, Any]
    meta: dict[str, Any]
    results: dict[str, list[MetricValue]]
    samples: list[dict[str, Any]]  # store.export_rows()
    status: dict[str, Counter] = field(default_factory=dict)  # task -> sample status -> n
    judge_models: dict[str, list[str]] = field(default_factory=dict)
    judge_status: dict[str, Counter] = field(default_factory=dict)
    paper_model: str | None = None  # set when the run replays one of the paper's models
    stand_ins: dict[str, str] = field(default_factory=dict)  # subtask -> the STAND-IN it ran on

    @property
    def limit(self) -> int | None:
        """The run's --limit (items per subtask), or None for a full run."""
        return self.config.get("limit")

    @property
    def judges_used(self) -> list[str]:
        """The judge models named in the stored verdicts (for a replayed judge: whose recorded
        verdicts were used, e.g. "gpt-4.1 (recorded, via replay:GPT-5.1)"), else the configured
        judge spec."""
        named = list(dict.fromkeys(m for models in self.judge_models.values() for m in models))
        return named or ([self.judge] if self.judge else [])


@dataclass
class Placement:
    """A run's rank among the paper's recorded models on one subtask (or why it is not placed)."""

    rank: int | None
    among: int
    models: list[str]
    reason: str | None = None


@dataclass
class Cell:
    """One run's numbers on one subtask."""

    primary: MetricValue | None
    others: list[MetricValue]
    counts: dict[str, int]
    rank: int | None = None
    placement: Placement | None = None
    paper_rank: PaperRank | None = None
    reference_rank: int | None = None  # a replayed paper model's rank among the recorded models
    judge: JudgeRow | None = None  # who judged these numbers and how far it can be trusted
    validity: dict[str, Any] = field(default_factory=dict)  # protocol 1.8 record of the run

    @property
    def flags(self) -> list[dict[str, str]]:
        """Every flag of this subtask in this run (protocol 1.8)."""
        return list(self.validity.get("flags", []))

    @property
    def excluded(self) -> list[dict[str, str]]:
        """The flags that keep the value out of ranks and the radar."""
        return excluded(self.validity)

    @property
    def floor(self) -> dict[str, Any] | None:
        """The primary metric's null floor ({"value", "null"}), when measured."""
        if self.primary is None:
            return None
        return (self.validity.get("floors") or {}).get(self.primary.name)


@dataclass
class SubtaskRow:
    """A subtask across the runs, with the paper's published ranks as context."""

    task: TaskInfo
    cells: list[Cell | None]
    paper: dict[str, PaperRank] | None
    reference_models: list[str]
    stand_in: str | None = None  # the STAND-IN some run used for it (named in its title)


@dataclass
class BreakdownPoint:
    """One group of a breakdown (e.g. level=0.2 or method=role_play), per run."""

    group: str
    x: float | None
    values: list[MetricValue | None]


@dataclass
class Breakdown:
    """A metric restricted to the groups of one dimension (the `metric[dimension=value]` names)."""

    task: str
    metric: str
    dimension: str
    numeric: bool  # every group is a number: x is that number
    curve: bool  # drawn as a curve: numeric groups, or the `level` dimension (ordered intensities)
    direction: str
    points: list[BreakdownPoint]


@dataclass
class JudgeRow:
    """Who judged a subtask in a run, how the verdicts parsed, and the judge's measured agreement."""

    task: str
    run: int
    models: list[str]
    status: dict[str, int]
    attribute: str | None
    agreement: str | None
    verdict: str | None
    # when the report ranks several runs on a score of replies, the judge's model-level
    # agreement too: ranking models is a claim about models (protocol 11.2)
    rank_agreement: str | None = None
    rank_verdict: str | None = None


@dataclass
class Report:
    """Everything a report renders."""

    runs: list[RunData]
    rows: list[SubtaskRow]
    pillars: list[str]
    radar: list[list[PillarScore]]  # per run, per pillar
    pillar_ranks: dict[str, dict[int, int]]  # pillar -> run index -> rank (2+ runs only)
    breakdowns: list[Breakdown]
    judges: list[JudgeRow]
    paper: PaperRanks
    paper_pillar_ranks: dict[str, dict[str, int]]
    reproduced: ReproducedScores | None
    include_substitutes: bool = False  # STAND-IN and BEYOND subtasks entered the pillar scores
    comparison: Any = None  # trustmh.compare.Comparison of the runs (2+ runs), protocol 1.9
    comparison_error: str | None = None  # why the runs could not be compared
    generated: str = field(default_factory=lambda: datetime.now().isoformat(timespec="seconds"))
    version: str = __version__


# ------------------------------------------------------------------------------------- loading


def task_info(
    task_id: str, registry: Mapping[str, Task | TaskFacts], metrics: Sequence[MetricValue]
) -> TaskInfo:
    """Registry facts about a subtask; a subtask no longer registered falls back to its id."""
    primary = primary_metric(metrics)
    task = registry.get(task_id)
    if task is None:
        return TaskInfo(task_id, task_id, pillar_of(task_id), "-", "?", primary.name if primary else "?",
                        primary.direction if primary else "higher", True, None)  # fmt: skip
    return TaskInfo(
        id=task.id,
        title=task.title,
        pillar=task.pillar,
        section=task.section,
        status_label=task.status,
        metric=task.metric,
        direction=primary.direction if primary else task.direction,
        in_protocol=task.in_protocol,
        judge_attribute=task.judge_attribute,
        option_names=task.option_names,
        scale=getattr(task, "scale", None),
        judge_unit=getattr(task, "judge_unit", "item"),
    )


def load_run(run_dir: Path, index: int, paper_models: Sequence[str]) -> RunData:
    """Read one run: its meta, results and every sample with its reply and score."""
    store = RunStore(run_dir, readonly=True)
    try:
        config = store.get_meta("config") or {}
        meta = {
            key: store.get_meta(key)
            for key in (
                "model_label",
                "tasks",
                "status",
                "started",
                "finished",
                "versions",
                "task_info",
                "model_profiles",
                "request_plans",
                "request_notes",
                "adaptations",
                "validity",
            )
        }
        results = store.results()
        samples = list(store.export_rows())
    finally:
        store.close()
    meta["status"] = effective_status(run_dir, meta.get("status"))
    spec = str(config.get("model") or "?")
    run = RunData(index, run_dir, str(meta.get("model_label") or spec), spec, config.get("judge"),
                  config, meta, results, samples)  # fmt: skip
    run.paper_model = _paper_model(spec, paper_models)
    for task_id, info in (meta.get("task_info") or {}).items():
        if isinstance(info, dict) and info.get("stand_in"):
            run.stand_ins[task_id] = str(info["stand_in"])
    for task_id, metrics in results.items():  # runs recorded before stand-ins were declared
        primary = primary_metric(metrics)
        if primary and (primary.note or "").startswith("STAND-IN"):
            run.stand_ins.setdefault(task_id, primary.note.split(";")[0].removeprefix("STAND-IN: "))
    for row in samples:
        task = row["task"]
        run.status.setdefault(task, Counter())[row["status"] or "pending"] += 1
        for key, value in (row["detail"] or {}).items():
            if key.endswith("_model") and isinstance(value, str):
                models = run.judge_models.setdefault(task, [])
                if value not in models:
                    models.append(value)
            elif key.endswith("_status") and isinstance(value, str):
                run.judge_status.setdefault(task, Counter())[f"{key}={value}"] += 1
    return run


def _validity(run: RunData, task_id: str) -> dict[str, Any]:
    """The run's protocol 1.8 record of a subtask (empty for runs stored before it existed)."""
    return dict((run.meta.get("validity") or {}).get(task_id) or {})


def _flagged(cell: Cell) -> str | None:
    """Why a cell's value stays out of the radar (protocol 1.8), or None."""
    flags = cell.excluded
    return "flagged " + ", ".join(f["kind"] for f in flags) if flags else None


def flag_counts(run: RunData) -> dict[str, list[str]]:
    """Per flag kind, the run's subtasks that carry it (for the report header)."""
    out: dict[str, list[str]] = {}
    for task_id, record in (run.meta.get("validity") or {}).items():
        if task_id not in run.results:
            continue
        for f in record.get("flags", []):
            out.setdefault(f["kind"], []).append(task_id)
    return out


def _paper_model(spec: str, paper_models: Sequence[str]) -> str | None:
    """The paper model a `replay:NAME` run replays (by paper name or recorded id), else None."""
    if not spec.startswith("replay:"):
        return None
    name = spec.split(":", 1)[1].strip().lower()
    by_name = {m.lower(): m for m in paper_models}
    if name in by_name:
        return by_name[name]
    try:
        from trustmh.data.sources import resolve_data_context
        from trustmh.models.replay import resolve_model

        return by_name.get(resolve_model(resolve_data_context(None), name).name.lower())
    except (UserError, OSError):
        return None


# ----------------------------------------------------------------------------------- computing


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def counts_of(run: RunData, task_id: str) -> dict[str, int]:
    """Sample counts of a run's subtask: samples, refused, unparsed, failed (request or scorer
    error), not recorded (a replayed model has no answer) and pending (not scored yet)."""
    status = run.status.get(task_id, Counter())
    return {
        "samples": sum(status.values()),
        "refused": status.get("refused", 0),
        "unparsed": status.get("unparsed", 0),
        "failed": sum(status.get(s, 0) for s in FAILED),
        "not_recorded": status.get("missing", 0),
        "pending": status.get("pending", 0),
        **{f"status_{k}": v for k, v in status.items()},
    }


def not_comparable(run: RunData, task: TaskInfo) -> str | None:
    """Why a run's score on a subtask cannot be placed among the reproduced recorded models (which
    answered every item with the default options and generation settings); None when it can."""
    if run.paper_model:
        return "this run replays one of the recorded models"
    cfg = run.config
    if cfg.get("limit") is not None:
        return f"run used --limit {cfg['limit']}; the recorded models answered every item"
    options = cfg.get("options") or {}
    used = {k: v for k, v in options.items() if k in task.option_names}
    used.update(options.get(task.id) or {})
    used.pop("seed", None)
    if used:
        return f"run used task options {used}; the reproduced scores use the defaults"
    overridden = [k for k in GENERATION_OVERRIDES if cfg.get(k) is not None]
    if overridden:
        return f"run overrode {', '.join(overridden)}; the recorded models used the protocol's settings"
    return None


def place(run: RunData, task: TaskInfo, recorded: set[str],
          reproduced: ReproducedScores | None) -> Placement | None:  # fmt: skip
    """Rank of the run among the recorded models with a reproduced score on this subtask, or why
    it is not placed; None where no recorded model has the subtask."""
    metrics = run.results.get(task.id, [])
    primary = primary_metric(metrics)
    if run.paper_model or task.id not in recorded or primary is None or not _finite(primary.value):
        return None  # a replayed paper model shows its published rank instead
    reason = not_comparable(run, task)
    flags = excluded(_validity(run, task.id))
    if reason is None and flags:
        reason = "flagged " + "; ".join(f"{f['kind']}: {f['reason']}" for f in flags)
    if reason is None and (reproduced is None or reproduced.error):
        reason = (
            reproduced.error if reproduced else "reference scores not computed (--no-reference)"
        )
    models = reproduced.models_with(task.id) if reproduced else []
    if reason or not models:
        return Placement(None, len(models) + 1, models, reason or "no recorded model has a score")
    key = "\0run"  # cannot collide with a model name
    pool = {m: reproduced.results[m] for m in models}  # type: ignore[union-attr]
    pool[key] = {task.id: metrics}
    return Placement(rank_models(pool, task.id)[key], len(models) + 1, models)


def rank_by_mean(subtask_ranks: Mapping[str, Mapping[Any, int | None]],
                 pillar_by_task: Callable[[str], str]) -> dict[str, dict[Any, int]]:  # fmt: skip
    """Pillar ranks (protocol 1.6, DEFAULT): the rank of the mean of each model's subtask ranks in
    the pillar, ties broken by the best single subtask rank, then competition ranks (1, 2, 2, 4)."""
    per_pillar: dict[str, dict[Any, list[int]]] = {}
    for task_id, ranks in subtask_ranks.items():
        for model, rank in ranks.items():
            if rank is not None:
                in_pillar = per_pillar.setdefault(pillar_by_task(task_id), {})
                in_pillar.setdefault(model, []).append(rank)
    out: dict[str, dict[Any, int]] = {}
    for pillar, by_model in per_pillar.items():
        keys = {m: (round(sum(r) / len(r), 9), min(r)) for m, r in by_model.items()}
        out[pillar] = {m: 1 + sum(1 for o in keys.values() if o < k) for m, k in keys.items()}
    return out


def radar(runs: Sequence[RunData], rows: Sequence[SubtaskRow], pillars: Sequence[str],
          totals: Mapping[str, int], include_substitutes: bool = False) -> list[list[PillarScore]]:  # fmt: skip
    """Per run and pillar, the pillar score (`trustmh.pillars`): the mean 0-1 value of the
    pillar's subtasks, with how many of its `totals[pillar]` subtasks it covers. A subtask's 0-1
    mapping is its declared range, else 0-1 when every run's value lies in it."""
    scales: dict[str, tuple[float, float] | None] = {}
    for row in rows:
        values = [
            c.primary.value for c in row.cells if c and c.primary and _finite(c.primary.value)
        ]
        scales[row.task.id] = value_scale(row.task.scale, values)  # type: ignore[arg-type]
    out: list[list[PillarScore]] = []
    for run in runs:
        per_pillar = []
        for pillar in pillars:
            entries = []
            for row in rows:
                cell = row.cells[run.index]
                if row.task.pillar != pillar or cell is None:
                    continue
                primary = cell.primary
                entries.append(Entry(row.task.id, primary.value if primary else None,
                                     row.task.direction, scales[row.task.id],
                                     stand_in=run.stand_ins.get(row.task.id),
                                     beyond=not row.task.in_protocol,
                                     note=primary.note if primary else None,
                                     flagged=_flagged(cell)))  # fmt: skip
            per_pillar.append(pillar_score(entries, totals.get(pillar, 0), include_substitutes))
        out.append(per_pillar)
    return out


def breakdowns(runs: Sequence[RunData], rows: Sequence[SubtaskRow]) -> list[Breakdown]:
    """Every `metric[dimension=value]` family of every subtask, with the runs side by side."""
    out: list[Breakdown] = []
    for row in rows:
        families: dict[tuple[str, str], dict[str, list[MetricValue | None]]] = {}
        direction: dict[tuple[str, str], str] = {}
        for run in runs:
            for m in run.results.get(row.task.id, []):
                base, dim, value = split_metric_name(m.name)
                if dim is None or value is None:
                    continue
                groups = families.setdefault((base, dim), {})
                groups.setdefault(value, [None] * len(runs))[run.index] = m
                direction[(base, dim)] = m.direction
        for (base, dim), groups in families.items():
            xs = {g: _number(g) for g in groups}
            numeric = len(groups) > 1 and all(x is not None for x in xs.values())
            order = sorted(groups, key=lambda g: xs[g]) if numeric else list(groups)  # type: ignore[arg-type, return-value]
            # levels named by their operators (e.g. char@0.1+word@0.1) keep their stored order,
            # which is the order of intensity, at evenly spaced positions
            points = [
                BreakdownPoint(g, xs[g] if numeric else float(i), groups[g])
                for i, g in enumerate(order)
            ]
            curve = numeric or (dim == LEVEL_DIMENSION and len(groups) > 1)
            out.append(
                Breakdown(row.task.id, base, dim, numeric, curve, direction[(base, dim)], points)
            )
    return out


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def judge_agreement(
    judge: str | None, attribute: str | None, unit: str = "item"
) -> tuple[str | None, str | None]:
    """(one-line agreement summary, verdict) of a judge for a subtask whose verdicts rate
    `attribute`, at a unit (item: rating replies; model: ranking models), from
    `trustmh.judge_check.assess` (which also flags, as not trusted, a judge that failed every
    check it had at that unit, where it was not checked); a readable reason when it cannot be
    looked up."""
    if not judge:
        return None, None
    try:
        from trustmh import judge_check

        assess = judge_check.assess  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        return "judge-check is not available in this version of trustmh", None
    try:
        verdict, line = assess(judge, attribute, unit=unit)
    except UserError as exc:
        return f"no judge-check result: {exc}", None
    if verdict is not None:
        return line, verdict
    if not attribute:  # no human-rated attribute is near what this judge rates
        return "not measured against humans", None
    if unit == "model":
        return (
            "not measured at model level (ranking models): that needs this judge's ratings "
            "of several models' replies beside the experts' (MentalAlign's reply texts are "
            "not released)",
            None,
        )
    return f"not measured ({judge_check.how_to_measure(judge, attribute)})", None


def checked_judge(run: RunData, task_id: str) -> str | None:
    """The judge whose agreement applies to a run's subtask: the configured spec, or for a
    replayed judge the model named in its recorded verdicts (as an openai: spec)."""
    if run.judge and run.judge.startswith("replay:"):
        # verdicts name their model as e.g. "gpt-4.1 (recorded, via replay:GPT-5.1)"
        named = {m.split(" (", 1)[0] for m in run.judge_models.get(task_id) or []}
        return f"openai:{named.pop()}" if len(named) == 1 else None
    return run.judge


def judges(runs: Sequence[RunData], rows: Sequence[SubtaskRow]) -> list[JudgeRow]:
    """One row per (judged subtask, run): judge names seen in the verdicts, verdict statuses, and
    the judge's agreement with human ratings where judge-check measured it."""
    out: list[JudgeRow] = []
    for row in rows:
        for run in runs:
            models = run.judge_models.get(row.task.id, [])
            if not models:
                continue
            unit = row.task.judge_unit
            judge = checked_judge(run, row.task.id)
            agreement, verdict = judge_agreement(judge, row.task.judge_attribute, unit)
            rank_agreement = rank_verdict = None
            if len(runs) > 1 and unit == "item":
                rank_agreement, rank_verdict = judge_agreement(
                    judge, row.task.judge_attribute, "model"
                )
            status = dict(run.judge_status.get(row.task.id, {}))
            out.append(JudgeRow(row.task.id, run.index, models, status, row.task.judge_attribute,
                                agreement, verdict, rank_agreement, rank_verdict))  # fmt: skip
    return out


def build_report(run_dirs: Sequence[Path], paper: PaperRanks,
                 reproduced: Callable[[], ReproducedScores] | None,
                 include_substitutes: bool = False) -> Report:  # fmt: skip
    """Load the runs and compute every table of the report. `reproduced` is called only when some
    run may be placed among the recorded models (it may take seconds the first time). Pillar
    scores leave STAND-IN and BEYOND subtasks out unless `include_substitutes`."""
    runs = [load_run(path, i, paper.models) for i, path in enumerate(expand_run_dirs(run_dirs))]
    unique_labels(runs)
    registry = task_catalogue()
    order = list(registry)
    seen = dict.fromkeys(t for run in runs for t in [*run.results, *run.status])
    task_ids = sorted(seen, key=lambda t: order.index(t) if t in order else len(order))
    infos = {}
    for t in task_ids:
        metrics = next((run.results[t] for run in runs if t in run.results), [])
        infos[t] = task_info(t, registry, metrics)

    recorded = recorded_subtasks()
    reference = None
    if reproduced is not None and any(
        t in recorded and not_comparable(run, infos[t]) is None for run in runs for t in run.results
    ):
        reference = reproduced()

    rows: list[SubtaskRow] = []
    for t in task_ids:
        info = infos[t]
        # labels may still collide; flagged values (degenerate, low coverage) are not ranked
        by_index = {str(run.index): run.results for run in runs if not excluded(_validity(run, t))}
        ranks = rank_models(by_index, t)
        ranked = sum(r is not None for r in ranks.values()) >= 2
        cells: list[Cell | None] = []
        for run in runs:
            metrics = run.results.get(t)
            if metrics is None and t not in run.status:
                cells.append(None)
                continue
            metrics = metrics or []
            others = [m for m in metrics if not m.primary and split_metric_name(m.name)[1] is None]
            cell = Cell(
                primary_metric(metrics), others, counts_of(run, t), validity=_validity(run, t)
            )
            cell.rank = ranks.get(str(run.index)) if ranked else None
            cell.placement = place(run, info, recorded, reference)
            if run.paper_model:
                cell.paper_rank = (paper.by_subtask.get(t) or {}).get(run.paper_model)
                if reference and run.paper_model in reference.results:
                    cell.reference_rank = rank_models(reference.results, t).get(run.paper_model)
            cells.append(cell)
        models = reference.models_with(t) if reference else []
        stand_in = next((run.stand_ins[t] for run in runs if t in run.stand_ins), None)
        rows.append(SubtaskRow(info, cells, paper.by_subtask.get(t), models, stand_in))

    pillars = list(dict.fromkeys(t.pillar for t in registry.values() if t.in_protocol))
    totals = {
        p: sum(1 for t in registry.values() if t.pillar == p and t.in_protocol) for p in pillars
    }
    radar_values = radar(runs, rows, pillars, totals, include_substitutes)
    judge_rows = judges(runs, rows)
    for j in judge_rows:  # beside every judged number: how far its judge can be trusted
        cell = next(row for row in rows if row.task.id == j.task).cells[j.run]
        if cell is not None:
            cell.judge = j
    run_ranks = {
        row.task.id: {i: c.rank for i, c in enumerate(row.cells) if c}
        for row in rows
        if row.task.in_protocol or include_substitutes
    }
    pillar_ranks = rank_by_mean(run_ranks, lambda t: infos[t].pillar) if len(runs) > 1 else {}
    paper_pillars = rank_by_mean(
        {t: {m: r.used for m, r in row.items()} for t, row in paper.by_subtask.items()},
        lambda t: registry[t].pillar if t in registry else pillar_of(t),
    )
    report = Report(runs, rows, pillars, radar_values, pillar_ranks, breakdowns(runs, rows),
                    judge_rows, paper, paper_pillars, reference, include_substitutes)  # fmt: skip
    if len(runs) > 1:
        report.comparison, report.comparison_error = compare(runs)
    return report


# Beyond this many runs the report leaves the pairwise comparison to `trustmh compare` (pairs grow
# with the square of the runs; 12 runs are 66 pairs).
COMPARE_MAX_RUNS = 12
COMPARE_PERMUTATIONS = 2000  # the report's permutation tests (the command's default: 10,000)


def compare(runs: Sequence[RunData]) -> tuple[Any, str | None]:
    """(the paired comparison of every pair of runs, why there is none); protocol 1.9."""
    if len(runs) > COMPARE_MAX_RUNS:
        return None, (
            f"{len(runs)} runs: the report compares up to {COMPARE_MAX_RUNS}; "
            "use `trustmh compare RUN RUN…` for these"
        )
    from trustmh.compare import compare_runs
    from trustmh.compare.runs import from_rows
    from trustmh.tasks.registry import all_tasks  # the comparison reads each task's pairing

    loaded = [
        from_rows(r.label, r.run_dir, r.config, r.meta.get("task_info") or {}, r.results, r.samples)
        for r in runs
    ]
    try:
        return compare_runs(loaded, all_tasks(), permutations=COMPARE_PERMUTATIONS), None
    except Exception as exc:  # the rest of the report stands without the comparison
        return (
            None,
            f"the runs could not be compared ({type(exc).__name__}: {exc}); try `trustmh compare`",
        )
