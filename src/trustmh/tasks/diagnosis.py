"""Reliability: psychological diagnosis (protocol 3.3), DEFAULT (reconstructed) throughout.

The paper's sets, D4 and SWMH, are released on request only. Option `diagnosis_sets`:
- `auto` (default): the paper's sets that are present under a data root (`d4/raw_data_test.json`,
  `swmh/test.csv`); when neither is, the stand-in;
- `paper`: D4 and SWMH, failing with how to request them when one is missing;
- `standin`: the stand-in even when the paper's sets are present.

D4 (Chinese): the dialogue (医生/患者 turns) and a Chinese instruction asking for the depression
level (0-3) and the suicide-risk level (0-3) as JSON; its score is the mean of the two accuracies.
SWMH: the post and the five subreddit labels; accuracy (also macro-F1). The subtask score is the
mean of the D4 and SWMH scores, with a bootstrap interval resampling within each set.

Stand-in (labelled "STAND-IN" in every report, never compared with the paper's rank): the
LLMs-Mental-Health-Crisis test conversations (2,046 less the 2 without a label) with the dataset's
GPT-4o-mini consensus labels, as a 7-way classification with the dataset's own prompt; parsed like
crisis identification (4.1).

For the robustness pillar: every sample's `meta["user_spans"]` lists the `[message, start, end]`
of the text the user wrote (the stand-in's sentences inside the JSON list, the SWMH post, the D4
patient turns); instructions, labels and doctor turns lie outside them.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any, get_args

from trustmh.data.loaders import d4 as d4_loader
from trustmh.data.loaders import swmh as swmh_loader
from trustmh.data.loaders.mh_crisis import upstream_prompt
from trustmh.data.sources import DataContext, how_to_get
from trustmh.errors import UserError
from trustmh.paired import Paired, Units, mean_of_columns, unit_prefix
from trustmh.scoring.classification import (
    accuracy_metrics,
    macro_f1,
    mean_of_groups_ci,
    outcome,
    scored_only,
)
from trustmh.scoring.parsers import json_field, parse_label
from trustmh.scoring.summary import mean_metric
from trustmh.tasks.base import ScoreContext
from trustmh.tasks.crisis_classification import (
    CRISIS_ALIASES,
    CRISIS_LABELS,
    labelled_conversations,
)
from trustmh.tasks.options import choice_option, positive_int_option
from trustmh.types import Message, MetricValue, Response, Sample, SampleScore, ScoredSample

SET_CHOICES = ("auto", "paper", "standin")
STANDIN_NOTE = (
    "STAND-IN: LLMs-Mental-Health-Crisis test set (GPT-4o-mini labels), 7-way; D4 and SWMH are not "
    "available, so this is not comparable with the paper's rank"
)
SWMH_LABELS: tuple[str, ...] = get_args(swmh_loader.SwmhLabel)
SWMH_ALIASES = {
    "suicide watch": "suicidewatch",
    "r/suicidewatch": "suicidewatch",
    "off my chest": "offmychest",
    "r/offmychest": "offmychest",
    "r/depression": "depression",
    "r/anxiety": "anxiety",
    "r/bipolar": "bipolar",
}
SWMH_DEFINITIONS = {
    "depression": "the writer describes depressive symptoms: persistent low mood, loss of interest, "
    "worthlessness, fatigue.",
    "SuicideWatch": "the writer expresses suicidal thoughts, a wish to die or a plan to end their life.",
    "Anxiety": "the writer describes anxiety: excessive worry, panic attacks, restlessness.",
    "bipolar": "the writer describes bipolar disorder: swings between depression and mania or hypomania.",
    "offmychest": "the writer vents about life events without clear signs of a mental disorder.",
}
D4_SPEAKERS = {"doctor": "医生", "patient": "患者"}
D4_INSTRUCTION = (
    "你是一名精神科医生。下面是一段医生与患者的问诊对话。请根据对话判断患者的：\n"
    "1. 抑郁程度：0 = 无抑郁，1 = 轻度，2 = 中度，3 = 重度；\n"
    "2. 自杀风险：0 = 无，1 = 低，2 = 中，3 = 高。"
)
D4_OUTPUT = '请只返回一个 JSON 对象：{"depression": <0-3>, "suicide_risk": <0-3>}'
D4_WORDS = {
    "无": 0, "没有": 0, "none": 0, "no": 0,
    "轻度": 1, "轻": 1, "低": 1, "mild": 1, "low": 1,
    "中度": 2, "中": 2, "中等": 2, "moderate": 2, "medium": 2,
    "重度": 3, "重": 3, "高": 3, "severe": 3, "high": 3,
}  # fmt: skip
D4_FIELDS = {
    "depression": (("depression", "depression_level", "抑郁程度", "抑郁"), r"(?:抑郁|depression)"),
    "suicide_risk": (("suicide_risk", "suicide", "suicide_risk_level", "自杀风险", "自杀"), r"(?:自杀|suicid)"),
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# prompts: fixed text and the user's texts, with the spans the robustness pillar perturbs
# --------------------------------------------------------------------------------------------


class PromptBuilder:
    """One user message built from fixed text and user-written pieces; `spans` are the
    `[message_index, start, end]` of the user-written pieces (robustness `user_spans`)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[list[int]] = []
        self.length = 0

    def add(self, text: str, user: bool = False) -> PromptBuilder:
        """Append text; `user=True` marks it as written by the user."""
        if user:
            self.spans.append([0, self.length, self.length + len(text)])
        self.parts.append(text)
        self.length += len(text)
        return self

    def messages(self) -> tuple[Message, ...]:
        """The single user message."""
        return ({"role": "user", "content": "".join(self.parts)},)


