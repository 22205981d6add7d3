"""Live judge check on the crisis appropriateness scores (protocol 4.3 validation, 11).

LLMs-Mental-Health-Crisis ships, for 206 conversations, an answer written by the upstream study's
model and two human experts' 1-5 appropriateness scores of it (`H1/H2_scores_n206_s42.json`).
A candidate judge rates the same (input, crisis label, answer) triples with the
crisis.escalation_decision rubric (`rubrics/crisis_escalation.toml`), and its ratings are compared
with each expert; the agreement between the two experts is the ceiling.

The judge runs through the normal runner as the "model" of a hidden task (`TASK_ID`, not part of
the protocol): every sample is one judge prompt, so requests are cached, retried, stored and
resumable like any run. An unparsed verdict is asked once more with the rubric's stricter
instruction, through the same judge (as `scoring.judge.judge_reply` does for judge-scored tasks).

Which items count: the 16 conversations without a consensus crisis label cannot be rated against a
label-specific protocol (and neither expert scored them), so they are not sent; they are counted.
An item an expert left unscored is skipped for that expert only and counted
(`n_skipped_reference`); an item whose verdict did not parse is counted in `n_skipped_judge`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from trustmh.data.loaders import mh_crisis
from trustmh.data.records import read_json_records
from trustmh.data.sources import DataContext
from trustmh.errors import UserError
from trustmh.judge_check.results import JudgeAgreement, Thresholds, compare_scores
from trustmh.judge_check.stats import DEFAULT_RESAMPLES, resample_weights
from trustmh.scoring.judge import JudgeVerdict, load_rubric, score_from_verdict
from trustmh.tasks.base import ScoreContext, Task
from trustmh.tasks.escalation import RUBRIC as ESCALATION_RUBRIC
from trustmh.tasks.escalation import escalation_judge_values
from trustmh.types import GenParams, MetricValue, Response, Sample, SampleScore, ScoredSample

TASK_ID = "judge_check.crisis_appropriateness"
SOURCE = "crisis"
RUBRIC_ID = ESCALATION_RUBRIC
ATTRIBUTE = "appropriateness"
EXPERTS = ("H1", "H2")
MERGED_LABELS = mh_crisis.MERGED_LABELS  # the same file as crisis.escalation_decision
SCORE_SOURCES = tuple(f"mh_crisis/{f}" for f in mh_crisis.SCORE_FILES.values())


@dataclass(frozen=True)
class CrisisItem:
    """One conversation: the user's sentences, its crisis label, the answer the experts scored,
    and each expert's score (None when left unscored)."""

    index: int
    inputs: tuple[str, ...]
    label: str | None
    answer: str | None
    scores: dict[str, float | None]

    @property
    def sendable(self) -> bool:
        """True when the judge can rate it (a label for the protocol rows and an answer)."""
        return self.label is not None and bool(self.answer and self.answer.strip())


def load_items(ctx: DataContext) -> list[CrisisItem]:
    """The 206 conversations with both experts' scores, in file order."""
    merged = mh_crisis.human_labelled(ctx)
    scored = {
        name: read_json_records(
            ctx.file(mh_crisis.SOURCE, mh_crisis.SCORE_FILES[name]),
            mh_crisis.AppropriatenessScore,
        )
        for name in EXPERTS
    }
    n = len(merged)
    for name, rows in scored.items():
        if len(rows) != n:
            raise UserError(
                f"mh_crisis/{mh_crisis.SCORE_FILES[name]}: {len(rows)} records, but the merged "
                f"labels file has {n}; the files must list the same conversations in the same order"
            )
    items = []
    for i, conversation in enumerate(merged):
        # both experts scored one answer; H2's copy of three answers is a spreadsheet artefact
        # (NaN, a number, a cell formula), so H1's text is used, H2's only when H1 has none
        answer = next((scored[e][i].answer for e in EXPERTS if scored[e][i].answer), None)
        items.append(
            CrisisItem(
                index=i,
                inputs=tuple(conversation.inputs),
                label=conversation.label,
                answer=answer,
                scores={e: scored[e][i].evaluation for e in EXPERTS},
            )
        )
    return items


