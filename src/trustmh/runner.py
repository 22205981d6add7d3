"""The async runner: per-endpoint concurrency, rate limits, retries, caching, storing, scoring.

One worker pool drains every pending sample of the run (all tasks together, so the endpoint stays
busy across task boundaries). For each sample: reuse the reply stored in this run, else the shared
cache, else ask the backend (with retries); store it; score it; store the score. Identical requests
in flight at the same time are sent once.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from trustmh.batch import Deferred
from trustmh.budget import CostCapReached, CostGuard
from trustmh.data.sources import DataContext
from trustmh.errors import FatalBackendError
from trustmh.models.base import ModelBackend, NotRecorded, SampleError, TransientError
from trustmh.models.connect import EndpointCheck
from trustmh.models.profiles import RequestPlan, plan_for
from trustmh.models.reasoning import CUT_EMPTY, cut_short, with_reasoning_apart
from trustmh.store import (
    ResponseCache,
    RunStore,
    checkpoint_wal,
    checkpoints_deferred,
    request_key,
)
from trustmh.tasks.base import ScoreContext, Task
from trustmh.types import GenParams, GenRequest, Message, Response, Sample, SampleRef, SampleScore


@dataclass(slots=True)
class RunStats:
    """Counters shown in the progress bar and the summary."""

    total: int = 0
    done: int = 0
    requests: int = 0  # requests sent to a backend (each retry counts)
    cache_hits: int = 0  # replies taken from the shared cache
    reused: int = 0  # replies already stored in this run
    errors: int = 0  # samples that still failed after their retries
    missing: int = 0  # samples the replay backend has no answer for
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0  # part of completion_tokens spent reasoning
    adapted: int = 0  # requests sent again after the provider rejected a parameter (protocol 1.7)
    cut_short: int = 0  # model replies cut by their token cap or with no answer after reasoning
    judge_cut_short: int = 0  # the same for judge replies
    judge_requests: int = 0
    # requests sent for the other roles of multi-step tasks (e.g. a simulated user), by role
    role_requests: dict[str, int] = field(default_factory=dict)
    cache_errors: int = 0  # replies the shared cache could not store (kept in the run)
    repaired_replies: int = 0  # replies whose lone surrogates were replaced by U+FFFD
    batched: int = 0  # requests submitted in provider batches (--batch)
    batch_failed: int = 0  # batch lines that came back failed, expired or cancelled
    # shown in the summary, so a systematic failure is visible at once
    first_error: str | None = None


def repair_surrogates(text: str) -> tuple[str, int]:
    """`text` with every lone surrogate replaced by U+FFFD, and how many were (a valid pair
    written as two escapes becomes its character)."""
    try:
        text.encode("utf-8")
        return text, 0
    except UnicodeEncodeError:
        pass
    fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return fixed, fixed.count("\ufffd") - text.count("\ufffd")


def repair_surrogates_deep(value: Any) -> Any:
    """`repair_surrogates` applied to every string (keys too) inside dicts and lists."""
    if isinstance(value, str):
        return repair_surrogates(value)[0]
    if isinstance(value, dict):
        return {repair_surrogates_deep(k): repair_surrogates_deep(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [repair_surrogates_deep(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried."""

    max_retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 60.0


# How often the runner commits the response cache's batch and checkpoints the databases' WAL.
HOUSEKEEPING_SECONDS = ResponseCache.FLUSH_SECONDS

# Young-generation collections while requests are in flight: one per this many new container
# objects (Python's default is 700).
GC_YOUNG_THRESHOLD = 10_000


