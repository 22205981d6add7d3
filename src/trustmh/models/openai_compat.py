"""Backend for OpenAI and every OpenAI-compatible server, through the official async client.

The client's own retries are off (max_retries=0): the runner retries, so that backoff, Retry-After,
progress and error counts are handled in one place.
"""

from __future__ import annotations

import sys
from typing import Any

import openai

from trustmh.errors import FatalBackendError
from trustmh.models.base import SampleError, TransientError
from trustmh.models.spec import ModelSpec
from trustmh.types import GenRequest, Response, Usage

OPENAI_URL = "https://api.openai.com/v1"


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from a Retry-After (or retry-after-ms) header; None when absent or unparseable."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime
            from time import time

            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time())
            except (TypeError, ValueError):
                return None
    return None


class OpenAICompatBackend:
    """`openai:MODEL` and `openai:MODEL@URL`."""

    cacheable = True

    def __init__(self, spec: ModelSpec, api_key: str | None, timeout: float, concurrency: int):
        self.spec = spec.canonical
        self.label = spec.canonical
        self.model = spec.model
        self.endpoint = spec.url or OPENAI_URL
        http_client = _http_client(concurrency, timeout)
        self._client = openai.AsyncOpenAI(
            api_key=api_key or "no-key",
            base_url=self.endpoint,
            max_retries=0,
            timeout=timeout,
            http_client=http_client,
        )

    async def generate(self, request: GenRequest) -> Response:
        """One chat completion; errors classified for the runner."""
        try:
            completion = await self._client.chat.completions.create(
                model=self.model, messages=list(request.messages), **request.params.as_dict()
            )
        except openai.RateLimitError as exc:
            raise TransientError(
                "429 rate limited", retry_after_seconds(exc.response.headers)
            ) from None
        except openai.AuthenticationError as exc:
            raise FatalBackendError(
                f"{self.spec}: the server rejected the API key ({exc.status_code}); check the variable named by --api-key-env"
            ) from None
        except openai.PermissionDeniedError as exc:
            raise FatalBackendError(
                f"{self.spec}: permission denied ({exc.status_code}): {_short(exc)}"
            ) from None
        except openai.NotFoundError as exc:
            raise FatalBackendError(
                f"{self.spec}: not found ({exc.status_code}): is the model name right and the URL the API root (…/v1)? {_short(exc)}"
            ) from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 409):
                raise TransientError(
                    f"HTTP {exc.status_code}", retry_after_seconds(exc.response.headers)
                ) from None
            raise SampleError(f"HTTP {exc.status_code}: {_short(exc)}") from None
        except openai.APITimeoutError:
            raise TransientError("request timed out") from None
        except openai.APIConnectionError as exc:
            raise TransientError(
                f"connection error: {type(exc.__cause__).__name__ if exc.__cause__ else exc}"
            ) from None
        except (openai.APIResponseValidationError, ValueError, TypeError, AttributeError) as exc:
            raise TransientError(f"malformed reply: {type(exc).__name__}") from None
        return _to_response(completion)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()


def _http_client(concurrency: int, timeout: float) -> Any:
    """The client's HTTP pool sized to the concurrency. The aiohttp transport (openai[aiohttp]) is
    preferred: on the throughput benchmark it spends a fraction of the default transport's CPU per
    request (whose pool scans every connection on each request), which at hundreds of requests in
    flight decides whether the client keeps up."""
    limits = _limits_class()(max_connections=concurrency, max_keepalive_connections=concurrency)
    try:
        return openai.DefaultAioHttpClient(limits=limits, timeout=timeout)
    except (AttributeError, RuntimeError):  # an openai without the aiohttp extra
        return openai.DefaultAsyncHttpxClient(limits=limits, timeout=timeout)


def _limits_class() -> Any:
    """`Limits` of the HTTP library the installed openai client is built on (httpx, or httpx2 in
    openai 3.x): the pool size must be given in that library's own class."""
    base = openai.DefaultAsyncHttpxClient.__mro__[1]
    return sys.modules[base.__module__.split(".")[0]].Limits


def _to_response(completion: Any) -> Response:
    try:
        choice = completion.choices[0]
        text = choice.message.content
    except (AttributeError, IndexError, TypeError):
        raise TransientError("malformed reply: no choices[0].message") from None
    if text is None:
        text = ""  # a refusal field or a tool call: the text reply is empty
    usage = getattr(completion, "usage", None)
    return Response(
        text=text,
        usage=Usage(
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        ),
        finish_reason=getattr(choice, "finish_reason", None),
    )


def _short(exc: Exception) -> str:
    return str(exc).replace("\n", " ")[:200]
