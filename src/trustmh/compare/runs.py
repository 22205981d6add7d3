"""Runs as `trustmh compare` sees them, and whether two runs can be compared on a subtask.

A run is read once (its config, the rule sets and data checksums of `task_info`, its stored
results and every scored sample with a hash of the messages sent). Two runs are compared on a
subtask only where the numbers mean the same thing: the same judge, the same data files (sha256),
the same task options and generation settings, the same `--limit`, and the same prompt for every
sample both scored. Each difference is a `Mismatch` with its reason; `compare --allow KIND` takes
the kinds the user accepts, and they stay on the result as warnings.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustmh.store import RunStore
from trustmh.types import MetricValue, SampleScore, ScoredSample

MISMATCH_KINDS = ("judge", "data", "options", "generation", "limit", "prompts")
GENERATION = ("temperature", "max_tokens", "system_prompt")


@dataclass(frozen=True)
class Mismatch:
    """Why two runs' numbers on a subtask may not mean the same thing."""

    kind: str  # one of MISMATCH_KINDS
    reason: str


@dataclass
class CompareRun:
    """One run, read for comparison."""

    label: str
    run_dir: Path
    config: dict[str, Any]
    task_info: dict[str, Any]
    results: dict[str, list[MetricValue]]
    samples: dict[str, list[ScoredSample]] = field(default_factory=dict)  # per task, in order
    prompts: dict[str, dict[tuple[str, str], str]] = field(default_factory=dict)  # messages hash
    judges: dict[str, set[str]] = field(default_factory=dict)  # judge models seen per task

    @property
    def limit(self) -> int | None:
        """The run's `--limit` (None: every item)."""
        return self.config.get("limit")

    def options_for(self, task_id: str) -> dict[str, Any]:
        """The task options the run used for a subtask: its flat options and those under its id,
        with the run seed (as `trustmh run` passes them)."""
        options = self.config.get("options") or {}
        flat = {k: v for k, v in options.items() if not isinstance(v, dict)}
        return {"seed": self.config.get("seed", 0), **flat, **(options.get(task_id) or {})}

    def primary(self, task_id: str) -> MetricValue | None:
        """The run's stored primary result on a subtask."""
        return next((m for m in self.results.get(task_id, []) if m.primary), None)


