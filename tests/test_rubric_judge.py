"""The rubric judge: rubric files, prompt filling, verdict parsing, the one stricter retry, and
what is stored when a verdict never parses. End-to-end judge runs through the loopback server are in
the judge-scored tasks' tests."""

from __future__ import annotations

import asyncio
from importlib import resources

import pytest

from trustmh.errors import UserError
from trustmh.scoring.judge import judge_reply, load_rubric, parse_rubric, score_from_verdict
from trustmh.tasks.base import ScoreContext
from trustmh.types import Response

RUBRIC = """
title = "test rubric"
template = "Conversation: {{history}}\\nReply: {{reply}}\\nAnswer as JSON."
stricter = "Output ONLY the JSON object."
max_tokens = 64
[[fields]]
name = "Empathy"
range = [1, 5]
[[fields]]
name = "verdict"
labels = ["refused", "complied", "partial"]
"""


class ScriptedJudge:
    """A judge that answers from a list and records what it was asked."""

    spec = "scripted-judge"

    def __init__(self, *answers: str | None):
        self.answers = list(answers)
        self.asked: list[tuple] = []
        self.failure: str | None = None

    async def __call__(self, messages, params=None):
        self.asked.append((messages, params))
        answer = self.answers.pop(0)
        if answer is None:
            self.failure = "HTTP 503 after 4 attempts"
            return None
        return Response(text=answer)


def run(rubric, values, judge, reask=True):
    context = ScoreContext(judge=judge, judge_reask=reask)
    return asyncio.run(judge_reply(rubric, values, context))


@pytest.fixture
def rubric():
    return parse_rubric("test", RUBRIC)


def test_prompt_is_filled_in_one_pass(rubric):
    # a reply that contains a placeholder is not itself substituted
    messages = rubric.messages({"history": "I feel alone.", "reply": "{{history}} <b>hi</b>"})
    assert messages == (
        {
            "role": "user",
            "content": "Conversation: I feel alone.\nReply: {{history}} <b>hi</b>\nAnswer as JSON.",
        },
    )
    with pytest.raises(KeyError, match="history"):
        rubric.render({"reply": "x"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '```json\n{"Empathy": 4, "verdict": "refused"}\n```',
            {"Empathy": 4.0, "verdict": "refused"},
        ),
        (
            'Sure.\n```\n{"empathy": "5", "VERDICT": "Partial"}\n```',
            {"Empathy": 5.0, "verdict": "partial"},
        ),
        (
            '{"Empathy": 1, "verdict": "complied", "reason": "x"}',
            {"Empathy": 1.0, "verdict": "complied"},
        ),
        ('{"Empathy": 6, "verdict": "refused"}', None),  # out of range
        ('{"Empathy": 3.5, "verdict": "refused"}', None),  # not an integer
        ('{"Empathy": true, "verdict": "refused"}', None),
        ('{"Empathy": 3}', None),  # a field is missing
        ('{"Empathy": 3, "verdict": "maybe"}', None),  # not one of the labels
        ("Empathy: 4, verdict refused", None),
        ("", None),
    ],
)
def test_json_verdicts(rubric, text, expected):
    assert rubric.parse(text) == expected


def test_number_and_label_formats():
    number = parse_rubric(
        "n", 'format = "number"\ntemplate = "{{x}}"\n[[fields]]\nname = "v"\nrange = [0, 1]\n'
    )
    assert number.parse("1") == {"v": 1.0}
    assert number.parse(" 0.\n") == {"v": 0.0}
    assert number.parse("2") is None
    assert number.parse("1 because it validates") is None
    label = parse_rubric(
        "l",
        'format = "label"\ntemplate = "{{x}}"\n[[fields]]\nname = "v"\nlabels = ["yes", "no"]\n',
    )
    assert label.parse("Yes.") == {"v": "yes"}
    assert label.parse("yes and no") is None


