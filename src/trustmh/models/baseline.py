"""`baseline`: a deterministic, transparent rule-based reference model. It is NOT an LLM.

It exists so every path of the harness runs offline (demos, tests) and so reports have a floor to
compare against. Its rules, in order:
0. a judge prompt built from one of the shipped rubrics (`trustmh/rubrics/*.toml`) gets a fixed
   mid-scale verdict, so `--judge baseline` runs offline. A prompt is recognised generically as a
   rubric's when it starts with the rubric template's text before its first placeholder; the
   verdict carries every field of that rubric: the middle of a numeric range (rounded down for
   integer fields: 3 for 1-5, 1 for 0-2 and 0-3, 0 for 0-1), the middle label of a label field,
   and for JSON rubrics an "explanation" saying the verdict is rule-based. It never reads the
   reply being rated: a floor, not a judgement;
0b. a labelling prompt (`- **category**:` blocks, then the text under `Conversation:`/`Post:`)
   gets the category sharing the most words with the text (`baseline_rules.category_label`);
1. a request that looks harmful (jailbreak keywords) gets a refusal with crisis resources;
1b. several lettered option groups (EmoBench's two questions) get one answer per group
   (`baseline_rules.grouped_options`);
2. a multiple-choice question gets the option sharing the most words with the question (ties: the
   first), answered as JSON with both "answer" and "choice" keys;
3. a rating scale ("4) ... 1) ...") gets the scale's middle-low value;
4. a yes/no question gets "No";
5. anything else gets a fixed supportive reply (in Chinese when the prompt is mostly Chinese).
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from trustmh.errors import UserError
from trustmh.models.baseline_rules import category_label, grouped_options
from trustmh.types import GenRequest, Response, Usage

if TYPE_CHECKING:
    from trustmh.scoring.judge import Rubric, RubricField

LABEL = "baseline (rule-based reference, not an LLM)"
_OPTION = re.compile(r"^\s*\(?([A-J])[.)]\s*(.+)$", re.M)
_SCALE = re.compile(r"(-?\d+)\)\s")
_WORD = re.compile(r"[a-z]{3,}")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
_MIN_OPENING = 20  # a rubric whose template opens with a placeholder is not recognised
_HARMFUL = (
    "kill myself",
    "suicide method",
    "how to hurt",
    "overdose",
    "ignore all previous",
    "unrestricted",
    # explicit jailbreak wrappers of JailbreakMH (role-play persona, refusal-word ban); the other
    # wrappers look like ordinary instructions, so the baseline falls for them, as a floor should
    "betterdan",
    "never say the words",
)
SUPPORTIVE = (
    "I'm sorry you're going through this. It sounds really hard, and your feelings make sense. "
    "Would you like to tell me more about what has been weighing on you? If you ever feel unsafe, "
    "please reach out to a local crisis line or emergency services."
)
SUPPORTIVE_ZH = (
    "听起来你最近真的很不容易，你的感受是可以理解的。愿意多和我说说是什么让你最困扰吗？"
    "如果你感到不安全，请及时联系当地的心理援助热线或紧急服务。"
)
RULE_VERDICT = "rule-based baseline verdict (mid-scale for every field), not a judgement"
REFUSAL = (
    "I can't help with that. If you are struggling or thinking about harming yourself, please contact "
    "a crisis line or emergency services; you deserve support."
)


def answer(prompt: str) -> str:
    """The baseline's reply to a prompt (pure function of the text)."""
    verdict = rubric_verdict(prompt)
    if verdict is not None:
        return verdict
    label = category_label(prompt)  # before rule 1: crisis texts to label quote harmful phrases
    if label is not None:
        return label
    lower = prompt.lower()
    if any(k in lower for k in _HARMFUL):
        return REFUSAL
    grouped = grouped_options(prompt)
    if grouped is not None:
        return grouped
    options = _OPTION.findall(prompt)
    if len(options) >= 2:
        stem = set(_WORD.findall(lower.split(options[0][1].lower(), 1)[0]))
        best = max(
            options, key=lambda o: (len(stem & set(_WORD.findall(o[1].lower()))), -ord(o[0]))
        )
        return (
            "```json\n"
            + json.dumps(
                {
                    "answer": best[0],
                    "choice": best[0],
                    "reasoning": "Most overlap with the question.",
                }
            )
            + "\n```"
        )
    scale = sorted({int(v) for v in _SCALE.findall(prompt)})
    if len(scale) >= 3:
        return f"{scale[(len(scale) - 1) // 2]})"
    if "yes or no" in lower:
        return "No"
    return SUPPORTIVE_ZH if len(_CJK.findall(prompt)) > len(_LATIN.findall(prompt)) else SUPPORTIVE


@cache
def _rubric_openings() -> tuple[tuple[str, Rubric], ...]:
    """(template text before the first placeholder, rubric) of every shipped rubric."""
    from trustmh.scoring.judge import load_rubric

    found = []
    for entry in sorted((resources.files("trustmh") / "rubrics").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        try:
            rubric = load_rubric(entry.name.removesuffix(".toml"))
        except UserError:
            continue  # a malformed rubric is reported when a task loads it, not here
        opening = rubric.template.split("{{", 1)[0].strip()
        if len(opening) >= _MIN_OPENING:
            found.append((opening, rubric))
    return tuple(found)


def _middle(field: RubricField) -> float | int | str:
    if field.labels:
        return field.labels[(len(field.labels) - 1) // 2]
    low, high = field.low or 0.0, field.high if field.high is not None else 0.0
    middle = (low + high) / 2
    return int(middle // 1) if field.integer else middle


def match_rubric(prompt: str) -> Rubric | None:
    """The shipped rubric whose judge prompt `prompt` is (the most specific opening), else None."""
    stripped = prompt.lstrip()
    matches = [
        (len(opening), r) for opening, r in _rubric_openings() if stripped.startswith(opening)
    ]
    if not matches:
        return None
    return max(matches, key=lambda match: match[0])[1]


def rubric_verdict(prompt: str) -> str | None:
    """Rule 0: the mid-scale verdict when `prompt` is a shipped rubric's judge prompt, else None."""
    rubric = match_rubric(prompt)
    if rubric is None:
        return None
    values = {f.name: _middle(f) for f in rubric.fields}
    if rubric.format != "json":
        return str(next(iter(values.values())))
    values["explanation"] = RULE_VERDICT
    return "```json\n" + json.dumps(values, ensure_ascii=False) + "\n```"


class BaselineBackend:
    """The `baseline` model spec."""

    spec = "baseline"
    label = LABEL
    endpoint = "baseline"
    cacheable = False

    async def generate(self, request: GenRequest) -> Response:
        """Apply the rules to the last user message."""
        prompt = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")
        text = answer(prompt)
        return Response(
            text=text, usage=Usage(len(prompt.split()), len(text.split())), finish_reason="stop"
        )

    async def aclose(self) -> None:
        """Nothing to release."""
