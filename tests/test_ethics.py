"""Ethics pillar: exact prompts and judge prompts, the choice and verdict parsers against every
response form in the recorded outputs, the MH models' recorded choice, margins and the mojibake."""

from __future__ import annotations

import asyncio
import json
import math
import re
import statistics
from collections import Counter

import pytest

from trustmh.data.loaders import recorded
from trustmh.data.loaders.ethicmh import load_ethicmh, repair_mojibake
from trustmh.scoring.ethics import extract_choice, ground_truth_letter, judge_scores
from trustmh.scoring.json_extract import fenced_json_object, judge_verdict
from trustmh.tasks.base import ScoreContext
from trustmh.tasks.ethics import TASKS, judge_prompt
from trustmh.types import Response, ScoredSample

TASK = TASKS[0]


@pytest.fixture(scope="module")
def samples(ctx):
    return {s.id: s for s in TASK.samples(ctx, {})}


def _family(text: str) -> str:
    s = text.strip()
    if not s:
        return "empty"
    if s.startswith("```json") and s.endswith("```"):
        return "fenced json only"
    if "```" in s:
        return "fenced json with text"
    return "bare json" if s.startswith("{") else "prose"


def test_built_prompts_and_judge_prompts_equal_all_recorded_ones(full_ctx):
    built = {s.id: s for s in TASK.samples(full_ctx, {})}
    checked = checked_judge = 0
    for model in recorded.load_recorded_models(full_ctx):
        records = recorded.load_recorded_ethics(full_ctx, model.recorded_id)
        assert len(records) == 125
        for rec in records:
            sample = built[str(rec.sample_id)]
            if model.group == "general":  # the MH models' wrapper did not record its prompts
                assert sample.messages == ({"role": "user", "content": rec.prompt},)
                checked += 1
            # the authors' judge saw the raw reply (MH models: the extracted reasoning)
            assert judge_prompt(sample, rec.response or "") == rec.judge_prompt
            checked_judge += 1
    assert (checked, checked_judge) == (6 * 125, 12 * 125)


def test_response_families_and_choice_parser(ctx, samples):
    """General models answer in one fenced JSON block; MH models' stored replies are prose."""
    families: Counter = Counter()
    for model in recorded.load_recorded_models(ctx):
        for rec in recorded.load_recorded_ethics(ctx, model.recorded_id):
            text = rec.response or ""
            families[(model.group, _family(text))] += 1
            if model.group == "general":
                body = re.search(r"```json\s*(\{.*\})\s*```", text, re.S).group(1)
                assert extract_choice(text) == json.loads(body)["choice"].strip().upper()
                assert extract_choice(text) in "ABCD"
    assert families == {("general", "fenced json only"): 750, ("MH", "prose"): 750}


def test_choice_parser_rules_and_the_article_quirk():
    assert extract_choice('```json\n{"choice": " \'b\' ", "reasoning": "x"}\n```') == "B"
    assert extract_choice('{"choice": "Option C", "reasoning": "x"}') == "C"
    assert extract_choice('```json\n{"choice": "", "reasoning": "D is best"}\n```') == "D"
    # no JSON: the first standalone letter, case-insensitive, so the article "a" counts as A
    assert extract_choice("I think a careful approach, option C, is best.") == "A"
    assert extract_choice("I think a careful approach, option C, is best.", strict=True) == "C"
    assert extract_choice("") is None
    assert extract_choice("nothing here", strict=True) is None
    assert ground_truth_letter(" c ") == "C"


def test_mh_replies_would_misparse_so_the_recorded_choice_is_used(ctx, samples):
    """The six MH models' prose replies hold no JSON choice; parsing them trips the "a" quirk, so the
    scorer uses their separately recorded choice, as the authors' pipeline did."""
    for model in (m for m in recorded.load_recorded_models(ctx) if m.group == "MH"):
        records = recorded.load_recorded_ethics(ctx, model.recorded_id)
        from_text = Counter(extract_choice(r.response) for r in records)
        assert from_text.most_common(2)[0][0] in ("A", None) and from_text["A"] >= max(
            from_text[x] for x in "BCD"
        )
        assert sum(extract_choice(r.response) == r.recorded_choice for r in records) < 0.7 * len(
            records
        )
        correct = 0
        for rec in records:
            sample = samples[str(rec.sample_id)]
            reply = Response(rec.response, extra={"recorded_choice": rec.recorded_choice})
            score = asyncio.run(TASK.score(sample, reply, ScoreContext()))
            assert (
                score.parsed == rec.recorded_choice
                and score.detail["choice_source"] == "recorded_choice"
            )
            correct += score.value
        assert correct == sum(
            r.recorded_choice == samples[str(r.sample_id)].target for r in records
        )


