"""Render a report: the self-contained HTML page, and beside it CSV, JSON and PNG figures.

The page is one file with inline CSS, SVG and script: nothing is fetched at view time, and its
Content-Security-Policy forbids any other script (the inline one is allowed by its hash), any
network request and any form. Jinja2 autoescapes every value; sample texts travel as JSON inside a
<script type="application/json"> element (see `samples.script_json`) and are shown via textContent.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
from contextlib import suppress
from dataclasses import asdict, dataclass, field, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined
from jinja2.bccache import Bucket
from markupsafe import Markup

from trustmh.outputs import atomic_output, write_text_atomic
from trustmh.private_cache import private_folder
from trustmh.report.aggregate import Report, flag_counts
from trustmh.report.charts import bar_chart, colour, line_chart, radar_chart, short
from trustmh.report.samples import DrillDown, drill_down, script_json
from trustmh.tasks.base import display_title
from trustmh.types import MetricValue

TEMPLATES = Path(__file__).resolve().parent / "templates"
MIN_RADAR_AXES = 3  # fewer pillars with a score: the pillar table alone
CSV_COLUMNS = ("run", "run_dir", "model", "pillar", "subtask", "metric", "dimension", "group", "value",
               "ci_low", "ci_high", "direction", "primary", "n", "n_unparsed", "n_refused", "n_error",
               "samples", "refused", "unparsed", "failed", "not_recorded", "rank_among_runs",
               "runs_ranked", "rank_among_recorded", "recorded_compared", "not_placed_because",
               "paper_rank", "paper_rank_printed", "judge", "judge_verdict", "note", "limit",
               "stand_in", "floor", "floor_null", "chance_corrected", "coverage", "flags")  # fmt: skip


@dataclass
class ReportFiles:
    """What `write_report` wrote, and anything the reader should know (e.g. figures skipped)."""

    html: Path
    csv: Path
    json: Path
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_samples: int = 0


FLAG_LABELS = {
    "degenerate": "degenerate",
    "low_coverage": "low coverage",
    "at_floor": "at the null floor",
    "offline_detector": "scored by the offline detector",
    "judge_reask": "judge re-asked",
    "reask_unparsed": "replies re-asked",
}


def flag_label(kind: str) -> str:
    """How the report names a flag kind (protocol 1.8)."""
    return FLAG_LABELS.get(kind, kind)


def fmt(value: float | None) -> str:
    """A metric value for tables: 3 decimals, or 4 significant digits for large magnitudes."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.3f}" if abs(value) < 1000 else f"{value:.4g}"


def direction_words(direction: str) -> str:
    """How a metric's direction reads: "↑ higher is better", "↓ lower is better", or for a
    descriptive metric (e.g. reply length by group) "no better direction"."""
    return {"higher": "↑ higher is better", "lower": "↓ lower is better"}.get(
        direction, "no better direction: compare groups"
    )


def ci(metric: MetricValue | None) -> str:
    """A 95% interval as "[low, high]", or empty."""
    if metric is None or metric.ci_low is None or metric.ci_high is None:
        return ""
    return f"[{fmt(metric.ci_low)}, {fmt(metric.ci_high)}]"


class _TemplateCodeCache(FileSystemBytecodeCache):
    """Jinja's compiled templates kept between runs (compiling the page's template costs about a
    fifth of a second of CPU, most of what a cached rerun spends on its report). A bucket is
    reused only for the same template source (Jinja checks its checksum) and the same Jinja and
    Python versions (its magic header); the folder's name holds what else shapes the code.
    The cache is a convenience: a folder that cannot be written or read just means compiling."""

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except OSError:
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        with suppress(OSError):
            super().dump_bytecode(bucket)


def _template_code_cache(options: dict[str, Any]) -> _TemplateCodeCache | None:
    """The cache of compiled templates under the user cache, or None when it cannot be made
    (compiled code is executed when loaded: only from a folder of this user's own)."""
    shape = hashlib.sha256(repr(sorted(options.items())).encode()).hexdigest()[:12]
    folder = private_folder("templates", shape)
    return None if folder is None else _TemplateCodeCache(str(folder))


@lru_cache(maxsize=1)  # one per process: its templates are compiled once, or loaded compiled
def _environment() -> Environment:
    # the options that shape the compiled code (the cache's folder is named after them)
    options = {"autoescape": True, "trim_blocks": False, "lstrip_blocks": False}
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        bytecode_cache=_template_code_cache(options),
        **options,  # autoescape: every {{ value }} is HTML-escaped
    )
    env.globals.update(fmt=fmt, ci=ci, colour=colour, short=short, pretty=_pretty,
                       display_title=display_title, arrow=direction_words,
                       flag_counts=flag_counts, flag_label=flag_label)  # fmt: skip
    return env


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set):
        return sorted(value)
    return str(value)


