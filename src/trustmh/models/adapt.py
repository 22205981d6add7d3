"""Reading a provider's 400 for a parameter to adapt (protocol 1.7).

OpenAI names the rejected parameter in the error's `param` field ("Unsupported parameter:
'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."; "Unsupported
value: 'temperature' does not support 0 with this model. Only the default (1) value is
supported."). Anthropic's errors carry no such field, so its message is read ("`temperature` and
`top_p` cannot both be specified for this model. Please use only one."). A 400 that names no
parameter, or one that cannot be dropped or renamed (the messages, a reasoning effort the user
chose), is not adapted: the request fails with the provider's message.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from trustmh.models.base import SampleError
from trustmh.models.profiles import Adaptation, ParameterRules, RequestPlan
from trustmh.types import GenParams, Response

MAX_ADAPTATIONS = 3  # parameters adapted within one request (each one once) before it fails
Reply = TypeVar("Reply")

# Parameters a request can do without: the provider then uses its own default.
DROPPABLE = ("temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty", "seed",
             "logprobs", "top_logprobs")  # fmt: skip
_USE_INSTEAD = re.compile(r"[Uu]se '([A-Za-z_][A-Za-z0-9_]*)' instead")
_DEFAULT = re.compile(r"default \((-?\d+(?:\.\d+)?)\)")
_NAMED = re.compile(r"`([A-Za-z_][A-Za-z0-9_.]*)`|^([A-Za-z_][A-Za-z0-9_.]*):")
_BOTH = re.compile(r"cannot both be specified", re.I)


def error_fields(body: Any) -> dict[str, Any]:
    """The error object of a provider's error body: `{"error": {...}}` (OpenAI, Anthropic) or the
    object itself (what the OpenAI client keeps); {} when it is neither."""
    if not isinstance(body, dict):
        return {}
    inner = body.get("error")
    return inner if isinstance(inner, dict) else body


def provider_message(body: Any) -> str | None:
    """The provider's own error message, when the body has one."""
    message = error_fields(body).get("message")
    return str(message) if message else None


def _default(message: str) -> float | None:
    found = _DEFAULT.search(message)
    return float(found.group(1)) if found else None


def openai_adaptation(body: Any, wire: dict[str, Any]) -> Adaptation | None:
    """What to change after an OpenAI-style 400 naming a parameter that was sent, else None."""
    error = error_fields(body)
    param, message = error.get("param"), str(error.get("message") or "")
    if not isinstance(param, str) or param not in wire:
        return None
    instead = _USE_INSTEAD.search(message)
    if instead and instead.group(1) != param:
        return Adaptation(param, "rename", instead.group(1), message=message)
    if param in DROPPABLE:
        return Adaptation(param, "drop", default=_default(message), message=message)
    return None


def anthropic_adaptation(body: Any, wire: dict[str, Any]) -> Adaptation | None:
    """What to change after an Anthropic 400 whose message names a parameter that was sent (two
    sampling parameters that cannot both be set: the second is dropped), else None."""
    message = str(error_fields(body).get("message") or "")
    named = [a or b for a, b in _NAMED.findall(message)]
    named = [n for n in dict.fromkeys(named) if n in wire and n in DROPPABLE]
    if not named:
        return None
    param = named[-1] if _BOTH.search(message) else named[0]
    default = _default(message) if param == "temperature" else None
    if default is None and "only be set to 1" in message:
        default = 1.0
    return Adaptation(param, "drop", default=default, message=message)


async def send_adapting(
    rules: ParameterRules,
    params: GenParams,
    send: Callable[[RequestPlan], Awaitable[Reply]],
    rejected: type[Exception],
    adaptation_of: Callable[[Exception, dict[str, Any]], Adaptation | None],
    failure: Callable[[Exception, Sequence[Adaptation]], str],
) -> tuple[Reply, RequestPlan, list[Adaptation]]:
    """Send the request planned for `params`; when the provider rejects it (`rejected`, a 400)
    naming a parameter it sent, learn the adaptation (kept for the backend's later requests too)
    and send it again, each parameter once. Returns (reply, the plan sent, the adaptations made);
    a rejection that cannot be adapted raises SampleError with `failure`'s line."""
    plan = rules.plan(params)
    adapted: list[Adaptation] = []
    while True:
        try:
            return await send(plan), plan, adapted
        except rejected as exc:
            adaptation = adaptation_of(exc, plan.wire)
            if adaptation is not None and len(adapted) < MAX_ADAPTATIONS:
                rules.learn(adaptation)
                new_plan = rules.plan(params)
                if new_plan.wire != plan.wire:
                    adapted.append(adaptation)
                    plan = new_plan
                    continue
            raise SampleError(failure(exc, adapted)) from None


def with_sent(response: Response, params: GenParams, plan: RequestPlan,
              adapted: Sequence[Adaptation]) -> Response:  # fmt: skip
    """The response with what was sent, when it differs from the request's own parameters, and
    the adaptations made on the way."""
    if plan.wire != params.as_dict():
        response.sent_params = plan.wire
    if adapted:
        response.adapted = [a.as_dict() for a in adapted]
    return response


def adapted_suffix(adapted: Sequence[Adaptation]) -> str:
    """ " (after adapting temperature, ...)" for a failure line, or ""."""
    return f" (after adapting {', '.join(a.param for a in adapted)})" if adapted else ""
