"""Reasoning kept apart from the answer, and replies cut short by their token cap (protocol 1.7).

Open reasoning models (Qwen3, DeepSeek-R1 distills, gpt-oss...) served by vLLM, SGLang, Ollama or
llama.cpp write their reasoning either inside `content` as a `<think>...</think>` block (no
reasoning parser on the server) or in a separate `reasoning_content` / `reasoning` field (with
one). Hosted reasoning models (OpenAI o-series and GPT-5, Claude with extended thinking, Gemini
2.5) spend tokens on reasoning that count against the cap. Either way only the answer is parsed:
a letter mentioned while thinking must never be scored as the choice.
"""

from __future__ import annotations

import re

from trustmh.types import Response

_OPEN = re.compile(r"<think>", re.I)
_CLOSE = re.compile(r"</think>", re.I)
_ANY_TAG = re.compile(r"think>", re.I)  # the cheap test every reply goes through

# finish reasons meaning "stopped by the token cap" (OpenAI-compatible; Anthropic)
CAP_REASONS = ("length", "max_tokens")
CUT_LENGTH = "length"  # the answer was cut by the cap: what there is of it is scored, and flagged
CUT_EMPTY = "empty"  # no answer at all after reasoning (or cut before any): not scored


def split_reasoning(text: str) -> tuple[str, str | None]:
    """(answer, reasoning) of a reply whose content may hold `<think>` blocks.

    Closed blocks are removed from the answer wherever they are; an unclosed `<think>` (the cap
    hit while thinking) makes the rest of the text reasoning; a `</think>` with no opening tag
    before it (chat templates that put `<think>` in the prompt) makes everything before it
    reasoning. Without any tag the text is returned unchanged with reasoning None."""
    if _ANY_TAG.search(text) is None:
        return text, None
    reasoning: list[str] = []
    answer: list[str] = []
    pos = 0
    first_open, first_close = _OPEN.search(text), _CLOSE.search(text)
    if first_close and (first_open is None or first_close.start() < first_open.start()):
        reasoning.append(text[: first_close.start()])
        pos = first_close.end()
    while True:
        opening = _OPEN.search(text, pos)
        if opening is None:
            answer.append(text[pos:])
            break
        answer.append(text[pos : opening.start()])
        closing = _CLOSE.search(text, opening.end())
        if closing is None:  # cut while thinking: no answer after it
            reasoning.append(text[opening.end() :])
            break
        reasoning.append(text[opening.end() : closing.start()])
        pos = closing.end()
    joined = "\n\n".join(part.strip() for part in reasoning if part.strip())
    return "".join(answer).strip(), joined or None


def with_reasoning_apart(response: Response) -> Response:
    """The response with any `<think>` block of its text moved to `reasoning` (idempotent: a
    response already split is returned as it is)."""
    answer, thought = split_reasoning(response.text)
    if thought is None:
        return response
    response.text = answer
    response.reasoning = "\n\n".join(p for p in (response.reasoning, thought) if p)
    return response


def cut_short(response: Response) -> str | None:
    """Why a reply is not a whole answer: CUT_EMPTY when there is no answer text but the model
    reasoned or hit its cap (nothing to score: an empty reply is not a refusal here), CUT_LENGTH
    when the answer itself was cut by the cap; None for a whole answer. An empty reply that ended
    normally without reasoning is a real empty reply (protocol 1.3), not cut short."""
    capped = response.finish_reason in CAP_REASONS
    if not response.text.strip():
        reasoned = bool(response.reasoning) or response.usage.reasoning_tokens > 0
        return CUT_EMPTY if (capped or reasoned) else None
    return CUT_LENGTH if capped else None