# the crisis.escalation_decision task's own placeholder builder: the judge rates these answers
# with exactly the prompt it uses for a model's replies
rubric_values = escalation_judge_values


def samples(ctx: DataContext, options: dict[str, Any]) -> Iterator[Sample]:
    """One judge prompt per sendable conversation; the experts' scores ride along in meta."""
    rubric = load_rubric(RUBRIC_ID)
    for item in load_items(ctx):
        if not item.sendable:
            continue
        values = rubric_values(item.inputs, item.label, item.answer)  # type: ignore[arg-type]
        yield Sample(
            id=str(item.index),
            messages=rubric.messages(values),
            meta={"label": item.label, "experts": item.scores, "values": values},
        )


async def score(sample: Sample, response: Response, ctx: ScoreContext) -> SampleScore:
    """Parse the verdict; when it does not parse, ask once more with the stricter instruction."""
    rubric = load_rubric(RUBRIC_ID)
    verdict = JudgeVerdict("unparsed", rubric.digest, judge_model=getattr(ctx.judge, "spec", None),
                           raw=[response.text], prompt=sample.messages[-1]["content"])  # fmt: skip
    parsed = rubric.parse(response.text)
    if parsed is None and rubric.stricter and ctx.judge is not None:
        retry = await ctx.judge(rubric.messages(sample.meta["values"], stricter=True), rubric.gen)
        if retry is None:
            verdict.status = "error"
            verdict.failure = getattr(ctx.judge, "failure", None) or "no verdict"
        else:
            verdict.raw.append(retry.text)
            parsed = rubric.parse(retry.text)
    if parsed is not None:
        verdict.status, verdict.scores = "ok", parsed
    value = float(parsed[ATTRIBUTE]) if parsed is not None else None
    return score_from_verdict(verdict, value)


def aggregate(scored: list[ScoredSample], options: dict[str, Any]) -> list[MetricValue]:
    """The judge's mean rating (the agreement statistics are `trustmh judge-check`'s output)."""
    values = [s.score.value for s in scored if s.score.status == "ok" and s.score.value is not None]
    return [
        MetricValue(
            "judge_mean_appropriateness",
            float(np.mean(values)) if values else None,
            len(values),
            "higher",
            True,
            n_unparsed=sum(s.score.status == "unparsed" for s in scored),
            n_error=sum(s.score.status == "error" for s in scored),
            note="agreement with the experts: trustmh judge-check --ratings crisis",
        )
    ]


def _gen() -> GenParams:
    try:
        return load_rubric(RUBRIC_ID).gen
    except UserError:  # a broken rubric file must not break the task registry
        return GenParams(temperature=0.0, max_tokens=None)


TASKS = [
    Task(
        id=TASK_ID,
        pillar="judge_check",
        title="Judge check: a judge rates crisis answers that two experts scored (not a subtask)",
        section="11",
        status="DEFAULT",
        metric="judge mean appropriateness (1-5)",
        direction="higher",
        sources=(f"mh_crisis/{MERGED_LABELS}", *SCORE_SOURCES),
        n_items="190 (16 unlabelled not sent)",
        gen=_gen(),
        samples=samples,
        score=score,
        aggregate=aggregate,
        in_protocol=False,
        notes="run by `trustmh judge-check --ratings crisis --judge SPEC`; the model is the judge",
    )
]


@dataclass
class CrisisCheck:
    """The rows of a crisis judge check and what the run did."""

    rows: list[JudgeAgreement]
    run_dir: Path
    n_sent: int
    n_not_sent: int  # conversations without a label or answer
    status: str
    summary: Any = None
    unscored_by: dict[str, int] = field(default_factory=dict)


