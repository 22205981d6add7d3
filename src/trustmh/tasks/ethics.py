"""Ethics pillar (protocol 10.1): EthicMH multiple choice with a GPT-4.1 judge of the reasoning.

EXACT from the authors' code: data order (first N rows), prompt, choice parser (including the
case-insensitive "a" quirk), ground truth, judge prompt, judge parsing and the sc1-sc5 means with
their margins. DEFAULT: the tie-break on the mean judge score. Options:
- `strict_choice` (fixed variant): only upper-case standalone letters count in the text fallback;
- `repair_mojibake` (fixed variant): undo the apostrophe mojibake before building prompts;
- `n_items`: the first N rows (default all 125, as in every recorded run).
A reply's `extra["recorded_choice"]` (the six MH models' separately stored choice) replaces the
parsed choice, as in the authors' pipeline for those models.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from typing import Any

from trustmh.data.loaders.ethicmh import load_ethicmh
from trustmh.data.loaders.prompts import fill, load_ethics_prompts
from trustmh.data.sources import DataContext
from trustmh.metrics import margin_of_error, proportion_ci
from trustmh.scoring.ethics import JUDGE_KEYS, extract_choice, ground_truth_letter, judge_scores
from trustmh.scoring.outcomes import count_status, scored_only
from trustmh.tasks.base import PlanContext, PlannedRequest, ScoreContext, Task
from trustmh.tasks.options import positive_int_option
from trustmh.types import GenParams, MetricValue, Response, Sample, SampleScore, ScoredSample

TASK_ID = "ethics.ethical_reasoning"
GEN = GenParams(temperature=0.0, max_tokens=None)
JUDGE_GEN = GenParams(temperature=0.0, max_tokens=None)
PRINCIPLES = {
    "sc1": "Beneficence & Nonmaleficence",
    "sc2": "Fidelity & Responsibility",
    "sc3": "Integrity",
    "sc4": "Justice",
    "sc5": "Respect for Rights & Dignity",
}


def ethics_samples(ctx: DataContext, options: dict[str, Any]) -> Iterator[Sample]:
    """One sample per EthicMH row (id = row number), with the judge prompt prepared up to the reply."""
    prompts = load_ethics_prompts(ctx)
    items = load_ethicmh(ctx, repair=bool(options.get("repair_mojibake", False)))
    n_items = positive_int_option(options, "n_items", len(items))
    for item in items[:n_items]:
        fields = {
            "scenario": item.scenario,
            "options": item.options,
            "reasoning_task": item.reasoning_task,
            "expected_reasoning": item.expected_reasoning,
            "model_behavior": item.model_behavior,
        }
        yield Sample(
            id=str(item.row),
            messages=({"role": "user", "content": fill(prompts.reasoning_prompt, fields)},),
            target=ground_truth_letter(item.expected_reasoning),
            meta={
                "index": item.index,
                "subcategory": item.subcategory,
                # everything but the reply, which is filled last so its text is never re-substituted
                "judge_template": fill(prompts.judge_prompt, fields),
            },
        )


def judge_prompt(sample: Sample, reply: str) -> str:
    """The exact judge prompt for this sample and reply text."""
    return sample.meta["judge_template"].replace("{model_reply}", reply)


def ethics_plan(sample: Sample, ctx: PlanContext) -> list[PlannedRequest]:
    """With a judge, one verdict per reply (see `Task.plan`)."""
    prompt = judge_prompt(sample, ctx.reply)
    return [PlannedRequest("judge", ({"role": "user", "content": prompt},), JUDGE_GEN)]


async def ethics_score(sample: Sample, response: Response, score_ctx: ScoreContext) -> SampleScore:
    """Correct (1) or not (0); with a judge, also the sc1-sc5 scores of the reasoning."""
    text = response.text or ""
    extra = response.extra or {}
    if "recorded_choice" in extra:
        choice = extra["recorded_choice"]
        source = "recorded_choice"
    else:
        choice = extract_choice(text, strict=bool(score_ctx.options.get("strict_choice", False)))
        source = "parsed"
    correct = choice is not None and choice == sample.target
    detail: dict[str, Any] = {"choice_source": source}
    if score_ctx.judge is not None:
        detail.update(await _judge(sample, text, score_ctx))
    return SampleScore(
        value=float(correct),
        parsed=choice,
        status="ok" if choice is not None else "unparsed",
        detail=detail,
    )


async def _judge(sample: Sample, reply: str, score_ctx: ScoreContext) -> dict[str, Any]:
    prompt = judge_prompt(sample, reply)
    verdict = await score_ctx.judge([{"role": "user", "content": prompt}], JUDGE_GEN)  # type: ignore[misc]
    out: dict[str, Any] = {"judge_model": getattr(score_ctx.judge, "spec", None)}
    if verdict is None:
        out["judge_status"] = "error"
        return out
    recorded_judge = (verdict.extra or {}).get("recorded_model")
    if recorded_judge:  # a replayed verdict: name the judge that wrote it
        out["judge_model"] = f"{recorded_judge} (recorded, via {out['judge_model']})"
    parsed, scores = judge_scores(verdict.text)
    out.update(judge_raw=verdict.text, judge_parsed=parsed, judge_scores=scores)
    out["judge_status"] = "ok" if scores else "unparsed"
    return out


def ethics_aggregate(scored: list[ScoredSample], options: dict[str, Any]) -> list[MetricValue]:
    """Accuracy (primary), sc1-sc5 means with the authors' margins and the mean judge score."""
    seed = int(options.get("seed", 0))
    answered = scored_only(scored)
    correct = [float(s.score.value or 0.0) for s in answered]
    n_missing = count_status(scored, "missing")
    ci = proportion_ci(correct, seed)
    recorded = sum(1 for s in answered if s.score.detail.get("choice_source") == "recorded_choice")
    notes = []
    if recorded:
        notes.append(
            f"choice taken from the separately recorded choice for {recorded} replies (authors' MH-model pipeline)"
        )
    if n_missing:
        notes.append(f"{n_missing} items not recorded")
    accuracy = MetricValue(
        name="accuracy",
        value=sum(correct) / len(correct) if correct else None,
        n=len(correct),
        direction="higher",
        primary=True,
        ci_low=ci[0],
        ci_high=ci[1],
        n_unparsed=count_status(answered, "unparsed"),
        n_error=count_status(scored, "error"),
        note="; ".join(notes) or None,
    )
    judged = [s for s in answered if "judge_status" in s.score.detail]
    if not judged:
        return [accuracy]
    return [accuracy, *_judge_metrics(judged)]


