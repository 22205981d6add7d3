"""Time perturbing every robustness sample at every level (target: under 10 s).

Usage (from the repository root):

    TRUSTMH_DATA_DIR=../shared/data .venv/bin/python bench/perturb.py [--repeat 3] [--levels SPEC]

Two rows:
- `tasks`: building all samples of `robustness.emotional_support` and
  `robustness.psychological_diagnosis` (base samples, then every level), minus the time the base
  tasks take to build their own samples: the perturbation work itself. Shown only once both base
  reliability tasks are implemented.
- `loaders`: the raw texts those tasks perturb, straight from the loaders, with no task code: the
  seeker turns of every ESConv test prefix (2,775 windows, more than the 200 the task samples) and
  the diagnosis stand-in's 2,046 crisis conversations (protocol 3.3), each as one sample whose
  parts are its user-written turns.
Both perturb at the protocol's six levels plus `typo@0.1` (the optional extra operator), so every
operator runs. The best of `--repeat` runs is reported; exit 1 when a row misses the target.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from trustmh.data.loaders import esconv, mh_crisis
from trustmh.data.sources import DataContext, resolve_data_context
from trustmh.tasks.registry import get_task
from trustmh.transforms.perturb import DEFAULT_LEVELS_SPEC, parse_levels, perturb_levels

TARGET_SECONDS = 10.0
TASK_IDS = ("robustness.emotional_support", "robustness.psychological_diagnosis")


def loader_texts(ctx: DataContext) -> list[tuple[str, list[str]]]:
    """(sample id, user-written parts) of every ESConv test window and stand-in conversation."""
    items = []
    for prefix in esconv.read_prefixes(ctx, "testWithStrategy_short.tsv"):
        seeker = [t.text for t in prefix.turns[:-1] if t.speaker == "seeker" and t.text.strip()]
        if seeker:
            items.append((f"esconv/{prefix.line}", seeker))
    for index, conv in enumerate(mh_crisis.load(ctx)["test_llm_labels"]):
        items.append((f"crisis/{index}", list(conv.inputs)))
    return items


def time_loaders(ctx: DataContext, levels_spec: str) -> dict[str, float]:
    """Perturb the loader texts at every level; seconds, samples and characters."""
    items = loader_texts(ctx)
    levels = parse_levels(levels_spec)
    start, cpu = time.perf_counter(), time.process_time()
    n = 0
    for sample_id, parts in items:
        n += len(perturb_levels(parts, levels, run_seed=0, sample_id=sample_id))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    chars = sum(len(p) for _, parts in items for p in parts)
    return {"seconds": seconds, "cpu": cpu, "samples": n, "items": len(items), "chars": chars}


def time_tasks(ctx: DataContext, levels_spec: str) -> dict[str, float] | None:
    """Build every robustness sample through the tasks; None while a base task is missing."""
    tasks = [get_task(t) for t in TASK_IDS]
    if not all(t.implemented for t in tasks):
        return None
    options = {"seed": 0, "levels": levels_spec}
    base_seconds = total_seconds = base_cpu = total_cpu = 0.0
    n = items = 0
    for task in tasks:
        base = get_task(task.id.replace("robustness.", "reliability."))
        start, cpu = time.perf_counter(), time.process_time()
        items += sum(1 for _ in base.samples(ctx, options))  # type: ignore[misc]
        base_seconds += time.perf_counter() - start
        base_cpu += time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        n += sum(1 for _ in task.samples(ctx, options))  # type: ignore[misc]
        total_seconds += time.perf_counter() - start
        total_cpu += time.process_time() - cpu
    return {"seconds": total_seconds - base_seconds, "cpu": total_cpu - base_cpu, "samples": n,
            "items": items, "chars": 0, "with_base": total_seconds}  # fmt: skip


def main() -> None:
    """Run the timings and print them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="data folder searched first")
    parser.add_argument("--repeat", type=int, default=3, help="runs to time; the best is shown")
    parser.add_argument(
        "--levels", default=DEFAULT_LEVELS_SPEC + ",typo@0.1", help="levels to apply"
    )
    parser.add_argument("--no-check", action="store_true", help="print only; never exit 1")
    args = parser.parse_args()
    ctx = resolve_data_context(args.data_dir)
    perturb_levels("warm up 我们", args.levels)  # imports and jieba's dictionary, outside the clock
    rows = {}
    for name, fn in (("loaders", time_loaders), ("tasks", time_tasks)):
        runs = [fn(ctx, args.levels) for _ in range(args.repeat)]
        if runs[0] is not None:
            rows[name] = min(runs, key=lambda r: r["seconds"])  # type: ignore[index]
    print(f"levels: {args.levels}")
    print(f"load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    missed = False
    for name, row in rows.items():
        per = 1e6 * row["seconds"] / max(row["samples"], 1)
        extra = (
            f", {row['chars']:,.0f} chars"
            if row["chars"]
            else f" ({row['with_base']:.2f} s with the base samples)"
        )
        print(f"{name:<8} {row['seconds']:6.2f} s (CPU {row['cpu']:.2f} s)  {row['items']:,.0f} items -> {row['samples']:,.0f} perturbed samples"
              f"{extra}; {per:.0f} us per sample")  # fmt: skip
        missed |= row["seconds"] >= TARGET_SECONDS
    if "tasks" not in rows:
        print(
            "tasks    -  (reliability.emotional_support / psychological_diagnosis not implemented yet)"
        )
    print(f"target: < {TARGET_SECONDS:.0f} s per row: {'MISSED' if missed else 'met'}")
    if missed and not args.no_check:
        sys.exit(1)


if __name__ == "__main__":
    main()
