"""Robustness pillar (protocol 8; DEFAULT, reconstructed): a reliability subtask re-run with its
user-written text perturbed at increasing intensity (`trustmh.transforms.perturb`).

`robustness_task(base, ...)` wraps any task whose samples say which text the user wrote:
- every base sample carries `meta["user_spans"]`, a list of `[message_index, start, end]`: the
  user-written text is `messages[message_index]["content"][start:end]` (a whole seeker turn is
  `[i, 0, len(content)]`); spans of one message do not overlap; an item with an empty list (no
  user-written text) is left out. Nothing outside the spans (system message, instructions,
  options, output format) is ever perturbed, nor the target or the rest of the metadata;
- base samples have variant `clean`; the robustness task uses the variant for the level.

Samples: for each base item, the clean sample, then one per level (variant = level name, e.g.
`char@0.1+word@0.1`); the sample id stays the base item's, so `--limit N` takes N whole items.
A perturbed sample's meta holds `perturbation`: the level, run seed, sample id, per-operator
seeds, the operator log and the clean parts, so it can be regenerated and audited exactly.

Scoring: the base task's scorer, given the reply to the perturbed input but the clean sample, so a
judge sees the clean history (protocol 8.1: quality judged as if the user had written cleanly).

Aggregate: S0 (clean) and S_l (each level) are the base task's primary metric on the same items:
those with a usable score at every level (paired; issue 17), with the base task's intervals (`score[level=...]`); the relative drop
D_l = (S0 - S_l) / S0 (sign flipped for a lower-is-better base) per level (`relative_drop[level=...]`)
and its mean over the levels (primary, lower is better). Drop intervals: seeded paired bootstrap
over items (1,000 resamples) of the items' own scores (`SampleScore.value`; None is left out).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np

from trustmh.data.sources import DataContext
from trustmh.metrics import BOOTSTRAP_RESAMPLES, breakdown_name, percentile_interval
from trustmh.paired import ACCURACY, Paired, Units, block_means, mean_of_columns
from trustmh.scoring.outcomes import NOT_SCORED
from trustmh.tasks import reliability
from trustmh.tasks.base import PlanContext, PlannedRequest, ScoreContext, Task
from trustmh.transforms.perturb import parse_levels, perturb_levels
from trustmh.transforms.segment import segmenter_name
from trustmh.types import (
    Message,
    MetricValue,
    Response,
    Sample,
    SampleScore,
    ScoredSample,
)

CLEAN = "clean"
USER_SPANS = "user_spans"
PERTURBATION = "perturbation"
ROBUSTNESS_OPTIONS = ("levels", "segmenter")
Span = tuple[int, int, int]


# ------------------------------------------------------------------------------ user spans


def user_spans(sample: Sample, task_id: str) -> list[Span]:
    """The sample's user-written spans, checked; ValueError naming the task when they are missing
    or do not fit its messages (a bug in the base task)."""
    raw = sample.meta.get(USER_SPANS)
    where = f"{task_id}: sample {sample.id}: meta[{USER_SPANS!r}]"
    if not isinstance(raw, list | tuple):
        raise ValueError(
            f"{where} is missing; a robustness base task must mark its user-written text"
        )
    spans: list[Span] = []
    for span in raw:
        if not (
            isinstance(span, list | tuple)
            and len(span) == 3
            and all(isinstance(x, int) for x in span)
        ):
            raise ValueError(f"{where}: {span!r} is not [message_index, start, end]")
        m, start, end = span
        if not (
            0 <= m < len(sample.messages)
            and 0 <= start <= end <= len(sample.messages[m]["content"])
        ):
            raise ValueError(f"{where}: {span!r} lies outside the messages")
        spans.append((m, start, end))
    for a, b in zip(sorted(spans), sorted(spans)[1:], strict=False):
        if a[0] == b[0] and b[1] < a[2]:
            raise ValueError(f"{where}: spans {list(a)} and {list(b)} overlap")
    return spans


def replace_spans(messages: Sequence[Message], spans: Sequence[Span],
                  texts: Sequence[str]) -> tuple[tuple[Message, ...], list[list[int]]]:  # fmt: skip
    """The messages with span i replaced by texts[i], and the spans' new offsets (same order)."""
    out = [dict(m) for m in messages]
    new_spans: list[list[int]] = [[0, 0, 0] for _ in spans]
    by_message: dict[int, list[int]] = defaultdict(list)
    for i, (m, _, _) in enumerate(spans):
        by_message[m].append(i)
    for m, indices in by_message.items():
        content = messages[m]["content"]
        pieces, cursor, shift = [], 0, 0
        for i in sorted(indices, key=lambda i: spans[i][1]):
            _, start, end = spans[i]
            pieces += [content[cursor:start], texts[i]]
            new_spans[i] = [m, start + shift, start + shift + len(texts[i])]
            shift += len(texts[i]) - (end - start)
            cursor = end
        out[m]["content"] = "".join([*pieces, content[cursor:]])
    return tuple(out), new_spans


