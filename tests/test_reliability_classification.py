"""Reliability classification subtasks (protocol 3.1-3.3) end to end: the installed CLI against
the loopback OpenAI-compatible server with scripted correct, wrong, free-text, refused and
malformed replies; every expected number is recomputed here from the script and the data."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from classification_script import (
    MALFORMED,
    REFUSALS,
    Script,
    as_json_block,
    check_primary,
    other,
    results,
    run_script,
)

from trustmh.data.loaders.mh_crisis import upstream_prompt
from trustmh.data.sources import DataContext
from trustmh.tasks.base import ScoreContext
from trustmh.tasks.crisis_classification import CRISIS_LABELS, crisis_prompt, labelled_conversations
from trustmh.tasks.diagnosis import diagnosis_aggregate, diagnosis_samples, diagnosis_score
from trustmh.tasks.registry import get_task
from trustmh.types import Response, ScoredSample

LIMIT = 30
KNOWLEDGE, EMOTION, DIAGNOSIS = (
    "reliability.knowledge",
    "reliability.emotion_recognition",
    "reliability.psychological_diagnosis",
)


def knowledge_reply(sample, behaviour):
    right = sample.target
    wrong = other(list(sample.meta["options"]), right)
    return {
        "correct": (json.dumps({"answer": right}), {"correct": True}),
        "wrong": (as_json_block({"answer": wrong}), {"correct": False}),
        "prose": (f"After weighing the findings, the answer is ({right}).", {"correct": True}),
        "refusal": (REFUSALS["en"], {"correct": False}),
        "malformed": (MALFORMED["en"], {"correct": False}),
    }[behaviour]


def emotion_reply(sample, behaviour):
    lang, emo, cause = sample.meta["language"], sample.target["emotion"], sample.target["cause"]
    wrong_cause = other(["A", "B", "C", "D"], cause)
    prose = (
        f"问题1：{emo}，问题2：{cause}"
        if lang == "zh"
        else f"Question 1: {emo}\nQuestion 2: {cause}"
    )
    return {
        "correct": (as_json_block({"answer_q1": emo, "answer_q2": cause}), (True, True)),
        "wrong": (json.dumps({"answer_q1": emo, "answer_q2": wrong_cause}), (True, False)),
        "prose": (prose, (True, True)),
        "refusal": (REFUSALS[lang], (False, False)),
        "malformed": (json.dumps({"answer_q1": emo}), (True, False)),  # half an answer
    }[behaviour]


def label_reply(sample, behaviour):
    right = sample.target
    wrong = other(list(CRISIS_LABELS), right)
    return {
        "correct": (
            json.dumps({"dataset_id": "x", "label": right, "explanation": "e"}),
            {"label": right},
        ),
        "wrong": (as_json_block({"label": wrong, "explanation": "e"}), {"label": wrong}),
        "prose": (f"My assessment: {right.replace('_', ' ').upper()}.", {"label": right}),
        "refusal": (REFUSALS["en"], {"label": None}),
        "malformed": (MALFORMED["en"], {"label": None}),
    }[behaviour]


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory) -> tuple[Path, Script]:
    makers = {KNOWLEDGE: knowledge_reply, EMOTION: emotion_reply, DIAGNOSIS: label_reply}
    run_dir, script, result = run_script(tmp_path_factory, makers, LIMIT)
    for task in makers:
        assert task in result.stdout  # the per-subtask table
    return run_dir, script


def test_knowledge_accuracy_from_script(scripted_run) -> None:
    run_dir, script = scripted_run
    entries = script.by_task[KNOWLEDGE]
    check_primary(run_dir, KNOWLEDGE, entries, [float(e.info["correct"]) for e in entries])
    step2 = [float(e.info["correct"]) for e in entries if e.sample.meta["step"] == "step2"]
    assert results(run_dir, KNOWLEDGE)["accuracy[step=step2]"]["value"] == pytest.approx(
        np.mean(step2)
    )


def test_emotion_recognition_joint_parts_and_languages(scripted_run) -> None:
    run_dir, script = scripted_run
    entries = script.by_task[EMOTION]
    metrics = check_primary(run_dir, EMOTION, entries, [float(all(e.info)) for e in entries])
    assert metrics["emotion_accuracy"]["value"] == pytest.approx(
        np.mean([e.info[0] for e in entries])
    )
    assert metrics["cause_accuracy"]["value"] == pytest.approx(
        np.mean([e.info[1] for e in entries])
    )
    assert metrics["mean_accuracy"]["value"] == pytest.approx(
        np.mean([np.mean(e.info) for e in entries])
    )
    for lang in ("en", "zh"):
        mine = [float(all(e.info)) for e in entries if e.sample.meta["language"] == lang]
        assert mine, "--limit must take both languages"
        assert metrics[f"accuracy[language={lang}]"]["value"] == pytest.approx(np.mean(mine))
        assert metrics[f"accuracy[language={lang}]"]["n"] == len(mine)


def test_diagnosis_standin_from_script(scripted_run) -> None:
    run_dir, script = scripted_run
    entries = script.by_task[DIAGNOSIS]
    credit = [float(e.info["label"] == e.sample.target) for e in entries]
    primary = check_primary(run_dir, DIAGNOSIS, entries, credit)["accuracy"]
    assert primary["note"].startswith("STAND-IN")
    assert all(e.sample.meta["dataset"] == "standin" for e in entries)


def test_diagnosis_marks_the_user_text_for_robustness(real_data: Path) -> None:
    ctx = DataContext((real_data,))
    template = upstream_prompt(ctx)
    samples = list(itertools.islice(diagnosis_samples(ctx, {}), 40))
    rows = {r["id"]: r for r in labelled_conversations(ctx, "test")[0][:40]}
    for sample in samples:
        content = sample.messages[0]["content"]
        inputs = rows[sample.id]["inputs"]
        assert content == crisis_prompt(template, inputs, sample.meta["dataset_id"])
        spans = sample.meta["user_spans"]
        assert [content[a:b] for _, a, b in spans] == [
            json.dumps(t, ensure_ascii=False)[1:-1] for t in inputs
        ]
    # the robustness pillar perturbs exactly those spans and nothing else
    robust = list(
        itertools.islice(get_task("robustness.psychological_diagnosis").samples(ctx, {}), 3)
    )
    clean, noisy = robust[0], robust[1]
    assert clean.variant == "clean" and noisy.variant != "clean" and noisy.target == clean.target
    assert outside_spans(noisy) == outside_spans(clean)
    assert [clean.messages[0]["content"][a:b] for _, a, b in clean.meta["user_spans"]] != [
        noisy.messages[0]["content"][a:b] for _, a, b in noisy.meta["user_spans"]
    ]


def outside_spans(sample) -> list[str]:
    """The text of a sample's message outside its user spans."""
    content, pieces, cursor = sample.messages[0]["content"], [], 0
    for _, start, end in sorted(sample.meta["user_spans"], key=lambda span: span[1]):
        pieces.append(content[cursor:start])
        cursor = end
    return [*pieces, content[cursor:]]