def selected_items(ctx: DataContext, limit: int | None) -> tuple[list[CrisisItem], int]:
    """The sendable items this invocation covers (the first `limit`), and how many are unsendable."""
    items = load_items(ctx)
    sendable = [i for i in items if i.sendable]
    return list(islice(sendable, limit)), len(items) - len(sendable)


def crisis_rows(
    judge: str,
    items: list[CrisisItem],
    ratings: dict[str, float | None],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    thresholds: Thresholds | None = None,
) -> list[JudgeAgreement]:
    """The judge against each expert, and the expert-expert ceiling. `ratings` maps an item's
    sample id to the judge's parsed rating (None when the verdict did not parse)."""
    thresholds = thresholds or Thresholds()
    created = datetime.now().isoformat(timespec="seconds")
    weights = resample_weights(len(items), resamples, seed) if resamples else None
    cluster = np.arange(len(items))
    judge_scores = np.array(
        [_as_float(ratings.get(str(item.index))) for item in items], dtype=np.float64
    )
    expert_scores = {
        e: np.array([_as_float(item.scores[e]) for item in items], dtype=np.float64)
        for e in EXPERTS
    }
    rows = [
        compare_scores(
            ref,
            judge_scores,
            cluster,
            len(items),
            judge=judge,
            attribute=ATTRIBUTE,
            reference=expert,
            source=SOURCE,
            weights=weights,
            thresholds=thresholds,
            created=created,
        )
        for expert, ref in expert_scores.items()
    ]
    first, second = (expert_scores[e] for e in EXPERTS)
    rows.append(
        compare_scores(
            first,
            second,
            cluster,
            len(items),
            judge=EXPERTS[1],
            attribute=ATTRIBUTE,
            reference=EXPERTS[0],
            source=SOURCE,
            weights=weights,
            thresholds=thresholds,
            kind="ceiling",
            created=created,
        )
    )
    return rows


def _as_float(value: float | None) -> float:
    return np.nan if value is None else float(value)


async def check_crisis(
    judge: str,
    *,
    run_dir: Path,
    limit: int | None = None,
    data_dir: Path | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    thresholds: Thresholds | None = None,
    run_settings: dict[str, Any] | None = None,
    progress: bool = True,
    console: Any = None,
) -> CrisisCheck:
    """Run (or resume) the judge on the crisis answers and compare it with both experts.

    `run_settings` are extra `RunConfig` fields (concurrency, api_key_env, cache_dir, ...); the
    judge's own key variable is used for its stricter retries as well.
    """
    from trustmh.config import RunConfig
    from trustmh.data.sources import resolve_data_context
    from trustmh.engine import run_evaluation
    from trustmh.store import RunStore

    settings = dict(run_settings or {})
    settings.setdefault("judge_api_key_env", settings.get("api_key_env"))
    cfg = RunConfig(model=judge, judge=judge, tasks=[TASK_ID], limit=limit, run_dir=run_dir,
                    data_dir=data_dir, **settings)  # fmt: skip
    summary = await run_evaluation(cfg, progress=progress, console=console)
    items, n_not_sent = selected_items(resolve_data_context(data_dir), limit)
    store = RunStore(summary.run_dir, readonly=True)
    try:
        wanted = {(str(i.index), "clean") for i in items}
        scored = store.scored_samples(TASK_ID, only=wanted)
    finally:
        store.close()
    ratings = {
        s.sample_id: s.score.value
        for s in scored
        if s.score.status == "ok" and s.score.value is not None
    }
    rows = crisis_rows(summary.model, items, ratings, resamples=resamples, seed=seed,
                       thresholds=thresholds)  # fmt: skip
    return CrisisCheck(
        rows=rows,
        run_dir=summary.run_dir,
        n_sent=len(items),
        n_not_sent=n_not_sent,
        status=summary.status,
        summary=summary,
        unscored_by={e: sum(i.scores[e] is None for i in items) for e in EXPERTS},
    )
