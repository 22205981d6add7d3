"""The task registry: every subtask, found by id, pillar or `all`.

Built-in pillar modules each expose `TASKS: list[Task]`; third-party packages add tasks through the
`trustmh.tasks` entry-point group (each entry point names a module with a `TASKS` list), so a new
dataset or subtask never needs a change to the core.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from trustmh.errors import UserError
from trustmh.tasks.base import Task

BUILTIN_MODULES = (
    "trustmh.tasks.smoke",
    "trustmh.tasks.reliability",
    "trustmh.tasks.crisis",
    "trustmh.tasks.safety",
    "trustmh.tasks.fairness",
    "trustmh.tasks.privacy",
    "trustmh.tasks.robustness",
    "trustmh.tasks.sycophancy",
    "trustmh.tasks.ethics",
    "trustmh.judge_check.crisis",  # judge-check's live task (in_protocol=False: not in `all`)
)
ENTRY_POINT_GROUP = "trustmh.tasks"


def _modules() -> list[str]:
    extra = [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]
    return [*BUILTIN_MODULES, *extra]


@cache
def all_tasks() -> dict[str, Task]:
    """Every registered task by id, in declaration order."""
    tasks: dict[str, Task] = {}
    for name in _modules():
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name and name in BUILTIN_MODULES:
                continue  # a pillar module not written yet
            raise
        for task in getattr(module, "TASKS", ()):
            if task.id in tasks:
                raise RuntimeError(f"task id {task.id!r} is declared twice (second in {name})")
            tasks[task.id] = task
    return tasks


def get_task(task_id: str) -> Task:
    """The task with this id, or a UserError listing what exists."""
    tasks = all_tasks()
    if task_id not in tasks:
        raise UserError(
            f"unknown task {task_id!r}; run `trustmh tasks` to list subtask ids and pillars"
        )
    return tasks[task_id]


def pillars() -> list[str]:
    """Pillar names in declaration order."""
    return list(dict.fromkeys(t.pillar for t in all_tasks().values()))


def select_tasks(selection: str | list[str]) -> list[Task]:
    """Resolve `--tasks`: comma-separated subtask ids, pillar names (all their subtasks) or `all`.

    `all` means every protocol subtask (the built-in smoke task is only run when named).
    """
    items = selection.split(",") if isinstance(selection, str) else list(selection)
    items = [i.strip() for i in items if i.strip()]
    if not items:
        raise UserError(
            "--tasks is empty; give subtask ids, pillar names or `all` (see `trustmh tasks`)"
        )
    tasks = all_tasks()
    by_pillar: dict[str, list[Task]] = {}
    for task in tasks.values():
        by_pillar.setdefault(task.pillar.lower(), []).append(task)
    chosen: dict[str, Task] = {}
    for item in items:
        key = item.lower()
        if key == "all":
            chosen.update((t.id, t) for t in tasks.values() if t.in_protocol)
        elif item in tasks:
            chosen[item] = tasks[item]
        elif key in by_pillar:
            chosen.update((t.id, t) for t in by_pillar[key])
        else:
            raise UserError(
                f"--tasks: unknown subtask or pillar {item!r}; run `trustmh tasks` to list them"
            )
    return list(chosen.values())
