"""Export a run's samples to JSONL or CSV for other tools."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from trustmh.errors import UserError
from trustmh.outputs import atomic_output, check_output
from trustmh.store import RUN_DB, RunStore

FORMATS = ("jsonl", "csv")


def export_run(run_dir: Path, fmt: str, output: Path | None = None) -> Path:
    """Write every sample of the run to `output` (default <run_dir>/samples.<fmt>) and return the path."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not (run_dir / RUN_DB).is_file():
        raise UserError(f"{run_dir}: not a run directory (no {RUN_DB}); see `trustmh runs`")
    output = output or run_dir / f"samples.{fmt}"
    check_output(output, "--out", [run_dir / RUN_DB])
    store = RunStore(run_dir, readonly=True)
    try:
        rows = store.export_rows()
        with atomic_output(output, "--out", newline="") as fh:
            if fmt == "jsonl":
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                writer = None
                for row in rows:
                    flat = {
                        k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                        for k, v in row.items()
                    }
                    if writer is None:
                        writer = csv.DictWriter(fh, fieldnames=list(flat))
                        writer.writeheader()
                    writer.writerow(flat)
    finally:
        store.close()
    return output