def _hash(messages: Any) -> str:
    blob = json.dumps(messages, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _judge_models(detail: Mapping[str, Any]) -> Iterable[str]:
    """Judge model names in a score's detail (`*_model` keys, one level of nesting too)."""
    for key, value in detail.items():
        if key.endswith("_model") and isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            yield from _judge_models({k: v for k, v in value.items() if not isinstance(v, dict)})


def from_rows(label: str, run_dir: Path, config: dict[str, Any], task_info: dict[str, Any],
              results: dict[str, list[MetricValue]], rows: Iterable[dict[str, Any]]) -> CompareRun:  # fmt: skip
    """A run from its stored rows (`RunStore.export_rows`, as the report loads them). With a
    `--limit`, only the first `limit` items of each subtask count, as in the run's own results
    (a run directory resumed with another limit keeps its other rows)."""
    run = CompareRun(label, run_dir, config, task_info or {}, results)
    items: dict[str, dict[str, None]] = {}
    limit = run.limit
    for row in rows:
        task = row["task"]
        seen = items.setdefault(task, {})
        if row["sample_id"] not in seen:
            if limit is not None and len(seen) >= limit:
                continue  # an item past the limit (its later variants are skipped here too)
            seen[row["sample_id"]] = None
        if row["status"] is None:
            continue  # not scored yet
        detail = row["detail"] or {}
        score = SampleScore(row["score"], row["parsed"], row["status"], detail)
        run.samples.setdefault(task, []).append(
            ScoredSample(
                row["sample_id"],
                row["variant"],
                row["target"],
                row["meta"] or {},
                row["response"],
                score,
            )  # fmt: skip
        )
        run.prompts.setdefault(task, {})[(row["sample_id"], row["variant"])] = _hash(
            row["messages"]
        )
        run.judges.setdefault(task, set()).update(_judge_models(detail))
    return run


def load(run_dir: Path) -> CompareRun:
    """Read a run directory."""
    store = RunStore(run_dir)
    try:
        config = store.get_meta("config") or {}
        label = str(store.get_meta("model_label") or config.get("model") or run_dir.name)
        return from_rows(label, run_dir, config, store.get_meta("task_info") or {},
                         store.results(), store.export_rows())  # fmt: skip
    finally:
        store.close()


def unique_labels(runs: Sequence[Any]) -> None:
    """Make run labels unique (objects with `label` and `run_dir`): add the run folder name where
    two runs share a label, then the run's position where that is not enough."""
    counts = Counter(r.label for r in runs)
    for run in runs:
        if counts[run.label] > 1:
            run.label = f"{run.label} [{run.run_dir.name}]"
    counts = Counter(r.label for r in runs)
    for position, run in enumerate(runs):
        if counts[run.label] > 1:
            run.label = f"{run.label} #{position + 1}"


def mismatches(a: CompareRun, b: CompareRun, task_id: str, needs_judge: str,
               option_names: Sequence[str], judged: bool = True) -> list[Mismatch]:  # fmt: skip
    """Every reason the two runs' numbers on a subtask may not be comparable (`judged`: the
    compared metric reads judge verdicts, so the judges must be the same)."""
    out: list[Mismatch] = []
    judges_a, judges_b = a.judges.get(task_id, set()), b.judges.get(task_id, set())
    if not judged:
        pass
    elif judges_a != judges_b:
        out.append(Mismatch("judge", f"judged by {_names(judges_a)} vs {_names(judges_b)}"))
    elif needs_judge == "required" and a.config.get("judge") != b.config.get("judge"):
        out.append(Mismatch("judge", f"judge {a.config.get('judge')} vs {b.config.get('judge')}"))
    data_a, data_b = _checksums(a, task_id), _checksums(b, task_id)
    if data_a is not None and data_b is not None and data_a != data_b:
        files = sorted(f for f in {*data_a, *data_b} if data_a.get(f) != data_b.get(f))
        out.append(Mismatch("data", f"different data files (sha256): {', '.join(files)}"))
    options_a = {k: v for k, v in a.options_for(task_id).items() if k in option_names}
    options_b = {k: v for k, v in b.options_for(task_id).items() if k in option_names}
    if options_a != options_b:
        keys = sorted(k for k in {*options_a, *options_b} if options_a.get(k) != options_b.get(k))
        shown = ", ".join(f"{k}={options_a.get(k)!r} vs {options_b.get(k)!r}" for k in keys)
        out.append(Mismatch("options", f"task options differ: {shown}"))
    generation = [k for k in GENERATION if a.config.get(k) != b.config.get(k)]
    if generation:
        shown = ", ".join(f"{k}={a.config.get(k)!r} vs {b.config.get(k)!r}" for k in generation)
        out.append(Mismatch("generation", f"generation settings differ: {shown}"))
    if a.limit != b.limit:
        out.append(
            Mismatch("limit", f"--limit {a.limit} vs {b.limit}: the runs cover different items")
        )
    prompts_a, prompts_b = a.prompts.get(task_id, {}), b.prompts.get(task_id, {})
    shared = set(prompts_a) & set(prompts_b)
    differ = sum(1 for k in shared if prompts_a[k] != prompts_b[k])
    if differ:
        out.append(
            Mismatch(
                "prompts", f"{differ} of {len(shared)} shared samples were sent different prompts"
            )
        )
    return out


def data_warnings(a: CompareRun, b: CompareRun, task_id: str) -> list[str]:
    """Notes on what could not be checked (a run that recorded no data checksums)."""
    return [
        f"{run.label} recorded no data checksums for {task_id}"
        for run in (a, b)
        if _checksums(run, task_id) is None
    ]


def _checksums(run: CompareRun, task_id: str) -> dict[str, str] | None:
    info = run.task_info.get(task_id)
    if not isinstance(info, dict) or "data" not in info:
        return None
    return {name: str((f or {}).get("sha256")) for name, f in (info["data"] or {}).items()}


def _names(models: set[str]) -> str:
    return ", ".join(sorted(models)) or "no judge"
