"""The null responders' metrics (protocol 1.8 floors) are computed once per set of items: a rerun
over the same items and code takes them from the run store, another model's run from the user
cache, and anything that could change them
(other items, other code) has them computed again. The floors the summary shows are the same."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from trustmh import engine
from trustmh.code_fingerprint import tree_fingerprint
from trustmh.config import RunConfig
from trustmh.store import RunStore
from trustmh.validity import floor_memo


def config(server, tmp_path: Path, limit: int) -> RunConfig:
    return RunConfig(model=f"openai:test-model@{server.base_url}", tasks=["smoke"], limit=limit,
                     concurrency=20, run_dir=tmp_path / "run", cache_dir=tmp_path / "cache")  # fmt: skip


def count_null_scoring(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the subtasks whose null metrics are computed (not recalled). Every invocation here
    aggregates its subtasks, as one with other settings does (an identical rerun otherwise keeps
    its stored numbers and needs no floors: tests/test_settled.py)."""
    monkeypatch.setattr(engine, "_settled_results", lambda *args: {})
    calls: list[int] = []
    real = engine.null_metrics

    async def counted(task, samples, options, seed):
        calls.append(len(samples))
        return await real(task, samples, options, seed)

    monkeypatch.setattr(engine, "null_metrics", counted)
    return calls


def stored_validity(tmp_path: Path) -> dict:
    store = RunStore(tmp_path / "run")
    try:
        return store.get_meta("validity")["smoke"]
    finally:
        store.close()


def test_a_rerun_over_the_same_items_recalls_the_floors(fake_openai, tmp_path, monkeypatch):
    calls = count_null_scoring(monkeypatch)
    first = asyncio.run(engine.run_evaluation(config(fake_openai, tmp_path, 120), progress=False))
    before = stored_validity(tmp_path)
    assert calls == [120] and before["floors"]  # computed once, and a floor came out of it
    again = asyncio.run(engine.run_evaluation(config(fake_openai, tmp_path, 120), progress=False))
    assert calls == [120]  # recalled: not scored again
    assert stored_validity(tmp_path) == before
    assert again.validity == first.validity


def test_other_items_or_other_code_compute_them_again(fake_openai, tmp_path, monkeypatch):
    calls = count_null_scoring(monkeypatch)
    asyncio.run(engine.run_evaluation(config(fake_openai, tmp_path, 60), progress=False))
    asyncio.run(engine.run_evaluation(config(fake_openai, tmp_path, 90), progress=False))
    assert calls == [60, 90]
    on_90 = stored_validity(tmp_path)
    monkeypatch.setattr(floor_memo, "code_fingerprint", lambda: "an edited trustmh")
    asyncio.run(engine.run_evaluation(config(fake_openai, tmp_path, 90), progress=False))
    assert calls == [60, 90, 90]
    assert stored_validity(tmp_path) == on_90  # the same items and scorer: the same floors


def damage_run_memo(run_dir: Path) -> None:
    store = RunStore(run_dir)
    try:
        memo = store.get_meta(floor_memo.META_KEY)
        memo["smoke"]["values"] = "not a mapping"
        store.set_meta(floor_memo.META_KEY, memo)
    finally:
        store.close()


def shared_entries(user_cache: Path) -> list[Path]:
    return sorted((user_cache / floor_memo.SHARED_FOLDER).glob("*.json"))


def test_a_damaged_memo_is_computed_again(fake_openai, tmp_path, monkeypatch, isolated_cache):
    calls = count_null_scoring(monkeypatch)
    asyncio.run(engine.run_evaluation(config(fake_openai, tmp_path, 40), progress=False))
    damage_run_memo(tmp_path / "run")
    asyncio.run(engine.run_evaluation(config(fake_openai, tmp_path, 40), progress=False))
    assert calls == [40]  # the user cache still had them
    damage_run_memo(tmp_path / "run")
    [shared] = shared_entries(isolated_cache)
    shared.write_text('{"fingerprint": "truncated', encoding="utf-8")
    asyncio.run(engine.run_evaluation(config(fake_openai, tmp_path, 40), progress=False))
    assert calls == [40, 40]
    assert "truncated" not in shared.read_text(encoding="utf-8")  # kept afresh


def test_another_models_run_over_the_same_items_recalls_them(fake_openai, tmp_path, monkeypatch,
                                                             isolated_cache):  # fmt: skip
    """The floors do not depend on the model: a new run directory (another model, no response
    cache) takes them from the user cache, and finds the same flags; other items do not."""
    calls = count_null_scoring(monkeypatch)
    first = asyncio.run(engine.run_evaluation(config(fake_openai, tmp_path, 50), progress=False))
    other = config(fake_openai, tmp_path, 50).model_copy(
        update={
            "model": f"openai:other-model@{fake_openai.base_url}",
            "run_dir": tmp_path / "other",
            "no_cache": True,
        }  # fmt: skip
    )
    second = asyncio.run(engine.run_evaluation(other, progress=False))
    assert calls == [50]
    assert second.validity["smoke"]["floors"] == first.validity["smoke"]["floors"]
    assert len(shared_entries(isolated_cache)) == 1
    fewer = other.model_copy(update={"run_dir": tmp_path / "fewer", "limit": 30})
    asyncio.run(engine.run_evaluation(fewer, progress=False))
    assert calls == [50, 30] and len(shared_entries(isolated_cache)) == 2


def test_the_code_fingerprint_follows_an_edited_module(tmp_path):
    package = tmp_path / "trustmh"
    (package / "validity").mkdir(parents=True)
    nulls = package / "validity" / "nulls.py"
    nulls.write_text("ALWAYS = 'A'\n")
    (package / "README.txt").write_text("not a module")
    before = tree_fingerprint(package, "0.1.0")
    assert tree_fingerprint(package, "0.1.0") == before
    assert tree_fingerprint(package, "0.2.0") != before  # another version
    (package / "README.txt").write_text("still not a module, edited")
    assert tree_fingerprint(package, "0.1.0") == before
    nulls.write_text("ALWAYS = 'B'\n")  # the same size, other code
    assert tree_fingerprint(package, "0.1.0") != before
    nulls.write_text("ALWAYS = 'A'\n")
    assert tree_fingerprint(package, "0.1.0") == before
    (package / "validity" / "extra.py").write_text("")
    assert tree_fingerprint(package, "0.1.0") != before  # a module added


def test_a_plug_in_scorer_edited_outside_trustmh_changes_the_fingerprint(tmp_path, monkeypatch):
    import dataclasses
    import importlib

    from trustmh.tasks import registry

    plugin = tmp_path / "my_plugin_scorer.py"
    plugin.write_text(
        "async def score(sample, response, context):\n    return None\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("my_plugin_scorer")
    task = dataclasses.replace(registry.get_task("smoke"), score=module.score)
    samples = list(task.samples(None, {}))[:5]
    before = floor_memo.fingerprint(task, samples, {}, 0)
    assert floor_memo.fingerprint(task, samples, {}, 0) == before
    assert floor_memo.fingerprint(task, samples, {}, 1) != before  # another seed
    plugin.write_text(  # the scorer edited (the module already imported keeps its old code)
        "async def score(sample, response, context):\n    return 1\n", encoding="utf-8"
    )
    assert floor_memo.fingerprint(task, samples, {}, 0) != before