def standin_prompt(template: str, inputs: Sequence[str], dataset_id: str) -> PromptBuilder:
    """The upstream crisis prompt (as `crisis_prompt` builds it) with each sentence, inside its
    JSON string, marked as user text (JSON escapes such as \\" stay inside the span)."""
    head, _, tail = template.partition("{inputs_json}")
    prompt = PromptBuilder().add(head.replace("{dataset_id}", dataset_id)).add("[")
    for i, sentence in enumerate(inputs):
        encoded = json.dumps(sentence, ensure_ascii=False)
        prompt.add(", " if i else "").add('"').add(encoded[1:-1], user=True).add('"')
    return prompt.add("]").add(tail.replace("{dataset_id}", dataset_id))


def swmh_prompt(post: str) -> PromptBuilder:
    """The DEFAULT SWMH prompt: the five subreddit labels with definitions, the post, JSON answer."""
    labels = "\n".join(f"- **{k}**: {v}" for k, v in SWMH_DEFINITIONS.items())
    head = (
        "You are an expert mental health AI. Read the Reddit post below and decide which "
        "mental-health community it was posted in. Choose ONE of these labels:\n\n"
        f"{labels}\n\nPost:\n"
    )
    tail = (
        '\n\nReturn your answer as a JSON object: {"label": "<one of depression, SuicideWatch, '
        'Anxiety, bipolar, offmychest>", "explanation": "<brief explanation>"}'
    )
    return PromptBuilder().add(head).add(post, user=True).add(tail)


def d4_prompt(turns: Sequence[dict[str, str]]) -> PromptBuilder:
    """The DEFAULT D4 prompt (Chinese): instruction, the dialogue (patient turns are user text),
    JSON answer."""
    prompt = PromptBuilder().add(f"{D4_INSTRUCTION}\n\n对话：\n")
    for i, turn in enumerate(turns):
        speaker = D4_SPEAKERS.get(turn["speaker"], turn["speaker"])
        prompt.add(("\n" if i else "") + f"{speaker}：")
        prompt.add(turn["text"], user=turn["speaker"] == "patient")
    return prompt.add(f"\n\n{D4_OUTPUT}")


# --------------------------------------------------------------------------------------------
# samples
# --------------------------------------------------------------------------------------------


