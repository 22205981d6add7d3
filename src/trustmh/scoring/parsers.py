"""Answer parsers for classification replies (protocol 3.1-3.3, 4.1, 4.2; DEFAULT rules).

`parse_option(reply, options)`: the chosen option letter of a multiple-choice reply, tried in order
1. a JSON object (protocol 1.4 rule: first fenced block or the whole reply; else the first `{...}`
   in the prose) -> the first of `keys` present -> a letter, "(B)", "B. text" or an option's text;
2. a cue followed by a letter: "answer is B", "Answer: (B)", "option B", "I choose B",
   "答案是B", "选B", "选项 B" (after a cue a lower-case letter counts too);
3. the first standalone upper-case valid letter ("B", "B.", "(B)", "**B**"); a capital "A" or
   "I" followed by a lower-case word or a number is read as English ("A patient...", "A 45-year-old",
   "I think..."), except before "is", "was", "and", "or", "seems", "appears";
4. an option's full text, when exactly one option's text occurs in the reply (an option whose text
   is part of a longer matching option's text yields to it).
`parse_two_options` does the same for a two-question item (EmoBench EU: `answer_q1`, `answer_q2`).
`parse_label` reads a label from a closed set: the JSON field, else the single label named in the
reply (case, spaces, `-` and `_` normalised; aliases allowed).
Every parser returns None when nothing valid is found; the caller decides unparsed vs refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from trustmh.scoring.json_extract import fenced_json_object

_BRACES = re.compile(r"\{[^{}]*\}", re.S)
_STANDALONE = re.compile(r"(?<![A-Za-z0-9'’])([A-Z])(?![A-Za-z0-9'’])")
# capital letters that are also English words, and the words after them that still mean a letter
_WORD_LETTERS = {"A", "I"}
_LETTER_VERBS = {"is", "was", "and", "or", "seems", "appears"}
_NEXT_WORD = re.compile(r"\s+([a-z0-9]+)")
_OPEN = r"""[\s"'“”‘’*(（\[【「]*"""
_CUES = (
    r"(?<![A-Za-z])(?:the\s+)?(?:final\s+|correct\s+|best\s+)?answer(?:\s+(?:is|would\s+be|should\s+be))?\s*[:：=]?",
    r"(?<![A-Za-z])(?:correct|best|right)\s+(?:option|choice)(?:\s+is)?\s*[:：]?",
    r"(?<![A-Za-z])(?:option|choice)\b\s*[:：]?",
    r"(?<![A-Za-z])(?:i\s+(?:would\s+)?)?(?:choose|chose|select|pick|go\s+with)\b",
    r"答案\s*(?:应该|应)?\s*(?:是|为|选)?\s*[:：]?",
    r"(?:应该|应)?选择?(?:项)?\s*[:：]?",
)
_CUE = re.compile(r"(?:" + "|".join(_CUES) + r")" + _OPEN + r"([A-Za-z])(?![A-Za-z0-9'’])", re.I)
_LABEL_SPACES = re.compile(r"[\s_\-]+")
_LABEL_TRIM = "\"'“”‘’*`.,;:!?()[]{} \t\n"


def json_objects(reply: str) -> list[dict[str, Any]]:
    """JSON objects in a reply: the protocol 1.4 object first, then every flat `{...}` that parses."""
    found: list[dict[str, Any]] = []
    first = fenced_json_object(reply)
    if first is not None:
        found.append(first)
    for blob in _BRACES.findall(reply):
        try:
            value = json.loads(blob)
        except ValueError:
            continue
        if isinstance(value, dict) and value not in found:
            found.append(value)
    return found


def json_field(reply: str, keys: Sequence[str]) -> Any:
    """The value of the first of `keys` in the first JSON object that has one (case-insensitive
    keys), or None."""
    wanted = [k.casefold() for k in keys]
    for obj in json_objects(reply):
        lowered = {str(k).casefold(): v for k, v in obj.items()}
        for key in wanted:
            if key in lowered and lowered[key] not in (None, ""):
                return lowered[key]
    return None


def cue_letter(text: str, letters: Sequence[str]) -> str | None:
    """The first letter named after an answer cue ("answer is B", "选B"), if valid."""
    for match in _CUE.finditer(text):
        raw = match.group(1)
        if raw.islower() and _followed_by_word(text, match.end(1)):
            continue  # "I choose a different...": the article, not option a
        if raw.upper() in letters:
            return raw.upper()
    return None


def standalone_letters(text: str, letters: Sequence[str]) -> list[tuple[int, str]]:
    """(position, letter) of every standalone upper-case valid letter, in order, skipping a
    capital A or I used as an English word."""
    out = []
    for match in _STANDALONE.finditer(text):
        letter = match.group(1)
        if letter not in letters:
            continue
        if letter in _WORD_LETTERS:
            word = _NEXT_WORD.match(text, match.end())
            if word and word.group(1) not in _LETTER_VERBS:
                continue
        out.append((match.start(), letter))
    return out


def option_by_text(text: str, options: Mapping[str, str]) -> str | None:
    """The letter of the only option whose text occurs in `text` (case-insensitive), or None."""
    folded = text.casefold()
    hits = {k: v.casefold().strip() for k, v in options.items() if v.strip()}
    hits = {k: v for k, v in hits.items() if v in folded}
    # "Major depressive disorder" also contains "depressive disorder": keep the longer option
    longest = {k: v for k, v in hits.items() if not any(v != w and v in w for w in hits.values())}
    return str(next(iter(longest))).upper() if len(longest) == 1 else None


def _followed_by_word(text: str, end: int) -> bool:
    return bool(re.match(r"\s+[A-Za-z]", text[end:]))


def _as_options(options: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    if isinstance(options, Mapping):
        return {str(k).strip().upper(): str(v) for k, v in options.items()}
    return {str(k).strip().upper(): "" for k in options}


def letter_from_value(value: Any, options: Mapping[str, str] | Iterable[str]) -> str | None:
    """A JSON answer value as a letter: "B", "b", "(B)", "B. text", "Option B" or an option's text."""
    opts = _as_options(options)
    letters = tuple(opts)
    text = str(value).strip().strip("\"'“”‘’*`").strip()
    if text.upper() in letters:
        return text.upper()
    exact = [k for k, v in opts.items() if v and v.casefold().strip() == text.casefold()]
    if len(exact) == 1:
        return exact[0]
    lead = re.match(r"[(（\[]?([A-Za-z])(?:[.)）\]:：]|\s*$)", text)
    if lead and lead.group(1).upper() in letters:
        return lead.group(1).upper()
    found = cue_letter(text, letters) or next(iter(standalone_letters(text, letters)), (0, None))[1]
    return found or option_by_text(text, opts)


def parse_option(
    reply: str | None,
    options: Mapping[str, str] | Iterable[str],
    keys: Sequence[str] = ("answer", "choice"),
) -> str | None:
    """The chosen option letter of a multiple-choice reply (rules in the module docstring)."""
    if not reply or not reply.strip():
        return None
    opts = _as_options(options)
    try:
        return _parse_option_memo(reply, tuple(opts.items()), tuple(keys))
    except TypeError:  # unhashable keys: parsed without the memo
        return _parse_option(reply, opts, keys)


# The same reply is parsed many times over when the validity floors score the null responders
# (protocol 1.8: each of them repeats one reply, or one of a few, on every item), and parsing is
# tens of microseconds; a reply's letter depends only on these arguments.
@lru_cache(maxsize=4096)
def _parse_option_memo(
    reply: str, items: tuple[tuple[str, str], ...], keys: tuple[str, ...]
) -> str | None:
    return _parse_option(reply, dict(items), keys)


def _parse_option(reply: str, opts: dict[str, str], keys: Sequence[str]) -> str | None:
    letters = tuple(opts)
    value = json_field(reply, keys)
    if value is not None:
        letter = letter_from_value(value, opts)
        if letter:
            return letter
    letter = cue_letter(reply, letters)
    if letter:
        return letter
    found = standalone_letters(reply, letters)
    if found:
        return found[0][1]
    return option_by_text(reply, opts) if any(opts.values()) else None


_QUESTION_CUE = (
    r"(?:(?<![A-Za-z])(?:question|q)\s*{n}|问题\s*{n}|第\s*{n}\s*题)"
    r"[^A-Za-z\n]{{0,12}}?(?:(?:answer|答案)\s*(?:is|是|为)?\s*[:：]?)?" + _OPEN
    + r"([A-Za-z])(?![A-Za-z0-9'’])"
)  # fmt: skip


def parse_two_options(
    reply: str | None,
    first: Mapping[str, str],
    second: Mapping[str, str],
    keys: tuple[str, str] = ("answer_q1", "answer_q2"),
) -> tuple[str | None, str | None]:
    """(letter for question 1, letter for question 2), each None when not found.

    Per question: its JSON field; else a question cue ("Question 1: B", "Q2 - (C)", "问题1：B");
    else position (the first standalone valid letter for question 1, the next one after it for
    question 2); else the unique option text of that question found in the reply.
    """
    if not reply or not reply.strip():
        return None, None
    sets = (_as_options(first), _as_options(second))
    answers: list[str | None] = []
    for n, (key, opts) in enumerate(zip(keys, sets, strict=True), 1):
        value = json_field(reply, (key,))
        letter = letter_from_value(value, opts) if value is not None else None
        if letter is None:
            for match in re.finditer(_QUESTION_CUE.format(n=n), reply, re.I):
                raw = match.group(1)
                if raw.upper() in opts and not (
                    raw.islower() and _followed_by_word(reply, match.end(1))
                ):
                    letter = raw.upper()
                    break
        answers.append(letter)
    if None in answers:
        positional = _positional_pair(reply, sets)
        answers = [a if a is not None else p for a, p in zip(answers, positional, strict=True)]
    return tuple(  # type: ignore[return-value]
        a if a is not None else option_by_text(reply, opts)
        for a, opts in zip(answers, sets, strict=True)
    )


def _positional_pair(reply: str, sets: tuple[dict[str, str], dict[str, str]]) -> list[str | None]:
    union = tuple(dict.fromkeys([*sets[0], *sets[1]]))
    found = standalone_letters(reply, union)
    q1 = next(((i, letter) for i, (_, letter) in enumerate(found) if letter in sets[0]), None)
    start = q1[0] + 1 if q1 else 0
    q2 = next((letter for _, letter in found[start:] if letter in sets[1]), None)
    return [q1[1] if q1 else None, q2]


def normalize_label(text: str) -> str:
    """A label or a reply fragment in comparable form: case-folded, `-`/`_`/spaces as one space."""
    return _LABEL_SPACES.sub(" ", str(text).casefold()).strip(_LABEL_TRIM)


def _forms(labels: Sequence[str], aliases: Mapping[str, str] | None) -> dict[str, str]:
    forms = {normalize_label(label): label for label in labels}
    for alias, label in (aliases or {}).items():
        forms.setdefault(normalize_label(alias), label)
    return forms


def labels_named(
    text: str, labels: Sequence[str], aliases: Mapping[str, str] | None = None
) -> set[str]:
    """Every label (or alias) that occurs in `text` as a whole word sequence."""
    normalized = " " + _LABEL_SPACES.sub(" ", text.casefold()) + " "
    found = set()
    for form, label in _forms(labels, aliases).items():
        if re.search(r"(?<![a-z0-9])" + re.escape(form) + r"(?![a-z0-9])", normalized):
            found.add(label)
    return found


def match_label(
    value: Any, labels: Sequence[str], aliases: Mapping[str, str] | None = None
) -> str | None:
    """A label value (as a model wrote it) mapped to the label set: exact after normalisation,
    else the single label named inside it; None otherwise."""
    if value is None:
        return None
    forms = _forms(labels, aliases)
    exact = forms.get(normalize_label(str(value)))
    if exact is not None:
        return exact
    named = labels_named(str(value), labels, aliases)
    return next(iter(named)) if len(named) == 1 else None


def parse_label(
    reply: str | None,
    labels: Sequence[str],
    key: str = "label",
    aliases: Mapping[str, str] | None = None,
) -> str | None:
    """The label of a classification reply: the JSON `key` field mapped to `labels`; else the
    single label named anywhere in the reply; else None."""
    if not reply or not reply.strip():
        return None
    value = json_field(reply, (key,))
    label = match_label(value, labels, aliases) if value is not None else None
    if label is not None:
        return label
    named = labels_named(reply, labels, aliases)
    return next(iter(named)) if len(named) == 1 else None