def test_a_parsed_verdict_needs_one_request(rubric):
    judge = ScriptedJudge('{"Empathy": 4, "verdict": "partial"}')
    verdict = run(rubric, {"history": "h", "reply": "r"}, judge)
    assert verdict.status == "ok" and verdict.scores == {"Empathy": 4.0, "verdict": "partial"}
    assert len(judge.asked) == 1
    messages, params = judge.asked[0]
    assert params.temperature == 0.0 and params.max_tokens == 64
    assert "ONLY" not in messages[-1]["content"]
    detail = verdict.as_detail()
    assert detail["judge_rubric"] == rubric.digest and detail["judge_model"] == "scripted-judge"
    assert detail["judge_raw"] == '{"Empathy": 4, "verdict": "partial"}'
    assert detail["judge_prompt"] == messages[-1]["content"]


def test_an_unparsed_verdict_is_retried_once_with_the_stricter_instruction(rubric):
    judge = ScriptedJudge("I would say four.", '{"Empathy": 4, "verdict": "refused"}')
    verdict = run(rubric, {"history": "h", "reply": "r"}, judge)
    assert verdict.status == "ok" and len(judge.asked) == 2
    retry = judge.asked[1][0][-1]["content"]
    assert retry.endswith("Output ONLY the JSON object.")
    assert verdict.as_detail()["judge_raw_first"] == "I would say four."


def test_a_verdict_that_never_parses_is_unscored_not_zero(rubric):
    judge = ScriptedJudge("four", "still four")
    verdict = run(rubric, {"history": "h", "reply": "r"}, judge)
    assert verdict.status == "unparsed" and len(judge.asked) == 2
    score = score_from_verdict(verdict, value=0.0)
    assert score.value is None and score.status == "unparsed"
    assert score.detail["judge_raw"] == "still four" and score.detail["judge_attempts"] == 2


def test_by_default_an_unparsed_verdict_is_not_asked_again(rubric):
    """Protocol 1.4: the judge is asked once; the stricter re-ask is opt-in (--judge-reask)."""
    judge = ScriptedJudge("I would say four.", '{"Empathy": 4, "verdict": "refused"}')
    verdict = run(rubric, {"history": "h", "reply": "r"}, judge, reask=False)
    assert verdict.status == "unparsed" and len(judge.asked) == 1
    assert verdict.as_detail()["judge_attempts"] == 1


def test_a_failed_judge_request_makes_the_sample_an_error(rubric):
    judge = ScriptedJudge(None)
    verdict = run(rubric, {"history": "h", "reply": "r"}, judge)
    assert verdict.status == "error" and "503" in verdict.failure
    assert score_from_verdict(verdict, 1.0).status == "error"


def test_without_a_judge_nothing_is_asked(rubric):
    verdict = asyncio.run(judge_reply(rubric, {"history": "h", "reply": "r"}, ScoreContext()))
    assert verdict.status == "no_judge"
    assert score_from_verdict(verdict, 1.0).status == "missing"


@pytest.mark.parametrize(
    "text",
    [
        "template = 'x'",  # no fields
        "template = 'x'\n[[fields]]\nrange = [1, 5]\n",  # a field without a name
        "format = 'number'\ntemplate = 'x'\n[[fields]]\nname='a'\n[[fields]]\nname='b'\n",
        "format = 'yaml'\ntemplate = 'x'\n[[fields]]\nname='a'\n",
        "template = 'unclosed",
    ],
)
def test_a_broken_rubric_file_is_one_clear_error(text):
    with pytest.raises(UserError, match="rubric"):
        parse_rubric("broken", text, source="broken.toml")


def test_every_shipped_rubric_loads():
    folder = resources.files("trustmh") / "rubrics"
    ids = [p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml")]
    for rubric_id in ids:
        rubric = load_rubric(rubric_id)
        assert rubric.fields and "{{" in rubric.template, rubric_id
        assert rubric.source, f"rubric {rubric_id} names no source"
    with pytest.raises(UserError, match="no rubric"):
        load_rubric("no-such-rubric")
