"""The plan of a run (`trustmh run --dry-run`): it sends and writes nothing, its request counts
equal what the run then sends, and its input-token estimate is within 10% of the usage the
loopback server reports (counted with the models' real tokenizer, as the API does)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import run_cli
from openai_server import vocabulary

from trustmh.config import RunConfig
from trustmh.engine import run_evaluation
from trustmh.plan import build_plan
from trustmh.tasks.base import PlanContext
from trustmh.tasks.registry import select_tasks

MODEL, JUDGE = "gpt-4o-mini", "gpt-4.1"


def config(server, tmp_path: Path, **changes) -> RunConfig:
    settings = dict(
        model=f"openai:{MODEL}@{server.base_url}",
        judge=f"openai:{JUDGE}@{server.base_url}",
        tasks=["ethics.ethical_reasoning", "privacy.awareness"],
        limit=12,
        # replies are cut at 16 tokens: what the plan cannot know (how long the model talks) is
        # bounded, so the comparison measures what it can (prompts, judge prompts, counts)
        max_tokens=16,
        run_dir=tmp_path / "run",
        cache_dir=tmp_path / "cache",
    )
    return RunConfig(**{**settings, **changes})


def usage_by_model(server) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for entry in server.log():
        totals = out.setdefault(entry["model"], {"requests": 0, "in": 0, "out": 0})
        totals["requests"] += 1
        totals["in"] += entry["prompt_tokens"]
        totals["out"] += entry["completion_tokens"]
    return out


@pytest.mark.skipif(vocabulary(MODEL) is None, reason="needs toktok (the tokens extra)")
def test_plan_matches_the_run_it_announces(fake_openai, tmp_path: Path) -> None:
    cfg = config(fake_openai, tmp_path)
    plan = build_plan(cfg)
    assert fake_openai.log() == [] and not cfg.run_dir.exists()  # sends and writes nothing
    assert plan.counters["model"].exact and plan.counters["judge"].exact
    totals = plan.totals()

    summary = asyncio.run(run_evaluation(cfg, progress=False))
    assert summary.status == "complete"
    used = usage_by_model(fake_openai)
    for role, name in (("model", MODEL), ("judge", JUDGE)):
        load = totals[role]
        assert load.requests == used[name]["requests"] > 0
        assert abs(load.input_tokens - used[name]["in"]) <= 0.10 * used[name]["in"], (
            role,
            load,
            used[name],
        )
        assert used[name]["out"] <= load.max_output_tokens
    assert totals["model"].requests == summary.n_requests - summary.stats.judge_requests
    assert totals["judge"].requests == summary.stats.judge_requests

    # planned again after the run: nothing is left to send
    again = build_plan(cfg)
    assert again.requests == 0 and all(t.pending == 0 for t in again.tasks)


def test_plan_leaves_out_cached_replies_and_unjudged_subtasks(fake_openai, tmp_path: Path) -> None:
    cfg = config(
        fake_openai, tmp_path, judge=None, tasks=["privacy.awareness", "crisis.escalation_decision"]
    )
    asyncio.run(run_evaluation(config(fake_openai, tmp_path, judge=None, run_dir=tmp_path / "first",
                                      tasks=["privacy.awareness"])))  # fmt: skip
    plan = build_plan(cfg)  # a new run dir: the replies come from the shared cache
    assert plan.skipped["crisis.escalation_decision"].startswith("not scored: no judge")
    [awareness] = plan.tasks
    assert awareness.pending == awareness.answered == awareness.samples > 0
    assert plan.requests == 0


def test_every_judged_or_multistep_task_declares_its_requests() -> None:
    tasks = select_tasks(["all", "crisis.multiturn_safety", "mentalbench"])
    for task in tasks:
        if task.implemented and (task.needs_judge != "no" or task.solve is not None):
            assert task.plan is not None, f"{task.id} declares no plan of its judge requests"


def test_judge_plans_build_the_judges_prompts(real_data: Path) -> None:
    from trustmh.data.sources import resolve_data_context

    data = resolve_data_context(None)
    for task in select_tasks(["reliability.emotional_support", "crisis.escalation_decision",
                              "sycophancy.oeq", "safety.antitoxic"]):  # fmt: skip
        sample = next(iter(task.samples(data, {"seed": 0})))
        planned = task.plan(sample, PlanContext({}, True, "REPLY-MARKER"))
        assert planned and all(p.role == "judge" for p in planned)
        # the stand-in reply is in every judge prompt: the prompt is the one scoring would send
        assert all("REPLY-MARKER" in p.messages[-1]["content"] for p in planned)


def test_dry_run_plans_every_subtask_with_a_judge(real_data: Path, tmp_path: Path) -> None:
    """Every task's plan runs against the PlanContext the planner builds (a merge once left a
    field a plan reads out of it: the whole-protocol dry run crashed)."""
    result = run_cli("run", "--model", "baseline", "--judge", "baseline", "--tasks", "all", "--limit", "2",
                     "--dry-run", "--run-dir", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "jailbreak_resistance" in result.stdout and "ethical_reasoning" in result.stdout


def test_dry_run_cli_prints_the_plan(fake_openai, tmp_path: Path) -> None:
    result = run_cli("run", "--model", f"openai:{MODEL}@{fake_openai.base_url}", "--tasks", "privacy.awareness",
                     "--limit", "5", "--dry-run", "--run-dir", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "plan: requests this run would send" in result.stdout
    assert "awareness" in result.stdout and "$0.15 in / $0.6 out" in result.stdout
    assert fake_openai.log() == [] and not (tmp_path / "run").exists()


def test_price_file_prices_a_local_server(fake_openai, tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(
        f'[models]\n"openai:test-model@{fake_openai.base_url}" = {{ input = 1.0, output = 2.0 }}\n'
    )
    result = run_cli("run", "--model", f"openai:test-model@{fake_openai.base_url}", "--tasks", "privacy.awareness",
                     "--limit", "5", "--dry-run", "--prices", str(prices))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "$1 in / $2 out per million tokens" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[models]\n"openai:x" = { input = "cheap" }\n')
    result = run_cli(
        "run", "--model", "baseline", "--tasks", "smoke", "--dry-run", "--prices", str(bad)
    )
    assert result.returncode == 2 and "needs input and output prices" in result.stderr


def test_a_run_without_tasks_asks_first(tmp_path: Path) -> None:
    result = run_cli("run", "--model", "baseline", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "no --tasks given: that would run every subtask" in result.stderr
    assert "--yes" in result.stderr and "--dry-run" in result.stderr
    assert not (tmp_path / "run").exists()
