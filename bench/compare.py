"""How long `trustmh compare` takes on large runs: two synthetic runs (real SQLite run stores, the
report benchmark's writer) of N samples each on S subtasks, compared through the command itself.

    .venv/bin/python bench/compare.py                 # 2 runs x 20,000 samples (4 subtasks x 5,000)
    .venv/bin/python bench/compare.py -n 2000 -s 2    # smaller
    .venv/bin/python bench/compare.py --runs 5        # 10 pairs

Target: the 2 x 20,000-sample comparison (McNemar on 0/1 subtasks; 1,000 bootstrap resamples
each) finishes in under 10 s, startup included. Exits 1 when it misses it (`--no-check` prints only).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from report_synthetic import SyntheticTask, write_synthetic_run  # noqa: E402

TARGET_SECONDS = 10.0
# registered subtasks whose primary metric is an accuracy, as the synthetic runs' scores are
TASKS = ("reliability.knowledge", "crisis.crisis_identification", "crisis.severity_identification",
         "ethics.ethical_reasoning", "smoke")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="samples per run (default 20,000)")
    parser.add_argument(
        "-s", type=int, default=4, choices=range(1, 6), help="subtasks per run (default 4)"
    )
    parser.add_argument("--runs", type=int, default=2, help="runs compared pairwise (default 2)")
    parser.add_argument("--no-check", action="store_true", help="print only; never exit 1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        per_task = args.n // args.s
        tasks = [SyntheticTask(task_id, per_task, p_correct=0.7) for task_id in TASKS[: args.s]]
        dirs = []
        for r in range(args.runs):
            dirs.append(
                write_synthetic_run(root / f"run{r}", tasks, model=f"synthetic:m{r}", seed=r)
            )
        env = {**os.environ, "TRUSTMH_HOME": str(root / "home"), "COLUMNS": "100"}
        exe = Path(sys.executable).with_name("trustmh")
        started = time.perf_counter()
        # the synthetic prompts are drawn per run: --allow prompts
        result = subprocess.run([str(exe), "compare", *map(str, dirs), "--allow", "prompts",
                                 "--json", str(root / "c.json")],
                                capture_output=True, text=True, env=env)  # fmt: skip
        seconds = time.perf_counter() - started
    if result.returncode != 0:
        print(result.stdout, result.stderr, file=sys.stderr)
        return 1
    pairs = args.runs * (args.runs - 1) // 2
    print(
        f"compare: {args.runs} runs x {args.n} samples ({args.s} subtasks), {pairs} pairs: {seconds:.2f} s"
    )
    if not args.no_check and args.runs == 2 and args.n >= 20_000 and seconds > TARGET_SECONDS:
        print(f"missed the target: > {TARGET_SECONDS} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
