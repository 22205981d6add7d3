"""Geometry of the page's inline SVG charts (radar, line, grouped bars), computed server-side.

Functions return plain numbers and strings; the template draws them, so every label passes through
the template's autoescaping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

# Colour-blind-safe palette (Okabe-Ito, then Tol's muted), cycled for more runs.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#332288", "#117733", "#882255", "#44AA99", "#999933", "#AA4499")  # fmt: skip


def colour(index: int) -> str:
    """The colour of the run with this index."""
    return PALETTE[index % len(PALETTE)]


def short(text: str, limit: int = 32) -> str:
    """A label cut to `limit` characters with an ellipsis (the full text goes in a tooltip)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class RadarSeries:
    """One run's polygon."""

    label: str
    colour: str
    points: list[tuple[float, float, str]]  # x, y, tooltip
    path: str


@dataclass
class RadarChart:
    """A radar: axes with labels, rings and one series per run."""

    size: int  # height; the width adds room for the axis labels on both sides
    width: int
    centre_x: float
    centre: float
    radius: float
    axes: list[dict[str, object]]
    rings: list[dict[str, object]]
    series: list[RadarSeries] = field(default_factory=list)


def radar_chart(axes: Sequence[str], series: Sequence[tuple[str, int, Sequence[float | None]]],
                size: int = 360) -> RadarChart:  # fmt: skip
    """Axes evenly spaced clockwise from the top; each series is (label, run index, 0-1 values or
    None per axis); a missing value is skipped (the polygon joins the values present)."""
    centre = size / 2
    radius = size / 2 - 34
    width = size + 150
    centre_x = width / 2
    n = max(len(axes), 1)

    def at(i: int, r: float) -> tuple[float, float]:
        angle = -math.pi / 2 + 2 * math.pi * i / n
        return centre_x + r * math.cos(angle), centre + r * math.sin(angle)

    axis_items = []
    for i, name in enumerate(axes):
        x, y = at(i, radius)
        lx, ly = at(i, radius + 16)
        cos = math.cos(-math.pi / 2 + 2 * math.pi * i / n)
        anchor = "middle" if abs(cos) < 0.2 else ("start" if cos > 0 else "end")
        axis_items.append({"name": name, "x": x, "y": y, "lx": lx, "ly": ly + 4, "anchor": anchor})
    rings = []
    for level in (0.25, 0.5, 0.75, 1.0):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (at(i, radius * level) for i in range(n)))
        rings.append(
            {"level": level, "points": points, "lx": centre_x + 3, "ly": centre - radius * level}
        )
    chart = RadarChart(size, width, centre_x, centre, radius, axis_items, rings)
    for label, index, values in series:
        points = []
        for i, value in enumerate(values):
            if value is None:
                continue
            x, y = at(i, radius * value)
            points.append((x, y, f"{label} — {axes[i]}: {value:.2f}"))
        path = "M " + " L ".join(f"{x:.1f} {y:.1f}" for x, y, _ in points) + " Z" if points else ""
        chart.series.append(RadarSeries(label, colour(index), points, path))
    return chart


@dataclass
class Axis:
    """A value axis: range and tick marks."""

    low: float
    high: float
    ticks: list[float]


def nice_axis(values: Sequence[float], include_zero: bool = True) -> Axis:
    """A value range padded to round ticks (about five)."""
    finite = [v for v in values if math.isfinite(v)]
    low = min([*finite, 0.0] if include_zero else finite or [0.0])
    high = max([*finite, 0.0] if include_zero else finite or [1.0])
    if high == low:
        high = low + 1.0
    raw_step = (high - low) / 5
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    low = math.floor(low / step) * step
    high = math.ceil(high / step) * step
    ticks = [round(low + i * step, 10) for i in range(int(round((high - low) / step)) + 1)]
    return Axis(low, high, ticks)


@dataclass
class XYChart:
    """A line chart over a numeric dimension or a grouped horizontal bar chart over groups."""

    kind: str  # "line" or "bars"
    width: int
    height: int
    plot: dict[str, float]  # left, top, right, bottom of the plot area
    axis: Axis
    ticks: list[dict[str, object]]
    categories: list[dict[str, object]]
    series: list[dict[str, object]]


