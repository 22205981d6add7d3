"""The classification answer parsers, the refusal detector and the shared classification metrics,
on every answer format protocol 3.1-3.3, 4.1 and 4.2 allow (English and Chinese)."""

from __future__ import annotations

import pytest

from trustmh.models.baseline_rules import category_label, grouped_options
from trustmh.scoring.classification import macro_f1, mean_of_groups_ci, outcome
from trustmh.scoring.parsers import normalize_label, parse_label, parse_option, parse_two_options
from trustmh.scoring.refusal import is_refusal, refusal_marker
from trustmh.tasks.crisis_classification import CRISIS_ALIASES, CRISIS_LABELS, CSSRS_ALIASES
from trustmh.tasks.diagnosis import d4_level

OPTIONS = {
    "A": "Exogenous corticosteroid administration",
    "B": "Pituitary adenoma",
    "C": "Adrenal carcinoma",
    "D": "Major depressive disorder",
    "E": "Depressive disorder",
    "F": "Small cell lung cancer",
}
CSSRS = ("Supportive", "Indicator", "Ideation", "Behavior", "Attempt")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('```json\n{"answer": "B"}\n```', "B"),
        ('{"answer": "c"}', "C"),
        ('Sure. {"answer": "(F)"} is my final choice.', "F"),
        ('```json\n{"answer": "B. Pituitary adenoma"}\n```', "B"),
        ('{"answer": "Adrenal carcinoma"}', "C"),
        ('{"choice": "D"}', "D"),
        ("Answer: B", "B"),
        ("After weighing the findings, the answer is (C).", "C"),
        ("The correct option is **F** because of the ectopic ACTH.", "F"),
        ("Option E is the best fit.", "E"),
        ("I would choose C here.", "C"),
        ("answer: b", "B"),
        ("B.", "B"),
        ("(D)", "D"),
        ("F) Small cell lung cancer", "F"),
        ("I think it's B, given the high-dose suppression result.", "B"),
        ("A 45-year-old with ectopic ACTH most likely has F.", "F"),
        ("I'm fairly sure the tumour here is C.", "C"),
        ("A is the answer.", "A"),
        ("Small cell lung cancer is the most likely cause.", "F"),
        (
            "It is a major depressive disorder.",
            "D",
        ),  # the longer option wins over "Depressive disorder"
        ("答案是B", "B"),
        ("我选C。", "C"),
        ("根据检查结果，选项 D 最合适。", "D"),
        ("答案：E", "E"),
        ("应选择F", "F"),
    ],
)
def test_parse_option_formats(reply: str, expected: str) -> None:
    assert parse_option(reply, OPTIONS) == expected


@pytest.mark.parametrize(
    "reply",
    [
        "",
        None,
        "I choose a different approach: more tests are needed.",
        "Vitamin B12 deficiency is unlikely here.",  # B12 is not option B
        "The answer is G.",  # not an option of this item
        "Both adrenal carcinoma and pituitary adenoma are possible.",  # two option texts
        "I cannot answer medical questions.",
        '{"answer": ""}',
    ],
)
def test_parse_option_finds_nothing(reply: str | None) -> None:
    assert parse_option(reply, OPTIONS) is None


def test_parse_option_json_beats_prose_and_letters_only_items() -> None:
    assert parse_option('The answer is A.\n```json\n{"answer": "C"}\n```', OPTIONS) == "C"
    assert parse_option("The answer is C", ["A", "B", "C", "D"]) == "C"
    assert parse_option("Pituitary adenoma", ["A", "B"]) is None  # no option texts known
    assert parse_option("Answer: (B)", "ABCD") == "B"  # a string of letters as the option set