# ------------------------------------------------------------------------------ the task


def robustness_task(base: Task, *, task_id: str, title: str, metric: str, n_items: str) -> Task:
    """The robustness subtask over `base` (see the module docstring for what `base` must provide)."""
    return Task(
        id=task_id,
        pillar="robustness",
        title=title,
        section="8.1",
        status="DEFAULT",
        metric=metric,
        direction="lower",
        sources=base.sources,
        n_items=n_items,
        gen=base.gen,
        samples=partial(_samples, base),
        score=partial(_score, base),
        plan=partial(_plan, base),
        reply_tokens=base.reply_tokens,
        aggregate=partial(_aggregate, base),
        needs_judge=base.needs_judge,
        option_names=(*base.option_names, *ROBUSTNESS_OPTIONS),
        judge_attribute=base.judge_attribute,
        paired=robustness_paired(base),
        scale=(0.0, 1.0),  # a relative drop: 0 = no loss, 1 = everything lost (a gain clips to 0)
        stand_in=base.stand_in,  # perturbing a stand-in's items measures the stand-in
        # a responder that ignores its input loses nothing: protocol 1.8 flags it instead
        relative=True,
        quality_metric=breakdown_name("score", "level", CLEAN),
        base_task=base.id,
        notes=f"DEFAULT (reconstructed): {base.id} with its user-written text perturbed (protocol 8.2 "
        "operators and levels; option `levels`), scored on the clean input; score = mean relative "
        "drop (S0 - S_l) / S0 over the levels.",
    )


def _samples(base: Task, ctx: DataContext, options: dict[str, Any]) -> Iterator[Sample]:
    """Each base item clean, then at every level."""
    levels = parse_levels(options.get("levels"))
    segmenter = str(options.get("segmenter", "auto"))
    segmenter_name(segmenter)  # an unknown choice, or jieba when missing, fails before any work
    run_seed = int(options.get("seed", 0))
    for clean in base.samples(ctx, options):  # type: ignore[misc]
        if clean.variant != CLEAN:
            raise ValueError(
                f"{base.id}: sample {clean.id} has variant {clean.variant!r}, not {CLEAN!r}"
            )
        spans = user_spans(clean, base.id)
        if not spans:
            continue  # no user-written text: nothing to perturb, so no robustness item
        parts = [clean.messages[m]["content"][start:end] for m, start, end in spans]
        yield clean
        for p in perturb_levels(
            parts, levels, run_seed=run_seed, sample_id=clean.id, segmenter=segmenter
        ):
            messages, new_spans = replace_spans(clean.messages, spans, p.parts)
            meta = {
                **clean.meta,
                USER_SPANS: new_spans,
                PERTURBATION: {**p.record(), "clean_parts": parts},
            }
            yield replace(clean, messages=messages, variant=p.level, meta=meta)


def clean_view(sample: Sample) -> Sample:
    """A perturbed sample as it was before perturbation (itself when it is not perturbed)."""
    record = sample.meta.get(PERTURBATION)
    if record is None:
        return sample
    spans = [tuple(s) for s in sample.meta[USER_SPANS]]
    messages, clean_spans = replace_spans(sample.messages, spans, record["clean_parts"])  # type: ignore[arg-type]
    meta = {k: v for k, v in sample.meta.items() if k != PERTURBATION}
    return replace(sample, messages=messages, meta={**meta, USER_SPANS: clean_spans})


async def _score(base: Task, sample: Sample, response: Response, ctx: ScoreContext) -> SampleScore:
    """The base scorer on the reply, with the clean sample."""
    return await base.score(clean_view(sample), response, ctx)  # type: ignore[misc]


def _plan(base: Task, sample: Sample, ctx: PlanContext) -> Sequence[PlannedRequest]:
    """The base task's plan, on the clean sample (as its scorer sees it)."""
    return base.plan(clean_view(sample), ctx) if base.plan else ()


# ------------------------------------------------------------------------------ aggregate


