"""Reports people can read: one self-contained HTML page comparing runs, with CSV, JSON and PNG
figures beside it.

    aggregate.py  load runs, compute the tables, ranks, radar values and breakdowns
    reference.py  the paper's published ranks and the recorded models' reproduced scores
    samples.py    the per-sample drill-down data embedded in the page
    charts.py     geometry of the inline SVG charts
    plots.py      PNG figures (matplotlib, optional)
    html.py       the page (Jinja2 templates in templates/) and the files beside it
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from trustmh.outputs import check_output
from trustmh.report.aggregate import Report, build_report
from trustmh.report.html import ReportFiles, sibling_paths, write_files
from trustmh.report.reference import load_paper, load_reproduced
from trustmh.run_index import expand_run_dirs
from trustmh.store import RUN_DB


def make_report(run_dirs: Sequence[Path], reference: bool = True,
                include_substitutes: bool = False) -> Report:  # fmt: skip
    """Load runs and compute the report (recorded models' reproduced scores when `reference`;
    STAND-IN and BEYOND subtasks in the pillar scores when `include_substitutes`)."""
    return build_report(run_dirs, load_paper(), load_reproduced if reference else None,
                        include_substitutes)  # fmt: skip


def write_report(run_dirs: Sequence[Path], output: Path, *, figures: bool = True,
                 reference: bool = True, include_substitutes: bool = False) -> ReportFiles:  # fmt: skip
    """Write the report of these runs to `output` (HTML) with its CSV, JSON and figures beside it.
    An output path that is a database (one of these runs' or any other) is refused before any
    work; every file is replaced atomically."""
    databases = [run_dir / RUN_DB for run_dir in expand_run_dirs(run_dirs)]
    for path in (output, *sibling_paths(output)[:2]):
        check_output(path, "-o", databases)
    report = make_report(run_dirs, reference, include_substitutes)
    return write_files(report, output, figures=figures)


__all__ = ["Report", "ReportFiles", "make_report", "write_report"]