def script_hash(js: str) -> str:
    """The CSP source expression allowing exactly this inline script."""
    return "sha256-" + base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode()


def warm_up() -> None:
    """Compile the page's template now (a run calls this while its replies are out, so that
    writing its report after the last reply does not wait for it)."""
    _environment().get_template("report.html.j2")


def render_html(report: Report, drill: DrillDown) -> str:
    """The page as a string."""
    env = _environment()
    js = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    # the radar's axes: the pillars some run has a score on (a radar needs three to mean anything)
    axes = [i for i in range(len(report.pillars))
            if any(per_run[i].value is not None for per_run in report.radar)]  # fmt: skip
    names = [report.pillars[i] for i in axes]
    series = [
        (r.label, r.index, [report.radar[r.index][i].value for i in axes]) for r in report.runs
    ]
    radar = radar_chart(names, series) if len(axes) >= MIN_RADAR_AXES else None
    minis = []
    if radar is not None and len(report.runs) > 1:
        minis = [(r, radar_chart(names, [series[r.index]], size=240)) for r in report.runs]
    left_out = {
        t: why for per_run in report.radar for s in per_run for t, why in s.left_out.items()
    }
    charts = []
    for b in report.breakdowns:
        labels = [p.group for p in b.points]
        per_run = [
            (r.label, r.index, [_triple(p.values[r.index]) for p in b.points]) for r in report.runs
        ]
        if b.curve:
            chart = line_chart([p.x for p in b.points], labels, per_run, slanted=not b.numeric)  # type: ignore[misc]
        else:
            chart = bar_chart(labels, per_run)
        charts.append((b, chart))
    meta = {
        "runs": [r.label for r in report.runs],
        "tasks": [
            {"id": row.task.id, "title": display_title(row.task.title, row.stand_in)}
            for row in report.rows
        ],  # fmt: skip
    }
    samples = {"columns": list(drill.columns), "rows": drill.rows, "prompts": drill.prompts,
               "views": {str(i): view for i, view in drill.views.items()}}  # fmt: skip
    title = ", ".join(r.label for r in report.runs)
    compare_js, compare_json = "", ""
    if report.comparison is not None:  # the compare view (protocol 1.9), with its own script
        from trustmh.compare import as_plain

        compare_js = (TEMPLATES / "compare.js").read_text(encoding="utf-8")
        compare_json = script_json(_plain(as_plain(report.comparison)))
    return env.get_template("report.html.j2").render(
        report=report,
        drill=drill,
        radar=radar,
        radar_axes=names,
        minis=minis,
        left_out=left_out,
        breakdown_charts=charts,
        title=short(title, 120),
        css=Markup(css),
        js=Markup(js),
        script_hash=script_hash(js),
        compare_js=Markup(compare_js),
        compare_hash=script_hash(compare_js) if compare_js else "",
        compare_json=Markup(compare_json),
        meta_json=Markup(script_json(meta)),
        samples_json=Markup(script_json(samples)),
    )


def _triple(m: MetricValue | None) -> tuple[float, float | None, float | None] | None:
    if m is None or m.value is None or not math.isfinite(m.value):
        return None
    return m.value, m.ci_low, m.ci_high


def csv_rows(report: Report) -> list[dict[str, Any]]:
    """One row per (run, subtask, metric), breakdown groups included, with ranks on primary rows."""
    from trustmh.metrics import split_metric_name

    out = []
    for row in report.rows:
        n_ranked = sum(1 for c in row.cells if c and c.rank is not None)
        for run in report.runs:
            cell = row.cells[run.index]
            if cell is None:
                continue
            for m in run.results.get(row.task.id, []):
                base, dim, group = split_metric_name(m.name)
                line: dict[str, Any] = {
                    "run": run.label, "run_dir": str(run.run_dir), "model": run.spec,
                    "pillar": row.task.pillar, "subtask": row.task.id, "metric": base,
                    "dimension": dim or "", "group": group or "", "value": m.value,
                    "ci_low": m.ci_low, "ci_high": m.ci_high, "direction": m.direction,
                    "primary": m.primary, "n": m.n, "n_unparsed": m.n_unparsed,
                    "n_refused": m.n_refused, "n_error": m.n_error, "note": m.note or "",
                    "limit": run.limit, "stand_in": run.stand_ins.get(row.task.id),
                    "judge": ";".join(cell.judge.models) if cell.judge else None,
                    "judge_verdict": (cell.judge.verdict or "not measured") if cell.judge else None,
                    **validity_columns(cell, m),
                }  # fmt: skip
                if m.primary:
                    p = cell.placement
                    line.update(
                        samples=cell.counts["samples"], refused=cell.counts["refused"],
                        unparsed=cell.counts["unparsed"], failed=cell.counts["failed"],
                        not_recorded=cell.counts["not_recorded"],
                        rank_among_runs=cell.rank, runs_ranked=n_ranked if cell.rank else None,
                        rank_among_recorded=p.rank if p else cell.reference_rank,
                        recorded_compared=";".join(p.models) if p else None,
                        not_placed_because=p.reason if p else None,
                        paper_rank=cell.paper_rank.used if cell.paper_rank else None,
                        paper_rank_printed=cell.paper_rank.printed if cell.paper_rank else None,
                    )  # fmt: skip
                out.append(line)
    return out


