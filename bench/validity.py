"""The null-model panel (protocol 1.8): what a responder or a judge that knows nothing scores on
every subtask, and whether any such score could pass for a measurement.

Usage (from the repository root; needs the data folder, TRUSTMH_DATA_DIR or ../shared/data):

    .venv/bin/python bench/validity.py                 # every subtask, every item (a few minutes)
    .venv/bin/python bench/validity.py --limit 30      # the first 30 items of each subtask
    .venv/bin/python bench/validity.py --json out.json # also the numbers as JSON

Runs, each through the real engine (samples, runner, store, scorers, aggregates, validity rules)
with in-process `null:` backends rather than the loopback HTTP server: the panel is about
numbers, not transport (the loopback server's own tests cover that), and in process it sends
~200,000 requests in minutes on two cores where HTTP would take far longer; the replies are the
same pure functions of the prompt either way (`trustmh.validity.nulls`).
- responders: always-a, refusing, content-free and random, each judged by the random judge;
- judges: constant, random, never-parsing and biased (favours prompts naming Muslim; fairness
  unblinded, so the bias can act), each judging the random responder, on judge-scored subtasks.

Printed per subtask: every null's primary value with its flags, the floor (the engine's, measured
on the run's items with the subtask's own scorer; for judge-scored subtasks, which have none, the
best responder under the random judge) and a check: a null whose value is better than the floor
without any flag is a failure (exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from trustmh.config import RunConfig
from trustmh.engine import run_evaluation
from trustmh.tasks.registry import select_tasks

RESPONDERS = ("always-a", "refusing", "content-free", "random")
JUDGES = ("judge-constant", "judge-random", "judge-unparsed", "judge-biased,word=Muslim")
SHORT = {"always-a": "A", "refusing": "refuse", "content-free": "prose", "random": "random",
         "judge-constant": "J=const", "judge-random": "J=rand", "judge-unparsed": "J=unparsed",
         "judge-biased,word=Muslim": "J=biased"}  # fmt: skip
FLAG_MARK = {"degenerate": "d", "low_coverage": "c", "at_floor": "f", "offline_detector": "k",
             "judge_reask": "r", "reask_unparsed": "u"}  # fmt: skip


def run(model: str, judge: str | None, tasks: list[str], limit: int | None, root: Path) -> dict:
    """One null run: per subtask the primary metric and the validity record."""
    biased = judge is not None and "biased" in judge
    options = {"fairness.overall": {"judge_view": "unblinded"}} if biased else {}
    cfg = RunConfig(model=f"null:{model}", judge=f"null:{judge}" if judge else None, tasks=tasks,
                    limit=limit, run_dir=root / f"{model}-{judge}".replace(",", "_"),
                    no_cache=True, options=options)  # fmt: skip
    summary = asyncio.run(run_evaluation(cfg, progress=False))
    out = {}
    for task_id, metrics in summary.results.items():
        primary = next((m for m in metrics if m.primary), None)
        record = summary.validity.get(task_id, {})
        out[task_id] = {
            "value": primary.value if primary else None,
            "direction": primary.direction if primary else "higher",
            "flags": [f["kind"] for f in record.get("flags", [])],
            "floor": ((record.get("floors") or {}).get(primary.name) if primary else None),
        }
    return out


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def better(a: float, b: float, direction: str) -> bool:
    return a > b + 1e-9 if direction == "higher" else a < b - 1e-9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="items per subtask")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args()
    tasks = [t for t in select_tasks(["all"]) if t.implemented]
    judged = [t.id for t in tasks if t.needs_judge != "no"]
    started = time.monotonic()
    columns: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for responder in RESPONDERS:
            columns[SHORT[responder]] = run(
                responder, "judge-random", ["all"], args.limit, Path(tmp)
            )
            print(f"ran {responder:<13} {time.monotonic() - started:6.0f}s", file=sys.stderr)
        for judge in JUDGES:
            if judge != "judge-random":
                columns[SHORT[judge]] = run("random", judge, judged, args.limit, Path(tmp))
                print(f"ran {judge:<13} {time.monotonic() - started:6.0f}s", file=sys.stderr)
        # judge-optional subtasks without a judge: the offline detectors decide
        offline = [t.id for t in tasks if t.needs_judge == "optional"]
        without: dict[str, dict] = {}
        for responder in RESPONDERS:
            without[SHORT[responder]] = run(responder, None, offline, args.limit, Path(tmp))
        print(f"ran without a judge {time.monotonic() - started:6.0f}s", file=sys.stderr)
    responders = [SHORT[r] for r in RESPONDERS]
    print(
        "\nnull responders judged by the random judge; other null judges judging the random responder"
    )
    failures = print_table(tasks, columns, responders)
    print("\nwithout a judge (the offline detectors decide)")
    failures += print_table([t for t in tasks if t.id in offline], without, responders)
    print(f"\n{len(columns)} null runs in {time.monotonic() - started:.0f}s; flags: "
          + ", ".join(f"{v} = {k}" for k, v in FLAG_MARK.items()))  # fmt: skip
    if args.json:
        data = {"judged": columns, "without_judge": without}
        args.json.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    if failures:
        print("\nFAILED: " + "; ".join(failures))
        sys.exit(1)
    print("ok: no null scores better than its floor without a flag")


def print_table(tasks, columns: dict[str, dict], responders: list[str]) -> list[str]:
    """The panel table; returns the failures: a null responder better than the floor without a
    flag (judge columns are shown, not checked: a null judge sets every responder's score)."""
    names = list(columns)
    print(f"\n{'subtask':<36} " + " ".join(f"{n:>12}" for n in names) + f" {'floor':>16}  check")
    failures = []
    for task in tasks:
        cells, values = [], []
        for name in names:
            got = columns[name].get(task.id)
            if got is None:
                cells.append(f"{'':>12}")
                continue
            marks = "".join(FLAG_MARK.get(k, "?") for k in got["flags"])
            text = f"{got['value']:.3f}" if finite(got["value"]) else "n/a"
            cells.append(f"{text + (' ' + marks if marks else ''):>12}")
            values.append((name, got))
        floor, source = None, ""
        engine = next((g["floor"] for _, g in values if g["floor"]), None)
        if engine:
            floor, source = engine["value"], engine["null"]
        else:  # judge-scored: the best responder under the random judge
            under_random = [(n, g) for n, g in values if n in responders]
            best = [(n, g["value"]) for n, g in under_random if finite(g["value"])]
            if best:
                direction = under_random[0][1]["direction"]
                pick = (max if direction == "higher" else min)(best, key=lambda nv: nv[1])
                floor, source = pick[1], f"{pick[0]}*"
        check = "ok"
        for name, got in values:
            unflagged = name in responders and finite(got["value"]) and not got["flags"]
            if unflagged and floor is not None and better(got["value"], floor, got["direction"]):
                check = f"FAIL {name}"
                failures.append(f"{task.id}: {name} {got['value']:.3f} beats {floor:.3f}")
        floor_text = f"{floor:.3f} {source}" if floor is not None else "n/a"
        print(f"{task.id:<36} " + " ".join(cells) + f" {floor_text:>16}  {check}")
    return failures


if __name__ == "__main__":
    main()
