"""The one small async interface every model backend implements, and the errors it may raise.

The runner owns retries, rate limits and concurrency; a backend only turns one request into one
response, classifying failures so the runner knows what to do with them:
- `TransientError`: worth retrying (429, 5xx, timeouts, dropped connections, garbled replies);
  `retry_after` carries the server's Retry-After when it sent one.
- `SampleError`: this request cannot succeed (e.g. the server rejected the prompt); recorded as an
  error on the sample, retried on the next run.
- `NotRecorded`: a replay backend has no answer for this sample; the sample is "missing", not wrong.
- `trustmh.errors.FatalBackendError`: no request can succeed (bad key, unknown model); the run stops.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from trustmh.types import GenRequest, Response


class TransientError(Exception):
    """A failure worth retrying. `unreachable`: the server did not answer at all (connection
    refused or dropped, timed out), so a replica of it may."""

    def __init__(self, message: str, retry_after: float | None = None, unreachable: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.unreachable = unreachable


class SampleError(Exception):
    """A failure of this request that retrying will not fix."""


class NotRecorded(Exception):
    """The replay backend holds no response for this sample."""


@runtime_checkable
class ModelBackend(Protocol):
    """An async model backend."""

    spec: str  # the canonical model spec string, e.g. "openai:gpt-4o-mini@http://127.0.0.1:8000/v1"
    label: str  # how reports name it ("baseline (rule-based reference, not an LLM)")
    endpoint: str  # concurrency limits are per endpoint
    cacheable: bool  # False for backends whose replies cost nothing (replay, baseline)
    # optional: `parallel`, the requests its server can serve at once (requests beyond it only
    # wait); the engine caps the endpoint's concurrency there

    async def generate(self, request: GenRequest) -> Response:
        """Answer one request or raise one of the errors above."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
