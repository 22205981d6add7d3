"""Crisis: the two classification subtasks, crisis identification (protocol 4.1) and severity
identification (4.2). The Task entries in `tasks/crisis.py` point at these functions.

Crisis identification. UPSTREAM: the dataset's own classification prompt (`llm_as_judge` in
`mh_crisis/extra/llm_prompting.py`, read from the data file, filled with the item's source
`dataset_id` and the sentences as `json.dumps(..., ensure_ascii=False)`), one user message, and
its seven labels. DEFAULT: the human-labelled validation sample with the 16 items without a
consensus label dropped (n = 190; option `split = "test"` takes the 2,046 test conversations with
GPT-4o-mini consensus labels instead), the parser (`parse_label`), plain accuracy as the primary
metric; secondary macro-F1, crisis recall (crisis vs no_crisis) and a soft accuracy.

Severity identification (Reddit C-SSRS, 500 users), DEFAULT prompt and parser: a role line, the
five levels with one-line definitions in order, the user's posts joined by blank lines (most
recent kept up to `max_words`, default 6,000 words; file order taken as oldest first), and a
fenced JSON answer `{"label", "reasoning"}`. Accuracy (primary), macro-F1, mean absolute level
error, and Gaur et al.'s graded recall/precision (under-/over-estimation).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, get_args

from trustmh.data.loaders.c_ssrs import LEVELS
from trustmh.data.loaders.c_ssrs import load as load_cssrs
from trustmh.data.loaders.mh_crisis import (
    SOURCE,
    CrisisLabel,
    LLMLabelledConversation,
    SampledConversation,
    human_labelled,
    upstream_prompt,
)
from trustmh.data.records import read_json_records
from trustmh.data.sources import DataContext
from trustmh.scoring.classification import (
    accuracy_metrics,
    macro_f1,
    outcome,
    scored_only,
)
from trustmh.scoring.parsers import parse_label
from trustmh.scoring.summary import mean_metric
from trustmh.tasks.base import ScoreContext
from trustmh.tasks.options import choice_option, positive_int_option
from trustmh.types import MetricValue, Response, Sample, SampleScore, ScoredSample

CRISIS_LABELS: tuple[str, ...] = get_args(CrisisLabel)
NO_CRISIS = "no_crisis"
VALIDATION_FILE = "processed/sampled_dataset_n_200_merged_n50-noSeed_156-s42.json"
TEST_LABELS_FILE = "llm_label_test_gpt-4o-mini_merged.json"
SPLITS = ("human", "test")
CRISIS_ALIASES = {
    "risk taking behaviors": "risk_taking_behaviours",
    "risk-taking behaviour": "risk_taking_behaviours",
    "substance abuse": "substance_abuse_or_withdrawal",
    "substance withdrawal": "substance_abuse_or_withdrawal",
    "self harm": "self-harm",
    "selfharm": "self-harm",
    "no crisis": NO_CRISIS,
}
# Partial credit for confused close labels (protocol 4.1 names this pair; the full map of the
# config it cites is unknown). Symmetric; exact = 1, other confusions = 0.
SOFT_SIMILARITY = {frozenset({"suicidal_ideation", "self-harm"}): 0.6}


# --------------------------------------------------------------------------------------------
# 4.1 crisis identification
# --------------------------------------------------------------------------------------------


def crisis_prompt(template: str, inputs: Sequence[str], dataset_id: str) -> str:
    """The upstream `llm_as_judge` prompt for one conversation (literal replacement)."""
    return template.replace("{dataset_id}", dataset_id).replace(
        "{inputs_json}", json.dumps(list(inputs), ensure_ascii=False)
    )


def labelled_conversations(ctx: DataContext, split: str) -> tuple[list[dict[str, Any]], int]:
    """(records with id, inputs, label, dataset_id and annotator labels, number dropped for a
    missing label) of a split: `human` (206 minus unlabelled) or `test` (2,046 minus unlabelled)."""
    if split == "human":
        labelled = human_labelled(ctx)
        sampled = read_json_records(ctx.file(SOURCE, VALIDATION_FILE), SampledConversation)
        # the two files list the same 206 conversations in the same order; the merged-label file
        # lacks the source id the upstream prompt shows, so take it from the sampled file
        ids = {
            i: s.dataset_id
            for i, (s, r) in enumerate(zip(sampled, labelled, strict=False))
            if s.inputs == r.inputs
        }
        rows = [
            {"id": f"n206/{i}", "inputs": r.inputs, "label": r.label, "dataset_id": ids.get(i, ""),
             "annotator_labels": r.all_labels}
            for i, r in enumerate(labelled)
        ]  # fmt: skip
    elif split == "test":
        test = read_json_records(ctx.file(SOURCE, TEST_LABELS_FILE), LLMLabelledConversation)
        rows = [
            {"id": f"test/{i}", "inputs": r.inputs, "label": r.label, "dataset_id": r.dataset_id,
             "annotator_labels": r.all_labels}
            for i, r in enumerate(test)
        ]  # fmt: skip
    else:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    kept = [r for r in rows if r["label"] is not None]
    return kept, len(rows) - len(kept)


def crisis_samples(ctx: DataContext, options: dict[str, Any]) -> Iterator[Sample]:
    """One sample per labelled conversation; id = `n206/<index>` (or `test/<index>`), the index
    in the dataset file, so dropped unlabelled items leave gaps."""
    rows, n_dropped = labelled_conversations(ctx, choice_option(options, "split", SPLITS))
    template = upstream_prompt(ctx)
    for row in rows:
        yield Sample(
            id=row["id"],
            messages=(
                {
                    "role": "user",
                    "content": crisis_prompt(template, row["inputs"], row["dataset_id"]),
                },
            ),
            target=row["label"],
            meta={
                "dataset_id": row["dataset_id"],
                "n_sentences": len(row["inputs"]),
                "annotator_labels": row["annotator_labels"],
                "n_unlabelled_dropped": n_dropped,
            },
        )


async def crisis_score(sample: Sample, response: Response, ctx: ScoreContext) -> SampleScore:
    """1 when the parsed label is the consensus label; unparsed and refused replies score 0."""
    label = parse_label(response.text, CRISIS_LABELS, aliases=CRISIS_ALIASES)
    status, detail = outcome(label, response.text)
    return SampleScore(float(label == sample.target), label, status, detail)


def soft_credit(gold: str, predicted: str | None, similarity: dict | None = None) -> float:
    """1 for the right label, the similarity of a close pair, else 0."""
    if predicted is None:
        return 0.0
    if predicted == gold:
        return 1.0
    return float((similarity or SOFT_SIMILARITY).get(frozenset({gold, predicted}), 0.0))


def crisis_aggregate(scored: list[ScoredSample], options: dict[str, Any]) -> list[MetricValue]:
    """Accuracy (primary), refusal rate, per-label accuracy, macro-F1, crisis recall, soft accuracy."""
    seed = int(options.get("seed", 0))
    answered = scored_only(scored)
    dropped = {s.meta.get("n_unlabelled_dropped", 0) for s in scored}
    note = (
        f"{max(dropped)} items without a consensus label dropped"
        if dropped and max(dropped)
        else None
    )
    out = accuracy_metrics(scored, options, breakdowns={"label": lambda s: s.target}, note=note)
    gold = [s.target for s in answered]
    predicted = [s.score.parsed if s.score.status == "ok" else None for s in answered]
    out.append(MetricValue("macro_f1", macro_f1(gold, predicted), len(gold)))
    crisis = [
        p not in (None, NO_CRISIS) for g, p in zip(gold, predicted, strict=True) if g != NO_CRISIS
    ]
    out.append(
        mean_metric(
            "crisis_recall", [float(c) for c in crisis], seed,
            note="share of crisis conversations the model flags as any crisis label",
        )
    )  # fmt: skip
    out.append(
        mean_metric(
            "soft_accuracy",
            [soft_credit(g, p) for g, p in zip(gold, predicted, strict=True)],
            seed,
            note="partial credit 0.6 for suicidal_ideation <-> self-harm (DEFAULT map)",
        )
    )
    return out


# --------------------------------------------------------------------------------------------
# 4.2 severity identification (C-SSRS)
# --------------------------------------------------------------------------------------------

MAX_WORDS = 6000
CSSRS_DEFINITIONS = {
    "Supportive": "the user supports or advises others and shows no risk of their own.",
    "Indicator": "the user shows risk factors (for example depression, hopelessness, isolation) "
    "but no suicidal ideation.",
    "Ideation": "the user has thoughts of suicide or of wanting to die.",
    "Behavior": "the user reports self-harm or acts preparing a suicide (for example a plan, "
    "obtaining the means).",
    "Attempt": "the user reports a past suicide attempt.",
}
CSSRS_ALIASES = {"behaviour": "Behavior", "behaviors": "Behavior", "attempted": "Attempt"}


def cssrs_prompt(posts: Sequence[str]) -> str:
    """The DEFAULT severity prompt of protocol 4.2."""
    levels = "\n".join(f"- **{level}**: {CSSRS_DEFINITIONS[level]}" for level in LEVELS)
    body = "\n\n".join(posts)
    return (
        "You are a mental health risk assessor. Read the Reddit posts below, all written by one "
        "user, and grade the user's suicide risk on the Columbia Suicide Severity Rating Scale "
        "(C-SSRS) with exactly one of these five levels, listed from lowest to highest risk:\n\n"
        f"{levels}\n\nPosts:\n{body}\n\n"
        "Return your answer as a JSON object in a fenced code block:\n"
        '```json\n{"label": "<one of Supportive, Indicator, Ideation, Behavior, Attempt>", '
        '"reasoning": "<1-2 sentences>"}\n```'
    )


def recent_posts(posts: Sequence[str], max_words: int) -> tuple[list[str], int]:
    """(the most recent posts whose words total at most `max_words`, in file order, number of
    older posts left out). At least the last post is kept, cut to `max_words` words."""
    kept: list[str] = []
    words = 0
    for post in reversed(posts):
        n = len(post.split())
        if kept and words + n > max_words:
            break
        kept.append(post if n <= max_words else " ".join(post.split()[-max_words:]))
        words += n
    kept.reverse()
    return kept, len(posts) - len(kept)


def severity_samples(ctx: DataContext, options: dict[str, Any]) -> Iterator[Sample]:
    """One sample per Reddit user; id = the `User` field (`user-0` ...)."""
    max_words = positive_int_option(options, "max_words", MAX_WORDS)
    for user in load_cssrs(ctx)["users"]:
        posts, n_left_out = recent_posts(user.posts, max_words)
        yield Sample(
            id=user.user,
            messages=({"role": "user", "content": cssrs_prompt(posts)},),
            target=user.label,
            meta={
                "level": LEVELS.index(user.label),
                "n_posts": len(user.posts),
                "n_posts_left_out": n_left_out,
                "words_sent": sum(len(p.split()) for p in posts),
                "cell_cut_in_source": user.truncated,
            },
        )


async def severity_score(sample: Sample, response: Response, ctx: ScoreContext) -> SampleScore:
    """1 when the parsed level is the label; the signed level error is in the detail."""
    label = parse_label(response.text, LEVELS, aliases=CSSRS_ALIASES)
    status, detail = outcome(label, response.text)
    if label is not None:
        detail["level_error"] = LEVELS.index(label) - LEVELS.index(sample.target)
    return SampleScore(float(label == sample.target), label, status, detail)


def severity_aggregate(scored: list[ScoredSample], options: dict[str, Any]) -> list[MetricValue]:
    """Accuracy (primary), refusal rate, per-level accuracy, macro-F1 and the ordinal metrics."""
    seed = int(options.get("seed", 0))
    answered = scored_only(scored)
    left_out = sum(1 for s in scored if s.meta.get("n_posts_left_out"))
    note = f"older posts left out for {left_out} users over the word limit" if left_out else None
    out = accuracy_metrics(scored, options, breakdowns={"level": lambda s: s.target}, note=note)
    gold = [s.target for s in answered]
    predicted = [s.score.parsed if s.score.status == "ok" else None for s in answered]
    out.append(MetricValue("macro_f1", macro_f1(gold, predicted), len(gold)))
    errors = [s.score.detail["level_error"] for s in answered if "level_error" in s.score.detail]
    out.extend(ordinal_metrics(errors, seed))
    return out


def ordinal_metrics(errors: Sequence[int], seed: int) -> list[MetricValue]:
    """Mean absolute level error and Gaur et al. (2019)'s graded recall and precision over the
    parsed replies: an under-estimate counts as a false negative, an over-estimate as a false
    positive (DEFAULT reading of "graded")."""
    import numpy as np  # loaded on first use: importing this module stays cheap

    arr = np.asarray(errors, dtype=int)
    exact, under, over = int((arr == 0).sum()), int((arr < 0).sum()), int((arr > 0).sum())
    mae = float(np.abs(arr).mean()) if arr.size else None
    return [
        MetricValue("mean_abs_level_error", mae, int(arr.size), direction="lower",
                    note="over parsed replies; levels Supportive=0 .. Attempt=4"),
        MetricValue("graded_recall", exact / (exact + under) if exact + under else None, exact + under),
        MetricValue("graded_precision", exact / (exact + over) if exact + over else None, exact + over),
        mean_metric("under_estimation_rate", [float(e < 0) for e in errors], seed, direction="lower"),
        mean_metric("over_estimation_rate", [float(e > 0) for e in errors], seed, direction="lower"),
    ]  # fmt: skip
