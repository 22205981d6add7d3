"""A rerun that asks nothing new takes each subtask's stored numbers instead of aggregating again
(`trustmh.settled`); anything its numbers depend on besides the scores (the items covered, the
settings, the code) has it aggregate afresh. Either way the numbers are the same."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from trustmh import engine, settled
from trustmh.config import RunConfig
from trustmh.store import RunStore


def config(server, tmp_path: Path, **changes) -> RunConfig:
    base = RunConfig(model=f"openai:test-model@{server.base_url}", tasks=["smoke"], limit=80,
                     concurrency=20, run_dir=tmp_path / "run", no_cache=True)  # fmt: skip
    return base.model_copy(update=changes)


def count_aggregations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = engine.aggregate_epochs

    def counted(scored, aggregate, options):
        calls.append(scored[0].sample_id if scored else "")
        return real(scored, aggregate, options)

    monkeypatch.setattr(engine, "aggregate_epochs", counted)
    return calls


def run(cfg: RunConfig) -> engine.RunSummary:
    return asyncio.run(engine.run_evaluation(cfg, progress=False))


def test_an_identical_rerun_reuses_the_stored_numbers(fake_openai, tmp_path, monkeypatch):
    calls = count_aggregations(monkeypatch)
    first = run(config(fake_openai, tmp_path))
    again = run(config(fake_openai, tmp_path))
    assert len(calls) == 1  # aggregated once
    assert again.n_pending == 0 and again.stats.requests == 0
    assert again.results == first.results and again.validity == first.validity
    assert again.notes == first.notes and again.status == "complete"


def test_a_setting_it_depends_on_aggregates_again(fake_openai, tmp_path, monkeypatch):
    """--min-coverage reaches the flags without asking anything new (the settings a run directory
    cannot change, such as the seed, are refused before anything runs)."""
    calls = count_aggregations(monkeypatch)
    run(config(fake_openai, tmp_path))
    changed = config(fake_openai, tmp_path, min_coverage=0.5)
    found = run(changed)
    assert found.stats.requests == 0 and len(calls) == 2
    fresh = run(changed.model_copy(update={"run_dir": tmp_path / "fresh"}))
    assert found.results == fresh.results and found.validity == fresh.validity


def test_other_code_or_a_damaged_stamp_aggregates_again(fake_openai, tmp_path, monkeypatch):
    calls = count_aggregations(monkeypatch)
    first = run(config(fake_openai, tmp_path))
    monkeypatch.setattr(settled, "code_fingerprint", lambda: "an edited trustmh")
    assert run(config(fake_openai, tmp_path)).results == first.results
    assert len(calls) == 2
    run(config(fake_openai, tmp_path))
    assert len(calls) == 2  # stamped again under the new code
    store = RunStore(tmp_path / "run")
    try:
        store.set_meta(settled.META_KEY, {"smoke": "not the stamp"})
    finally:
        store.close()
    assert run(config(fake_openai, tmp_path)).results == first.results
    assert len(calls) == 3


def test_a_sample_asked_again_aggregates_again(fake_openai, tmp_path, monkeypatch):
    calls = count_aggregations(monkeypatch)
    run(config(fake_openai, tmp_path))
    store = RunStore(tmp_path / "run")
    try:  # one score lost (as a failed sample would be): the rerun asks it again
        store.conn.execute("DELETE FROM scores WHERE sample_id='7'")
    finally:
        store.close()
    again = run(config(fake_openai, tmp_path))
    assert again.n_pending == 1 and len(calls) == 2


def test_another_numpy_aggregates_again(fake_openai, tmp_path, monkeypatch):
    """numpy's generator draws the bootstrap intervals: another version may draw other bounds."""
    calls = count_aggregations(monkeypatch)
    run(config(fake_openai, tmp_path))
    monkeypatch.setattr(settled, "_numpy_version", lambda: "99.0")
    run(config(fake_openai, tmp_path))
    assert len(calls) == 2
