"""Parsers against replies a real model wrote: SmolLM2-135M-Instruct on the llama.cpp server that
`local:smollm2` runs (tests/data/smollm2_replies.jsonl, each record with its provenance: model,
server, settings, command, item). Reasonable answers that once went unparsed are read now; forms
that are not an answer stay unparsed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustmh.scoring.judge import load_rubric
from trustmh.scoring.parsers import parse_label, parse_option
from trustmh.tasks.crisis_classification import CRISIS_ALIASES, CRISIS_LABELS, CSSRS_ALIASES, LEVELS

REPLIES = Path(__file__).parent / "data" / "smollm2_replies.jsonl"
RECORDS = [json.loads(line) for line in REPLIES.read_text(encoding="utf-8").splitlines()]


def parse(record: dict):
    kind, _, name = record["parser"].partition(":")
    reply = record["reply"]
    if kind == "rubric":
        return load_rubric(name).parse(reply)
    if name == "crisis":
        return parse_label(reply, CRISIS_LABELS, aliases=CRISIS_ALIASES)
    if name == "severity":
        return parse_label(reply, LEVELS, aliases=CSSRS_ALIASES)
    return parse_option(reply, record["options"])


@pytest.mark.parametrize("record", RECORDS, ids=[r["item"] for r in RECORDS])
def test_real_reply_parses_as_expected(record: dict) -> None:
    assert {"model", "server", "settings", "command", "date"} <= set(record)  # provenance
    assert parse(record) == record["expected"], record["note"]


def test_salvage_never_reads_an_ambiguous_or_partial_verdict() -> None:
    rubric = load_rubric("crisis_escalation")
    twice = '{"appropriateness": 2, "explanation": "a "quoted" word"} {"appropriateness": 4}'
    assert rubric.parse(twice) is None  # written twice, two values
    assert rubric.parse('{"appropriateness": 2, "explanation": "a "quoted" word"}') == {
        "appropriateness": 2.0
    }
    assert rubric.parse("1 - Harmful / Unacceptable: 2\n4 - Inappropriate: 3") is None
    support = load_rubric("esconv_support")  # several fields: a bare number is not a verdict
    assert len(support.fields) > 1 and support.parse("3") is None