def _judge_metrics(judged: list[ScoredSample]) -> list[MetricValue]:
    n_unparsed = sum(1 for s in judged if s.score.detail["judge_status"] == "unparsed")
    n_error = sum(1 for s in judged if s.score.detail["judge_status"] == "error")
    judges = sorted({str(s.score.detail.get("judge_model")) for s in judged})
    out: list[MetricValue] = []
    means: list[float] = []
    for key in JUDGE_KEYS:
        values = [
            s.score.detail["judge_scores"][key]
            for s in judged
            if key in s.score.detail.get("judge_scores", {})
        ]
        if not values:
            continue
        mean = statistics.mean(values)
        means.append(mean)
        margin = margin_of_error(values)
        out.append(
            MetricValue(
                name=key,
                value=mean,
                n=len(values),
                direction="higher",
                ci_low=mean - margin if margin is not None else None,
                ci_high=mean + margin if margin is not None else None,
                n_unparsed=n_unparsed,
                n_error=n_error,
                note=f"{PRINCIPLES[key]} (1-5), judge {', '.join(judges)}",
            )
        )
    if len(means) == len(JUDGE_KEYS):
        per_item = [
            statistics.mean(s.score.detail["judge_scores"].values())
            for s in judged
            if s.score.detail.get("judge_scores")
        ]
        margin = margin_of_error(per_item)
        overall = statistics.mean(means)
        out.append(
            MetricValue(
                name="judge_mean",
                value=overall,
                n=len(per_item),
                direction="higher",
                ci_low=overall - margin if margin is not None else None,
                ci_high=overall + margin if margin is not None else None,
                n_unparsed=n_unparsed,
                n_error=n_error,
                note="mean of the sc1-sc5 means; ranking tie-break (DEFAULT); interval from per-item means",
            )
        )
    return out


TASKS = [
    Task(
        id=TASK_ID,
        pillar="ethics",
        title="Ethical reasoning (EthicMH)",
        section="10.1",
        status="EXACT",
        metric="accuracy (ties: mean judge score)",
        direction="higher",
        sources=("ethicmh", "trustmh_prompts"),
        n_items="125",
        gen=GEN,
        samples=ethics_samples,
        score=ethics_score,
        plan=ethics_plan,
        aggregate=ethics_aggregate,
        needs_judge="optional",
        # the judge rates reasoning against APA principles: MentalAlign's "Safety" (adherence to
        # professional and ethical standards) is the nearest attribute judge-check measures
        judge_attribute="Safety",
        option_names=("repair_mojibake", "n_items", "strict_choice"),
        notes="Temperature 0, provider default max tokens (EXACT). Judge: GPT-4.1 in the paper; without a judge "
        "only accuracy is reported.",
    ),
]
