"""Demographic variants of ESConv_fair (protocol 6.2): deterministic, complete, and leak-free.

The expected groups and terms are read here from the shipped data file with tomllib, and matched
with a regex written here, so the checks do not reuse the engine's own matching code.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from conftest import NO_DATA, data_dir

from trustmh.data.sources import DataContext
from trustmh.errors import UserError
from trustmh.tasks.fairness import fairness_samples
from trustmh.transforms.demographics import (
    NEUTRAL,
    injection_turn,
    is_greeting,
    load_demographics,
    parse_demographics,
)

SHIPPED = tomllib.loads(
    (resources.files("trustmh") / "transforms" / "data" / "demographics.toml").read_text("utf-8")
)
GROUPS = {
    f"{attribute}={group['name']}": group
    for attribute, table in SHIPPED["attributes"].items()
    for group in table["groups"]
}


TERM_GROUP = {t.lower(): variant for variant, g in GROUPS.items() for t in g["terms"]}
ANY_TERM = re.compile(
    "|".join(
        rf"(?<![\w-]){re.escape(t)}(?![\w-])" for t in sorted(TERM_GROUP, key=len, reverse=True)
    ),
    re.I,
)


def named_groups(text: str) -> set[str]:
    """Variants whose terms occur in the text (whole words, any case)."""
    return {TERM_GROUP[found.lower()] for found in ANY_TERM.findall(text)}


@pytest.fixture(scope="module")
def fair_ctx() -> DataContext:
    path = data_dir()
    if path is None:
        pytest.skip(NO_DATA)
    return DataContext((path,))


@pytest.fixture(scope="module")
def samples(fair_ctx: DataContext) -> list:
    return list(fairness_samples(fair_ctx, {"seed": 0}))


def user_text(sample) -> str:
    return "\n".join(m["content"] for m in sample.messages if m["role"] == "user")


def by_item(samples: list) -> dict[str, dict[str, object]]:
    items: dict[str, dict[str, object]] = {}
    for s in samples:
        items.setdefault(s.id, {})[s.variant] = s
    return items


def test_same_seed_same_texts_other_seed_other_wordings(fair_ctx, samples) -> None:
    again = list(fairness_samples(fair_ctx, {"seed": 0}))
    assert [(s.id, s.variant, s.messages) for s in again] == [
        (s.id, s.variant, s.messages) for s in samples
    ]
    other = list(fairness_samples(fair_ctx, {"seed": 7}))
    assert [(s.id, s.variant) for s in other] == [(s.id, s.variant) for s in samples]
    assert [s.meta["statement"] for s in other] != [s.meta["statement"] for s in samples]


def test_every_group_appears_in_every_item(samples) -> None:
    items = by_item(samples)
    assert len(items) >= 100
    for variants in items.values():
        assert set(variants) == {NEUTRAL, *GROUPS}
    for variant, group in GROUPS.items():
        with_group = [s for s in samples if s.variant == variant]
        assert len(with_group) == len(items)
        assert all(group["identity"] in user_text(s) for s in with_group)


def test_no_sample_names_another_group(samples) -> None:
    for s in samples:
        named = named_groups("\n".join(m["content"] for m in s.messages))
        assert named == (set() if s.variant == NEUTRAL else {s.variant}), (s.id, s.variant)


def test_a_variant_only_adds_its_statement_to_one_seeker_message(samples) -> None:
    for variants in by_item(samples).values():
        neutral = variants[NEUTRAL].messages
        for name, s in variants.items():
            if name == NEUTRAL:
                continue
            changed = [
                i for i, (a, b) in enumerate(zip(neutral, s.messages, strict=True)) if a != b
            ]
            assert len(changed) == 1
            i = changed[0]
            assert s.messages[i]["role"] == "user"
            statement = s.meta["statement"]
            assert statement.endswith(".") and s.messages[i]["content"].count(statement) == 1
            assert s.messages[i]["content"].replace(f"{statement} ", "", 1) == neutral[i]["content"]


def test_statement_skips_greeting_turns() -> None:
    words = load_demographics().greeting_words
    for greeting in ("Hello\n", "Hey there", "How are you?", "Doing well. How are you?", "Hi"):
        assert is_greeting(greeting, words)
    for content in ("I am not good at all", "not so happy", "Can't seem to shake this sadness."):
        assert not is_greeting(content, words)
    turns = [("seeker", "Hi"), ("supporter", "Hello, how are you?"), ("seeker", "Good afternoon"),
             ("seeker", "I lost my job."), ("supporter", "I'm sorry.")]  # fmt: skip
    assert injection_turn(turns, "seeker", words) == 3
    assert injection_turn(turns[:3], "seeker", words) is None


def test_attribute_subset_and_bad_files(tmp_path: Path) -> None:
    spec = load_demographics().select(["age", "gender"])
    assert [a.name for a in spec.attributes] == ["gender", "age"]
    with pytest.raises(UserError, match="attributes"):
        load_demographics().select(["height"])
    bad_template = """
[attributes.age]
templates = ["I'm {years}."]
groups = [{name = "19", identity = "19 years old", terms = ["19 years old"]},
          {name = "72", identity = "72 years old", terms = ["72 years old"]}]
"""
    with pytest.raises(UserError, match="identity"):
        parse_demographics(bad_template, "custom.toml")
    missing_term = bad_template.replace("{years}", "{identity}").replace(
        'terms = ["72 years old"]', 'terms = ["seventy-two"]'
    )
    with pytest.raises(UserError, match="age=72"):
        parse_demographics(missing_term, "custom.toml")
    path = tmp_path / "two.toml"
    path.write_text(missing_term.replace("seventy-two", "72 years old"), encoding="utf-8")
    assert [g.variant for g in load_demographics(path).groups] == ["age=19", "age=72"]
