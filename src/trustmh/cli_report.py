"""`trustmh report` and the report written at the end of `trustmh run` and `trustmh reproduce`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from trustmh.errors import UserError

REPORT_NAME = "report.html"


def report_command(runs: Sequence[Path], output: Path, figures: bool, reference: bool,
                   console: Console, include_stand_ins: bool = False) -> None:  # fmt: skip
    """Write the report of these runs and print where its files are."""
    from trustmh.report import write_report

    started = time.monotonic()
    files = write_report(runs, output, figures=figures, reference=reference,
                         include_substitutes=include_stand_ins)  # fmt: skip
    _print_files(files, console, time.monotonic() - started)


def _print_files(files, console: Console, seconds: float) -> None:
    beside = [files.csv, files.json]
    # the CSV and JSON usually sit beside the page: name them there on the same line
    if all(f.parent == files.html.parent for f in beside):
        extra = [f", with {beside[0].name} and {beside[1].name} beside it"]
    else:
        extra = [f"; also {beside[0]}, {beside[1]}"]
    if files.figures:
        extra.append(f", {len(files.figures)} PNG figures in {files.figures[0].parent}")
    console.print(
        f"report: {files.html} ({files.n_samples} samples, {seconds:.1f}s)" + "".join(extra),
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip
    for note in files.notes:
        console.print(note, markup=False, highlight=False, soft_wrap=True)


def write_run_report(run_dirs: Sequence[Path], output: Path, console: Console) -> Path | None:
    """The report at the end of a run (or of `trustmh reproduce`): written and its path printed;
    a failure is reported in one line and does not fail the finished run, whose results are stored.

    PNG figures are left to `trustmh report` (importing matplotlib alone costs about a second, which
    would double a small run); the page draws its own charts."""
    from trustmh.report import write_report

    started = time.monotonic()
    try:
        files = write_report(run_dirs, output, figures=False)
    except UserError as exc:
        console.print(f"report not written: {exc}", markup=False, highlight=False, soft_wrap=True)
        return None
    except Exception as exc:  # a report bug must not hide a finished run's results
        console.print(
            f"report not written ({type(exc).__name__}: {exc}); "
            f"retry with: trustmh report {' '.join(map(str, run_dirs))} -o {output}",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
        return None
    _print_files(files, console, time.monotonic() - started)
    runs = " ".join(map(str, run_dirs)) if len(run_dirs) <= 2 else f"{run_dirs[0].parent}"
    console.print(f"PNG figures: trustmh report {runs} -o {output}", markup=False, highlight=False,
                  soft_wrap=True)  # fmt: skip
    return files.html