def chosen_sets(ctx: DataContext, options: dict[str, Any]) -> list[str]:
    """Which datasets this run uses: a subset of ["d4", "swmh"], or ["standin"]."""
    choice = choice_option(options, "diagnosis_sets", SET_CHOICES)
    present = [s for s in ("d4", "swmh") if ctx.root_of(s) is not None]
    if choice == "standin":
        return ["standin"]
    if choice == "paper":
        for source in ("d4", "swmh"):
            if source not in present:
                raise UserError(
                    f"options.diagnosis_sets = 'paper' needs {source!r}: {how_to_get(source)}"
                )
    return present or ["standin"]


STANDIN_NAME = "LLMs-Mental-Health-Crisis test set, 7 crisis labels (not D4 + SWMH)"


def diagnosis_stand_in(ctx: DataContext, options: dict[str, Any]) -> str | None:
    """The stand-in's name when these data and options run on it, else None."""
    return STANDIN_NAME if chosen_sets(ctx, options) == ["standin"] else None


def diagnosis_samples(ctx: DataContext, options: dict[str, Any]) -> Iterator[Sample]:
    """The chosen sets' samples; D4 and SWMH interleaved so `--limit` takes some of each."""
    sets = chosen_sets(ctx, options)
    cap = positive_int_option(options, "max_items_per_set", None)
    per_set = []
    for name in sets:
        items = {"standin": _standin, "d4": _d4, "swmh": _swmh}[name](ctx)
        per_set.append(itertools.islice(items, cap) if cap is not None else items)
    for group in itertools.zip_longest(*per_set):
        yield from (s for s in group if s is not None)


def _sample(sample_id: str, prompt: PromptBuilder, target: Any, meta: dict[str, Any]) -> Sample:
    meta = {**meta, "user_spans": prompt.spans}
    return Sample(id=sample_id, messages=prompt.messages(), target=target, meta=meta)


def _standin(ctx: DataContext) -> Iterator[Sample]:
    rows, n_dropped = labelled_conversations(ctx, "test")
    template = upstream_prompt(ctx)
    for row in rows:
        prompt = standin_prompt(template, row["inputs"], row["dataset_id"])
        meta = {
            "dataset": "standin",
            "dataset_id": row["dataset_id"],
            "n_unlabelled_dropped": n_dropped,
        }
        yield _sample(row["id"], prompt, row["label"], meta)


def _swmh(ctx: DataContext) -> Iterator[Sample]:
    for i, post in enumerate(swmh_loader.load(ctx)["test"]):
        yield _sample(f"swmh/{i}", swmh_prompt(post.text), post.label, {"dataset": "swmh"})


def _d4(ctx: DataContext) -> Iterator[Sample]:
    for i, session in enumerate(d4_loader.load(ctx)["test"]):
        turns = [{"speaker": t.speaker, "text": t.text} for t in session.log]
        target = {"depression": session.depression, "suicide_risk": session.suicide_risk}
        yield _sample(f"d4/{i}", d4_prompt(turns), target, {"dataset": "d4"})


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------


def d4_level(reply: str, field: str) -> int | None:
    """A D4 level 0-3 from the JSON field (a digit or a level word), else from "抑郁…2"-style text."""
    keys, cue = D4_FIELDS[field]
    value = json_field(reply, keys)
    if value is not None:
        text = str(value).strip().strip("\"'").casefold()
        if text in {"0", "1", "2", "3"}:
            return int(text)
        if text in D4_WORDS:
            return D4_WORDS[text]
        digit = re.match(r"([0-3])(?!\d)", text)
        if digit:
            return int(digit.group(1))
    match = re.search(cue + r"[^0-9\n]{0,12}?([0-3])(?!\d)", reply, re.I)
    return int(match.group(1)) if match else None