def _usable(s: ScoredSample) -> bool:
    """True when the sample counts in the base metric (an unparsed classification counts as wrong,
    with value 0; an unparsed judge verdict has no value)."""
    return s.score.status not in NOT_SCORED and s.score.value is not None


def _item_value(s: ScoredSample) -> float:
    if s.score.status in NOT_SCORED or s.score.value is None:
        return float("nan")
    return float(s.score.value)


def _relative_drop(clean: Any, level: Any, sign: float) -> Any:
    """sign * (clean - level) / |clean|, elementwise for arrays; NaN where clean is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return sign * (clean - level) / np.abs(clean)


def _aggregate(
    base: Task, scored: list[ScoredSample], options: dict[str, Any]
) -> list[MetricValue]:
    """Clean and per-level base scores, per-level relative drops and their mean (primary)."""
    names = [CLEAN, *(lv.name for lv in parse_levels(options.get("levels")))]
    sign = 1.0 if base.direction == "higher" else -1.0
    by_variant: dict[str, dict[str, ScoredSample]] = defaultdict(dict)
    for s in scored:
        by_variant[s.variant][s.sample_id] = s
    # paired item sets: an item enters only when every level of it has a usable score (a judge
    # verdict that never parsed at one level takes the item out of every level), so the clean
    # score and each level's score are means over the same items
    items = [
        sid
        for sid in by_variant[CLEAN]
        if all(sid in by_variant[v] and _usable(by_variant[v][sid]) for v in names)
    ]
    n_partial = len({sid for v in names for sid in by_variant[v]}) - len(items)
    per_level = {
        v: _base_primary(base, [by_variant[v][sid] for sid in items], options) for v in names
    }
    value = {v: m.value if m is not None else None for v, m in per_level.items()}
    drops = {
        v: None if value[CLEAN] in (None, 0) or value[v] is None
        else float(_relative_drop(value[CLEAN], value[v], sign))
        for v in names[1:]
    }  # fmt: skip
    known = [d for d in drops.values() if d is not None]
    mean_drop = float(np.mean(known)) if len(known) == len(drops) else None
    item_scores = np.array(
        [[_item_value(by_variant[v][sid]) for sid in items] for v in names]
    ).reshape(len(names), len(items))
    boot = _bootstrap_drops(item_scores, sign, int(options.get("seed", 0)))

    base_metric = next((m.name for m in per_level.values() if m is not None), "score")
    notes = [
        f"mean relative drop (S0 - S_l) / S0 over {len(drops)} levels, S = {base.id} {base_metric}; "
        "DEFAULT (reconstructed, protocol 8.1)"
    ]
    if per_level[CLEAN] is not None and per_level[CLEAN].note:
        notes.append(f"base: {per_level[CLEAN].note}")  # e.g. the diagnosis stand-in label
    if n_partial:
        notes.append(f"{n_partial} items without a usable score at every level left out (paired)")
    item_means = [float(np.nanmean(r)) if np.isfinite(r).any() else None for r in item_scores]
    pairs = zip(item_means, value.values(), strict=True)
    if any(a is not None and b is not None and abs(a - b) > 1e-9 for a, b in pairs):
        notes.append(f"drop intervals from per-item scores, whose mean differs from {base_metric}")
    totals = {
        k: sum(getattr(m, k) for m in per_level.values() if m is not None)
        for k in ("n_unparsed", "n_refused", "n_error")
    }
    low, high = percentile_interval(boot.mean(axis=1)) if boot.size else (None, None)
    out = [MetricValue("relative_drop", mean_drop, len(items), "lower", True, low, high, **totals,
                       note="; ".join(notes))]  # fmt: skip
    for v, m in per_level.items():
        out.append(_level_score(base, v, m, base_metric))
    for j, (v, drop) in enumerate(drops.items()):
        low, high = percentile_interval(boot[:, j]) if boot.size else (None, None)
        out.append(MetricValue(breakdown_name("relative_drop", "level", v), drop, len(items), "lower",
                               ci_low=low, ci_high=high, note=f"(S0 - S_l) / S0 at level {v}"))  # fmt: skip
    return out


def _base_primary(
    base: Task, scored: list[ScoredSample], options: dict[str, Any]
) -> MetricValue | None:
    """The base task's primary metric over these samples (None without samples)."""
    metrics = base.aggregate(scored, options) if scored else []  # type: ignore[misc]
    return next((m for m in metrics if m.primary), metrics[0] if metrics else None)


