"""Reasoning is never parsed as the answer (protocol 1.7), in every multiple-choice subtask, end to
end: the installed CLI against the loopback server, whose replies reason first, naming wrong
options (in prose and in the protocol's own answer format), then give the final answer. The
reasoning comes inside the content as a `<think>` block, or apart in `reasoning_content` (vLLM and
SGLang with a reasoning parser). Every scored answer must be the final one; the reasoning must be
stored apart and shown in the report's drill-down."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import data_dir
from live import query, run_live
from openai_server import FakeOpenAIServer, rating_scale

from trustmh.data.loaders.c_ssrs import LEVELS
from trustmh.data.sources import DataContext
from trustmh.engine import iter_limited
from trustmh.tasks.base import ScoreContext
from trustmh.tasks.crisis_classification import CRISIS_LABELS
from trustmh.tasks.registry import get_task
from trustmh.types import Response, Sample

LIMIT = 3


def _other(choices: list[str], right: str) -> str:
    return next(c for c in choices if c != right)


def _json(value: dict[str, Any]) -> str:
    return "```json\n" + json.dumps(value, ensure_ascii=False) + "\n```"


def knowledge(s: Sample) -> tuple[str, str]:
    return _json({"answer": s.target}), _json({"answer": _other(list(s.meta["options"]), s.target)})


def emotion(s: Sample) -> tuple[str, str]:
    emo, cause = s.target["emotion"], s.target["cause"]
    wrong = {"answer_q1": _other(list("ABCD"), emo), "answer_q2": _other(list("ABCD"), cause)}
    return _json({"answer_q1": emo, "answer_q2": cause}), _json(wrong)


def crisis_label(s: Sample) -> tuple[str, str]:
    return _json({"label": s.target}), _json({"label": _other(list(CRISIS_LABELS), s.target)})


def severity(s: Sample) -> tuple[str, str]:
    return _json({"label": s.target}), _json({"label": _other(list(LEVELS), s.target)})


def ethics(s: Sample) -> tuple[str, str]:
    wrong = _other(list("ABCD"), s.target)
    return (_json({"choice": s.target, "reasoning": "It protects the client."}),
            _json({"choice": wrong, "reasoning": "A first guess."}))  # fmt: skip


def awareness(s: Sample) -> tuple[str, str]:
    points = rating_scale(s.messages[-1]["content"])
    return points[0], f"Answer: {points[-1]}"


MAKERS = {
    "reliability.knowledge": knowledge,
    "reliability.emotion_recognition": emotion,
    "reliability.psychological_diagnosis": crisis_label,
    "robustness.psychological_diagnosis": crisis_label,
    "crisis.crisis_identification": crisis_label,
    "crisis.severity_identification": severity,
    "ethics.ethical_reasoning": ethics,
    "privacy.awareness": awareness,
}


def reasoning_for(wrong: str) -> str:
    return f"Let me weigh the options first. My first answer was:\n{wrong}\nOn reflection that is wrong."


class Script:
    """Per prompt: the reasoning, then the final answer; with what each alone parses to."""

    def __init__(self, ctx: DataContext) -> None:
        self.replies: dict[str, str] = {}
        self.entries: list[tuple[str, Sample, str, str]] = []  # (task, sample, final, reasoning)
        for task_id, make in MAKERS.items():
            for sample in iter_limited(get_task(task_id).samples(ctx, {}), LIMIT):
                final, wrong = make(sample)
                reasoning = reasoning_for(wrong)
                self.replies[sample.messages[-1]["content"]] = (
                    f"<think>\n{reasoning}\n</think>\n\n{final}"
                )
                self.entries.append((task_id, sample, final, reasoning))

    def reply(self, messages: list[dict[str, Any]], model: str) -> str:
        return self.replies[messages[-1]["content"]]

    def parses(self) -> list[tuple[Any, Any]]:
        """(what the final answer alone parses to, what the reasoning alone parses to) per entry,
        by each task's own scorer."""

        async def parse(task_id: str, sample: Sample, text: str) -> Any:
            score = await get_task(task_id).score(
                sample, Response(text), ScoreContext(options={"seed": 0})
            )
            return score.parsed

        async def both() -> list[tuple[Any, Any]]:
            return [(await parse(t, s, final), await parse(t, s, thought))
                    for t, s, final, thought in self.entries]  # fmt: skip

        return asyncio.run(both())


@pytest.fixture(scope="module", params=["think", "reasoning_content"])
def reasoning_run(request, real_data_module, tmp_path_factory) -> tuple[str, Path, Script]:
    script = Script(DataContext((data_dir(),)))
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    with FakeOpenAIServer(reply_fn=script.reply, reasoning_style=request.param) as server:
        run_live(server, run_dir, "--tasks", ",".join(MAKERS), "--limit", str(LIMIT),
                 model="qwen3-8b")  # fmt: skip
    return request.param, run_dir, script


def test_the_scored_answer_is_the_final_one_in_every_multiple_choice_subtask(reasoning_run) -> None:
    style, run_dir, script = reasoning_run
    stored = {
        (task, sid, variant): (status, json.loads(parsed) if parsed else None)
        for task, sid, variant, status, parsed in query(
            run_dir, "SELECT task, sample_id, variant, status, parsed FROM scores"
        )
    }
    misled: dict[str, int] = dict.fromkeys(MAKERS, 0)
    for (task, sample, _, _), (final, thought) in zip(script.entries, script.parses(), strict=True):
        status, parsed = stored[(task, sample.id, sample.variant)]
        assert parsed == final and final is not None, (style, task, sample.id, parsed, final)
        misled[task] += thought not in (None, final)
    # the test can fail: in every subtask the reasoning alone would have scored another answer
    assert all(misled.values()), misled


def test_the_reasoning_is_stored_apart_and_shown_in_the_drill_down(reasoning_run) -> None:
    from trustmh.report import make_report
    from trustmh.report.samples import drill_down

    _, run_dir, script = reasoning_run
    rows = query(run_dir, "SELECT text, extra FROM responses WHERE role='model'")
    assert rows and all("<think>" not in text and "first answer" not in text for text, _ in rows)
    reasonings = {json.loads(extra)["reasoning"] for _, extra in rows}
    assert reasonings <= {thought for _, _, _, thought in script.entries}
    drill = drill_down(make_report([run_dir], reference=False))
    column = drill.columns.index("reasoning")
    assert all(row[column].startswith("Let me weigh the options") for row in drill.rows)
