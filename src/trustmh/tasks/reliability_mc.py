"""Reliability: the two multiple-choice subtasks, knowledge (protocol 3.1) and emotion recognition
(3.2). The Task entries in `tasks/reliability.py` point at these functions.

Knowledge (USMLE-mental, 727 items), DEFAULT throughout: one user message (instruction line,
question, options `X. text`, JSON answer request); `parse_option`; accuracy with unparsed and
refused replies counted wrong; breakdowns by exam step and by topic tag.

Emotion recognition (EmoBench EU, 400 items). UPSTREAM (EmoBench `src/`): the system message is
`sys[lang]` followed by the base response statement and the EU answer keys in a ```json block, laid
out as EmoBench's `get_response_format` does; the user message is `EU[lang]` with choices lettered
`A) text` (EmoBench's `rank_choices`, upper-case letters; the protocol's lower-case lettering was
a placeholder for this unknown). DEFAULT: temperature 0 (EmoBench used 0.6), the parser fallbacks
after the JSON keys, and the primary metric: joint accuracy (emotion and cause both right), or the
mean of the two with the option `primary_metric = "mean"`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from trustmh.data.loaders.emobench import SOURCE as EMOBENCH
from trustmh.data.loaders.emobench import EUItem, load_prompts
from trustmh.data.loaders.usmle_mental import SOURCE as USMLE
from trustmh.data.loaders.usmle_mental import USMLEItem
from trustmh.data.records import read_jsonl
from trustmh.data.sources import DataContext
from trustmh.paired import item_mean
from trustmh.scoring.classification import (
    accuracy_metrics,
    group_metrics,
    outcome,
    scored_only,
)
from trustmh.scoring.outcomes import NOT_SCORED
from trustmh.scoring.parsers import parse_option, parse_two_options
from trustmh.scoring.summary import mean_metric
from trustmh.tasks.base import ScoreContext
from trustmh.tasks.options import choice_option
from trustmh.types import MetricValue, Response, Sample, SampleScore, ScoredSample

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# --------------------------------------------------------------------------------------------
# 3.1 knowledge
# --------------------------------------------------------------------------------------------

KNOWLEDGE_INSTRUCTION = (
    "Answer the following multiple-choice question about mental health. "
    "Reply with the letter of the single best option."
)
KNOWLEDGE_OUTPUT = 'Return your answer as a JSON object: {"answer": "<letter>"}'


def knowledge_prompt(item: USMLEItem) -> str:
    """The DEFAULT knowledge prompt of protocol 3.1."""
    options = "\n".join(f"{letter}. {text}" for letter, text in item.options.items())
    return f"{KNOWLEDGE_INSTRUCTION}\n\nQuestion: {item.question}\n\nOptions:\n{options}\n\n{KNOWLEDGE_OUTPUT}"


def knowledge_samples(ctx: DataContext, options: dict[str, Any]) -> Iterator[Sample]:
    """One sample per USMLE-mental question; id = its line number in USMLE-mental.jsonl."""
    items = read_jsonl(ctx.file(USMLE, "USMLE-mental.jsonl"), USMLEItem)
    for line, item in enumerate(items, 1):
        yield Sample(
            id=str(line),
            messages=({"role": "user", "content": knowledge_prompt(item)},),
            target=item.answer,
            meta={
                "options": item.options,
                "step": item.meta_info1,
                "topics": item.meta_info2,
                "answer_text": item.answer_description,
            },
        )


async def knowledge_score(sample: Sample, response: Response, ctx: ScoreContext) -> SampleScore:
    """1 when the parsed letter is the answer; unparsed and refused replies score 0."""
    letter = parse_option(response.text, sample.meta["options"])
    status, detail = outcome(letter, response.text)
    return SampleScore(float(letter == sample.target), letter, status, detail)


def knowledge_aggregate(scored: list[ScoredSample], options: dict[str, Any]) -> list[MetricValue]:
    """Accuracy over all questions (primary), refusal rate, accuracy per exam step and per topic."""
    return accuracy_metrics(
        scored,
        options,
        breakdowns={
            "step": lambda s: s.meta.get("step"),
            "topic": lambda s: s.meta.get("topics") or None,
        },
    )


# --------------------------------------------------------------------------------------------
# 3.2 emotion recognition
# --------------------------------------------------------------------------------------------

# EmoBench src/configs/response.yaml (MIT), `base` and `EU`, as yaml.safe_load reads them.
EMOBENCH_BASE = {
    "en": "Provide only one single correct answer to this question.  Do not provide any additional "
    "information or explanations. The response should be in the following JSON format:\n",
    "zh": "只提供一个正确的答案。 不要提供任何额外的信息或解释。 回复应采用以下JSON格式：\n",
}
EMOBENCH_EU_KEYS = {
    "en": '"answer_q1": "<Respond to the Question 1 with the corresponding letter numbering>",\n'
    '"answer_q2": "<Respond to the Question 2 with the corresponding letter numbering>"\n',
    "zh": '"answer_q1": "<用相应的字母进行回答问题1>",\n"answer_q2": "<用相应的字母进行回答问题2>"\n',
}
PRIMARY_CHOICES = ("joint", "mean")


def emobench_response_format(lang: str) -> str:
    """EmoBench's `get_response_format("EU", lang, use_cot=False)`."""
    return f"\n{EMOBENCH_BASE[lang]}\n```json\n    {{\n    {EMOBENCH_EU_KEYS[lang]}\n    }}\n``` \n    "