def validity_columns(cell: Any, m: MetricValue) -> dict[str, Any]:
    """Protocol 1.8 columns of one CSV row: the metric's null floor, the chance-corrected value
    (primary rows), the subtask's parsed share (every row) and its flags (primary rows)."""
    record = cell.validity
    floor = (record.get("floors") or {}).get(m.name) or {}
    coverage = record.get("coverage") or {}
    flags = "; ".join(f"{f['kind']}: {f['reason']}" for f in record.get("flags", []))
    return {
        "floor": floor.get("value"),
        "floor_null": floor.get("null"),
        "chance_corrected": record.get("chance_corrected") if m.primary else None,
        "coverage": coverage.get("share"),
        "flags": flags if m.primary else "",
    }


def report_json(report: Report) -> dict[str, Any]:
    """The report's numbers as plain data (no samples: those are in the runs' stores)."""
    return {
        "generated": report.generated,
        "trustmh_version": report.version,
        "runs": [
            {
                "index": r.index,
                "label": r.label,
                "run_dir": str(r.run_dir),
                "model": r.spec,
                "judge": r.judge,
                "paper_model": r.paper_model,
                "config": r.config,
                "meta": r.meta,
            }
            for r in report.runs
        ],  # fmt: skip
        "pillars": report.pillars,
        "radar": [[asdict(s) for s in per_run] for per_run in report.radar],
        "pillar_ranks_among_runs": report.pillar_ranks,
        "subtasks": [_plain(row) for row in report.rows],
        "breakdowns": [_plain(b) for b in report.breakdowns],
        "judges": [_plain(j) for j in report.judges],
        "paper": {
            "source": report.paper.source,
            "models": report.paper.models,
            "ranks": _plain(report.paper.by_subtask),
            "pillar_ranks": report.paper_pillar_ranks,
        },  # fmt: skip
        "comparison": _comparison_json(report),
        "reproduced": None
        if report.reproduced is None
        else {"source": report.reproduced.source, "error": report.reproduced.error},
    }


def _comparison_json(report: Report) -> Any:
    """The pairwise comparison (protocol 1.9), or why there is none (one run: null)."""
    if report.comparison is None:
        return None if report.comparison_error is None else {"error": report.comparison_error}
    from trustmh.compare import as_plain

    return _plain(as_plain(report.comparison))


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def sibling_paths(html: Path) -> tuple[Path, Path, Path]:
    """(CSV, JSON, figures folder) written beside the HTML file, named after it."""
    stem = html.with_suffix("") if html.suffix else html
    return (stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + ".json"),
            stem.with_name(stem.name + "-figures"))  # fmt: skip


def write_files(report: Report, html_path: Path, figures: bool = True) -> ReportFiles:
    """Write the page, the CSV, the JSON and (when matplotlib is installed) the PNG figures."""
    from trustmh.report import plots

    csv_path, json_path, fig_dir = sibling_paths(html_path)
    drill = drill_down(report)
    page = render_html(report, drill)
    # each file replaces its previous version in one rename: a kill mid-write leaves the old one
    write_text_atomic(html_path, page, "-o", make_parents=True)
    with atomic_output(csv_path, "-o", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(csv_rows(report))
    write_text_atomic(
        json_path,
        json.dumps(report_json(report), indent=1, ensure_ascii=False, default=_json_default),
        "-o",
    )
    files = ReportFiles(html_path, csv_path, json_path, n_samples=len(drill.rows))
    if not figures:
        return files
    if plots.available():
        files.figures = plots.write_figures(report, fig_dir)
    else:
        files.notes.append(
            "PNG figures skipped: matplotlib is not installed (pip install 'trustmh[report]')"
        )
    return files
