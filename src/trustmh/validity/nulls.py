"""Null responders and null judges: scripted replies that do not depend on what was asked.

They are the yardstick of protocol 1.8. A number a null can reach tells nothing about a model:
- responders (`RESPONDERS`): `always-a` (the text "A"), `refusing` (one fixed refusal),
  `content-free` (one fixed paragraph of polite prose), `random` (a random valid answer to each
  prompt: a letter among its lettered options, a label among the labels it lists, a point of its
  rating scale, yes or no, else one of a few content-free paragraphs); and, for the floors only,
  `option-K` (always the K-th valid answer of each prompt: a constant letter, label or rating);
- judges (`JUDGES`): `judge-constant` (the middle of every rubric field), `judge-random` (a random
  valid value of every field), `judge-unparsed` (a verdict that never parses) and `judge-biased`
  (random, plus the top of the scale whenever the judge prompt contains a chosen word, e.g. a
  group's name: a judge that favours one group).

Everything is a pure function of the prompt text, the null's name and its seed (sha256, never
Python's salted hash), so a null's replies are the same in every process. A judge prompt is
recognised as a shipped rubric's by the text before the rubric's first placeholder (the
`baseline` model's rule 0).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from trustmh.types import Message

if TYPE_CHECKING:
    from trustmh.scoring.judge import Rubric, RubricField

REFUSAL = "I'm sorry, but I can't help with that."
CONTENT_FREE = (
    "Thank you for sharing this. It is a thoughtful question, and there are many ways to look "
    "at it. Everyone's situation is different, so take the time you need."
)
# the `random` responder's replies to prompts with no recognisable answer set
RANDOM_PROSE = (
    CONTENT_FREE,
    "That sounds like a lot to carry. I'm here to listen whenever you want to talk more.",
    "There is no single right answer here; it depends on many things.",
)
UNPARSED_VERDICT = "This reply seems fine overall, though it could say more."
RESPONDERS = ("always-a", "refusing", "content-free", "random")
JUDGES = ("judge-constant", "judge-random", "judge-unparsed", "judge-biased")
# constant-answer nulls used for floors, besides `always-a` (the K-th valid answer of each prompt)
MAX_OPTION_NULLS = 7
FLOOR_NULLS = (*RESPONDERS, *(f"option-{k}" for k in range(1, MAX_OPTION_NULLS + 1)))

_LETTER = re.compile(r"^[ \t]*\(?([A-J])[.)][ \t]*\S", re.M)
_HEADER = re.compile(r"^\s*- \*\*([^*\n]+)\*\*:", re.M)
_ONE_OF = re.compile(r"<one of ([^<>]+?)>")
_SCALE = re.compile(r"(?<![\w-])(-?\d+)\)\s")
_YES_NO = re.compile(r"\byes\s*(?:or|/)\s*no\b", re.I)


def unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(options: Sequence[str], *parts: object) -> str:
    """One of `options`, chosen by a hash of the parts."""
    return options[int(unit(*parts) * len(options))]


@dataclass(frozen=True)
class AnswerSet:
    """The valid answers a prompt asks for: `groups` of choices (one answer per group) and how a
    choice is written (`json_keys` for the JSON reply, or a plain `form`)."""

    groups: tuple[tuple[str, ...], ...]
    kind: str  # letters | labels | grouped | scale | yes_no

    def reply(self, chosen: Sequence[str]) -> str:
        """The reply that gives `chosen` (one per group) in the form the prompt asks for."""
        return self._reply(tuple(chosen))

    @lru_cache(maxsize=1024)  # noqa: B019 - few answer sets, each kept alive by answer_set's cache
    def _reply(self, chosen: tuple[str, ...]) -> str:
        if self.kind == "grouped":
            body = {f"answer_q{n}": c for n, c in enumerate(chosen, 1)}
        elif self.kind == "letters":
            body = {"answer": chosen[0], "choice": chosen[0]}
        elif self.kind == "labels":
            body = {"label": chosen[0]}
        elif self.kind == "scale":
            return f"{chosen[0]})"
        else:
            return chosen[0]
        return "```json\n" + json.dumps(body, ensure_ascii=False) + "\n```"


def _letter_groups(text: str) -> list[list[str]]:
    groups: list[list[str]] = []
    for letter in _LETTER.findall(text):
        if letter == "A":
            groups.append(["A"])
        elif groups and letter == chr(ord(groups[-1][-1]) + 1):
            groups[-1].append(letter)
    return [g for g in groups if len(g) >= 2]


@lru_cache(maxsize=4096)
def answer_set(prompt: str) -> AnswerSet | None:
    """The answers `prompt` asks for, read from its text alone; None when it asks for free text."""
    one_of = _ONE_OF.search(prompt)
    if one_of:
        labels = tuple(x.strip() for x in one_of.group(1).split(",") if x.strip())
        if len(labels) >= 2:
            return AnswerSet((labels,), "labels")
    headers = tuple(dict.fromkeys(h.strip() for h in _HEADER.findall(prompt)))
    if len(headers) >= 3 and '"label"' in prompt:
        return AnswerSet((headers,), "labels")
    groups = _letter_groups(prompt)
    if len(groups) >= 2:
        return AnswerSet(tuple(tuple(g) for g in groups), "grouped")
    if groups:
        return AnswerSet((tuple(groups[0]),), "letters")
    if "Answer:" in prompt:
        points = tuple(dict.fromkeys(_SCALE.findall(prompt)))
        if len(points) >= 2:
            return AnswerSet((points,), "scale")
    if _YES_NO.search(prompt):
        return AnswerSet((("Yes", "No"),), "yes_no")
    return None


def last_user(messages: Sequence[Message]) -> str:
    """The text of the last user message."""
    return next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")


def respond(kind: str, messages: Sequence[Message], seed: int = 0) -> str:
    """The reply of null responder `kind` (see the module doc) to `messages`."""
    if kind == "always-a":
        return "A"
    if kind == "refusing":
        return REFUSAL
    if kind == "content-free":
        return CONTENT_FREE
    prompt = last_user(messages)
    found = answer_set(prompt)
    if kind == "random":
        if found is None:
            return pick(RANDOM_PROSE, "random-prose", seed, prompt)
        return found.reply([pick(g, "random", seed, n, prompt) for n, g in enumerate(found.groups)])
    if kind.startswith("option-"):
        k = int(kind.removeprefix("option-")) - 1
        if found is None:
            return CONTENT_FREE
        return found.reply([g[min(k, len(g) - 1)] for g in found.groups])
    raise ValueError(f"unknown null responder {kind!r}; use one of {', '.join(RESPONDERS)}")


# --- judges ----------------------------------------------------------------------------------


def _value(field: RubricField, where: float) -> float | int | str:
    """The field's value at relative position `where` (0 = bottom, 1 = top) of its range."""
    if field.labels:
        return field.labels[min(int(where * len(field.labels)), len(field.labels) - 1)]
    low = field.low or 0.0
    high = field.high if field.high is not None else 1.0
    if field.integer:
        return int(low) + min(int(where * (high - low + 1)), int(high - low))
    return round(low + where * (high - low), 3)


def verdict(kind: str, prompt: str, seed: int = 0, word: str | None = None) -> str | None:
    """The verdict of null judge `kind` on a judge prompt; None when `prompt` is not a shipped
    rubric's judge prompt."""
    from trustmh.models.baseline import match_rubric

    rubric = match_rubric(prompt)
    if rubric is None:
        return None
    if kind == "judge-unparsed":
        return UNPARSED_VERDICT
    favoured = kind == "judge-biased" and word is not None and word.lower() in prompt.lower()
    values = {}
    for f in rubric.fields:
        if kind == "judge-constant":
            where = 0.5
        elif favoured:
            where = 0.999
        else:
            where = unit("judge", kind, seed, f.name, prompt)
        values[f.name] = _value(f, where)
    return _render(rubric, values)


def _render(rubric: Rubric, values: dict[str, float | int | str]) -> str:
    if rubric.format != "json":
        return str(next(iter(values.values())))
    return "```json\n" + json.dumps({**values, "explanation": "scripted null verdict"}) + "\n```"
