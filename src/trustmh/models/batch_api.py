"""The providers' batch APIs (`--batch`): OpenAI's Files + Batches, Anthropic's Message Batches.

Each adapter turns requests into the provider's lines (the same bodies single requests send),
submits a chunk, reports its state, and reads its results back as (request key, Response or
why it failed). The request key is the line's custom_id (64 hex characters: within Anthropic's
limit of 64).

OpenAI: upload a JSONL file (purpose "batch"), create a batch on /v1/chat/completions with a 24 h
window and our chunk's tag in its metadata (so a process killed between the two calls and the
run store finds the batch by listing, instead of submitting it twice). States: validating,
in_progress, finalizing, completed; failed (the file was rejected), expired (the window passed:
the lines not done are in the error file as batch_expired), cancelling, cancelled. Up to 50,000
requests and 200 MB a batch.

Anthropic: create a message batch of {custom_id, params}. States: in_progress, canceling, ended;
each result is succeeded, errored, canceled or expired. Up to 100,000 requests and 256 MB.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from trustmh.errors import FatalBackendError
from trustmh.models.base import TransientError
from trustmh.types import GenParams, GenRequest, Response


@dataclass(frozen=True)
class BatchInfo:
    """A batch as last seen at the provider."""

    id: str
    state: str
    ended: bool  # no request of it will change any more
    done: int = 0
    failed: int = 0
    total: int = 0
    output: str | None = None  # OpenAI: the files holding the results
    errors: str | None = None
    note: str = ""  # why a batch failed as a whole


Result = tuple[str, Response | None, str | None]  # request key, reply, or why it failed
Planner = Callable[[GenParams], Any]  # a backend's `plan`: the parameters as sent (protocol 1.7)


class BatchAPI(Protocol):
    """What `trustmh.batch` needs of a provider."""

    provider: str
    max_requests: int
    max_bytes: int

    def line(self, key: str, request: GenRequest) -> dict[str, Any]:
        """The request as one line of a batch."""
        ...

    async def submit(self, lines: list[dict[str, Any]], tag: str) -> BatchInfo:
        """Submit a chunk; its tag lets `find` recover it."""
        ...

    async def status(self, batch_id: str) -> BatchInfo:
        """The batch's state now."""
        ...

    def results(self, info: BatchInfo) -> AsyncIterator[Result]:
        """The results of an ended batch."""
        ...

    async def find(self, tag: str) -> str | None:
        """The id of a batch submitted with this tag, when the provider can tell."""
        ...


OPENAI_ENDED = {"completed", "failed", "expired", "cancelled"}


class OpenAIBatches:
    """OpenAI's Files + Batches API (and compatible servers that implement it)."""

    provider = "openai"
    max_requests = 50_000
    max_bytes = 190 * 2**20  # the limit is 200 MB

    def __init__(self, client: Any, model: str, spec: str, plan: Planner):
        self._client = client
        self._model = model
        self._spec = spec
        self._plan = plan

    def line(self, key: str, request: GenRequest) -> dict[str, Any]:
        """One line of the input file: the body a single request would send."""
        from trustmh.models.openai_compat import chat_body

        body = chat_body(self._model, request.messages, self._plan(request.params))
        return {"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": body}

    async def submit(self, lines: list[dict[str, Any]], tag: str) -> BatchInfo:
        """Upload the lines as a file and create the batch."""
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        file = await self._call(
            lambda: self._client.files.create(file=("trustmh-batch.jsonl", data), purpose="batch")
        )
        batch = await self._call(lambda: self._client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h",
            metadata={"trustmh_chunk": tag}))  # fmt: skip
        return _openai_info(batch)

    async def status(self, batch_id: str) -> BatchInfo:
        """Retrieve the batch."""
        return _openai_info(await self._call(lambda: self._client.batches.retrieve(batch_id)))

    async def results(self, info: BatchInfo) -> AsyncIterator[Result]:
        """The output file's replies, then the error file's failures."""
        for file_id in (info.output, info.errors):
            if not file_id:
                continue
            content = await self._call(lambda f=file_id: self._client.files.content(f))
            for raw in content.text.splitlines():
                if raw.strip():
                    yield _openai_result(json.loads(raw))

    async def find(self, tag: str) -> str | None:
        """A recent batch carrying this tag in its metadata."""
        page = await self._call(lambda: self._client.batches.list(limit=100))
        for batch in page.data:
            if (batch.metadata or {}).get("trustmh_chunk") == tag:
                return batch.id
        return None

    async def _call(self, make: Callable[[], Awaitable[Any]]) -> Any:
        import openai

        try:
            return await make()
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise FatalBackendError(
                f"{self._spec}: the batch API refused the key ({exc.status_code})"
            ) from None
        except openai.NotFoundError as exc:
            raise FatalBackendError(
                f"{self._spec}: no batch API there ({exc.status_code} on {exc.request.url.path}); "
                "drop --batch for this server"
            ) from None
        except (
            openai.APIConnectionError,
            openai.RateLimitError,
            openai.InternalServerError,
        ) as exc:
            raise TransientError(f"batch API: {type(exc).__name__}") from None


