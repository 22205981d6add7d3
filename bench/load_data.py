"""Time loading every data source: per-source seconds and the total.

Usage (from the repository root):

    TRUSTMH_DATA_DIR=../shared/data .venv/bin/python bench/load_data.py [--data-dir DIR] [--repeat N]

Each repeat loads all sources in a fresh process-level state (no caching between sources); the
best total of the repeats is reported.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from trustmh.data.loaders import count_records, load_all
from trustmh.data.sources import resolve_data_context


def main() -> None:
    """Load every source `--repeat` times and print the timings of the fastest run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="data folder searched first")
    parser.add_argument("--repeat", type=int, default=3, help="runs to time; the best is shown")
    args = parser.parse_args()
    ctx = resolve_data_context(args.data_dir)
    best = None
    for _ in range(args.repeat):
        start = time.perf_counter()
        report = load_all(ctx)
        total = time.perf_counter() - start
        if best is None or total < best[0]:
            best = (total, report)
    total, report = best
    for source_id, seconds in report.seconds.items():
        if source_id in report.records:
            n = sum(count_records(v) for v in report.records[source_id].values())
            state = f"{n:>9,} records"
        elif source_id in report.unavailable:
            state = "loader not available"
        else:
            state = f"ERROR {report.errors[source_id]}"
        print(f"{source_id:<18} {seconds:7.3f} s  {state}")
    for source_id, how in report.missing.items():
        print(f"{source_id:<18}     -     missing: {how}")
    print(f"{'total':<18} {total:7.3f} s")


if __name__ == "__main__":
    main()