def test_every_recorded_verdict_parses_to_five_valid_scores(ctx):
    for model in recorded.load_recorded_models(ctx):
        for rec in recorded.load_recorded_ethics(ctx, model.recorded_id):
            parsed, scores = judge_scores(rec.judge_response)
            assert set(scores) == {"sc1", "sc2", "sc3", "sc4", "sc5"}, (
                model.display,
                rec.sample_id,
            )
            body = re.search(r"```json\s*(\{.*\})\s*```", rec.judge_response, re.S).group(1)
            assert parsed == json.loads(body)


def test_judge_verdict_parser_rules():
    assert fenced_json_object('text\n```\n[1]\n```\n```JSON\n{"sc1": 4}\n```') == {"sc1": 4}
    assert judge_verdict('{"sc1": "5", "sc2": 0}') == {"sc1": "5", "sc2": 0}
    assert judge_scores('{"sc1": "5", "sc2": 0, "sc3": "x", "sc4": 4.5}')[1] == {
        "sc1": 5.0,
        "sc4": 4.5,
    }
    assert judge_verdict("score 4 of 5") == {"overall": 4.0}
    assert judge_verdict("no numbers") == {"unparsed": "no numbers"}
    assert judge_verdict("") == {}


def _scored(ctx, samples, model_display, with_judge):
    model = next(m for m in recorded.load_recorded_models(ctx) if m.display == model_display)
    out = []
    for rec in recorded.load_recorded_ethics(ctx, model.recorded_id):
        sample = samples[str(rec.sample_id)]
        judge = None
        if with_judge:

            async def judge(messages, params=None, _text=rec.judge_response):
                return Response(_text)

            judge.spec = "replay:judge"  # type: ignore[attr-defined]
        extra = (
            {"recorded_choice": rec.recorded_choice}
            if "recorded_choice" in rec.model_fields_set
            else None
        )
        score = asyncio.run(
            TASK.score(sample, Response(rec.response or "", extra=extra), ScoreContext(judge=judge))
        )
        out.append(
            ScoredSample(sample.id, "clean", sample.target, sample.meta, rec.response, score)
        )
    return out, model


def test_aggregate_margins_follow_the_authors_rule(ctx, samples):
    scored, _ = _scored(ctx, samples, "GPT-4o-mini", with_judge=True)
    metrics = {m.name: m for m in TASK.aggregate(scored, {})}
    assert metrics["accuracy"].primary and metrics["accuracy"].n == 125
    for key in ("sc1", "sc2", "sc3", "sc4", "sc5"):
        values = [s.score.detail["judge_scores"][key] for s in scored]
        margin = 1.96 * statistics.stdev(values) / math.sqrt(len(values))
        assert metrics[key].value == pytest.approx(statistics.mean(values))
        assert metrics[key].ci_high - metrics[key].value == pytest.approx(margin)
    assert metrics["judge_mean"].value == pytest.approx(
        statistics.mean(metrics[k].value for k in ("sc1", "sc2", "sc3", "sc4", "sc5"))
    )
    no_judge = {
        m.name
        for m in TASK.aggregate(_scored(ctx, samples, "GPT-4o-mini", with_judge=False)[0], {})
    }
    assert no_judge == {"accuracy"}


def test_mojibake_kept_in_exact_mode_and_repaired_in_the_fixed_variant(ctx, samples):
    assert "patient閳ユ獨 consent" in samples["0"].messages[0]["content"]
    fixed = {s.id: s for s in TASK.samples(ctx, {"repair_mojibake": True})}
    assert "patient\u2019s consent" in fixed["0"].messages[0]["content"]
    assert repair_mojibake("Parents閳?perspective") == "Parents\u2019 perspective"
    assert not any(
        "閳" in getattr(i, f)
        for i in load_ethicmh(ctx, repair=True)
        for f in ("scenario", "options", "viewpoints")
    )


def test_all_125_items_have_a_single_letter_answer(ctx):
    items = load_ethicmh(ctx)
    assert len(items) == 125 and [i.index for i in items] == list(range(125))
    assert {ground_truth_letter(i.expected_reasoning) for i in items} <= set("ABCD")