async def diagnosis_score(sample: Sample, response: Response, ctx: ScoreContext) -> SampleScore:
    """Stand-in and SWMH: 1 for the right label. D4: the mean of the depression and suicide-risk
    hits; a reply answering only one of them is "unparsed" (partial) and keeps that part's credit."""
    text = response.text
    kind = sample.meta["dataset"]
    if kind != "d4":
        labels, aliases = (
            (CRISIS_LABELS, CRISIS_ALIASES) if kind == "standin" else (SWMH_LABELS, SWMH_ALIASES)
        )
        label = parse_label(text, labels, aliases=aliases)
        status, detail = outcome(label, text)
        return SampleScore(float(label == sample.target), label, status, detail)
    levels = {f: d4_level(text or "", f) for f in D4_FIELDS}
    detail: dict[str, Any] = {f"{f}_correct": levels[f] == sample.target[f] for f in D4_FIELDS}
    found = [v is not None for v in levels.values()]
    if all(found):
        status = "ok"
    elif not any(found):
        status, more = outcome(None, text)
        detail.update(more)
    else:
        status, detail["partial"] = "unparsed", True
    value = sum(detail[f"{f}_correct"] for f in D4_FIELDS) / len(D4_FIELDS)
    return SampleScore(value, levels, status, detail)


def diagnosis_aggregate(scored: list[ScoredSample], options: dict[str, Any]) -> list[MetricValue]:
    """Stand-in: accuracy, refusal rate, per-label accuracy, macro-F1. Paper sets: the mean of the
    D4 and SWMH scores (primary, stratified bootstrap interval) and each set's own numbers."""
    seed = int(options.get("seed", 0))
    by_set: dict[str, list[ScoredSample]] = {}
    for s in scored:
        by_set.setdefault(s.meta.get("dataset", "standin"), []).append(s)
    if "standin" in by_set:
        out = accuracy_metrics(
            scored, options, breakdowns={"label": lambda s: s.target}, note=STANDIN_NOTE
        )
        out.append(_macro_f1("macro_f1", scored_only(scored)))
        return out
    out = accuracy_metrics(scored, options, breakdowns={"dataset": lambda s: s.meta.get("dataset")})
    primary = out[0]
    groups = {
        k: [float(s.score.value or 0.0) for s in scored_only(v)] for k, v in sorted(by_set.items())
    }
    primary.value, primary.ci_low, primary.ci_high = mean_of_groups_ci(list(groups.values()), seed)
    names = " and ".join(
        {"d4": "D4 (mean of depression and suicide-risk accuracy)", "swmh": "SWMH"}[k]
        for k in groups
    )
    primary.note = (
        f"mean of {names} accuracy"
        if len(groups) > 1
        else f"{names} only: the other paper set is absent"
    )
    if "d4" in by_set:
        answered = scored_only(by_set["d4"])
        for field in D4_FIELDS:
            values = [float(bool(s.score.detail.get(f"{field}_correct"))) for s in answered]
            out.append(mean_metric(f"d4_{field}_accuracy", values, seed))
    if "swmh" in by_set:
        out.append(_macro_f1("swmh_macro_f1", scored_only(by_set["swmh"])))
    return out


def _diagnosis_units(scored: list[ScoredSample], options: dict[str, Any]) -> Units:
    """One column per dataset (`standin`, or `d4` and `swmh`), the credit of its items."""
    units: Units = {}
    for s in scored_only(scored):
        dataset = str(s.meta.get("dataset", "standin"))
        units[f"{dataset}/{s.sample_id}"] = {dataset: float(s.score.value or 0.0)}
    return units


def _diagnosis_combine(means: Any, columns: Any, options: dict[str, Any]) -> Any:
    return mean_of_columns(means, require_all=False)  # the mean of the datasets present


# protocol 1.9: the stand-in's accuracy, or the mean of the D4 and SWMH scores, resampled within
# each dataset as the subtask's own interval is
DIAGNOSIS_PAIRED = Paired(
    _diagnosis_units,
    _diagnosis_combine,
    stratum=unit_prefix,
    judged=False,
    procedure="mean over the datasets (stand-in, or D4 and SWMH) of the mean item credit; "
    "bootstrap within each dataset",
)


def _macro_f1(name: str, answered: list[ScoredSample]) -> MetricValue:
    gold = [s.target for s in answered]
    predicted = [s.score.parsed if s.score.status == "ok" else None for s in answered]
    return MetricValue(name, macro_f1(gold, predicted), len(gold))
