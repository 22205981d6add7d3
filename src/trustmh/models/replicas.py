"""`openai:MODEL@URL1,URL2,...`: the replicas of one deployment (vLLM or SGLang servers, each
with its own GPUs) as one model.

Each request goes to the live replica with the fewest requests in flight, at most `concurrency`
in flight per replica. A replica that does not answer (connection refused or dropped, timeout)
is marked down and the request moves at once to another replica (no backoff: the others are up);
a down replica gets a probe request again after a pause that doubles while it stays down (5 s up
to a minute), so a restarted replica rejoins. Errors a replica does answer with (429, 5xx, a
rejected prompt) are the runner's to retry, as with one server. Replies are the same whichever
replica answers (one model, temperature 0): the cache key is the spec with all its URLs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from trustmh.errors import FatalBackendError
from trustmh.models.base import ModelBackend, TransientError
from trustmh.models.profiles import plan_for
from trustmh.models.spec import ModelSpec
from trustmh.types import GenParams, GenRequest, Response

FIRST_PAUSE = 5.0
MAX_PAUSE = 60.0


@dataclass
class ReplicaState:
    """One replica: its backend, load, health and counts (shown in the run summary)."""

    url: str
    backend: ModelBackend
    slots: asyncio.Semaphore
    in_flight: int = 0
    down_until: float = 0.0
    pause: float = 0.0
    answered: int = 0  # replies it gave
    failed: int = 0  # requests it did not answer (moved to another replica)


class ReplicaSetBackend:
    """Several OpenAI-compatible servers of one model behind one spec."""

    cacheable = True

    def __init__(self, spec: ModelSpec, members: list[ModelBackend], concurrency: int):
        self.spec = spec.canonical
        self.label = spec.canonical
        self.endpoint = spec.url or ""
        self.concurrency = concurrency * len(members)  # the runner's limit over all replicas
        self.replicas = [ReplicaState(url, b, asyncio.Semaphore(concurrency))
                         for url, b in zip(spec.urls, members, strict=True)]  # fmt: skip
        # one set of parameter rules (protocol 1.7) for all: what one replica's 400s teach, the
        # others send at once, and the run's request keys cover what every replica is sent
        self.rules = getattr(members[0], "rules", None)
        for member in members[1:]:
            if self.rules is not None:
                member.rules = self.rules  # type: ignore[attr-defined]

    async def check(self) -> None:
        """Before the first request: every replica's reachability check. Those that cannot be
        reached start out set aside (and are tried again after their pause); the run stops at
        once only when none can."""
        failures = []
        for replica in self.replicas:
            check = getattr(replica.backend, "check", None)
            if check is None:
                continue
            try:
                await check()
            except FatalBackendError as exc:  # EndpointUnreachable
                self._down(replica)
                replica.failed -= 1  # a check is not a request
                failures.append(exc)
        if failures and len(failures) == len(self.replicas):
            raise failures[0]

    def plan(self, params: GenParams) -> Any:
        """What is sent for these parameters (the replicas share their rules)."""
        return self.rules.plan(params) if self.rules is not None else plan_for(None, params)

    def _pick(self, tried: set[int]) -> int | None:
        """The live replica (not tried for this request) with the fewest in flight; when every
        untried one is down, the one whose pause ends first (a probe); None when all were tried."""
        now = time.monotonic()
        candidates = [i for i in range(len(self.replicas)) if i not in tried]
        if not candidates:
            return None
        live = [i for i in candidates if self.replicas[i].down_until <= now]
        if live:
            return min(live, key=lambda i: self.replicas[i].in_flight)
        return min(candidates, key=lambda i: self.replicas[i].down_until)

    async def generate(self, request: GenRequest) -> Response:
        """The reply of one replica; TransientError when none answered."""
        tried: set[int] = set()
        failure: TransientError | None = None
        while (index := self._pick(tried)) is not None:
            tried.add(index)
            replica = self.replicas[index]
            async with replica.slots:
                replica.in_flight += 1
                try:
                    response = await replica.backend.generate(request)
                except TransientError as exc:
                    if not exc.unreachable:
                        raise
                    self._down(replica)
                    failure = exc
                    continue
                finally:
                    replica.in_flight -= 1
            replica.answered += 1
            replica.pause = 0.0
            replica.down_until = 0.0
            return response
        assert failure is not None
        raise TransientError(f"no replica answered: {failure}", unreachable=True)

    def _down(self, replica: ReplicaState) -> None:
        replica.failed += 1
        replica.pause = min(MAX_PAUSE, replica.pause * 2 or FIRST_PAUSE)
        replica.down_until = time.monotonic() + replica.pause

    def endpoint_counts(self) -> dict[str, tuple[int, int]]:
        """Per replica URL: (replies given, requests it did not answer)."""
        return {r.url: (r.answered, r.failed) for r in self.replicas}

    async def aclose(self) -> None:
        """Close every replica's connections."""
        for replica in self.replicas:
            await replica.backend.aclose()
