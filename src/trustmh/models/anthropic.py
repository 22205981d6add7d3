"""Backend for `anthropic:MODEL` through the official async client (optional extra).

What is sent follows the model's parameter profile (protocol 1.7): the required `max_tokens`,
temperature at most 1, temperature or top_p but not both on current models, and extended thinking
(`--reasoning-effort`, sent as a thinking budget) at the default temperature. Anthropic's 400s name
no parameter field, so a rejected parameter is read from the message and adapted once, as for
OpenAI. Thinking blocks are kept in `Response.reasoning`, never in the text that is parsed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from trustmh.errors import FatalBackendError, UserError
from trustmh.models.adapt import (
    adapted_suffix,
    anthropic_adaptation,
    provider_message,
    send_adapting,
    with_sent,
)
from trustmh.models.base import SampleError, TransientError
from trustmh.models.connect import connection_failure
from trustmh.models.openai_compat import retry_after_seconds
from trustmh.models.profiles import (
    ANTHROPIC_DEFAULT_MAX_TOKENS,
    Adaptation,
    ParameterRules,
    Profile,
    RequestPlan,
)
from trustmh.models.spec import ModelSpec
from trustmh.types import GenParams, GenRequest, Message, Response, Usage


def _rejection(exc: Exception, adapted: Sequence[Adaptation]) -> str:
    """The line recorded for a request Anthropic rejected: its own message."""
    message = provider_message(getattr(exc, "body", None)) or str(exc)[:300]
    return f"HTTP 400: {' '.join(message.split())[:500]}{adapted_suffix(adapted)}"


def messages_body(model: str, messages: tuple[Message, ...], plan: RequestPlan) -> dict[str, Any]:
    """The Messages API request body of a request under its plan: system messages joined into
    the `system` parameter, the cap filled in when the subtask leaves it open."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    # The Messages API has no seed: a request's `seed` only keys the cache for this backend.
    sampling = {k: v for k, v in plan.wire.items() if k != "seed"}
    body: dict[str, Any] = {
        "model": model,
        "messages": [m for m in messages if m["role"] != "system"],
        **sampling,
    }
    body.setdefault("max_tokens", ANTHROPIC_DEFAULT_MAX_TOKENS)
    if system:
        body["system"] = system
    return body


def message_response(msg: Any) -> Response:
    """A Message (the SDK's object) as a Response: its text blocks are the answer, its thinking
    blocks the reasoning. Also each result of a message batch."""
    text = "".join(b.text for b in msg.content if getattr(b, "type", None) == "text")
    thinking = [
        b.thinking if b.type == "thinking" else "[redacted thinking]"
        for b in msg.content
        if getattr(b, "type", None) in ("thinking", "redacted_thinking")
    ]
    return Response(
        text=text,
        usage=Usage(msg.usage.input_tokens or 0, msg.usage.output_tokens or 0),
        finish_reason=msg.stop_reason,
        reasoning="\n\n".join(thinking) or None,
    )


class AnthropicBackend:
    """`anthropic:MODEL`; system messages become the `system` parameter."""

    cacheable = True
    endpoint = "https://api.anthropic.com"

    def __init__(
        self,
        spec: ModelSpec,
        api_key: str | None,
        timeout: float,
        concurrency: int,
        *,
        profiles: tuple[Profile, ...] | None = None,
        reasoning_effort: str | None = None,
        effort_flag: str = "--reasoning-effort",
    ):
        try:
            import anthropic
        except ImportError:
            raise UserError(
                f"{spec.canonical}: the anthropic backend needs its extra; run pip install 'trustmh[anthropic]'"
            ) from None
        self._anthropic = anthropic
        self.spec = spec.canonical
        self.label = spec.canonical
        self.model = spec.model
        self.rules = ParameterRules("anthropic", spec.model, spec.canonical, profiles=profiles,
                                    effort=reasoning_effort, effort_flag=effort_flag)  # fmt: skip
        self._timeout = timeout
        self._client = anthropic.AsyncAnthropic(api_key=api_key, max_retries=0, timeout=timeout)

    def plan(self, params: GenParams) -> RequestPlan:
        """What is sent for these parameters (profile, reasoning effort, learned adaptations)."""
        return self.rules.plan(params)

    async def generate(self, request: GenRequest) -> Response:
        """One Messages API call; errors classified for the runner (a 400 naming a parameter is
        adapted, see `send_adapting`)."""
        msg, plan, adapted = await send_adapting(
            self.rules,
            request.params,
            lambda plan: self._send(messages_body(self.model, request.messages, plan)),
            self._anthropic.BadRequestError,
            lambda exc, wire: anthropic_adaptation(getattr(exc, "body", None), wire),
            _rejection,
        )
        return with_sent(message_response(msg), request.params, plan, adapted)

    async def _send(self, body: dict[str, Any]) -> Any:
        """One Messages API call of a built body; failures classified for the runner (a 400 is
        left to `generate`, which may adapt the request)."""
        a = self._anthropic
        # Sampling and thinking parameters go in the body as-is: recent SDKs (2.x) no longer list
        # temperature and top_p among create()'s typed arguments, but the API still takes them.
        typed = {k: body[k] for k in ("model", "messages", "max_tokens", "system") if k in body}
        extra = {k: v for k, v in body.items() if k not in typed}
        timed_out = f"no complete reply within {self._timeout:g} s (--request-timeout)"
        try:
            async with asyncio.timeout(self._timeout):  # the whole attempt, a slow body included
                return await self._client.messages.create(**typed, extra_body=extra)
        except a.BadRequestError:
            raise
        except TimeoutError:
            raise TransientError(timed_out) from None
        except a.RateLimitError as exc:
            raise TransientError(
                "429 rate limited", retry_after_seconds(exc.response.headers)
            ) from None
        except a.AuthenticationError:
            raise FatalBackendError(
                f"{self.spec}: the API key was rejected; check ANTHROPIC_API_KEY or --api-key-env"
            ) from None
        except a.PermissionDeniedError:
            raise FatalBackendError(
                f"{self.spec}: permission denied (403); check the key's access to this model"
            ) from None
        except a.NotFoundError:
            raise FatalBackendError(f"{self.spec}: model not found; check the model name") from None
        except a.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 409, 529):
                raise TransientError(
                    f"HTTP {exc.status_code}", retry_after_seconds(exc.response.headers)
                ) from None
            raise SampleError(f"HTTP {exc.status_code}: {str(exc)[:200]}") from None
        except a.APIConnectionError as exc:  # APITimeoutError included
            cause = connection_failure(exc)
            if cause is not None:
                raise TransientError(f"cannot reach {self.endpoint}: {cause}") from None
            raise TransientError(
                timed_out if isinstance(exc, a.APITimeoutError) else "connection error"
            ) from None

    def batch_api(self) -> Any:
        """The Message Batches API (`--batch`)."""
        from trustmh.models.batch_api import AnthropicBatches

        return AnthropicBatches(self._client, self.model, self.spec, self.plan)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()
