"""Demographic variants of a dialogue (protocol 6.2, DEFAULT): identity is injected, not swapped.

A variant adds one first-person statement ("Just so you know, I'm 72 years old.") in front of the
seeker's first turn that has content (greeting-only turns are skipped); nothing else changes.
One attribute varies at a time, and the neutral variant has no statement. Attributes, groups,
statement wordings and the greeting words are data (`transforms/data/demographics.toml`, or a file
of the same shape). The wording is chosen per (seed, dialogue, attribute), so all groups of one
attribute share it and items stay paired across groups.

Dialogues are sequences of `(speaker, text)` turns; the speaker whose turn receives the statement
is named by the caller ("seeker" for ESConv).
"""

from __future__ import annotations

import hashlib
import re
import string
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from trustmh.errors import UserError

NEUTRAL = "neutral"
DEFAULT_FILE = "demographics.toml"
Turn = tuple[str, str]  # (speaker, text)
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Group:
    """One group of an attribute: its name, the identity phrase and the terms that reveal it."""

    attribute: str
    name: str
    identity: str
    terms: tuple[str, ...]

    @property
    def variant(self) -> str:
        """The variant name, e.g. `race=Black` (part of the sample's key)."""
        return f"{self.attribute}={self.name}"


@dataclass(frozen=True)
class Attribute:
    """An attribute (race, gender...): its statement wordings and its groups."""

    name: str
    templates: tuple[str, ...]
    groups: tuple[Group, ...]


@dataclass(frozen=True)
class Demographics:
    """The attributes to vary and how the injection point is found."""

    attributes: tuple[Attribute, ...]
    greeting_words: frozenset[str]
    source: str = ""
    digest: str = ""

    @property
    def groups(self) -> tuple[Group, ...]:
        """Every group of every attribute, in file order."""
        return tuple(g for a in self.attributes for g in a.groups)

    def select(self, names: Iterable[str] | None) -> Demographics:
        """Only the named attributes (all when `names` is None); UserError on an unknown name."""
        if names is None:
            return self
        wanted = list(dict.fromkeys(names))
        known = [a.name for a in self.attributes]
        unknown = [n for n in wanted if n not in known]
        if unknown or not wanted:
            raise UserError(
                f"options.attributes = {','.join(wanted)!r}: use one or more of {', '.join(known)}"
            )
        kept = tuple(a for a in self.attributes if a.name in wanted)
        return Demographics(kept, self.greeting_words, self.source, self.digest)


@dataclass(frozen=True)
class Variant:
    """One version of a dialogue: neutral, or one group's statement injected at `turn`."""

    name: str
    turns: tuple[Turn, ...]
    group: Group | None = None
    statement: str | None = None
    turn: int | None = None


def variant_names(spec: Demographics) -> list[str]:
    """`neutral` then every group's variant name."""
    return [NEUTRAL, *(g.variant for g in spec.groups)]


def is_greeting(text: str, words: frozenset[str]) -> bool:
    """True when the turn is only pleasantries ("Hi", "Doing well. How are you?"): every word is a
    greeting word. An empty turn counts as a greeting (it carries no content either)."""
    return all(
        w in words for w in _WORD.findall(text.lower().replace("'", "").replace("\u2019", ""))
    )


def injection_turn(turns: Sequence[Turn], speaker: str, words: frozenset[str]) -> int | None:
    """Index of `speaker`'s first turn that is not greeting-only, or None when there is none."""
    return next(
        (
            i
            for i, (who, text) in enumerate(turns)
            if who == speaker and not is_greeting(text, words)
        ),
        None,
    )


def choose_template(attribute: Attribute, seed: int, key: str) -> str:
    """The attribute's wording for this (seed, dialogue key): a sha256-based pick, so it is
    stable across processes and Python versions."""
    digest = hashlib.sha256(f"{seed}|{key}|{attribute.name}".encode()).digest()
    return attribute.templates[int.from_bytes(digest[:8], "big") % len(attribute.templates)]


