"""The runner asks the first samples while later ones are still being built; a sample source that
fails midway stops new requests, lets those in flight finish and be stored, then raises."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest

from trustmh import engine
from trustmh.config import RunConfig
from trustmh.errors import UserError
from trustmh.store import RunStore
from trustmh.tasks import registry
from trustmh.tasks.base import Task

N_SAMPLES = 600


def declare(monkeypatch: pytest.MonkeyPatch, samples_fn) -> Task:
    """A test subtask, registered under its own pillar, that reads its samples from `samples_fn`."""
    smoke = registry.get_task("smoke")
    task = dataclasses.replace(smoke, id="pipeline.probe", pillar="pipeline", samples=samples_fn)
    tasks = {**registry.all_tasks(), task.id: task}
    monkeypatch.setattr(registry, "all_tasks", lambda: tasks)
    return task


def smoke_items(limit: int, built: list[float], fail_at: int | None = None):
    smoke = registry.get_task("smoke")

    def samples(data, options):
        for n, sample in enumerate(smoke.samples(data, options)):
            if n == limit:
                return
            if n == fail_at:
                raise UserError(f"probe.jsonl row {n + 1}: malformed; fix or remove the row")
            built.append(time.time())
            if n % 50 == 49:
                time.sleep(0.02)  # a slow loader: 600 samples take a quarter of a second
            yield sample

    return samples


def config(server, tmp_path: Path, concurrency: int) -> RunConfig:
    return RunConfig(model=f"openai:test-model@{server.base_url}", tasks=["pipeline"],
                     concurrency=concurrency, run_dir=tmp_path / "run", cache_dir=tmp_path / "cache")  # fmt: skip


def test_first_requests_leave_before_the_last_sample_is_built(
    fake_openai, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[float] = []
    declare(monkeypatch, smoke_items(N_SAMPLES, built))
    fake_openai.set_latency(0.05)
    summary = asyncio.run(engine.run_evaluation(config(fake_openai, tmp_path, 20), progress=False))
    log = fake_openai.log()
    assert summary.status == "complete" and summary.n_samples == summary.n_pending == N_SAMPLES
    assert summary.stats.total == len(log) == N_SAMPLES
    assert min(entry["time"] for entry in log) < built[-1]  # asked while still building
    # the versions behind the numbers are recorded once every sample is queued
    import numpy

    store = RunStore(tmp_path / "run")
    try:
        assert store.get_meta("versions")["numpy"] == numpy.__version__
    finally:
        store.close()
    # the same run again: everything is stored, nothing is sent, nothing is pending
    again = asyncio.run(engine.run_evaluation(config(fake_openai, tmp_path, 20), progress=False))
    assert again.n_pending == 0 and again.n_requests == 0 and len(fake_openai.log()) == N_SAMPLES
    assert again.results["pipeline.probe"][0].value == summary.results["pipeline.probe"][0].value


def test_a_source_failing_midway_keeps_what_was_asked_and_raises(
    fake_openai, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[float] = []
    declare(monkeypatch, smoke_items(N_SAMPLES, built, fail_at=300))
    fake_openai.set_latency(0.2)
    with pytest.raises(UserError, match="probe.jsonl row 301: malformed"):
        asyncio.run(engine.run_evaluation(config(fake_openai, tmp_path, 10), progress=False))
    sent = len(fake_openai.log())
    store = RunStore(tmp_path / "run")
    try:
        scored = store.scored_samples("pipeline.probe")
        assert store.get_meta("status") == "interrupted"
    finally:
        store.close()
    # the failure came while building, not after all was asked: requests in flight then were
    # finished and stored (one score each, no error rows), and none was started afterwards
    assert 0 < sent < 300
    assert len(scored) == sent and all(s.score.status == "ok" for s in scored)
    # once the data is fixed, the same command resumes: nothing stored is asked again
    monkeypatch.undo()
    declare(monkeypatch, smoke_items(N_SAMPLES, built))
    fake_openai.set_latency(0.0)
    summary = asyncio.run(engine.run_evaluation(config(fake_openai, tmp_path, 10), progress=False))
    assert summary.status == "complete" and summary.n_requests == N_SAMPLES - sent
    assert len({e["prompt_hash"] for e in fake_openai.log()}) == len(fake_openai.log()) == N_SAMPLES


def test_the_progress_total_grows_while_items_are_built(tmp_path: Path) -> None:
    from test_request_path import InstantBackend, instant_items

    class SlowBackend(InstantBackend):
        async def generate(self, request):
            await asyncio.sleep(0.05)  # the first wave is out while the rest is built
            return await super().generate(request)

    from trustmh.runner import Endpoint, RetryPolicy, Runner, RunStats

    samples = list(registry.get_task("smoke").samples(None, {}))[:300]
    stats = RunStats()
    seen: list[tuple[int, int]] = []

    async def run() -> None:
        store = RunStore(tmp_path / "run")

        async def source():
            for item in instant_items(store, samples):
                stats.total += 1
                yield item

        try:
            endpoint = Endpoint(SlowBackend(), 10, RetryPolicy(), stats)
            runner = Runner(store, None, endpoint, None, stats,
                            on_progress=lambda st: seen.append((st.done, st.total)))  # fmt: skip
            await runner.run(source(), 10)
        finally:
            store.close()

    asyncio.run(run())
    assert seen[-1] == (300, 300)
    totals = [total for _, total in seen]
    assert totals == sorted(totals) and totals[0] < 300  # shown from the first item on, growing
    assert any(done == 0 and total > 10 for done, total in seen)  # before any reply was stored
