"""Reasoning kept apart from the answer and replies cut short (protocol 1.7), unit by unit: the
`<think>` splitter, the reply reader of the OpenAI-compatible backend, the cut-short rule and the
stores' round trip of reasoning, reasoning tokens and what was sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustmh.models.openai_compat import _to_response
from trustmh.models.reasoning import CUT_EMPTY, CUT_LENGTH, cut_short, split_reasoning
from trustmh.scoring.parsers import parse_option
from trustmh.store import ResponseCache, RunStore
from trustmh.types import Response, Sample, SampleScore, Usage

THOUGHT = 'Option A looks right. The answer is A. ```json\n{"answer": "A"}\n```'
ANSWER = '```json\n{"answer": "C"}\n```'


@pytest.mark.parametrize(
    ("text", "answer", "reasoning"),
    [
        (f"<think>{THOUGHT}</think>\n\n{ANSWER}", ANSWER, THOUGHT),
        (f"<THINK>\n{THOUGHT}\n</THINK>{ANSWER}", ANSWER, THOUGHT),  # any case, any spacing
        (f"{THOUGHT}\n</think>\n{ANSWER}", ANSWER, THOUGHT),  # the template opened the block
        (f"<think>{THOUGHT}", "", THOUGHT),  # cut while thinking: no answer
        (f"<think>one</think>{ANSWER}<think>two</think>", ANSWER, "one\n\ntwo"),
        (f"<think></think>{ANSWER}", ANSWER, None),  # an empty block (thinking switched off)
        (ANSWER, ANSWER, None),
    ],
)
def test_think_blocks_are_split_from_the_answer(
    text: str, answer: str, reasoning: str | None
) -> None:
    assert split_reasoning(text) == (answer, reasoning)


def test_the_letter_in_the_reasoning_is_not_the_parsed_answer() -> None:
    raw = f"<think>{THOUGHT}</think>\n{ANSWER}"
    assert parse_option(raw, "ABCD") == "A"  # what a parser reading everything would score
    answer, _ = split_reasoning(raw)
    assert parse_option(answer, "ABCD") == "C"


def completion(message: dict, finish: str = "stop", usage: dict | None = None) -> dict:
    return {"choices": [{"message": message, "finish_reason": finish}],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 20}}  # fmt: skip


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_a_separate_reasoning_field_is_kept_not_parsed(field: str) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 60,
             "completion_tokens_details": {"reasoning_tokens": 40}}  # fmt: skip
    response = _to_response(completion({"content": ANSWER, field: THOUGHT}, usage=usage))
    assert response.text == ANSWER and response.reasoning == THOUGHT
    assert response.usage == Usage(10, 60, 40)
    # both forms at once (a server with a parser, a model that still writes a block)
    both = _to_response(completion({"content": f"<think>more</think>{ANSWER}", field: THOUGHT}))
    assert both.text == ANSWER and both.reasoning == f"{THOUGHT}\n\nmore"


def test_cut_short_replies() -> None:
    hidden = Response("", Usage(10, 512, 512), "length")  # OpenAI: all spent reasoning
    assert cut_short(hidden) == CUT_EMPTY
    unclosed = _to_response(completion({"content": f"<think>{THOUGHT}"}, "length"))
    assert unclosed.text == "" and cut_short(unclosed) == CUT_EMPTY
    field_only = _to_response(completion({"content": None, "reasoning_content": THOUGHT}, "stop"))
    assert cut_short(field_only) == CUT_EMPTY  # reasoned, then said nothing
    assert cut_short(Response("The answer is", finish_reason="length")) == CUT_LENGTH
    assert cut_short(Response("", finish_reason="max_tokens")) == CUT_EMPTY  # Anthropic's name
    assert cut_short(Response("", finish_reason="stop")) is None  # a real empty reply (a refusal)
    assert cut_short(Response(ANSWER, finish_reason="stop")) is None


def test_reasoning_and_what_was_sent_survive_both_stores(tmp_path: Path) -> None:
    response = Response(
        ANSWER, Usage(10, 60, 40), "stop", {"recorded_model": "x"}, reasoning=THOUGHT,
        sent_params={"max_completion_tokens": 25512},
        adapted=[{"param": "temperature", "action": "drop"}],
    )  # fmt: skip
    store = RunStore(tmp_path / "run")
    cache = ResponseCache(tmp_path / "cache")
    try:
        store.put_response("k", "openai:o4-mini", "model", response, "api", 1, 0.1)
        cache.put("k", "openai:o4-mini", response)
        cache.flush()
        for back in (store.get_response("k"), cache.get("k")):
            assert back is not None
            assert (back.text, back.reasoning, back.usage) == (ANSWER, THOUGHT, Usage(10, 60, 40))
            assert back.extra == {"recorded_model": "x"}  # backend fields as they were
            assert back.sent_params == {"max_completion_tokens": 25512}
            assert back.adapted == [{"param": "temperature", "action": "drop"}]
        plain = Response("hi", Usage(1, 1))
        store.put_response("p", "m", "model", plain, "api", 1, 0.1)
        assert store.conn.execute(
            "SELECT extra FROM responses WHERE request_key='p'"
        ).fetchone() == (None,)
        sample = Sample("s1", ({"role": "user", "content": "q"},))
        store.add_samples("t", [(sample, "k")])
        store.put_score("t", sample, "k", SampleScore(1.0, "C"))
        row = next(store.export_rows())
        assert row["response"] == ANSWER and row["reasoning"] == THOUGHT
        assert row["reasoning_tokens"] == 40 and row["sent_params"] == {
            "max_completion_tokens": 25512
        }
    finally:
        store.close()
        cache.close()
