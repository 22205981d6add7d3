"""`--batch`: the run's requests through the providers' batch APIs, at about half the price.

A batched run goes in rounds. In each round the runner goes over every pending sample as usual,
but a request whose reply is neither stored nor cached is not sent: it is collected (`Deferred`)
and its sample waits. The collected requests are then submitted, in chunks within the provider's
limits, and the run polls until every batch has ended and stores their replies in the run (and the
shared cache), as if they had been answered one by one. The next round asks what those replies
made necessary: the judge's verdicts on the model's replies (the second phase), a stricter retry,
a conversation's next turn. The run ends when a round collects nothing new.

Batch ids, states and the requests in each are in the run store (`batches`, `batch_requests`),
recorded before submitting: a process killed at any point resumes polling the batches it
submitted instead of submitting them again. A line that failed (or expired, or was cancelled)
leaves its sample failed for this run; the next run submits it again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trustmh.models.base import SampleError, TransientError
from trustmh.models.batch_api import BatchAPI, BatchInfo
from trustmh.store import ResponseCache, RunStore
from trustmh.types import GenRequest


class Deferred(Exception):
    """The request waits for a batch: its sample is asked again in the next round."""


@dataclass
class BatchCollector:
    """The requests of a round that need a batch, by model; and the requests whose batch line
    failed in this run (their samples fail, to be retried by the next run)."""

    apis: dict[str, BatchAPI]  # by model spec: the endpoints that are batched
    waiting: dict[str, dict[str, tuple[str, GenRequest]]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # request key -> why

    def defer(self, spec: str, key: str, request: GenRequest) -> None:
        """Collect a request for the next batch (raises Deferred), or SampleError when its
        batch line already failed in this run."""
        if key in self.failed:
            raise SampleError(self.failed[key])
        role = request.ref.role if request.ref is not None else "model"
        self.waiting.setdefault(spec, {})[key] = (role, request)
        raise Deferred(key)

    @property
    def count(self) -> int:
        """Requests collected in this round."""
        return sum(len(keys) for keys in self.waiting.values())


POLL_RETRIES = 8  # a poll that fails transiently is retried (then the run stops, resumable)


class BatchRunner:
    """Submits collected requests and waits for the run's batches to end, storing the replies."""

    def __init__(self, store: RunStore, cache: ResponseCache | None, collector: BatchCollector,
                 poll_seconds: float, on_state: Callable[[str], None], stats: Any):  # fmt: skip
        self.store = store
        self.cache = cache
        self.collector = collector
        self.poll_seconds = poll_seconds
        self.on_state = on_state  # told a line whenever a batch changes state
        self.stats = stats
        self.submitted = 0  # requests submitted by this invocation
        self._shown: dict[str, str] = {}

    async def submit(self) -> None:
        """Submit every collected request, chunk by chunk, recording each chunk first."""
        for spec, requests in self.collector.waiting.items():
            api = self.collector.apis[spec]
            rows = [
                (key, role, api.line(key, request)) for key, (role, request) in requests.items()
            ]
            for chunk in _chunks(rows, api.max_requests, api.max_bytes):
                tag = uuid.uuid4().hex
                pending = f"pending:{tag}"
                self.store.add_batch(pending, spec, tag, chunk)
                info = await _retrying(lambda a=api, c=chunk, t=tag: a.submit([r[2] for r in c], t))
                self.store.batch_submitted(pending, info.id, info.state)
                self.submitted += len(chunk)
                self._show(info, spec, len(chunk))
        self.collector.waiting.clear()

    async def settle(self) -> None:
        """Wait for every batch of the run not collected yet (this invocation's or a killed
        one's) to end, and store what it answered."""
        while open_batches := self.store.open_batches():
            waiting = False
            for batch_id, spec, tag, _state, n in open_batches:
                api = self.collector.apis.get(spec)
                if api is None:
                    continue  # another model's batch (the run's settings forbid that: see engine)
                if batch_id.startswith("pending:"):
                    await self._recover(api, batch_id, spec, tag)
                    waiting = True
                    continue
                info = await _retrying(lambda a=api, b=batch_id: a.status(b))
                self.store.batch_state(batch_id, info.state, info.done, info.failed)
                self._show(info, spec, n)
                if info.ended:
                    await self._collect(api, info, spec)
                else:
                    waiting = True
            if not waiting:
                break
            await asyncio.sleep(self.poll_seconds)

    async def _recover(self, api: BatchAPI, pending: str, spec: str, tag: str) -> None:
        """A chunk recorded but perhaps never submitted (the process died in between): adopt the
        provider's batch with its tag, else submit it now."""
        found = await _retrying(lambda: api.find(tag))
        if found is None:
            lines = self.store.batch_lines(pending)
            info = await _retrying(lambda: api.submit([line for _, _, line in lines], tag))
            self.submitted += len(lines)
            found = info.id
        self.store.batch_submitted(pending, found, "submitted")

    async def _collect(self, api: BatchAPI, info: BatchInfo, spec: str) -> None:
        roles = {key: role for key, role, _ in self.store.batch_lines(info.id)}
        answered: set[str] = set()
        failures: dict[str, str] = {}
        async for key, response, error in api.results(info):
            if key not in roles:
                continue
            if response is None:
                failures[key] = error or "batch line failed"
                continue
            answered.add(key)
            self.store.put_response(key, spec, roles[key], response, "batch", 1, 0.0, commit=False)
            self.stats.prompt_tokens += response.usage.prompt_tokens
            self.stats.completion_tokens += response.usage.completion_tokens
            if self.cache is not None:
                self.cache.put(key, spec, response)
        why = f"batch {info.id} {info.state}" + (f": {info.note}" if info.note else "")
        for key in roles.keys() - answered - failures.keys():  # no result at all for the line
            failures[key] = f"no reply ({why})"
        self.store.batch_collected(info.id, failures)  # commits the replies too
        if self.cache is not None:
            self.cache.flush()
        self.collector.failed.update(failures)
        self.stats.batch_failed += len(failures)

    def _show(self, info: BatchInfo, spec: str, n: int) -> None:
        line = (f"batch {info.id} ({spec.split('@')[0]}, {n} requests): {info.state}"
                f" · {info.done} done · {info.failed} failed")  # fmt: skip
        if self._shown.get(info.id) != line:
            self._shown[info.id] = line
            self.on_state(line)


def _chunks(rows: list[tuple[str, str, Any]], max_requests: int, max_bytes: int) -> list[list[Any]]:
    """Rows split into chunks of at most `max_requests` lines and `max_bytes` of JSON."""
    import json

    chunks: list[list[Any]] = [[]]
    size = 0
    for row in rows:
        n = len(json.dumps(row[2], ensure_ascii=False).encode()) + 1
        if chunks[-1] and (len(chunks[-1]) >= max_requests or size + n > max_bytes):
            chunks.append([])
            size = 0
        chunks[-1].append(row)
        size += n
    return [c for c in chunks if c]


async def _retrying(make: Callable[[], Any]) -> Any:
    """A batch API call, retried with backoff on transient failures."""
    for attempt in range(POLL_RETRIES):
        try:
            return await make()
        except TransientError:
            if attempt == POLL_RETRIES - 1:
                raise
            await asyncio.sleep(min(60.0, 0.5 * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover
