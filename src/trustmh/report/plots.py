"""PNG figures beside the HTML report (for papers and slides), drawn with matplotlib's Agg canvas.

matplotlib is the optional extra `trustmh[report]`; without it the report is written without PNGs
and says so. Figures are built on `Figure` objects (no pyplot global state).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from trustmh.outputs import atomic_output
from trustmh.report.aggregate import Breakdown, Report
from trustmh.report.charts import colour

DPI = 150


def available() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def file_slug(text: str) -> str:
    """A filesystem-safe name part."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "x"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def radar_png(report: Report, path: Path) -> Path:
    """The pillar radar: one polygon per run, 0-1 (1 = best) on each pillar."""
    fig = _figure(6.4, 5.6)
    ax = fig.add_subplot(projection="polar")
    n = len(report.pillars)
    angles = [2 * math.pi * i / n for i in range(n)]
    ax.set_theta_offset(math.pi / 2)  # first pillar at the top, clockwise, as on the page
    ax.set_theta_direction(-1)
    ax.set_xticks(angles)
    ax.set_xticklabels(report.pillars)
    ax.set_ylim(0, 1)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0])
    ax.tick_params(axis="y", labelsize=7)
    for run, scores in zip(report.runs, report.radar, strict=True):
        points = [(a, s.value) for a, s in zip(angles, scores, strict=True) if s.value is not None]
        if not points:
            continue
        xs = [a for a, _ in points] + [points[0][0]]
        ys = [v for _, v in points] + [points[0][1]]
        ax.plot(
            xs,
            ys,
            color=colour(run.index),
            linewidth=1.6,
            marker="o",
            markersize=3,
            label=run.label,
        )
        ax.fill(xs, ys, color=colour(run.index), alpha=0.08)
    ax.set_title(
        "Pillars (1 = best; mean of the pillar's subtasks on a 0-1 scale)", fontsize=9, pad=26
    )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), fontsize=7, frameon=False)
    fig.tight_layout()
    with atomic_output(path, "-o", binary=True) as handle:
        fig.savefig(handle, format="png")
    return path


def breakdown_png(report: Report, breakdown: Breakdown, path: Path) -> Path:
    """A breakdown: a curve over levels (numeric or named), grouped horizontal bars over groups."""
    labels = [p.group for p in breakdown.points]
    height = 3.6 if breakdown.curve else max(2.2, 0.35 * len(labels) * max(len(report.runs), 1) + 1)
    fig = _figure(6.4, height)
    ax = fig.add_subplot()
    n_runs = max(len(report.runs), 1)
    for run in report.runs:
        values = [p.values[run.index] for p in breakdown.points]
        keep = [(i, v) for i, v in enumerate(values) if v is not None and v.value is not None]
        if not keep:
            continue
        ys = [v.value for _, v in keep]
        lows = [_error_bar(v.value, v.ci_low) for _, v in keep]
        highs = [_error_bar(v.ci_high, v.value) for _, v in keep]
        if breakdown.curve:
            xs = [breakdown.points[i].x for i, _ in keep]
            ax.errorbar(xs, ys, yerr=[lows, highs], color=colour(run.index), marker="o",
                        markersize=3, capsize=2, linewidth=1.4, label=run.label)  # fmt: skip
        else:
            height_each = 0.8 / n_runs
            pos = [i + run.index * height_each - 0.4 + height_each / 2 for i, _ in keep]
            ax.barh(pos, ys, height=height_each * 0.9, xerr=[lows, highs], color=colour(run.index),
                    error_kw={"elinewidth": 0.8, "capsize": 1.5}, label=run.label)  # fmt: skip
    arrow = {"higher": "higher is better", "lower": "lower is better"}.get(
        breakdown.direction, "no better direction"
    )
    title = f"{breakdown.task}: {breakdown.metric} by {breakdown.dimension} ({arrow})"
    ax.set_title(title, fontsize=9)
    if breakdown.curve:
        ax.set_xlabel(breakdown.dimension)
        ax.set_ylabel(breakdown.metric)
        if not breakdown.numeric:  # named levels, evenly spaced in their order
            ax.set_xticks([p.x for p in breakdown.points])
            ax.set_xticklabels([lbl if len(lbl) <= 24 else lbl[:23] + "…" for lbl in labels],
                               rotation=30, ha="right", fontsize=7)  # fmt: skip
    else:
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(
            [lbl if len(lbl) <= 40 else lbl[:39] + "…" for lbl in labels], fontsize=7
        )
        ax.invert_yaxis()
        ax.set_xlabel(breakdown.metric)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    with atomic_output(path, "-o", binary=True) as handle:
        fig.savefig(handle, format="png")
    return path


def _error_bar(upper: float | None, lower: float | None) -> float:
    """Length of one error-bar arm, `upper - lower`; 0 when a bound is missing or non-finite, or
    when a percentile interval does not contain the value (matplotlib rejects negative lengths)."""
    if upper is None or lower is None or not math.isfinite(upper - lower):
        return 0.0
    return max(0.0, upper - lower)


def write_figures(report: Report, folder: Path) -> list[Path]:
    """Write the radar and one figure per breakdown into `folder`; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [radar_png(report, folder / "radar.png")]
    for b in report.breakdowns:
        name = file_slug(f"{b.task}-{b.metric}-by-{b.dimension}") + ".png"
        paths.append(breakdown_png(report, b, folder / name))
    return paths
