"""The facts the report and the run summary read about every registered subtask (title, pillar,
metric, direction...), without importing every task module each time.

Reading them from the registry imports every pillar's module with its loaders, scorers and
patterns: about a tenth of a second, which every `trustmh run` paid at its end only to know the
pillars' order and how many subtasks each has. The facts are taken from the registry once and
kept in the user cache under a digest of everything that declares them: trustmh's code and each
task plug-in's (`trustmh.tasks` entry points) files. An edited declaration, an installed or
removed plug-in, or another trustmh version reads the registry again."""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

from trustmh.code_fingerprint import code_fingerprint, tree_fingerprint
from trustmh.private_cache import private_folder, read_entry, write_entry
from trustmh.tasks.base import Task
from trustmh.tasks.registry import _plugin_modules, all_tasks

FOLDER = "catalogue"


@dataclass(frozen=True)
class TaskFacts:
    """A registered subtask's declared facts (the same names as on `Task`)."""

    id: str
    pillar: str
    title: str
    section: str
    status: str
    metric: str
    direction: str
    in_protocol: bool = True
    judge_attribute: str | None = None
    judge_unit: str = "item"
    option_names: tuple[str, ...] = ()
    scale: tuple[float, float] | None = None

    @classmethod
    def of(cls, task: Task) -> TaskFacts:
        """The facts `task` declares."""
        return cls(**{f.name: getattr(task, f.name) for f in fields(cls)})

    @classmethod
    def from_json(cls, found: dict[str, Any]) -> TaskFacts:
        """The facts from their stored form."""
        scale = found.get("scale")
        return cls(**{**found, "option_names": tuple(found.get("option_names") or ()),
                      "scale": tuple(scale) if scale is not None else None})  # fmt: skip


def _plugin_stamp(module: str) -> str:
    """A digest of a plug-in's code without importing it: its top package's tree, or its file."""
    try:
        spec = importlib.util.find_spec(module.split(".", 1)[0])
    except (ImportError, ValueError):
        return f"{module}:missing"
    if spec is None:
        return f"{module}:missing"
    if spec.submodule_search_locations:
        return f"{module}:" + ",".join(
            tree_fingerprint(Path(p), "") for p in spec.submodule_search_locations
        )
    try:
        return f"{module}:" + hashlib.sha256(Path(spec.origin or "").read_bytes()).hexdigest()
    except OSError:
        return f"{module}:unreadable"


def catalogue_key() -> str:
    """The digest the kept facts are stored under (see the module doc)."""
    parts = [code_fingerprint(), *sorted(_plugin_stamp(m) for m in _plugin_modules())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@cache
def task_catalogue() -> dict[str, TaskFacts]:
    """Every registered subtask's facts by id, in declaration order (as `all_tasks`)."""
    folder = private_folder(FOLDER)
    key = catalogue_key()
    found = read_entry(folder, key)
    if isinstance(found, list):
        try:
            facts = [TaskFacts.from_json(item) for item in found]
            return {f.id: f for f in facts}
        except (TypeError, ValueError, AttributeError):
            pass  # an entry from an older layout: read the registry again
    facts = {task_id: TaskFacts.of(task) for task_id, task in all_tasks().items()}
    write_entry(folder, key, [asdict(f) for f in facts.values()])
    return facts
