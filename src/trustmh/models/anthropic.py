"""Backend for `anthropic:MODEL` through the official async client (optional extra)."""

from __future__ import annotations

import asyncio

from trustmh.errors import FatalBackendError, UserError
from trustmh.models.base import SampleError, TransientError
from trustmh.models.connect import connection_failure
from trustmh.models.openai_compat import retry_after_seconds
from trustmh.models.spec import ModelSpec
from trustmh.types import GenRequest, Response, Usage

DEFAULT_MAX_TOKENS = 4096  # the Messages API requires max_tokens; used when a task leaves it open


class AnthropicBackend:
    """`anthropic:MODEL`; system messages become the `system` parameter."""

    cacheable = True
    endpoint = "https://api.anthropic.com"

    def __init__(self, spec: ModelSpec, api_key: str | None, timeout: float, concurrency: int):
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
        self._timeout = timeout
        self._client = anthropic.AsyncAnthropic(api_key=api_key, max_retries=0, timeout=timeout)

    async def generate(self, request: GenRequest) -> Response:
        """One Messages API call; errors classified for the runner."""
        a = self._anthropic
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        messages = [m for m in request.messages if m["role"] != "system"]
        params = request.params
        # Sampling parameters go in the body as-is: recent SDKs (2.x) no longer list temperature
        # and top_p among create()'s typed arguments, but the API still takes them.
        sampling = {"temperature": params.temperature}
        if params.top_p is not None:
            sampling["top_p"] = params.top_p
        kwargs: dict = {"extra_body": sampling}
        if system:
            kwargs["system"] = system
        timed_out = f"no complete reply within {self._timeout:g} s (--request-timeout)"
        try:
            async with asyncio.timeout(self._timeout):  # the whole attempt, a slow body included
                msg = await self._client.messages.create(
                    model=self.model,
                    messages=messages,
                    max_tokens=params.max_tokens or DEFAULT_MAX_TOKENS,
                    **kwargs,
                )
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
        text = "".join(getattr(block, "text", "") for block in msg.content)
        return Response(
            text=text,
            usage=Usage(msg.usage.input_tokens or 0, msg.usage.output_tokens or 0),
            finish_reason=msg.stop_reason,
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()
