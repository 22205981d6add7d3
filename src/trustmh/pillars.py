"""Pillar scores: one number per pillar, and exactly which subtasks it covers.

A pillar score is the mean of its subtasks' primary metrics, each put on a 0-1 scale where 1 is
best (1 - value when lower is better). It always says how many of the pillar's subtasks it covers
("2 of 5") and why each other one is left out: not run, no value (e.g. not scored: no judge), a
value whose range is unknown, a STAND-IN dataset or an extension BEYOND the paper (those two only
enter when asked, `include_substitutes`). Used by the terminal summary of `trustmh run` and by the
report, so both say the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class PillarScore:
    """A pillar's score over the subtasks that entered it, and why the others did not."""

    value: float | None
    used: list[str]
    left_out: dict[str, str] = field(default_factory=dict)  # subtask -> why it is not in `value`
    total: int = 0  # the pillar's subtasks in the protocol

    @property
    def coverage(self) -> str:
        """ "k of n subtasks"."""
        return f"{len(self.used)} of {max(self.total, len(self.used))} subtasks"


@dataclass(frozen=True)
class Entry:
    """One subtask's part in a pillar score."""

    task: str
    value: float | None
    direction: str
    scale: tuple[float, float] | None  # its 0-1 mapping (`value_scale`); None: range unknown
    stand_in: str | None = None  # the substitute dataset it ran on
    beyond: bool = False  # an extension beyond the paper (not in the protocol)
    note: str | None = None  # why there is no value (e.g. "not scored: no judge")
    flagged: str | None = None  # why the value is kept out (protocol 1.8: degenerate, coverage)


def unit_value(value: float, direction: str, scale: tuple[float, float]) -> float:
    """A value mapped onto 0-1 where 1 is best (flipped when lower is better), clipped."""
    low, high = scale
    unit = (value - low) / (high - low) if high != low else 0.0
    unit = min(1.0, max(0.0, unit))
    return 1.0 - unit if direction == "lower" else unit


def value_scale(declared: tuple[float, float] | None, values: Sequence[float]) -> tuple[float, float] | None:  # fmt: skip
    """The range used to put a subtask on the 0-1 scale: its declared range, else 0-1 when every
    observed value lies in it (proportions, rates, correlations >= 0), else None (unknown)."""
    if declared:
        return declared
    if values and all(0.0 <= v <= 1.0 for v in values):
        return (0.0, 1.0)
    return None


def finite(value: float | None) -> bool:
    """A number that can be averaged."""
    return value is not None and math.isfinite(value)


def pillar_score(entries: Sequence[Entry], total: int, include_substitutes: bool = False) -> PillarScore:  # fmt: skip
    """The pillar score over `entries` (the pillar's subtasks that ran); `total` is the number of
    subtasks the pillar has in the protocol."""
    used: list[str] = []
    units: list[float] = []
    left_out: dict[str, str] = {}
    for e in entries:
        if e.stand_in and not include_substitutes:
            left_out[e.task] = f"STAND-IN ({e.stand_in})"
        elif e.beyond and not include_substitutes:
            left_out[e.task] = "BEYOND the paper"
        elif not finite(e.value):
            left_out[e.task] = e.note or "no value"
        elif e.flagged:
            left_out[e.task] = e.flagged
        elif e.scale is None:
            left_out[e.task] = "value range unknown"
        else:
            used.append(e.task)
            units.append(unit_value(e.value, e.direction, e.scale))  # type: ignore[arg-type]
    value = sum(units) / len(units) if units else None
    return PillarScore(value, used, left_out, total)
