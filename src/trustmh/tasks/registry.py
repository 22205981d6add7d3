"""The task registry: every subtask, found by id, pillar or `all`.

Built-in pillar modules each expose `TASKS: list[Task]`; third-party packages add tasks through the
`trustmh.tasks` entry-point group (each entry point names a module with a `TASKS` list), so a new
dataset or subtask never needs a change to the core.

Modules are imported only when a selection needs them: a built-in module declares the subtasks of
one pillar, named by the key it is listed under, and a subtask id starts with its pillar (`pillar`
or `pillar.name`). So `--tasks smoke` reads the smoke module (and any plug-in, which may add to
any pillar), not all ten; anything else falls back to reading every module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache, partial
from importlib.metadata import entry_points
from typing import TypeVar

from trustmh.errors import UserError
from trustmh.tasks.base import Task

# pillar -> the built-in module declaring its subtasks (and only those)
BUILTIN_MODULES = {
    "smoke": "trustmh.tasks.smoke",
    "reliability": "trustmh.tasks.reliability",
    "crisis": "trustmh.tasks.crisis",
    "safety": "trustmh.tasks.safety",
    "fairness": "trustmh.tasks.fairness",
    "privacy": "trustmh.tasks.privacy",
    "robustness": "trustmh.tasks.robustness",
    "sycophancy": "trustmh.tasks.sycophancy",
    "ethics": "trustmh.tasks.ethics",
    "judge_check": "trustmh.judge_check.crisis",  # judge-check's live task (not in `all`)
    "mentalbench": "trustmh.tasks.mentalbench",  # MentalBench's evaluation (BEYOND, not in `all`)
}
# other names of a pillar, as the paper and the README write them -> the pillar id
PILLAR_ALIASES = {"anti-sycophancy": "sycophancy", "anti_sycophancy": "sycophancy"}
ENTRY_POINT_GROUP = "trustmh.tasks"
T = TypeVar("T")


@cache
def _plugin_modules() -> tuple[str, ...]:
    return tuple(ep.value for ep in entry_points(group=ENTRY_POINT_GROUP))


def _modules() -> list[str]:
    return [*BUILTIN_MODULES.values(), *_plugin_modules()]


@cache
def _module_tasks(name: str) -> tuple[Task, ...]:
    """The tasks one module declares (none for a built-in pillar module not written yet)."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name and name in BUILTIN_MODULES.values():
            return ()
        raise
    return tuple(getattr(module, "TASKS", ()))


def _tasks_of(modules: list[str]) -> dict[str, Task]:
    """The tasks of these modules by id, in declaration order; a repeated id is an error."""
    tasks: dict[str, Task] = {}
    for name in modules:
        for task in _module_tasks(name):
            if task.id in tasks:
                raise RuntimeError(f"task id {task.id!r} is declared twice (second in {name})")
            tasks[task.id] = task
    return tasks


@cache
def all_tasks() -> dict[str, Task]:
    """Every registered task by id, in declaration order."""
    return _tasks_of(_modules())


def _modules_for(item: str) -> list[str] | None:
    """The modules that can declare the subtask or pillar `item`: its pillar's built-in module and
    the plug-ins; None when its pillar has no built-in module (then every module is read)."""
    builtin = BUILTIN_MODULES.get(item.lower().split(".", 1)[0])
    return None if builtin is None else [builtin, *_plugin_modules()]


def _resolve(item: str, tasks: dict[str, Task]) -> list[Task] | None:
    """The tasks `item` names among `tasks` (a subtask id, a pillar or `all`); None if none."""
    key = item.lower()
    if key == "all":
        return [t for t in tasks.values() if t.in_protocol]
    if item in tasks:
        return [tasks[item]]
    in_pillar = [t for t in tasks.values() if t.pillar.lower() == key]
    # extensions beyond the paper (BEYOND) run only when named by id, not through their pillar
    # (a pillar made only of them would still select them)
    return [t for t in in_pillar if t.status != "BEYOND"] or in_pillar or None


def _find(item: str, pick: Callable[[dict[str, Task]], T | None]) -> T | None:
    """`pick` applied to the tasks of the modules that can declare `item`, or, when that finds
    nothing (or `item` names no built-in pillar, like `all`), to every registered task."""
    modules = _modules_for(item)
    found = pick(_tasks_of(modules)) if modules else None
    return found if found is not None else pick(all_tasks())


def get_task(task_id: str) -> Task:
    """The task with this id, or a UserError listing what exists."""
    task = _find(task_id, lambda tasks: tasks.get(task_id))
    if task is None:
        raise UserError(
            f"unknown task {task_id!r}; run `trustmh tasks` to list subtask ids and pillars"
        )
    return task


def pillars() -> list[str]:
    """Pillar names in declaration order."""
    return list(dict.fromkeys(t.pillar for t in all_tasks().values()))


def canonical(item: str) -> str:
    """A pillar name or subtask id with a pillar alias replaced (`anti-sycophancy.oeq` ->
    `sycophancy.oeq`); anything else unchanged."""
    pillar, dot, rest = item.partition(".")
    alias = PILLAR_ALIASES.get(pillar.lower())
    return f"{alias}{dot}{rest}" if alias else item


def select_tasks(selection: str | list[str]) -> list[Task]:
    """Resolve `--tasks`: comma-separated subtask ids, pillar names (all their subtasks) or `all`.

    `all` means every protocol subtask (the built-in smoke task is only run when named); a pillar
    name, its subtasks except the extensions beyond the paper (BEYOND), which run only when named.
    """
    items = selection.split(",") if isinstance(selection, str) else list(selection)
    items = [canonical(i.strip()) for i in items if i.strip()]
    if not items:
        raise UserError(
            "--tasks is empty; give subtask ids, pillar names or `all` (see `trustmh tasks`)"
        )
    chosen: dict[str, Task] = {}
    for item in items:
        found = _find(item, partial(_resolve, item))
        if found is None:
            raise UserError(
                f"--tasks: unknown subtask or pillar {item!r}; run `trustmh tasks` to list them"
            )
        chosen.update((t.id, t) for t in found)
    return list(chosen.values())
