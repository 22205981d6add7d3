"""Repeated samples per item (`--epochs N`, protocol 1.7) and their spread.

A model whose temperature cannot be set (OpenAI's reasoning models answer at their default 1)
gives a different reply each time: one sample per item measures one draw. With `--epochs N` every
item is asked N times; epoch 0 is the ordinary sample (same id and cache key as a run without
epochs), epoch k > 0 a copy whose id ends in `#e<k>` and whose request carries the epoch in its
cache key. Each epoch is aggregated on its own by the task's own aggregate function; a metric's
reported value is the mean over epochs, its interval the mean of the epochs' bounds (one epoch's
uncertainty over items: conservative for the mean of N epochs, as the epochs share their items), and
the primary metric gains its per-epoch values (`metric[epoch=k]`) and their standard deviation.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from trustmh.types import MetricValue, Sample, ScoredSample

EPOCH_KEY = "epoch"  # sample meta key holding the epoch of a repeat


def epoch_of(meta: dict[str, Any]) -> int:
    """The epoch of a sample from its meta (0 for an ordinary sample)."""
    value = meta.get(EPOCH_KEY, 0)
    return value if isinstance(value, int) else 0


def with_epochs(samples: Iterable[Sample], epochs: int) -> Iterator[Sample]:
    """Each sample followed by its repeats for epochs 1..N-1 (a repeat keeps the item's variants
    next to each other, as `--limit` expects)."""
    for sample in samples:
        yield sample
        for epoch in range(1, epochs):
            yield replace(
                sample, id=f"{sample.id}#e{epoch}", meta={**sample.meta, EPOCH_KEY: epoch}
            )


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def combine(per_epoch: list[list[MetricValue]]) -> list[MetricValue]:
    """One metric list from each epoch's: means over epochs (see the module docstring), with the
    primary metric's per-epoch values and spread added."""
    names: dict[str, None] = {}
    for metrics in per_epoch:
        names.update(dict.fromkeys(m.name for m in metrics))
    by_name = [{m.name: m for m in metrics} for metrics in per_epoch]
    out: list[MetricValue] = []
    extra: list[MetricValue] = []
    n_epochs = len(per_epoch)
    for name in names:
        found = [epoch[name] for epoch in by_name if name in epoch]
        first = found[0]
        bounds_known = all(m.ci_low is not None and m.ci_high is not None for m in found)
        merged = MetricValue(
            name=name,
            value=_mean([m.value for m in found]),
            n=max(m.n for m in found),
            direction=first.direction,
            primary=first.primary,
            ci_low=_mean([m.ci_low for m in found]) if bounds_known else None,
            ci_high=_mean([m.ci_high for m in found]) if bounds_known else None,
            n_unparsed=sum(m.n_unparsed for m in found),
            n_refused=sum(m.n_refused for m in found),
            n_error=sum(m.n_error for m in found),
            note=first.note,
        )
        out.append(merged)
        if not first.primary:
            continue
        values = [m.value for m in found if m.value is not None]
        spread = statistics.stdev(values) if len(values) > 1 else None
        summary = f"mean of {n_epochs} epochs (each item asked {n_epochs} times)"
        if spread is not None:
            summary += f"; epoch sd {spread:.4f}, range {min(values):.4f}-{max(values):.4f}"
        merged.note = "; ".join(p for p in (merged.note, summary) if p)
        extra.append(MetricValue(f"{name}_epoch_sd", spread, len(values), "lower",
                                 note=f"standard deviation of {name} over {n_epochs} epochs"))  # fmt: skip
        for epoch, metrics in enumerate(by_name):
            hit = metrics.get(name)
            if hit is not None:
                extra.append(replace(hit, name=f"{name}[epoch={epoch}]", primary=False))
    return out + extra


def aggregate_epochs(
    scored: list[ScoredSample],
    aggregate: Callable[[list[ScoredSample], dict[str, Any]], list[MetricValue]],
    options: dict[str, Any],
) -> list[MetricValue]:
    """The task's metrics over `scored`: one aggregate when every sample is of epoch 0, else one
    per epoch combined by `combine`."""
    groups: dict[int, list[ScoredSample]] = {}
    for sample in scored:
        groups.setdefault(epoch_of(sample.meta), []).append(sample)
    if len(groups) <= 1:
        return aggregate(scored, options)
    return combine([aggregate(groups[e], options) for e in sorted(groups)])