def _openai_info(batch: Any) -> BatchInfo:
    counts = batch.request_counts
    errors = getattr(batch, "errors", None)
    note = "; ".join(e.message or e.code or "" for e in (errors.data or [])) if errors else ""
    return BatchInfo(batch.id, batch.status, batch.status in OPENAI_ENDED,
                     counts.completed if counts else 0, counts.failed if counts else 0,
                     counts.total if counts else 0, batch.output_file_id, batch.error_file_id,
                     note)  # fmt: skip


def _openai_result(line: dict[str, Any]) -> Result:
    from trustmh.models.openai_compat import _to_response as to_response

    key = str(line.get("custom_id"))
    response = line.get("response") or {}
    if response.get("status_code") == 200:
        try:
            return key, to_response(response.get("body")), None
        except TransientError as exc:
            return key, None, str(exc)
    error = (response.get("body") or {}).get("error") or line.get("error") or {}
    status = response.get("status_code")
    message = error.get("message") or error.get("code") or "no reply"
    return key, None, f"batch line failed{f' (HTTP {status})' if status else ''}: {message}"[:300]


class AnthropicBatches:
    """Anthropic's Message Batches API."""

    provider = "anthropic"
    max_requests = 100_000
    max_bytes = 250 * 2**20  # the limit is 256 MB

    def __init__(self, client: Any, model: str, spec: str, plan: Planner):
        self._client = client
        self._model = model
        self._spec = spec
        self._plan = plan

    def line(self, key: str, request: GenRequest) -> dict[str, Any]:
        """One request of the batch: the body a single request would send."""
        from trustmh.models.anthropic import messages_body

        return {"custom_id": key,
                "params": messages_body(self._model, request.messages, self._plan(request.params))}  # fmt: skip

    async def submit(self, lines: list[dict[str, Any]], tag: str) -> BatchInfo:
        """Create the batch (its tag cannot be recorded there: see `find`)."""
        return _anthropic_info(
            await self._call(lambda: self._client.messages.batches.create(requests=lines))
        )

    async def status(self, batch_id: str) -> BatchInfo:
        """Retrieve the batch."""
        return _anthropic_info(
            await self._call(lambda: self._client.messages.batches.retrieve(batch_id))
        )

    async def results(self, info: BatchInfo) -> AsyncIterator[Result]:
        """Every request's result."""
        from trustmh.models.anthropic import message_response

        decoder = await self._call(lambda: self._client.messages.batches.results(info.id))
        async for entry in decoder:
            result = entry.result
            if result.type == "succeeded":
                yield entry.custom_id, message_response(result.message), None
            elif result.type == "errored":
                error = getattr(getattr(result, "error", None), "error", None)
                yield (
                    entry.custom_id,
                    None,
                    f"batch request errored: {getattr(error, 'message', '')}"[:300],
                )
            else:
                yield entry.custom_id, None, f"batch request {result.type}"

    async def find(self, tag: str) -> str | None:
        """Message batches carry no metadata: a chunk cannot be recognised."""
        return None

    async def _call(self, make: Callable[[], Awaitable[Any]]) -> Any:
        import anthropic

        try:
            return await make()
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError):
            raise FatalBackendError(f"{self._spec}: the batch API refused the key") from None
        except (anthropic.APIConnectionError, anthropic.RateLimitError,
                anthropic.InternalServerError) as exc:  # fmt: skip
            raise TransientError(f"batch API: {type(exc).__name__}") from None


def _anthropic_info(batch: Any) -> BatchInfo:
    c = batch.request_counts
    failed = c.errored + c.canceled + c.expired
    total = c.processing + c.succeeded + failed
    return BatchInfo(batch.id, batch.processing_status, batch.processing_status == "ended",
                     c.succeeded, failed, total)  # fmt: skip