@contextmanager
def collector_tuned_for_requests() -> Iterator[None]:
    """Run the block with the cyclic garbage collector set for hundreds of requests in flight.

    Each collection walks the objects of every in-flight request and pauses the event loop while
    it does (tens of milliseconds at a few hundred in flight, which all of them wait out), yet the
    request path leaves no cyclic garbage: so collect young objects less often, and freeze what is
    alive before the run (imports, samples) so that a full collection does not walk it again.
    Both are undone afterwards; a permanent generation frozen by someone else is left alone."""
    thresholds = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(thresholds[0], GC_YOUNG_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if freeze:
            gc.unfreeze()


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One pending sample of a task."""

    task: Task
    sample: Sample
    request: GenRequest
    key: str
    options: dict[str, Any]
    # the generation parameters the key covers (as the model's profile sends them); None: the
    # request's own parameters
    sent: dict[str, Any] | None = None


class Endpoint:
    """A backend with its own concurrency limit, optional rate limits and retry policy."""

    def __init__(
        self,
        backend: ModelBackend,
        concurrency: int,
        policy: RetryPolicy,
        stats: RunStats,
        rpm: int | None = None,
        tpm: int | None = None,
    ):
        self.backend = backend
        self.policy = policy
        self.stats = stats
        self._sem = asyncio.Semaphore(concurrency)
        self._rpm = AsyncLimiter(rpm, 60) if rpm else None
        self._tpm = AsyncLimiter(tpm, 60) if tpm else None
        self._tpm_max = tpm or 0
        self.batch: Any = None  # --batch: a BatchCollector that collects what is not stored
        self._backoff = wait_exponential_jitter(
            multiplier=policy.base_delay, max=policy.max_delay, jitter=policy.base_delay
        )
        # an unreachable server stops the run before its first request, not after every
        # sample's retries (backends that can check offer `check`; replay and baseline cannot fail)
        probe = getattr(backend, "check", None)
        self._check = EndpointCheck(probe) if probe is not None else None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(retry_after, self.policy.max_retry_after)
        return self._backoff(state)

    def _count_retry(self, state: RetryCallState) -> None:
        self.stats.retries += 1

    async def call(self, request: GenRequest) -> tuple[Response, int]:
        """The backend's reply and the number of attempts; raises after the last retry."""
        if self._check is not None:
            await self._check.wait()
        try:
            return await self._attempt(request), 1
        except TransientError as exc:
            first_failure: TransientError | None = exc
        # The retry machinery is built only once a request has failed: tenacity's per-call state
        # holds reference cycles (about 30 objects a call) that, built for every request, made the
        # cyclic garbage collector pause the event loop every second or so at hundreds in flight.
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.policy.max_retries + 1),
            wait=self._wait,
            before_sleep=self._count_retry,
            reraise=True,
        )
        attempts = 0
        async for attempt in retrying:
            with attempt:
                attempts += 1
                if first_failure is not None:  # attempt 1, already made: tenacity waits after it
                    failure, first_failure = first_failure, None
                    raise failure
                return await self._attempt(request), attempts
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, request: GenRequest) -> Response:
        """One request to the backend, within the endpoint's concurrency and rate limits."""
        async with self._sem:
            await self._throttle(request)
            self.stats.requests += 1
            # No asyncio.wait_for here: backends enforce the per-request timeout themselves,
            # and a wrapper task per request costs CPU that hundreds in flight notice.
            return await self.backend.generate(request)

    async def _throttle(self, request: GenRequest) -> None:
        if self._rpm:
            await self._rpm.acquire()
        if self._tpm:
            chars = sum(len(m.get("content", "")) for m in request.messages)
            estimate = chars // 4 + (request.params.max_tokens or 256)
            await self._tpm.acquire(min(estimate, self._tpm_max))