def _level_score(base: Task, level: str, m: MetricValue | None, base_metric: str) -> MetricValue:
    """`score[level=...]`: the base metric at one level, with the base task's interval."""
    name = breakdown_name("score", "level", level)
    note = f"{base.id} {base_metric} at level {level}"
    if m is None:
        return MetricValue(name, None, 0, base.direction, note=note)
    return MetricValue(name, m.value, m.n, base.direction, ci_low=m.ci_low, ci_high=m.ci_high,
                       n_unparsed=m.n_unparsed, n_refused=m.n_refused, n_error=m.n_error, note=note)  # fmt: skip


def _bootstrap_drops(values: np.ndarray, sign: float, seed: int) -> np.ndarray:
    """Relative drops of every level (columns) in each of the paired bootstrap resamples of the
    items (rows); per-item scores are `values` (levels x items, clean first, NaN = no score)."""
    n_levels, n = values.shape
    if n < 2 or n_levels < 2:
        return np.empty((0, max(n_levels - 1, 0)))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    rows = np.repeat(np.arange(BOOTSTRAP_RESAMPLES) * n, n)
    weights = np.bincount(rows + idx.ravel(), minlength=BOOTSTRAP_RESAMPLES * n).reshape(-1, n)
    scored = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (weights @ np.where(scored, values, 0.0).T) / (weights @ scored.T)
    return _relative_drop(means[:, :1], means[:, 1:], sign)


# ------------------------------------------------------------------------------ comparing runs


def robustness_paired(base: Task) -> Paired:
    """Protocol 1.9: the mean relative drop rebuilt from the base task's own paired form. A unit is
    a base item with every level; its columns are the base columns of each level (`level|column`),
    so resampling or swapping an item moves its clean and perturbed scores together."""
    inner = base.paired or ACCURACY
    sign = 1.0 if base.direction == "higher" else -1.0

    def units(scored: list[ScoredSample], options: dict[str, Any]) -> Units:
        names = [CLEAN, *(lv.name for lv in parse_levels(options.get("levels")))]
        by_variant: dict[str, dict[str, ScoredSample]] = defaultdict(dict)
        for s in scored:
            by_variant[s.variant][s.sample_id] = s
        out: Units = {}
        for sid, clean in by_variant[CLEAN].items():
            if not all(sid in by_variant[v] for v in names):
                continue
            key = next(iter(inner.units([clean], options)), sid)  # the base's own unit id
            unit: dict[str, float] = {}
            for v in names:
                as_clean = replace(by_variant[v][sid], variant=CLEAN)
                for columns in inner.units([as_clean], options).values():
                    unit.update({f"{v}|{c}": x for c, x in columns.items()})
            out[key] = unit
        return out

    def combine(means: Any, columns: Sequence[str], options: dict[str, Any]) -> Any:
        names = [CLEAN, *(lv.name for lv in parse_levels(options.get("levels")))]
        scores = []
        for v in names:
            block, inner_columns = block_means(means, columns, f"{v}|")
            if not inner_columns:
                return np.full(means.shape[:-1], np.nan)
            scores.append(
                block[..., 0]
                if inner.combine is None
                else inner.combine(block, inner_columns, options)
            )
        clean = np.where(scores[0] == 0, np.nan, scores[0])  # no drop is defined from 0
        drops = [_relative_drop(clean, s, sign) for s in scores[1:]]
        return mean_of_columns(np.stack(drops, axis=-1), require_all=True)

    return Paired(
        units,
        combine,
        unit=inner.unit,
        stratum=inner.stratum,
        judged=inner.judged,
        procedure=f"mean over levels of (S0 - S_l) / S0, S = {base.id} as it is compared "
        f"({inner.procedure}); an item carries its clean and perturbed scores",
    )


# ------------------------------------------------------------------------------ declarations


def _over(base_id: str, task_id: str, title: str, metric: str, n_items: str) -> Task:
    """The robustness task over the reliability task `base_id`."""
    base = next(t for t in reliability.TASKS if t.id == base_id)
    return robustness_task(base, task_id=task_id, title=title, metric=metric, n_items=n_items)


TASKS: list[Task] = [
    _over(
        "reliability.emotional_support",
        "robustness.emotional_support",
        "Robustness of emotional support to perturbed seeker turns",
        "relative drop of judge mean",
        "200 x 7 (clean + 6 levels)",
    ),
    _over(
        "reliability.psychological_diagnosis",
        "robustness.psychological_diagnosis",
        "Robustness of diagnosis to perturbed patient text",
        "relative drop of accuracy",
        "as 3.3 x 7 (clean + 6 levels)",
    ),
]
