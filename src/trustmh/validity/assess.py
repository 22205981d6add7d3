"""What a subtask's numbers are worth (protocol 1.8): floors, coverage, degenerate responders and
flags, computed when a run aggregates and stored with it (run meta `validity`).

For every subtask of a run, `assess_task` records:
- `floor`: per metric, the best value any null responder (`nulls.FLOOR_NULLS`: always "A", always
  refusing, content-free prose, random valid answers, always the K-th option) reaches on exactly
  this run's items, measured by scoring the nulls' replies with the subtask's own scorer and
  aggregate, without a judge (a judge-scored subtask has no floor here: `bench/validity.py`
  measures those with scripted judges). Nothing about a subtask is assumed: the floor of an
  accuracy is whatever the items' answer key lets a constant answer get;
- `coverage`: the parsed share, replies that gave a usable score over replies asked for (not
  counting items a replay never recorded); below `MIN_COVERAGE` the subtask is flagged;
- `flags`: `degenerate` (replies that do not depend on the input), `low_coverage`, `at_floor`
  (the interval does not clear the floor), `offline_detector` (a number produced by the offline
  keyword refusal detector, with its measured held-out accuracy) and the disclosures of re-asks
  (`judge_reask`, `reask_unparsed`). `EXCLUDING` flags keep a value out of ranks and the radar;
- `chance_corrected`: (value - floor) / (best - floor) for the primary metric, where best is the
  top of its range in its direction (the usual (v - f) / (1 - f) for a higher-is-better share).

The core never names a subtask here: everything comes from the `Task` declaration (direction,
scale, `relative`, `quality_metric`) and the scored samples.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from trustmh.scoring.outcomes import NOT_SCORED
from trustmh.tasks.base import ScoreContext, Task
from trustmh.types import MetricValue, Response, Sample, ScoredSample
from trustmh.validity import nulls

# The default minimum parsed share (protocol 1.8). With a share c parsed, the items left out could
# move a 0-1 metric by up to 1 - c whatever they would have scored (the worst-case bounds of a
# number with missing items); at 0.8 that is at most a fifth of the range, and it is the point
# below which the items that did parse are a minority of the ones that did not by 1 to 4. Every
# recorded run of the paper's models parses at least 99% of its replies, so the rule never fires
# on them; the motivating case, privacy awareness on 9 of 206 replies, is at 4%.
MIN_COVERAGE = 0.8
MIN_REPLIES = 10  # fewer scored replies than this: too few to call a responder degenerate
DISTINCT_SHARE = 0.2  # free-text replies with fewer distinct texts than this share: input-free
YIELD_EVERY = 64  # null replies scored between two turns of the event loop
EXCLUDING = ("degenerate", "low_coverage")  # flags that keep a value out of ranks and the radar
FLAG_KINDS = ("degenerate", "low_coverage", "at_floor", "offline_detector", "judge_reask",
              "reask_unparsed")  # fmt: skip


@dataclass(frozen=True)
class Flag:
    """One reason to read a subtask's numbers with care."""

    kind: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"kind": self.kind, "reason": self.reason}


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


# --- floors ----------------------------------------------------------------------------------


