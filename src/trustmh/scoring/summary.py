"""Result rows built from per-item values, shared by the tasks' aggregate functions.

`mean_metric` is the one way a subtask turns per-item values (0/1 hits, judge ratings, rates) into
a stored number: their mean with a seeded percentile-bootstrap 95% interval over items (protocol
1.5). `judged_counts` gives the counts a judge-scored subtask reports beside its score, and
`with_not_recorded` adds to a note how many samples a replay had no reply for.
"""

from __future__ import annotations

from collections.abc import Sequence

from trustmh.metrics import proportion_ci
from trustmh.scoring.outcomes import count_status, scored_only
from trustmh.types import Direction, MetricValue, ScoredSample


def mean_metric(
    name: str,
    values: Sequence[float],
    seed: int,
    *,
    direction: Direction = "higher",
    primary: bool = False,
    note: str | None = None,
    n: int | None = None,
    **counts: int,
) -> MetricValue:
    """The mean of `values` with its bootstrap interval (value None when there are none). `n`
    overrides the count shown (e.g. turns, when the values are per-dialogue means); `counts` sets
    `n_unparsed`, `n_refused` and `n_error`."""
    import numpy as np  # loaded on first use: importing this module stays cheap

    low, high = proportion_ci(values, seed)
    return MetricValue(
        name=name,
        value=float(np.mean(values)) if len(values) else None,
        n=len(values) if n is None else n,
        direction=direction,
        primary=primary,
        ci_low=low,
        ci_high=high,
        note=note,
        **counts,
    )


def judged_counts(scored: Sequence[ScoredSample]) -> dict[str, int]:
    """`n_unparsed` (verdicts that never parsed), `n_refused` (replies flagged as refusals in the
    score detail: judged like any reply, protocol 1.3) and `n_error` (failed requests)."""
    return {
        "n_unparsed": count_status(scored, "unparsed"),
        "n_refused": sum(bool(s.score.detail.get("refusal")) for s in scored_only(scored)),
        "n_error": count_status(scored, "error"),
    }


def with_not_recorded(note: str, scored: Sequence[ScoredSample]) -> str:
    """`note`, plus "; N items not recorded" when a replay had no reply for some samples."""
    n_missing = count_status(scored, "missing")
    return f"{note}; {n_missing} items not recorded" if n_missing else note