class WorkFeed:
    """The work items for the workers, taken from a plain or an async iterable: `prefill` takes
    the first ones before the workers start, `fill_rest` the others while they run."""

    def __init__(
        self,
        items: Iterable[WorkItem] | AsyncIterable[WorkItem],
        on_item: Callable[[], None] | None = None,
    ):
        source = items if isinstance(items, AsyncIterable) else _as_async(items)
        self._iterator: AsyncIterator[WorkItem] = aiter(source)
        self._on_item = on_item  # called after each item taken (the progress total grows)
        self._items: deque[WorkItem] = deque()
        self._more = asyncio.Event()
        self.done = False  # the source is exhausted (or failed)
        self.error: Exception | None = None  # why the source failed

    @property
    def available(self) -> int:
        """Items taken from the source and not handed out yet."""
        return len(self._items)

    async def prefill(self, count: int) -> None:
        """Take items until `count` are available or the source ends; its error is raised."""
        while not self.done and len(self._items) < count:
            await self._take()

    async def fill_rest(self) -> None:
        """Take the remaining items as the workers run. An error of the source is kept in `error`
        and the items not handed out yet are dropped, so the workers finish what they hold and
        stop."""
        try:
            while not self.done:
                await self._take()
        except Exception as exc:
            self.error, self.done = exc, True
            self._items.clear()
            self._more.set()

    async def _take(self) -> None:
        try:
            self._items.append(await anext(self._iterator))
        except StopAsyncIteration:
            self.done = True
        self._more.set()
        if self._on_item:
            self._on_item()

    async def next(self) -> WorkItem | None:
        """The next item, waiting for the source if needed; None once it is exhausted."""
        while not self._items:
            if self.done:
                return None
            self._more.clear()
            await self._more.wait()
        return self._items.popleft()


async def _as_async(items: Iterable[WorkItem]) -> AsyncIterator[WorkItem]:
    for item in items:
        yield item


class Steps:
    """The `generate` a multi-step task's `solve` gets, bound to one sample: each call is one
    request of the sample, asked like any other (run store, shared cache, in-flight dedup,
    retries) and stored in the run at once, so a killed run replays it instead of asking again."""

    __slots__ = ("_runner", "_item", "turns")

    def __init__(self, runner: Runner, item: WorkItem):
        self._runner = runner
        self._item = item
        self.turns: dict[str, int] = {}  # requests asked so far, by role

    async def __call__(
        self, messages: Sequence[Message], *, role: str = "model", params: GenParams | None = None
    ) -> Response:
        """The reply of the model playing `role` (see `trustmh.tasks.base.Generate`)."""
        runner, item = self._runner, self._item
        endpoint = runner.endpoint(role)
        turn = self.turns.get(role, 0)
        self.turns[role] = turn + 1
        if params is None:
            params = item.request.params if role == "model" else GenParams()
        sample = item.sample
        request = GenRequest(
            tuple(messages), params, SampleRef(item.task.id, sample.id, sample.variant, role, turn)
        )
        spec = endpoint.backend.spec
        sent = plan_for(endpoint.backend, params).wire  # what the role's model is sent (1.7)
        key = request_key(spec, request, include_ref=not endpoint.backend.cacheable, params=sent)
        response, source, attempts, latency, key = await runner._reply(endpoint, request, key, sent)
        if source != "run":
            if source == "api" and role != "model":
                runner.stats.role_requests[role] = runner.stats.role_requests.get(role, 0) + 1
            runner.store.put_response(key, spec, role, response, source, attempts, latency)
        return response


class BoundJudge:
    """The judge as a scorer sees it: bound to one sample so its requests are stored with it."""

    __slots__ = ("_runner", "_ref", "spec", "failure")

    def __init__(self, runner: Runner, ref: SampleRef):
        self._runner = runner
        self._ref = ref
        self.spec = runner.judge.backend.spec if runner.judge else ""
        self.failure: str | None = None  # why a judge request failed: the sample is then an error

    async def __call__(
        self, messages: Sequence[Message], params: GenParams | None = None
    ) -> Response | None:
        """Ask the judge (cached, retried, stored); None when it failed after its retries (the
        sample is then recorded as an error and re-judged by the next run) or, for a replayed
        judge, when no verdict was recorded."""
        params = params or GenParams(temperature=0.0, max_tokens=None)
        try:
            return await self._runner.ask_judge(tuple(messages), params, self._ref)
        except NotRecorded:
            return None
        except (TransientError, SampleError) as exc:
            self.failure = str(exc)
            return None