def test_diagnosis_paper_sets_when_supplied(tmp_path: Path) -> None:
    """D4 and SWMH in their release layouts (tiny synthetic files: the real sets are released on
    request only): interleaved samples, D4 scored as the mean of two levels, subtask = mean of sets."""
    (tmp_path / "d4").mkdir()
    (tmp_path / "swmh").mkdir()
    sessions = [
        {"log": [{"speaker": "doctor", "action": "a", "text": "最近心情怎么样？"},
                 {"speaker": "patient", "action": "b", "text": f"不太好，第{i}周了。"}],
         "portrait": {}, "record": {"drisk": i, "srisk": 0, "summary": "s"}}
        for i in range(4)
    ]  # fmt: skip
    (tmp_path / "d4" / "raw_data_test.json").write_text(json.dumps(sessions, ensure_ascii=False))
    (tmp_path / "swmh" / "test.csv").write_text(
        "text,label\nI feel empty,self.depression\nPanic again,self.Anxiety\n"
    )
    ctx = DataContext((tmp_path,))
    samples = list(diagnosis_samples(ctx, {"diagnosis_sets": "paper"}))
    assert [s.id for s in samples] == ["d4/0", "swmh/0", "d4/1", "swmh/1", "d4/2", "d4/3"]
    assert samples[0].target == {"depression": 0, "suicide_risk": 0}
    content, spans = samples[0].messages[0]["content"], samples[0].meta["user_spans"]
    assert [content[a:b] for _, a, b in spans] == ["不太好，第0周了。"]  # patient turns only
    assert "医生：最近心情怎么样？" in content
    content, spans = samples[1].messages[0]["content"], samples[1].meta["user_spans"]
    assert [content[a:b] for _, a, b in spans] == ["I feel empty"]
    replies = {  # D4: depression always 1, suicide risk always 0; SWMH: always depression
        "d4": '{"depression": 1, "suicide_risk": 0}',
        "swmh": '{"label": "depression"}',
    }
    scored = []
    for s in samples:
        score = asyncio.run(
            diagnosis_score(s, Response(replies[s.meta["dataset"]]), ScoreContext())
        )
        scored.append(ScoredSample(s.id, s.variant, s.target, s.meta, "", score))
    d4 = np.mean([((t == 1) + 1) / 2 for t in range(4)])  # one depression hit, suicide always right
    swmh = 1 / 2
    metrics = {m.name: m for m in diagnosis_aggregate(scored, {"seed": 0})}
    assert metrics["accuracy"].value == pytest.approx((d4 + swmh) / 2)
    assert metrics["d4_depression_accuracy"].value == pytest.approx(1 / 4)
    assert metrics["d4_suicide_risk_accuracy"].value == pytest.approx(1.0)
    with pytest.raises(Exception, match="needs 'd4'"):
        list(diagnosis_samples(DataContext((tmp_path / "swmh",)), {"diagnosis_sets": "paper"}))