def lettered(choices: list[str]) -> str:
    """EmoBench's `rank_choices`: `A) first`, `B) second`, one per line."""
    return "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(choices))


def choice_map(choices: list[str]) -> dict[str, str]:
    """Letter -> choice text."""
    return {LETTERS[i]: c for i, c in enumerate(choices)}


def emotion_samples(ctx: DataContext, options: dict[str, Any]) -> Iterator[Sample]:
    """One sample per EU item; id = `<language>/<qid>`. Languages alternate (en 1, zh 1, en 2,
    ...) so `--limit` takes both."""
    _primary(options)  # reject a bad option before any request is sent
    prompts = load_prompts(ctx)
    by_language: dict[str, list[EUItem]] = {}
    for item in read_jsonl(ctx.file(EMOBENCH, "EU.jsonl"), EUItem):
        by_language.setdefault(item.language, []).append(item)
    for item in itertools.chain.from_iterable(itertools.zip_longest(*by_language.values())):
        if item is None:
            continue
        lang = item.language
        system = getattr(prompts.sys, lang) + emobench_response_format(lang)
        user = (
            getattr(prompts.eu, lang)
            .replace("{scenario}", item.scenario)
            .replace("{subject}", item.subject)
            .replace("{emo_choices}", lettered(item.emotion_choices))
            .replace("{cause_choices}", lettered(item.cause_choices))
        )
        yield Sample(
            id=f"{lang}/{item.qid}",
            messages=({"role": "system", "content": system}, {"role": "user", "content": user}),
            target={
                "emotion": LETTERS[item.emotion_choices.index(item.emotion_label)],
                "cause": LETTERS[item.cause_choices.index(item.cause_label)],
            },
            meta={
                "language": lang,
                "coarse_category": item.coarse_category,
                "finegrained_category": item.finegrained_category,
                "emotion_choices": item.emotion_choices,
                "cause_choices": item.cause_choices,
                "emotion_label": item.emotion_label,
                "cause_label": item.cause_label,
            },
        )


async def emotion_score(sample: Sample, response: Response, ctx: ScoreContext) -> SampleScore:
    """Value 1 when both the emotion and the cause are right; the two parts are in the detail.
    A reply answering only one question is "unparsed" (partial) and keeps its part's credit."""
    emotion, cause = parse_two_options(
        response.text,
        choice_map(sample.meta["emotion_choices"]),
        choice_map(sample.meta["cause_choices"]),
    )
    detail: dict[str, Any] = {
        "emotion_correct": emotion == sample.target["emotion"],
        "cause_correct": cause == sample.target["cause"],
    }
    if emotion is not None and cause is not None:
        status = "ok"
    elif emotion is None and cause is None:
        status, more = outcome(None, response.text)
        detail.update(more)
    else:
        status, detail["partial"] = "unparsed", True
    joint = detail["emotion_correct"] and detail["cause_correct"]
    return SampleScore(float(joint), {"emotion": emotion, "cause": cause}, status, detail)


def _primary(options: dict[str, Any]) -> str:
    return choice_option(options, "primary_metric", PRIMARY_CHOICES)


def _part(name: str) -> Callable[[ScoredSample], float]:
    return lambda s: float(bool(s.score.detail.get(f"{name}_correct")))


def _joint(s: ScoredSample) -> float:
    return float(s.score.value or 0.0)


def _mean_credit(s: ScoredSample) -> float:
    return (_part("emotion")(s) + _part("cause")(s)) / 2


def _emotion_credit(s: ScoredSample, options: dict[str, Any]) -> float | None:
    if s.score.status in NOT_SCORED:
        return None
    return _joint(s) if _primary(options) == "joint" else _mean_credit(s)


# protocol 1.9: the primary accuracy (joint, or the mean of the two parts) as a mean over items
EMOTION_PAIRED = item_mean(
    _emotion_credit,
    "mean over items of the credit chosen by primary_metric (joint: 0/1)",
    judged=False,
)


def emotion_aggregate(scored: list[ScoredSample], options: dict[str, Any]) -> list[MetricValue]:
    """Primary accuracy (joint by default, or the mean of the two parts), refusal rate, emotion and
    cause accuracies, the other combination, and breakdowns by language and coarse category."""
    seed = int(options.get("seed", 0))
    primary = _primary(options)
    credit = _joint if primary == "joint" else _mean_credit
    note = (
        "joint accuracy: emotion and cause both right (DEFAULT)"
        if primary == "joint"
        else "mean of emotion and cause accuracy (option primary_metric = mean)"
    )
    by_language = {"language": lambda s: s.meta.get("language")}
    out = accuracy_metrics(
        scored,
        options,
        value=credit,
        breakdowns={**by_language, "category": lambda s: s.meta.get("coarse_category")},
        note=note,
    )
    answered = scored_only(scored)
    other_name, other = (
        ("mean_accuracy", _mean_credit) if primary == "joint" else ("joint_accuracy", _joint)
    )
    out.append(mean_metric(other_name, [other(s) for s in answered], seed))
    for part in ("emotion", "cause"):
        name = f"{part}_accuracy"
        out.append(mean_metric(name, [_part(part)(s) for s in answered], seed))
        out.extend(
            group_metrics(answered, name, "language", by_language["language"], _part(part), seed)
        )
    return out