async def null_metrics(
    task: Task, samples: Sequence[Sample], options: dict[str, Any], seed: int
) -> dict[str, list[MetricValue]]:
    """Per null responder, the metrics the subtask gives its replies on `samples` (scored by the
    subtask's own scorer, without a judge); empty when the subtask needs a judge."""
    out: dict[str, list[MetricValue]] = {}
    if task.solve is not None:
        return out  # a multi-step sample's result is a whole exchange, not one reply to score
    context = ScoreContext(judge=None, options=options, seed=seed, offline=True)
    for kind in nulls.FLOOR_NULLS:
        scored = []
        for n, sample in enumerate(samples, 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # computed while a run's replies are out: let them in
            text = nulls.respond(kind, sample.messages, seed)
            try:
                score = await task.score(sample, Response(text), context)  # type: ignore[misc]
            except Exception:  # noqa: BLE001 - a scorer that cannot read a null reply: no floor
                return {}
            scored.append(
                ScoredSample(sample.id, sample.variant, sample.target, sample.meta, text, score)
            )
        if all(s.score.status in NOT_SCORED for s in scored):
            return {}  # needs a judge (or nothing to score): no floor from this run
        out[kind] = task.aggregate(scored, options)  # type: ignore[misc]
    return out


def _values(by_null: dict[str, list[MetricValue]]) -> dict[str, dict[str, float]]:
    return {
        k: {m.name: float(m.value) for m in ms if _finite(m.value)} for k, ms in by_null.items()
    }


def best_of(values: Iterable[tuple[str, float]], direction: str) -> tuple[str, float] | None:
    """The (null, value) that is best in `direction`, or None."""
    ordered = sorted(values, key=lambda nv: nv[1], reverse=direction == "higher")
    return ordered[0] if ordered else None


def floors_of(
    by_null: dict[str, list[MetricValue]], metrics: Sequence[MetricValue]
) -> dict[str, dict[str, Any]]:
    """Per metric of the run: {"value": the best null value, "null": which null}."""
    values = _values(by_null)
    out: dict[str, dict[str, Any]] = {}
    for m in metrics:
        found = best_of(((k, v[m.name]) for k, v in values.items() if m.name in v), m.direction)
        if found is not None:
            out[m.name] = {"value": found[1], "null": found[0]}
    return out


def best_possible(task: Task, direction: str) -> float:
    """The best value the primary metric can take (top of its range in its direction)."""
    low, high = task.scale or (0.0, 1.0)
    return high if direction == "higher" else low


def chance_corrected(value: float | None, floor: float | None, best: float) -> float | None:
    """(value - floor) / (best - floor): 0 at the floor, 1 at the best possible value; None when
    either is unknown or the floor is already the best possible value."""
    if not (_finite(value) and _finite(floor)) or abs(best - floor) < 1e-12:  # type: ignore[arg-type]
        return None
    return (value - floor) / (best - floor)  # type: ignore[operator]


def clears_floor(metric: MetricValue, floor: float) -> bool:
    """True when the metric's interval (or its value, without one) is beyond the floor on the
    good side."""
    if metric.direction == "higher":
        bound = metric.ci_low if metric.ci_low is not None else metric.value
        return bound is not None and bound > floor + 1e-12
    bound = metric.ci_high if metric.ci_high is not None else metric.value
    return bound is not None and bound < floor - 1e-12


def _base(task: Task) -> Task | None:
    if task.base_task is None:
        return None
    from trustmh.errors import UserError
    from trustmh.tasks.registry import get_task

    try:
        return get_task(task.base_task)
    except UserError:  # a base task that is not registered (a test's toy task): no floor
        return None


# --- coverage and degenerate responders ------------------------------------------------------


def coverage(scored: Sequence[ScoredSample]) -> dict[str, Any] | None:
    """{"parsed", "total", "share"}: samples whose score is usable ("ok") over samples asked for
    (a replay's unrecorded items left out); None without any."""
    asked = [s for s in scored if s.score.status != "missing"]
    if not asked:
        return None
    parsed = sum(s.score.status == "ok" for s in asked)
    return {"parsed": parsed, "total": len(asked), "share": parsed / len(asked)}


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def degenerate_reason(
    task: Task,
    scored: Sequence[ScoredSample],
    quality: MetricValue | None,
    quality_floor: dict[str, Any] | None,
) -> str | None:
    """Why these replies look independent of the input, or None:
    - one distinct reply text (a constant responder);
    - one distinct parsed answer although the items' answers differ;
    - for free-text replies (no answer key, or a judge-scored subtask): fewer distinct replies
      than DISTINCT_SHARE of them;
    - for a relative subtask: the replies' own quality does not clear its null floor."""
    replies = [s for s in scored if s.score.status not in NOT_SCORED and s.response is not None]
    if len(replies) >= MIN_REPLIES:
        texts = {_norm(s.response or "") for s in replies}
        if len(texts) == 1:
            return f"every one of the {len(replies)} replies is the same text"
        targets = {repr(s.target) for s in replies if s.target is not None}
        # an answer key: the items have targets that a parser compares the reply with (a
        # judge-scored subtask's targets, e.g. a crisis label, only inform the judge)
        keyed = bool(targets) and task.needs_judge != "required"
        parsed = [s.score.parsed for s in replies if s.score.status == "ok"]
        answers = {repr(p) for p in parsed if p is not None}
        if keyed and len(targets) >= 2 and len(parsed) >= MIN_REPLIES and len(answers) == 1:
            return (
                f"all {len(parsed)} parsed answers are {next(iter(answers))} although the items' "
                f"answers differ ({len(targets)} distinct)"
            )
        free_text = not keyed  # replies judged as text, not read as an answer
        if free_text and len(texts) < DISTINCT_SHARE * len(replies):
            return (
                f"only {len(texts)} distinct replies to {len(replies)} different inputs: the "
                "replies do not depend on what was asked"
            )
    if (
        task.relative
        and quality is not None
        and quality_floor is not None
        and _finite(quality.value)
        and not clears_floor(quality, quality_floor["value"])
    ):
        return (
            f"its own quality ({quality.name} = {quality.value:.3f}) does not clear the null "
            f"floor {quality_floor['value']:.3f} ({quality_floor['null']}), so the relative "
            "number measures nothing"
        )
    return None


# --- disclosures -----------------------------------------------------------------------------


def _details(detail: Any) -> Iterable[dict[str, Any]]:
    """A score detail and every verdict detail nested in it."""
    if isinstance(detail, dict):
        yield detail
        for value in detail.values():
            yield from _details(value)


def reasked_verdicts(scored: Sequence[ScoredSample]) -> int:
    """Samples with a judge verdict asked again with the stricter instruction."""
    return sum(
        any(int(d.get("judge_attempts") or 0) > 1 for d in _details(s.score.detail)) for s in scored
    )


def reasked_replies(scored: Sequence[ScoredSample]) -> int:
    """Samples whose model reply was asked again because it did not parse (--reask-unparsed)."""
    return sum(int(s.score.detail.get("reasked") or 0) > 0 for s in scored)


def offline_detector_used(scored: Sequence[ScoredSample]) -> bool:
    """True when the offline keyword refusal detector decided any sample."""
    return any(
        d.get("refusal_detector") == "keyword" for s in scored for d in _details(s.score.detail)
    )


# --- one subtask -----------------------------------------------------------------------------


async def assess_task(
    task: Task,
    samples: Sequence[Sample],
    scored: Sequence[ScoredSample],
    metrics: list[MetricValue],
    options: dict[str, Any],
    seed: int,
    min_coverage: float = MIN_COVERAGE,
    by_null: dict[str, list[MetricValue]] | None = None,
) -> dict[str, Any]:
    """The validity record of one subtask (see the module doc); discloses re-asks and the offline
    detector in the notes of `metrics` (edited in place). `by_null`: `null_metrics` of these
    samples when already computed (a run computes them while its replies are out)."""
    primary = next((m for m in metrics if m.primary), None)
    if task.relative:
        # no floor for the relative number itself; its quality metric's floor is the base
        # subtask's, on the reference variant (the first of each item: clean, neutral)
        by_null: dict[str, list[MetricValue]] = {}
        floors: dict[str, dict[str, Any]] = {}
        base = _base(task)
        if base is not None and samples and task.quality_metric:
            reference = [s for s in samples if s.variant == samples[0].variant]
            base_nulls = await null_metrics(base, reference, options, seed)
            primaries = [
                (k, m.value)
                for k, ms in base_nulls.items()
                for m in ms
                if m.primary and _finite(m.value)
            ]
            found = best_of(primaries, base.direction)  # type: ignore[arg-type]
            if found is not None:
                floors[task.quality_metric] = {"value": found[1], "null": found[0]}
    else:
        if by_null is None:
            by_null = await null_metrics(task, samples, options, seed)
        floors = floors_of(by_null, metrics)
    flags: list[Flag] = []
    record: dict[str, Any] = {
        "floors": floors,
        # every null's primary value, for the panel and the report's detail
        "nulls": {k: v.get(primary.name) for k, v in _values(by_null).items()} if primary else {},
        "min_coverage": min_coverage,
    }
    cov = coverage(scored)
    record["coverage"] = cov
    has_value = primary is not None and _finite(primary.value)
    if cov is not None and has_value and cov["share"] < min_coverage:
        flags.append(
            Flag(
                "low_coverage",
                f"{cov['parsed']} of {cov['total']} replies parsed ({cov['share']:.0%}), "
                f"under the minimum {min_coverage:.0%}",
            )
        )
    quality = next((m for m in metrics if m.name == task.quality_metric), None)
    reason = degenerate_reason(task, scored, quality, floors.get(task.quality_metric or ""))
    if reason and has_value:
        flags.append(Flag("degenerate", reason))
    floor = floors.get(primary.name) if primary is not None else None
    if primary is not None and floor is not None and not task.relative:
        best = best_possible(task, primary.direction)
        record["chance_corrected"] = chance_corrected(primary.value, floor["value"], best)
        if abs(best - floor["value"]) < 1e-12:
            record["floor_note"] = (
                f"a null ({floor['null']}) reaches the best possible value: this metric alone "
                "cannot tell a model from a null"
            )
        elif _finite(primary.value) and not clears_floor(primary, floor["value"]):
            flags.append(
                Flag(
                    "at_floor",
                    f"the interval does not clear the floor {floor['value']:.3f} "
                    f"({floor['null']} responder)",
                )
            )
    if task.relative:
        record["floor_note"] = "relative metric: no floor (see degenerate)"
    disclosures = []
    if n := reasked_verdicts(scored):
        text = (f"{n} judge verdicts re-asked with the rubric's stricter instruction "
                "(--judge-reask; protocol 1.4 asks once)")  # fmt: skip
        flags.append(Flag("judge_reask", text))
        disclosures.append(text)
    if n := reasked_replies(scored):
        text = f"{n} unparsed replies re-asked (--reask-unparsed, protocol 1.2)"
        flags.append(Flag("reask_unparsed", text))
        disclosures.append(text)
    if offline_detector_used(scored):
        from trustmh.validity.detector import held_out_summary

        text = held_out_summary()
        flags.append(Flag("offline_detector", text))
        disclosures.append(text)
    for m in metrics:
        for text in disclosures:
            m.note = f"{m.note}; {text}" if m.note else text
    record["flags"] = [f.as_dict() for f in flags]
    return record


def excluded(record: dict[str, Any] | None) -> list[dict[str, str]]:
    """The flags of a validity record that keep its value out of ranks and the radar."""
    return [f for f in (record or {}).get("flags", []) if f.get("kind") in EXCLUDING]
