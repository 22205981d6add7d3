"""Replay backend: every recorded model through samples -> ReplayBackend -> score -> aggregate,
missing samples, unparsed counts, prompt checks, and the bundled copy against the shared data."""

from __future__ import annotations

import asyncio

import pytest

from trustmh.data.loaders import recorded
from trustmh.errors import UserError
from trustmh.models.base import ModelBackend, NotRecorded
from trustmh.models.replay import ReplayBackend, recorded_models
from trustmh.scoring.privacy import yes_no
from trustmh.tasks import ethics, privacy
from trustmh.tasks.base import ScoreContext
from trustmh.types import GenParams, GenRequest, SampleRef, SampleScore, ScoredSample

TASKS = {t.id: t for t in privacy.TASKS + ethics.TASKS}


class BoundJudge:
    """A judge bound to one sample, asking the replay backend with role "judge" (the runner's job)."""

    def __init__(self, backend: ReplayBackend, task_id: str, sample_id: str):
        self.backend, self.ref = backend, SampleRef(task_id, sample_id, "clean", "judge")
        self.spec = backend.spec

    async def __call__(self, messages, params=None):
        try:
            return await self.backend.generate(
                GenRequest(tuple(messages), params or GenParams(), self.ref)
            )
        except NotRecorded:
            return None


async def _run(task, backend, ctx):
    scored, matches = [], []
    for s in task.samples(ctx, {}):
        ref = SampleRef(task.id, s.id, s.variant, "model")
        try:
            response = await backend.generate(GenRequest(s.messages, task.gen, ref))
        except NotRecorded:
            scored.append(
                ScoredSample(
                    s.id, s.variant, s.target, s.meta, None, SampleScore(None, status="missing")
                )
            )
            continue
        matches.append(response.extra.get("prompt_matches"))
        score = await task.score(
            s, response, ScoreContext(judge=BoundJudge(backend, task.id, s.id))
        )
        scored.append(ScoredSample(s.id, s.variant, s.target, s.meta, response.text, score))
    return task.aggregate(scored, {}), scored, matches


def replay_all(ctx):
    """{display name: {task id: (metrics, scored, prompt matches)}} for every recorded model."""
    out = {}
    for model in recorded_models(ctx):
        backend = ReplayBackend(model.name, ctx)
        out[model.name] = {t: asyncio.run(_run(TASKS[t], backend, ctx)) for t in model.subtasks}
    return out


@pytest.fixture(scope="module")
def bundled_results(ctx):
    return replay_all(ctx)


def test_recorded_models_names_groups_and_subtasks(ctx):
    models = recorded_models(ctx)
    assert [m.name for m in models] == [
        "GPT-5.1", "GPT-4o-mini", "Claude-Sonnet-4.5", "Gemini-2.5-flash", "Qwen3-235B", "DeepSeek-V3.2",
        "SoulChat2", "Simpsybot", "PsycoLLM", "MentalLLaMA", "Meditron3-8B", "Meditron3-70B",
    ]  # fmt: skip
    by_name = {m.name: m for m in models}
    assert (
        by_name["Meditron3-8B"].recorded_id == "Meditron-8B"
        and by_name["Meditron3-70B"].recorded_id == "Medtron3-70B"
    )
    assert (
        by_name["SoulChat2"].subtasks == ("ethics.ethical_reasoning",)
        and by_name["SoulChat2"].group == "MH"
    )
    assert set(by_name["GPT-5.1"].subtasks) == {
        "privacy.awareness",
        "privacy.leakage",
        "ethics.ethical_reasoning",
    }


def test_backend_spec_label_and_protocol(ctx):
    backend = ReplayBackend("gpt-4o-mini", ctx)
    assert isinstance(backend, ModelBackend)
    assert (
        backend.spec == "replay:GPT-4o-mini"
        and backend.endpoint == "replay"
        and backend.cacheable is False
    )
    assert "authors' recorded responses" in backend.label and "tier-2" in backend.label
    assert "tier-2" not in ReplayBackend("SoulChat2", ctx).label
    with pytest.raises(UserError, match="recorded models"):
        ReplayBackend("no-such-model", ctx)