def statement(attribute: Attribute, group: Group, seed: int, key: str) -> str:
    """The first-person statement of `group` for this dialogue."""
    return choose_template(attribute, seed, key).format(identity=group.identity)


def variants(
    turns: Sequence[Turn], spec: Demographics, *, speaker: str, seed: int, key: str
) -> list[Variant]:
    """The neutral dialogue and one variant per group (neutral first, then in file order); a
    dialogue with no content turn of `speaker` has only the neutral variant."""
    original = tuple(turns)
    out = [Variant(NEUTRAL, original)]
    index = injection_turn(original, speaker, spec.greeting_words)
    if index is None:
        return out
    who, text = original[index]
    for attribute in spec.attributes:
        for group in attribute.groups:
            said = statement(attribute, group, seed, key)
            changed = (*original[:index], (who, f"{said} {text.lstrip()}"), *original[index + 1 :])
            out.append(Variant(group.variant, changed, group, said, index))
    return out


# -- loading ------------------------------------------------------------------------------------


def _fail(where: str, problem: str) -> UserError:
    return UserError(f"{where}: {problem}; see transforms/data/{DEFAULT_FILE} for the format")


def _template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _parse_group(where: str, attribute: str, raw: Any) -> Group:
    if not isinstance(raw, dict) or not {"name", "identity", "terms"} <= raw.keys():
        raise _fail(where, f"attribute {attribute}: a group needs name, identity and terms")
    group = Group(attribute, str(raw["name"]), str(raw["identity"]), tuple(map(str, raw["terms"])))
    if not group.terms or not any(
        re.search(rf"(?<![\w-]){re.escape(t)}(?![\w-])", group.identity, re.I) for t in group.terms
    ):
        raise _fail(where, f"group {group.variant}: its identity must contain one of its terms")
    return group


def _parse_attribute(where: str, name: str, raw: Any) -> Attribute:
    if not isinstance(raw, dict):
        raise _fail(where, f"attribute {name}: expected a table")
    templates = tuple(str(t) for t in raw.get("templates", ()))
    if not templates or any(_template_fields(t) != {"identity"} for t in templates):
        raise _fail(
            where, f"attribute {name}: every template must use {{identity}} and nothing else"
        )
    groups = tuple(_parse_group(where, name, g) for g in raw.get("groups", ()))
    if len(groups) < 2:
        raise _fail(where, f"attribute {name}: needs at least two groups")
    if len({g.name for g in groups}) != len(groups):
        raise _fail(where, f"attribute {name}: group names repeat")
    return Attribute(name, templates, groups)


def parse_demographics(text: str, where: str) -> Demographics:
    """Attributes, groups and greeting words from the text of a TOML file of the shipped shape."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(where, f"not valid TOML ({exc})") from exc
    raw_attributes = data.get("attributes")
    if not isinstance(raw_attributes, dict) or not raw_attributes:
        raise _fail(where, "no [attributes.<name>] tables")
    attributes = tuple(_parse_attribute(where, n, a) for n, a in raw_attributes.items())
    words = frozenset(str(w).lower() for w in data.get("greeting", {}).get("words", ()))
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return Demographics(attributes, words, str(data.get("source", "")), digest)


@cache
def _shipped() -> Demographics:
    path = resources.files("trustmh") / "transforms" / "data" / DEFAULT_FILE
    return parse_demographics(path.read_text(encoding="utf-8"), DEFAULT_FILE)


def load_demographics(path: Path | str | None = None) -> Demographics:
    """The shipped groups and templates, or those of a user's file of the same shape."""
    if path is None:
        return _shipped()
    file = Path(path)
    if not file.is_file():
        raise UserError(f"options.demographics_file = {str(path)!r}: no such file")
    return parse_demographics(file.read_text(encoding="utf-8"), str(file))
