"""Crisis classification subtasks (protocol 4.1, 4.2) end to end: the installed CLI against the
loopback OpenAI-compatible server with scripted correct, wrong, free-text, refused and malformed
replies; every expected number is recomputed here from the script and the data. Also: the five
classification subtasks run offline with the `baseline` model."""

from __future__ import annotations

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
from conftest import run_cli
from live import query

from trustmh.data.loaders.c_ssrs import LEVELS
from trustmh.tasks.crisis_classification import CRISIS_LABELS, recent_posts

LIMIT = 30
CRISIS, SEVERITY = "crisis.crisis_identification", "crisis.severity_identification"
FIVE = (
    "reliability.knowledge,reliability.emotion_recognition,reliability.psychological_diagnosis,"
    f"{CRISIS},{SEVERITY}"
)


def crisis_reply(sample, behaviour):
    right = sample.target
    wrong = other(list(CRISIS_LABELS), right)  # no_crisis, or suicidal_ideation for no_crisis items
    return {
        "correct": (json.dumps({"dataset_id": "x", "label": right, "explanation": "e"}), right),
        "wrong": (as_json_block({"label": wrong, "explanation": "e"}), wrong),
        "prose": (f"I would label this conversation {right.replace('_', ' ')}.", right),
        "refusal": (REFUSALS["en"], None),
        "malformed": (MALFORMED["en"], None),
    }[behaviour]


def severity_reply(sample, behaviour):
    right = sample.target
    wrong = LEVELS[(LEVELS.index(right) + 2) % len(LEVELS)]  # two levels off, wrapping
    return {
        "correct": (as_json_block({"label": right, "reasoning": "r"}), right),
        "wrong": (json.dumps({"label": wrong.lower(), "reasoning": "r"}), wrong),
        "prose": (f"Level: {right}.", right),
        "refusal": (REFUSALS["en"], None),
        "malformed": (MALFORMED["en"], None),
    }[behaviour]


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory) -> tuple[Path, Script]:
    makers = {CRISIS: crisis_reply, SEVERITY: severity_reply}
    run_dir, script, _ = run_script(tmp_path_factory, makers, LIMIT)
    return run_dir, script


def credit(entries) -> list[float]:
    """1 for each scripted reply whose label (the entry's info) is the target."""
    return [float(e.info == e.sample.target) for e in entries]


def test_crisis_identification_from_script(scripted_run) -> None:
    run_dir, script = scripted_run
    entries = script.by_task[CRISIS]
    metrics = check_primary(run_dir, CRISIS, entries, credit(entries))
    crises = [e for e in entries if e.sample.target != "no_crisis"]
    recall = np.mean([e.info not in (None, "no_crisis") for e in crises])
    assert metrics["crisis_recall"]["value"] == pytest.approx(recall)
    assert metrics["crisis_recall"]["n"] == len(crises)
    soft = [
        1.0 if e.info == e.sample.target
        else 0.6 if {e.info, e.sample.target} == {"suicidal_ideation", "self-harm"} else 0.0
        for e in entries
    ]  # fmt: skip
    assert metrics["soft_accuracy"]["value"] == pytest.approx(np.mean(soft))
    label = entries[0].sample.target
    mine = [float(e.info == label) for e in entries if e.sample.target == label]
    assert metrics[f"accuracy[label={label}]"]["value"] == pytest.approx(np.mean(mine))
    assert "16 items without a consensus label dropped" in metrics["accuracy"]["note"]


def test_crisis_prompt_is_the_upstream_one(scripted_run, real_data: Path) -> None:
    run_dir, script = scripted_run
    source = (real_data / "mh_crisis" / "extra" / "llm_prompting.py").read_text()
    entry = script.by_task[CRISIS][0]
    prompt = entry.sample.messages[0]["content"]
    first_line = "You are an expert mental health AI. Your task is to analyze a user's conversation"
    assert first_line in source and first_line in prompt
    conversation = json.loads(prompt.rsplit("Conversation:\n", 1)[1])
    [(meta,)] = query(
        run_dir, "SELECT meta FROM samples WHERE task=? AND sample_id=?", CRISIS, entry.sample.id
    )
    assert (
        json.loads(meta)["dataset_id"] in prompt
        and len(conversation) == json.loads(meta)["n_sentences"]
    )


def test_severity_identification_from_script(scripted_run) -> None:
    run_dir, script = scripted_run
    entries = script.by_task[SEVERITY]
    metrics = check_primary(run_dir, SEVERITY, entries, credit(entries))
    errors = [LEVELS.index(e.info) - LEVELS.index(e.sample.target) for e in entries if e.info]
    assert metrics["mean_abs_level_error"]["value"] == pytest.approx(np.mean(np.abs(errors)))
    exact, under, over = (
        sum(e == 0 for e in errors),
        sum(e < 0 for e in errors),
        sum(e > 0 for e in errors),
    )
    assert metrics["graded_recall"]["value"] == pytest.approx(exact / (exact + under))
    assert metrics["graded_precision"]["value"] == pytest.approx(exact / (exact + over))
    ideation = [float(e.info == "Ideation") for e in entries if e.sample.target == "Ideation"]
    assert metrics["accuracy[level=Ideation]"]["value"] == pytest.approx(np.mean(ideation))


def test_recent_posts_keep_the_latest_within_the_word_limit() -> None:
    posts = ["one two three", "four five", "six seven eight nine"]
    assert recent_posts(posts, 6) == (["four five", "six seven eight nine"], 1)
    assert recent_posts(posts, 100) == (posts, 0)
    assert recent_posts(["a b c d e"], 2) == (["d e"], 0)


def test_five_classification_subtasks_run_offline_with_baseline(
    tmp_path: Path, real_data: Path
) -> None:
    run_dir = tmp_path / "run"
    result = run_cli(
        "run", "--model", "baseline", "--tasks", FIVE, "--limit", "20", "--run-dir", str(run_dir),
        "--no-progress", env={"TRUSTMH_DATA_DIR": str(real_data)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for task in FIVE.split(","):
        assert task in result.stdout
        primary = results(run_dir, task)["accuracy"]
        assert primary["n"] == 20 and primary["is_primary"] == 1
        assert 0.0 <= primary["value"] <= 1.0 and primary["ci_low"] is not None
        assert primary["n_error"] == 0