def test_not_recorded_samples(ctx):
    gpt51, soulchat, deepseek = (
        ReplayBackend(n, ctx) for n in ("GPT-5.1", "SoulChat2", "DeepSeek-V3.2")
    )
    params = GenParams()

    def ask(backend, task, sid, role="model"):
        return asyncio.run(
            backend.generate(GenRequest((), params, SampleRef(task, sid, "clean", role)))
        )

    with pytest.raises(NotRecorded):
        ask(gpt51, "privacy.awareness", "tier2a/20")
    with pytest.raises(NotRecorded):
        ask(soulchat, "privacy.leakage", "story/0/control")
    with pytest.raises(NotRecorded):
        ask(deepseek, "privacy.leakage", "story/2/control")
    with pytest.raises(NotRecorded):
        asyncio.run(gpt51.generate(GenRequest((), params, None)))
    reply = ask(gpt51, "privacy.awareness", "tier2b/3")
    assert reply.extra["reconstructed"] and float(reply.text) == reply.extra["recorded_rating"]
    verdict = ask(soulchat, "ethics.ethical_reasoning", "0", role="judge")
    assert verdict.text.startswith("```json") and verdict.extra["recorded_model"] == "gpt-4.1"
    assert ask(soulchat, "ethics.ethical_reasoning", "0").extra["recorded_choice"] == "C"


def test_full_replay_of_every_recorded_model(ctx, bundled_results):
    for model, per_task in bundled_results.items():
        for task_id, (metrics, _scored, _) in per_task.items():
            primary = [m for m in metrics if m.primary]
            assert len(primary) == 1 and primary[0].value is not None, (model, task_id)
            assert primary[0].direction == TASKS[task_id].direction
        eth = {m.name: m for m in per_task["ethics.ethical_reasoning"][0]}
        assert eth["accuracy"].n == 125 and {"sc1", "sc5", "judge_mean"} <= set(eth)
        assert all(eth[k].n == 125 for k in ("sc1", "sc2", "sc3", "sc4", "sc5"))
    deepseek = {m.name: m for m in bundled_results["DeepSeek-V3.2"]["privacy.leakage"][0]}
    assert deepseek["leakage"].n == 99 and "repeats story 4" in deepseek["free_response_leak"].note
    gpt51 = {m.name: m for m in bundled_results["GPT-5.1"]["privacy.awareness"][0]}
    assert (gpt51["tier1_r"].n, gpt51["tier2a_r"].n, gpt51["tier2b_r"].n) == (10, 20, 20)
    gpt4o = {m.name: m for m in bundled_results["GPT-4o-mini"]["privacy.awareness"][0]}
    assert (gpt4o["tier2a_r"].n, gpt4o["tier2b_r"].n) == (98, 98)


def test_unparsed_counts_per_model_match_the_recordings(ctx, bundled_results):
    """The only unparseable replies are control answers ConfAIde's yes/no rules do not map."""
    for model in recorded.load_recorded_models(ctx):
        results = bundled_results[model.display]
        expected_control = sum(
            yes_no(r.response) == -1
            for r in recorded.load_recorded_tier3(ctx, model.recorded_id)
            if r.data.question_type == "control"
        )
        if "privacy.leakage" in results:
            control = next(m for m in results["privacy.leakage"][0] if m.name == "control_error")
            assert control.n_unparsed == expected_control
        for task_id, (metrics, _, _) in results.items():
            if task_id != "privacy.leakage":
                assert all(m.n_unparsed == 0 for m in metrics), (model.display, task_id)
    claude = next(
        m
        for m in bundled_results["Claude-Sonnet-4.5"]["privacy.leakage"][0]
        if m.name == "control_error"
    )
    assert claude.n_unparsed == 1


def test_replayed_prompts_equal_the_recorded_prompts(full_ctx):
    checked = 0
    for model in recorded_models(full_ctx):
        backend = ReplayBackend(model.name, full_ctx)
        for task_id in model.subtasks:
            _, _, matches = asyncio.run(_run(TASKS[task_id], backend, full_ctx))
            assert False not in matches, (model.name, task_id)
            checked += sum(1 for m in matches if m)
    # 6 x (10 tier-1 + 400 tier-3 + 125 ethics) prompts are recorded (tier-2 and MH prompts are not)
    assert checked == 6 * (10 + 400 + 125) - 4  # DeepSeek-V3.2 lacks story 2


def test_bundled_copy_gives_the_same_numbers_as_the_shared_data(full_ctx, bundled_results):
    full = replay_all(full_ctx)
    assert full.keys() == bundled_results.keys()
    for model, per_task in full.items():
        for task_id, (metrics, _, _) in per_task.items():
            assert metrics == bundled_results[model][task_id][0], (model, task_id)