class Runner:
    """Runs work items against a model endpoint (and an optional judge endpoint)."""

    def __init__(
        self,
        store: RunStore,
        cache: ResponseCache | None,
        model: Endpoint,
        judge: Endpoint | None,
        stats: RunStats,
        seed: int = 0,
        on_progress: Callable[[RunStats], None] | None = None,
        roles: dict[str, Endpoint] | None = None,
        data: DataContext | None = None,
        judge_reask: bool = False,
        reask_unparsed: int = 0,
        guard: CostGuard | None = None,
    ):
        self.judge_reask = judge_reask  # a stricter second verdict when one does not parse
        self.reask_unparsed = reask_unparsed  # protocol 1.2: ask again when a reply does not parse
        self.store = store
        self.cache = cache
        self.model = model
        self.judge = judge
        self.stats = stats
        self.seed = seed
        self.on_progress = on_progress
        self.roles = roles or {}  # the other models multi-step tasks ask, by role
        self.data = data  # handed to scorers (ScoreContext.data)
        self.guard = guard  # --max-cost: reserves each request's worst case before it is sent
        self.stopping = False  # set when the cost cap refused a request: no new sample starts
        self._inflight: dict[str, asyncio.Future] = {}
        # per task: the distinct plans of its judge requests (what was sent, for the report)
        self.judge_plans: dict[str, dict[str, RequestPlan]] = {}

    def endpoint(self, role: str) -> Endpoint:
        """The endpoint of the model playing `role` ("model" is the one under test)."""
        if role == "model":
            return self.model
        if role not in self.roles:
            raise SampleError(f"no {role} model in this run (the task did not declare the role)")
        return self.roles[role]

    async def run(
        self, items: Iterable[WorkItem] | AsyncIterable[WorkItem], concurrency: int
    ) -> None:
        """Process every item with `concurrency` workers; a fatal backend error cancels the rest.

        `items` may be an async iterable that is still building later items while the workers
        ask the first ones. If it fails, no further item is started, the ones in flight finish
        and are stored, and then its error is raised."""
        progress = self.on_progress
        feed = WorkFeed(items, on_item=(lambda: progress(self.stats)) if progress else None)
        # one item per worker before any starts, so that each starts with work in hand
        await feed.prefill(concurrency)

        async def worker() -> None:
            while not self.stopping and (item := await feed.next()) is not None:
                await self.process(item)

        housekeeper = asyncio.create_task(self._housekeeping())
        try:
            with ExitStack() as deferred:
                for conn in (self.store.conn, self.cache.conn if self.cache else None):
                    if conn is not None:
                        deferred.enter_context(checkpoints_deferred(conn))
                deferred.enter_context(self.store.group_commits())
                async with asyncio.TaskGroup() as group:
                    for _ in range(min(concurrency, feed.available) if feed.done else concurrency):
                        group.create_task(worker())
                        # Let each worker reach the network before the next starts: started all at
                        # once, every request of the first wave is built before any is written, so
                        # they leave (and come back) as one burst, and every later wave queues
                        # behind the event loop as a burst too (bench/throughput.py: 0.5 s at 200).
                        await asyncio.sleep(0)
                    # the rest is built while the first wave is out (every worker has an item)
                    group.create_task(feed.fill_rest())
        except BaseExceptionGroup as group:  # surface the first failure itself, not the group
            raise group.exceptions[0] from None
        finally:
            housekeeper.cancel()
            if self.cache:
                self.cache.flush()
        if feed.error is not None:
            raise feed.error

    async def _housekeeping(self) -> None:
        """Every HOUSEKEEPING_SECONDS: commit the cache's pending writes, then checkpoint both
        databases' WAL (see `checkpoints_deferred`). A failure is counted and the next round
        tries again: the run itself never depends on it."""
        cache = self.cache
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                if cache:
                    cache.flush()  # its batch goes into this round's copy
                # The bulk of the copying in a worker thread; then, on the loop, the few pages
                # committed meanwhile, so that the next commit starts the WAL file over. It only
                # does when everything in it is copied, and at hundreds of commits a second the
                # thread alone never gets there: the file grew for the whole run. (A cache that
                # failed is off: `conn` None.)
                paths = [self.store.path, *([cache.path] if cache and cache.conn else [])]
                for path in paths:
                    await asyncio.to_thread(checkpoint_wal, path)
                if cache:
                    cache.flush()  # closes the batch the workers opened meanwhile
                    cache.checkpoint()
                # SQLite refuses a checkpoint inside a transaction: the group of replies written
                # in this turn is committed first (see `RunStore.group_commits`)
                self.store.commit_group()
                if not self.store.conn.in_transaction:
                    self.store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                self.stats.cache_errors += 1
                self.stats.first_error = self.stats.first_error or f"store housekeeping: {exc}"

    async def process(self, item: WorkItem) -> None:
        """Reply, store, score and store the score of one sample."""
        task, sample = item.task, item.sample
        try:
            if task.solve is None:
                response, source, attempts, latency, key = await self._reply(
                    self.model, item.request, item.key, item.sent
                )
            else:
                response, source, attempts, latency = await self._solve(item)
                key = item.key
        except CostCapReached:  # not sent: the sample stays unscored, and the next run asks it
            self.stopping = True
            return
        except Deferred:  # waits for a batch: asked again in the next round
            self._advance()
            return
        except NotRecorded:
            self.stats.missing += 1
            self.store.put_score(task.id, sample, item.key, SampleScore(None, status="missing"))
            self._advance()
            return
        except FatalBackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of one request is recorded on its sample
            message = (
                str(exc)
                if isinstance(exc, (TransientError, SampleError))
                else f"{type(exc).__name__}: {exc}"
            )
            self._count_error(message)
            self.store.put_score(
                task.id, sample, item.key, SampleScore(None, status="error"), error=message
            )
            self._advance()
            return
        # Without a judge the reply and its score share one commit; with one, the reply is committed
        # before the judge is awaited, so no transaction stays open across that wait.
        batch = self.judge is None
        if batch:
            self.store.begin()
        if source != "run":
            self.store.put_response(
                key,
                self.model.backend.spec,
                "model",
                response,
                source,
                attempts,
                latency,
                commit=not batch,
            )
        if key != item.key:  # adapted to the provider's rules while it was being answered
            self.store.rekey_sample(task.id, sample, key)
        judge = (
            BoundJudge(self, SampleRef(task.id, sample.id, sample.variant, "judge"))
            if self.judge
            else None
        )
        context = ScoreContext(judge=judge, options=item.options, seed=self.seed, data=self.data,
                               judge_reask=self.judge_reask)  # fmt: skip
        cut = cut_short(response)
        self.stats.cut_short += cut is not None
        try:
            if cut == CUT_EMPTY:  # no answer to parse or judge: neither right nor a refusal
                score = SampleScore(None, status="unparsed", detail={"cut_short": cut})
            else:
                score = await task.score(sample, response, context)  # type: ignore[misc]
                if cut is not None:
                    score.detail["cut_short"] = cut
            # a multi-step sample is not one request to ask again
            if self.reask_unparsed and score.status == "unparsed" and task.solve is None:
                score = await self._reask(item, key, response, score, context)
            error = None
            if judge is not None and judge.failure is not None:
                score.status, error = "error", f"judge failed: {judge.failure}"
                self._count_error(error)
        except CostCapReached:  # the reply is stored; the next run asks the judge again
            self.stopping = True
            return
        except Deferred:  # a judge request waits for a batch: scored in the next round
            self._advance()
            return
        except FatalBackendError:
            raise
        except Exception as exc:  # a scorer bug must not lose the stored reply or stop the run
            score = SampleScore(
                None, status="error", detail={"scorer_exception": type(exc).__name__}
            )
            error = f"scorer failed: {type(exc).__name__}: {exc}"
            self._count_error(error)
        self.store.put_score(task.id, sample, key, score, error=error)
        self._advance()

    async def _solve(self, item: WorkItem) -> tuple[Response, str, int, float]:
        """A multi-step sample's result, stored under the sample's key: taken from the run when
        a previous run finished the steps, else built by the task's `solve` (each of its turns
        asked through `Steps`). Source "solver"; attempts = the turns it took."""
        stored = self.store.get_response(item.key)
        if stored is not None:
            self.stats.reused += 1
            return stored, "run", 0, 0.0
        started = time.monotonic()
        steps = Steps(self, item)
        # the sample as sent: the run's system-prompt override applied to its messages
        sample = replace(item.sample, messages=item.request.messages)
        response = await item.task.solve(sample, steps)  # type: ignore[misc]
        return response, "solver", sum(steps.turns.values()), time.monotonic() - started

    async def _reask(
        self, item: WorkItem, key: str, first: Response, score: SampleScore, context: ScoreContext
    ) -> SampleScore:
        """Protocol 1.2's `--reask-unparsed N`: ask the same request again (each re-ask its own
        cache entry) until a reply parses or N re-asks are spent. The reply that was scored
        replaces the first one in the run store; the earlier replies stay in the score detail."""
        earlier = [first.text]
        for attempt in range(1, self.reask_unparsed + 1):
            response, _, attempts, latency, _ = await self._reply(
                self.model, item.request, f"{item.key}#reask{attempt}", item.sent
            )
            score = await item.task.score(item.sample, response, context)  # type: ignore[misc]
            if score.status != "unparsed" or attempt == self.reask_unparsed:
                # stored where the sample's first reply was, so the run shows what was scored
                self.store.put_response(key, self.model.backend.spec, "model", response,
                                        "reask", attempts, latency)  # fmt: skip
                score.detail = {**score.detail, "reasked": attempt, "earlier_replies": earlier}
                return score
            earlier.append(response.text)
        return score

    def _count_error(self, message: str) -> None:
        """Count a sample that ends as an error; the first message is shown in the summary."""
        self.stats.errors += 1
        self.stats.first_error = self.stats.first_error or message

    def _advance(self) -> None:
        self.stats.done += 1
        if self.on_progress:
            self.on_progress(self.stats)

    async def _reply(
        self, endpoint: Endpoint, request: GenRequest, key: str, sent: dict[str, Any] | None = None
    ) -> tuple[Response, str, int, float, str]:
        """(response, source, attempts, latency, key): source is "run", "cache", "dedup" or "api";
        the key is the one the reply is stored under: the request's, or, when the request had to
        be adapted to the provider's rules on the way, the adapted request's (protocol 1.7)."""
        live = endpoint.backend.cacheable  # replay and baseline replies are never split
        stored = self.store.get_response(key)
        if stored is not None:
            self.stats.reused += 1
            return with_reasoning_apart(stored) if live else stored, "run", 0, 0.0, key
        cacheable = live and self.cache is not None
        if cacheable:
            cached = self.cache.get(key)  # type: ignore[union-attr]
            if cached is not None:
                self.stats.cache_hits += 1
                return with_reasoning_apart(cached), "cache", 0, 0.0, key
        pending = self._inflight.get(key)
        if (
            pending is not None
        ):  # the same request is already on its way: wait for it, do not pay twice
            response = await asyncio.shield(pending)
            return response, "dedup", 0, 0.0, self._sent_key(endpoint, request, key, sent, response)
        if endpoint.batch is not None:
            endpoint.batch.defer(endpoint.backend.spec, key, request)  # raises
        guard = self.guard
        reservation = guard.reserve(endpoint.backend.spec, request) if guard is not None else 0.0
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        started = time.monotonic()
        try:
            response, attempts = await endpoint.call(request)
        except BaseException as exc:
            if guard is not None:
                guard.settle(endpoint.backend.spec, reservation, None)
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # mark it retrieved, so asyncio does not log it when no one waits
            raise
        finally:
            del self._inflight[key]
        response = self._storable(response)
        future.set_result(response)
        if guard is not None:
            guard.settle(endpoint.backend.spec, reservation, response.usage)
        self.stats.prompt_tokens += response.usage.prompt_tokens
        self.stats.completion_tokens += response.usage.completion_tokens
        self.stats.reasoning_tokens += response.usage.reasoning_tokens
        key = self._sent_key(endpoint, request, key, sent, response)
        if response.adapted:
            self.stats.adapted += len(response.adapted)
            self.stats.requests += len(response.adapted)  # the rejected attempts were sent too
            self._record_adaptations(endpoint)
        # a paid reply is kept in the run even if the cache fails (the cache then turns itself off)
        if cacheable and not self.cache.put(key, endpoint.backend.spec, response):  # type: ignore[union-attr]
            self.stats.cache_errors += 1
        return response, "api", attempts, time.monotonic() - started, key

    @staticmethod
    def _sent_key(endpoint: Endpoint, request: GenRequest, key: str, sent: dict[str, Any] | None,
                  response: Response) -> str:  # fmt: skip
        """The key of the request as it was sent: `key`, unless the parameters the provider
        received differ from those the key covers (`sent`, else the request's own): adapted on
        the way, or planned with an adaptation learned after the key was made."""
        if response.sent_params is None or response.sent_params == (
            sent if sent is not None else request.params.as_dict()
        ):
            return key
        backend = endpoint.backend
        return request_key(backend.spec, request, include_ref=not backend.cacheable,
                           params=response.sent_params)  # fmt: skip

    def _record_adaptations(self, endpoint: Endpoint) -> None:
        """Keep what a backend learned from the provider's 400s with the run and in the shared
        cache, so that a resumed or new run sends the adapted request at once."""
        rules = getattr(endpoint.backend, "rules", None)
        if rules is None:
            return
        learned = [a.as_dict() for a in rules.learned]
        spec = endpoint.backend.spec
        self.store.set_meta(
            "adaptations", {**(self.store.get_meta("adaptations") or {}), spec: learned}
        )
        if self.cache is not None and not self.cache.put_adaptations(spec, learned):
            self.stats.cache_errors += 1

    def _storable(self, response: Response) -> Response:
        """The reply with text that UTF-8 can hold: a lone surrogate (a server's JSON may carry
        `"\\ud800"`) cannot be stored or scored, so each becomes U+FFFD; the number replaced is
        kept in the reply's `extra` and counted in the summary."""
        text, replaced = repair_surrogates(response.text)
        reasoning, in_reasoning = repair_surrogates(response.reasoning or "")
        if not replaced and not in_reasoning:
            return response
        self.stats.repaired_replies += 1
        extra = {**(response.extra or {}), "surrogates_replaced": replaced + in_reasoning}
        return replace(response, text=text, extra=repair_surrogates_deep(extra),
                       reasoning=reasoning if response.reasoning is not None else None)  # fmt: skip

    async def ask_judge(
        self, messages: tuple[Message, ...], params: GenParams, ref: SampleRef
    ) -> Response | None:
        """A judge reply for a sample, stored in the run like any response; raises like a model
        request does."""
        assert self.judge is not None
        request = GenRequest(messages, params, ref)
        backend = self.judge.backend
        plan = plan_for(backend, params)
        self.judge_plans.setdefault(ref.task, {}).setdefault(repr(plan.wire), plan)
        key = request_key(backend.spec, request, include_ref=not backend.cacheable,
                          params=plan.wire)  # fmt: skip
        response, source, attempts, latency, key = await self._reply(
            self.judge, request, key, plan.wire
        )
        self.stats.judge_cut_short += cut_short(response) is not None
        if source in ("api", "cache", "dedup"):
            self.stats.judge_requests += source == "api"
            self.store.put_response(
                key, self.judge.backend.spec, "judge", response, source, attempts, latency
            )
        return response
