"""Real providers' parameter rules for the loopback server (`openai_server.py`), with the error
bodies those providers send, and the reasoning their models write.

OpenAI's reasoning models (chat completions):
- o1, o3, o4-mini ("o-series") and gpt-5, gpt-5-mini, gpt-5-nano ("gpt-5"): `max_tokens` is
  rejected in favour of `max_completion_tokens`; temperature and top_p only at their default 1;
  hidden reasoning counted in `usage.completion_tokens_details.reasoning_tokens` and against the
  cap (all of it spent reasoning: empty content, finish_reason "length");
- gpt-5.1 and later ("gpt-5.1"): `max_tokens` rejected the same way; `reasoning_effort` defaults
  to "none", where temperature and top_p are accepted; with any other effort they are not;
- gpt-5-chat models: no reasoning, `max_completion_tokens` or `max_tokens`.
Anthropic's Messages API (`/v1/messages`): `max_tokens` required; temperature in [0, 1]; current
models (every `claude-*` but Claude 3.x and 4.0) take temperature or top_p, not both; extended
thinking (`thinking: {type: enabled, budget_tokens}`) needs budget_tokens >= 1024 and < max_tokens,
temperature unset (or 1) and top_p unset or >= 0.95, and answers with a `thinking` block first.
Open reasoning models (`reasoning_style`): reasoning inside the content as a `<think>` block, or
apart in `reasoning_content` (vLLM/SGLang with a reasoning parser); it counts against max_tokens.

Messages are the providers' own, as reported in public issue threads of client libraries.
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

REASONING_STYLES = ("think", "reasoning_content")
OPENAI_EFFORTS = {
    "o-series": ("low", "medium", "high"),
    "gpt-5": ("minimal", "low", "medium", "high"),
    "gpt-5.1": ("none", "low", "medium", "high", "xhigh"),
}
# hidden reasoning per effort, as a multiple of the default reasoning text's length
EFFORT_SCALE = {"none": 0, "minimal": 1, "low": 1, "medium": 2, "high": 4, "xhigh": 6}
_LEGACY_CLAUDE = ("claude-2*", "claude-instant*", "claude-3*", "claude-sonnet-4", "claude-sonnet-4-0*",
                  "claude-sonnet-4-20*", "claude-opus-4", "claude-opus-4-0*", "claude-opus-4-20*")  # fmt: skip
_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
_LETTER_LINE = re.compile(r"^[ \t]*\(?([A-Z])[.)]", re.M)


def _name(model: str) -> str:
    return model.lower().rsplit("/", 1)[-1]


def openai_family(model: str) -> str | None:
    """The OpenAI model family whose rules apply to `model`, or None (no rules)."""
    name = _name(model)
    if fnmatch.fnmatchcase(name, "gpt-5*-chat*"):
        return "gpt-5-chat"
    if fnmatch.fnmatchcase(name, "gpt-5.*"):
        return "gpt-5.1"
    if name == "gpt-5" or name.startswith("gpt-5-"):
        return "gpt-5"
    if re.fullmatch(r"o\d(-.*)?", name):
        return "o-series"
    return None


def _value(value: Any) -> str:
    return json.dumps(value)


def _unsupported_value(param: str, value: Any, tail: str) -> dict[str, Any]:
    return {"message": f"Unsupported value: '{param}' does not support {_value(value)} with this model. {tail}",
            "type": "invalid_request_error", "param": param, "code": "unsupported_value"}  # fmt: skip


def openai_rejection(model: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The error object OpenAI answers a chat-completions body with for this model (HTTP 400),
    or None when the body is accepted."""
    family = openai_family(model)
    if family is None or family == "gpt-5-chat":
        return None
    if "max_tokens" in body:
        return {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                           "Use 'max_completion_tokens' instead.",
                "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}  # fmt: skip
    effort = body.get("reasoning_effort")
    allowed = OPENAI_EFFORTS[family]
    if effort is not None and effort not in allowed:
        names = ", ".join(f"'{e}'" for e in allowed[:-1]) + f", and '{allowed[-1]}'"
        return _unsupported_value("reasoning_effort", effort, f"Supported values are: {names}.")
    reasoning = family != "gpt-5.1" or effort not in (None, "none")
    if reasoning:
        for param in ("temperature", "top_p"):
            if param in body and body[param] != 1:
                return _unsupported_value(
                    param, body[param], "Only the default (1) value is supported."
                )
    return None


def hidden_reasoning_scale(model: str, body: dict[str, Any]) -> int:
    """How many times the default reasoning text an OpenAI reasoning model thinks for this body
    (0: it does not reason)."""
    family = openai_family(model)
    if family in (None, "gpt-5-chat"):
        return 0
    default = "none" if family == "gpt-5.1" else "medium"
    return EFFORT_SCALE.get(body.get("reasoning_effort") or default, 2)


def anthropic_rejection(model: str, body: dict[str, Any]) -> str | None:
    """The message of the 400 Anthropic's Messages API answers this body with, or None."""
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    temperature, top_p = body.get("temperature"), body.get("top_p")
    if temperature is not None and not 0 <= temperature <= 1:
        return "temperature: Input should be less than or equal to 1"
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if body["max_tokens"] <= budget:
            return ("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                    f"documentation at {_DOCS}#max-tokens-and-context-window-size")  # fmt: skip
        if temperature is not None and temperature != 1:
            return ("`temperature` may only be set to 1 when thinking is enabled. Please consult "
                    f"our documentation at {_DOCS}#feature-compatibility")  # fmt: skip
        if top_p is not None and top_p < 0.95:
            return ("`top_p` must be greater than or equal to 0.95 or unset when thinking is "
                    f"enabled. Please consult our documentation at {_DOCS}#feature-compatibility")  # fmt: skip
    legacy = any(fnmatch.fnmatchcase(_name(model), p) for p in _LEGACY_CLAUDE)
    if temperature is not None and top_p is not None and not legacy:
        return "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
    return None


def anthropic_error_body(message: str, request_id: str) -> dict[str, Any]:
    """An Anthropic error body."""
    return {"type": "error", "error": {"type": "invalid_request_error", "message": message},
            "request_id": request_id}  # fmt: skip


def default_reasoning(prompt: str, answer: str) -> str:
    """Reasoning a model might write before `answer`: for a lettered multiple-choice prompt it
    weighs every other option and names each as "the answer", in prose and in the protocol's
    JSON, so a parser that read it would score another letter than the final one."""
    letters = list(dict.fromkeys(_LETTER_LINE.findall(prompt)))
    chosen = re.search(r'"(?:answer|choice)"\s*:\s*"([A-Z])"', answer)
    others = [x for x in letters if not chosen or x != chosen.group(1)]
    if others:
        lines = [f"Option {x} looks plausible at first. Maybe the answer is {x}." for x in others]
        lines.append(
            f'A first draft: ```json\n{{"answer": "{others[0]}", "choice": "{others[0]}"}}\n```'
        )
        lines.append("On reflection that draft is wrong; the final answer follows.")
        return "\n".join(lines)
    return (
        "Let me think this through step by step before I answer. Is the answer yes or no? "
        "Perhaps the answer is A. Or B. I will weigh the person's words carefully first."
    )


def split_think(reply: str) -> tuple[str, str | None]:
    """(answer, reasoning) of a scripted reply that starts with a `<think>` block."""
    match = re.match(r"\s*<think>(.*?)</think>\s*", reply, re.S)
    if match is None:
        return reply, None
    return reply[match.end() :], match.group(1).strip()