Value = tuple[float, float | None, float | None] | None  # value, CI low, CI high


def line_chart(xs: Sequence[float], labels: Sequence[str],
               series: Sequence[tuple[str, int, Sequence[Value]]], slanted: bool = False) -> XYChart:  # fmt: skip
    """Lines over x (e.g. perturbation intensity), one per run, with CI whiskers; `slanted` tilts
    long x labels (named levels)."""
    width, height = 520, 260 + (95 if slanted else 0)
    plot = {"left": 56.0, "top": 14.0, "right": width - 40.0, "bottom": 220.0}
    values = [b for _, _, vals in series for v in vals if v for b in v if b is not None]
    axis = nice_axis(values)
    x_low, x_high = min(xs), max(xs)
    span = (x_high - x_low) or 1.0

    def px(x: float) -> float:
        return plot["left"] + (x - x_low) / span * (plot["right"] - plot["left"])

    def py(y: float) -> float:
        return plot["bottom"] - (y - axis.low) / (axis.high - axis.low) * (
            plot["bottom"] - plot["top"]
        )

    ticks = [{"y": py(t), "label": f"{t:g}"} for t in axis.ticks]
    categories = [
        {"x": px(x), "label": short(label, 24) if slanted else label, "full": label,
         "angle": -35 if slanted else 0}
        for x, label in zip(xs, labels, strict=True)
    ]  # fmt: skip
    out = []
    for label, index, vals in series:
        points = []
        for x, group, v in zip(xs, labels, vals, strict=True):
            if v is None:
                continue
            value, low, high = v
            points.append({
                "x": px(x), "y": py(value),
                "y_low": py(low) if low is not None else None,
                "y_high": py(high) if high is not None else None,
                "tip": f"{label} — {group}: {value:.4g}"
                + (f" [{low:.3g}, {high:.3g}]" if low is not None and high is not None else ""),
            })  # fmt: skip
        path = "M " + " L ".join(f"{p['x']:.1f} {p['y']:.1f}" for p in points) if points else ""
        out.append({"label": label, "colour": colour(index), "points": points, "path": path})
    return XYChart("line", width, height, plot, axis, ticks, categories, out)


def bar_chart(labels: Sequence[str], series: Sequence[tuple[str, int, Sequence[Value]]]) -> XYChart:
    """Grouped horizontal bars: one block per group (e.g. jailbreak method), one bar per run."""
    n_series = max(len(series), 1)
    bar, gap = 12.0, 10.0
    block = n_series * bar + gap
    width = 560
    plot = {"left": 190.0, "top": 8.0, "right": width - 24.0}
    plot["bottom"] = plot["top"] + block * len(labels)
    height = int(plot["bottom"] + 30)
    values = [b for _, _, vals in series for v in vals if v for b in v if b is not None]
    axis = nice_axis(values)

    def px(x: float) -> float:
        return plot["left"] + (x - axis.low) / (axis.high - axis.low) * (
            plot["right"] - plot["left"]
        )

    zero = px(min(max(0.0, axis.low), axis.high))
    ticks = [{"x": px(t), "label": f"{t:g}"} for t in axis.ticks]
    categories = [
        {"y": plot["top"] + i * block + (block - gap) / 2 + 4, "label": short(label), "full": label}
        for i, label in enumerate(labels)
    ]
    out = []
    for s, (label, index, vals) in enumerate(series):
        bars = []
        for i, (group, v) in enumerate(zip(labels, vals, strict=True)):
            if v is None:
                continue
            value, low, high = v
            x = px(value)
            y = plot["top"] + i * block + s * bar
            bars.append({
                "x": min(x, zero), "y": y, "w": max(abs(x - zero), 1.0), "h": bar - 2,
                "x_low": px(low) if low is not None else None,
                "x_high": px(high) if high is not None else None, "cy": y + (bar - 2) / 2,
                "tip": f"{label} — {group}: {value:.4g}"
                + (f" [{low:.3g}, {high:.3g}]" if low is not None and high is not None else ""),
            })  # fmt: skip
        out.append({"label": label, "colour": colour(index), "bars": bars})
    return XYChart("bars", width, height, plot, axis, ticks, categories, out)