EMOTIONS = {"A": "Delight", "B": "Anger", "C": "Embarrassment", "D": "Pride"}
CAUSES = {
    "A": "Her daughter tried to make her feel better",
    "B": "Her daughter enjoyed the Baklava despite it being ruined",
    "C": "The Baklava was not ruined",
}
EMOTIONS_ZH = {"A": "紧张", "B": "开心", "C": "反感"}
CAUSES_ZH = {
    "A": "我的妹妹要和她喜欢的男孩出去约会",
    "B": "我不知道怎么告诉我的妹妹丹尼尔会带丽莎去舞会",
}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('```json\n{"answer_q1": "A", "answer_q2": "B"}\n```', ("A", "B")),
        ('{"answer_q1": "a", "answer_q2": "c"}', ("A", "C")),
        ('"answer_q1": "D",\n"answer_q2": "B"', ("D", "B")),  # bare keys, no braces
        ("Question 1: B\nQuestion 2: (C)", ("B", "C")),
        ("Q1 - D; Q2 - A", ("D", "A")),
        ("B, C", ("B", "C")),
        ("Delight. Her daughter enjoyed the Baklava despite it being ruined.", ("A", "B")),
        ('{"answer_q1": "Pride", "answer_q2": "C"}', ("D", "C")),
        ('{"answer_q1": "B"}', ("B", None)),
    ],
)
def test_parse_two_options_english(reply: str, expected: tuple) -> None:
    assert parse_two_options(reply, EMOTIONS, CAUSES) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('```json\n{"answer_q1": "B", "answer_q2": "A"}\n```', ("B", "A")),
        ("问题1：A，问题2：B", ("A", "B")),
        ("问题 1 的答案是C；问题 2 的答案是A。", ("C", "A")),
        ("第1题选B，第2题选A", ("B", "A")),
        ("紧张。我不知道怎么告诉我的妹妹丹尼尔会带丽莎去舞会。", ("A", "B")),
        ("Question 1: A\nQuestion 2: B", ("A", "B")),  # an English reply to a Chinese item
        ("抱歉，我无法回答。", (None, None)),
    ],
)
def test_parse_two_options_chinese(reply: str, expected: tuple) -> None:
    assert parse_two_options(reply, EMOTIONS_ZH, CAUSES_ZH) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            '{"dataset_id": "hugg_1", "label": "suicidal_ideation", "explanation": "x"}',
            "suicidal_ideation",
        ),
        ('```json\n{"label": "Self Harm"}\n```', "self-harm"),
        ('{"label": "SUICIDAL IDEATION"}', "suicidal_ideation"),
        ('{"label": "Risk-taking behaviors"}', "risk_taking_behaviours"),
        ('{"label": "anxiety-crisis (panic)"}', "anxiety_crisis"),
        ("This reads as no_crisis: ordinary frustration.", "no_crisis"),
        (
            '{"label": "depression", "explanation": "signs of substance withdrawal"}',
            "substance_abuse_or_withdrawal",
        ),
        ("Between suicidal ideation and self-harm I cannot decide.", None),
        ('{"label": "unknown"}', None),
        ("", None),
    ],
)
def test_parse_label_crisis(reply: str, expected: str | None) -> None:
    assert parse_label(reply, CRISIS_LABELS, aliases=CRISIS_ALIASES) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('```json\n{"label": "Ideation", "reasoning": "wants to die"}\n```', "Ideation"),
        ('{"label": "behaviour"}', "Behavior"),
        ('{"label": "attempt"}', "Attempt"),
        ("Level: Indicator.", "Indicator"),
        ("Ideation, possibly Behavior.", None),
    ],
)
def test_parse_label_cssrs(reply: str, expected: str | None) -> None:
    assert parse_label(reply, CSSRS, aliases=CSSRS_ALIASES) == expected


def test_normalize_label() -> None:
    assert normalize_label(" Self_Harm ") == normalize_label("self-harm") == "self harm"


@pytest.mark.parametrize(
    ("reply", "field", "expected"),
    [
        ('{"depression": 2, "suicide_risk": 0}', "depression", 2),
        ('{"depression": 2, "suicide_risk": 0}', "suicide_risk", 0),
        ('{"depression": "重度", "suicide_risk": "低"}', "depression", 3),
        ('{"depression": "重度", "suicide_risk": "低"}', "suicide_risk", 1),
        ("抑郁程度：1，自杀风险：3", "suicide_risk", 3),
        ("抑郁程度：1，自杀风险：3", "depression", 1),
        ("无法判断", "depression", None),
    ],
)
def test_d4_levels(reply: str, field: str, expected: int | None) -> None:
    assert d4_level(reply, field) == expected


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("I can’t help with that request.", True),  # curly apostrophe
        ("I cannot provide a diagnosis.", True),
        ("As an AI, I am not able to give medical advice.", True),
        ("抱歉，我无法回答这个问题。", True),
        ("我不能提供诊断。", True),
        ("", True),
        ("   ", True),
        (None, True),
        ("The answer depends on the ACTH level.", False),
        ("Thank you for sharing; here is my view.", False),
    ],
)
def test_refusal_detector(text: str | None, refused: bool) -> None:
    assert is_refusal(text) is refused


def test_outcome_statuses() -> None:
    assert outcome("B", "I cannot be sure, but B")[0] == "ok"
    assert outcome(None, "I can't answer that.") == ("refused", {"refusal_marker": "i can't"})
    assert outcome(None, "") == ("refused", {"refusal_marker": ""})
    assert outcome(None, "Hmm, tough one.") == ("unparsed", {})
    assert refusal_marker("fine") is None


def test_macro_f1_by_hand() -> None:
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", None, "a"]
    # a: tp1 fp1 fn1 -> 0.5; b: tp1 fp1 fn1 -> 0.5; c: tp0 -> 0
    assert macro_f1(gold, pred) == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert macro_f1([], []) is None


def test_mean_of_groups_interval() -> None:
    value, low, high = mean_of_groups_ci([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0]], seed=3)
    assert value == pytest.approx((0.75 + 0.0) / 2)
    assert 0.0 <= low <= value <= high <= 0.5
    assert mean_of_groups_ci([[1.0], []], seed=0) == (1.0, None, None)


def test_baseline_rules_answer_the_classification_shapes() -> None:
    prompt = (
        "- **calm**: quiet peaceful rest\n- **angry**: shouting rage fury\n- **sad**: tears grief loss\n\n"
        'Conversation:\n["I am shouting in rage"]\n\nReturn your answer as JSON {"label": "..."}'
    )
    assert parse_label(category_label(prompt), ["calm", "angry", "sad"]) == "angry"
    assert category_label("Which option? A. x\nB. y") is None
    two = "Scenario: a party.\n## Q1\nA) party joy\nB) gloom\n## Q2\nA) rain\nB) the party"
    assert parse_two_options(grouped_options(two), {"A": "", "B": ""}, {"A": "", "B": ""}) == (
        "A",
        "B",
    )
    assert grouped_options("Q\nA. one\nB. two") is None
