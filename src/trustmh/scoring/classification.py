"""Scoring and aggregation shared by the classification subtasks (protocol 1.3, 1.5).

Per sample: `outcome(answer, reply)` gives the status of protocol 1.3: "ok" when an answer was
parsed, else "refused" when the reply matches the refusal detector, else "unparsed"; both
non-ok statuses count as wrong and stay in the denominator. Samples whose request failed
("error") or that a replay does not have ("missing") are left out of every number and counted.

Per subtask: `accuracy_metrics` gives the primary accuracy with its seeded bootstrap interval and
the counts of unparsed, refused and errored samples, the refusal rate, and per-group accuracies
stored under the breakdown convention (`accuracy[language=zh]`). `macro_f1` and
`summary.mean_metric` serve the secondary metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from trustmh.metrics import BOOTSTRAP_RESAMPLES, breakdown_name, percentile_interval
from trustmh.scoring.outcomes import count_status, scored_only
from trustmh.scoring.refusal import refusal_marker
from trustmh.scoring.summary import mean_metric
from trustmh.types import MetricValue, ParseStatus, ScoredSample

# A group key of a sample: one value, several (a question tagged with two topics), or None.
GroupFn = Callable[[ScoredSample], str | Iterable[str] | None]


def outcome(answer: Any, reply: str | None) -> tuple[ParseStatus, dict[str, Any]]:
    """(status, detail) of a classification reply given what the parser found (None = nothing)."""
    if answer is not None:
        return "ok", {}
    marker = refusal_marker(reply)
    if marker is not None:
        return "refused", {"refusal_marker": marker}
    return "unparsed", {}


def _groups(sample: ScoredSample, fn: GroupFn) -> list[str]:
    key = fn(sample)
    if key is None:
        return []
    return [key] if isinstance(key, str) else [str(k) for k in key]


def accuracy_metrics(
    scored: Sequence[ScoredSample],
    options: Mapping[str, Any],
    *,
    name: str = "accuracy",
    value: Callable[[ScoredSample], float] | None = None,
    breakdowns: Mapping[str, GroupFn] | None = None,
    note: str | None = None,
) -> list[MetricValue]:
    """The primary accuracy (unparsed and refused replies count as wrong), the refusal rate and
    per-group accuracies. `value` reads a sample's credit (default: its score value)."""
    seed = int(options.get("seed", 0))
    read = value or (lambda s: float(s.score.value or 0.0))
    answered = scored_only(scored)
    credits = [read(s) for s in answered]
    primary = mean_metric(name, credits, seed, primary=True, note=_note(scored, note))
    primary.n_unparsed = count_status(answered, "unparsed")
    primary.n_refused = count_status(answered, "refused")
    primary.n_error = count_status(scored, "error")
    out = [primary]
    out.append(
        mean_metric(
            "refusal_rate",
            [float(s.score.status == "refused") for s in answered],
            seed,
            direction="lower",
            note="share of replies that chose nothing and match the refusal detector (protocol 1.3)",
        )
    )
    for dimension, fn in (breakdowns or {}).items():
        out.extend(group_metrics(answered, name, dimension, fn, read, seed))
    return out


def group_metrics(
    answered: Sequence[ScoredSample],
    metric: str,
    dimension: str,
    fn: GroupFn,
    read: Callable[[ScoredSample], float],
    seed: int,
) -> list[MetricValue]:
    """`metric[dimension=value]` for every group value, in sorted order."""
    by_group: dict[str, list[ScoredSample]] = {}
    for s in answered:
        for key in _groups(s, fn):
            by_group.setdefault(key, []).append(s)
    out = []
    for key in sorted(by_group):
        members = by_group[key]
        m = mean_metric(breakdown_name(metric, dimension, key), [read(s) for s in members], seed)
        m.n_unparsed = count_status(members, "unparsed")
        m.n_refused = count_status(members, "refused")
        out.append(m)
    return out


def _note(scored: Sequence[ScoredSample], note: str | None) -> str | None:
    parts = [note] if note else []
    n_missing = count_status(scored, "missing")
    if n_missing:
        parts.append(f"{n_missing} items not recorded")
    n_error = count_status(scored, "error")
    if n_error:
        parts.append(f"{n_error} requests failed and are left out")
    return "; ".join(parts) or None


def macro_f1(gold: Sequence[str], predicted: Sequence[str | None]) -> float | None:
    """Macro-averaged F1 over the classes that occur in `gold` or among valid predictions (None =
    no prediction: a miss for the gold class, no false positive); None for no items."""
    import numpy as np  # loaded on first use: importing this module stays cheap

    if not gold:
        return None
    classes = sorted(set(gold) | {p for p in predicted if p is not None})
    scores = []
    for label in classes:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, predicted, strict=True) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label and p != label)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def mean_of_groups_ci(
    groups: Sequence[Sequence[float]], seed: int
) -> tuple[float | None, float | None, float | None]:
    """(mean of the group means, bootstrap 95% interval): each resample draws every group's items
    with replacement within that group (stratified); used when a score averages two datasets."""
    import numpy as np  # loaded on first use: importing this module stays cheap

    arrays = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not arrays:
        return None, None, None
    value = float(np.mean([a.mean() for a in arrays]))
    if any(a.size < 2 for a in arrays):
        return value, None, None
    rng = np.random.default_rng(seed)
    means = np.mean(
        [
            a[rng.integers(0, a.size, size=(BOOTSTRAP_RESAMPLES, a.size))].mean(axis=1)
            for a in arrays
        ],
        axis=0,
    )
    low, high = percentile_interval(means)
    return value, low, high
