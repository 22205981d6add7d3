"""Time `trustmh judge-check --ratings mentalalign` on the full MentalAlign-70k data.

Usage (from the repository root):

    TRUSTMH_DATA_DIR=../shared/data .venv/bin/python bench/judge_check.py [--resamples 1000] [--repeat 3]

Reports, for the fastest of `--repeat` runs: the whole command as a subprocess (startup, reading
349,486 ratings, 4 judges x 9 attributes x every statistic x the bootstrap, the CSV, both figures),
and in-process the split between reading the ratings and computing the statistics. Then the
model level (protocol 11.2) from the counts and sums bundled with the package, as a fresh clone
runs it: `judge-check --unit model`'s rows, and the MentalAlign part of `trustmh reproduce` (the
three tables with their 100 redrawn bootstraps). Targets: the command under 60 s with 1,000
resamples; the model level and the MentalAlign reproduction each under 3 s. Exits 1 when a target
is missed (`--no-check` only prints).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trustmh.data.loaders.mentalalign import read_ratings
from trustmh.data.sources import resolve_data_context
from trustmh.judge_check.mentalalign import analyse

TARGET_SECONDS = 60.0
MODEL_LEVEL_TARGET_SECONDS = 3.0


def trustmh_command() -> list[str]:
    """The installed `trustmh` next to this interpreter (else `python -m trustmh`)."""
    exe = shutil.which("trustmh", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "trustmh"]


def time_command(resamples: int, data_dir: Path | None) -> float:
    """Wall seconds of the whole CLI command, in a scratch output and cache folder."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "TRUSTMH_CACHE_DIR": str(Path(scratch) / "cache")}
        args = [*trustmh_command(), "judge-check", "--ratings", "mentalalign", "--resamples",
                str(resamples), "--out", str(Path(scratch) / "out")]  # fmt: skip
        if data_dir:
            args += ["--data-dir", str(data_dir)]
        start = time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"judge-check failed: {done.stderr.strip()}")
    return seconds


def time_model_level(repeat: int) -> tuple[float, float]:
    """Best seconds of the model-level rows and of the MentalAlign reproduction tables, from
    the bundled sums (what `trustmh reproduce` does offline), each in a fresh process state."""
    from trustmh.data.sources import BUNDLED_DIR, DataContext
    from trustmh.judge_check.model_level import PAPER_JUDGES, check_model_level, upstream_draws
    from trustmh.judge_check.rating_sums import load_sums
    from trustmh.reproduce_mentalalign import build

    model_s = reproduction_s = float("inf")
    for _ in range(repeat):
        upstream_draws.cache_clear()  # the seeded draws are part of the cost
        start = time.perf_counter()
        loaded = load_sums(DataContext((BUNDLED_DIR,)))
        check_model_level(loaded.sums, list(PAPER_JUDGES))
        model_s = min(model_s, time.perf_counter() - start)
        upstream_draws.cache_clear()
        start = time.perf_counter()
        build(load_sums(DataContext((BUNDLED_DIR,))).sums, "bundled")
        reproduction_s = min(reproduction_s, time.perf_counter() - start)
    return model_s, reproduction_s


def main() -> None:
    """Run the command `--repeat` times and print the fastest run's figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--repeat", type=int, default=3, help="runs to time; the best is shown")
    parser.add_argument("--data-dir", type=Path, default=None, help="data folder searched first")
    parser.add_argument("--no-check", action="store_true", help="print only, never exit 1")
    args = parser.parse_args()

    command = min(time_command(args.resamples, args.data_dir) for _ in range(args.repeat))
    ctx = resolve_data_context(args.data_dir)
    best = None
    for _ in range(args.repeat):
        start = time.perf_counter()
        table = read_ratings(ctx)
        loaded = time.perf_counter()
        rows = analyse(table, resamples=args.resamples)
        finished = time.perf_counter()
        if best is None or finished - start < best[0] + best[1]:
            best = (loaded - start, finished - loaded, len(table), len(rows))
    read_s, stats_s, n_ratings, n_rows = best
    model_s, reproduction_s = time_model_level(args.repeat)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"judge-check --ratings mentalalign, {args.resamples} resamples, best of {args.repeat} "
          f"(1-min load {load:.1f})")  # fmt: skip
    print(f"  whole command (subprocess, figures and CSV included): {command:6.2f} s")
    print(f"  in-process: read {n_ratings:,} ratings {read_s:5.2f} s, "
          f"{n_rows} judge x attribute rows with CIs {stats_s:5.2f} s")  # fmt: skip
    print(f"  model level from the bundled sums: 36 judge x attribute rows {model_s:5.2f} s, "
          f"MentalAlign reproduction tables {reproduction_s:5.2f} s")  # fmt: skip
    print(f"  targets: whole command < {TARGET_SECONDS:.0f} s; model level and reproduction "
          f"< {MODEL_LEVEL_TARGET_SECONDS:.0f} s each")  # fmt: skip
    missed = command >= TARGET_SECONDS or max(model_s, reproduction_s) >= MODEL_LEVEL_TARGET_SECONDS
    if missed and not args.no_check:
        sys.exit(1)


if __name__ == "__main__":
    main()
