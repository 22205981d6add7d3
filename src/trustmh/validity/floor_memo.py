"""The null responders' metrics of a subtask (protocol 1.8 floors), remembered so that a rerun, a
resume or another model's run over the same items does not score eleven nulls on every item again
(about 0.1 ms of CPU per item, a fifth of a second for 2,000 items). Two places keep them: the run
store (the run's own record) and the user cache's `floors` folder, shared by every run of this
user: the floors depend on the items and the scorer, never on the model asked, so the first run of
a subtask computes them for all the models evaluated after it.

A remembered entry is used only when its fingerprint matches: the subtask, its options, the run
seed, every item as sent (id, variant, messages, target, metadata), the trustmh code itself
(`code_fingerprint`) and the files of the task's scorer and aggregate (a plug-in task's live
outside trustmh): an edited scorer or null is never read from an old entry."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from trustmh.code_fingerprint import code_fingerprint
from trustmh.private_cache import private_folder, read_entry, write_entry
from trustmh.tasks.base import Task
from trustmh.types import MetricValue, Sample

# run meta key: {task id: {"fingerprint": str, "values": {null: {metric: value}}}}
META_KEY = "null_metrics"
SHARED_FOLDER = "floors"  # in the user cache: one `<fingerprint>.json` per subtask and item set


def module_stamp(function: Any) -> str:
    """A digest of the file defining `function` (a plug-in's scorer lives outside trustmh), or ""
    when it has none."""
    module = sys.modules.get(getattr(function, "__module__", "") or "")
    try:
        return hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()  # type: ignore[union-attr, arg-type]
    except (AttributeError, TypeError, OSError):
        return ""


def fingerprint(task: Task, samples: list[Sample], options: dict[str, Any], seed: int) -> str:
    """What the null metrics of `samples` depend on, as one digest."""
    digest = hashlib.sha256()
    code = [code_fingerprint(), module_stamp(task.score), module_stamp(task.aggregate)]
    head = [code, task.id, seed, options]
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    for s in samples:
        item = [s.id, s.variant, s.messages, s.target, s.meta]
        digest.update(json.dumps(item, sort_keys=True, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def recall(
    stored: dict[str, Any] | None, task_id: str, key: str
) -> dict[str, list[MetricValue]] | None:
    """The remembered null metrics of `task_id` when stored under the same fingerprint, else None.
    Only each metric's name and value are kept: that is all the floors read."""
    entry = (stored or {}).get(task_id)
    if not isinstance(entry, dict) or entry.get("fingerprint") != key:
        return None
    values = entry.get("values")
    if not isinstance(values, dict):
        return None
    return {
        null: [MetricValue(name, value, 0) for name, value in metrics.items()]
        for null, metrics in values.items()
    }


def entry(key: str, by_null: dict[str, list[MetricValue]]) -> dict[str, Any]:
    """The stored form of `null_metrics` computed under fingerprint `key`."""
    return {
        "fingerprint": key,
        "values": {null: {m.name: m.value for m in ms} for null, ms in by_null.items()},
    }


def recall_shared(task_id: str, key: str) -> dict[str, list[MetricValue]] | None:
    """The null metrics kept in the user cache under fingerprint `key`, else None."""
    return recall({task_id: read_entry(private_folder(SHARED_FOLDER), key)}, task_id, key)


def keep_shared(key: str, by_null: dict[str, list[MetricValue]]) -> None:
    """Keep `by_null` in the user cache under fingerprint `key` (a failure only means computing
    them again next time)."""
    write_entry(private_folder(SHARED_FOLDER), key, entry(key, by_null))
