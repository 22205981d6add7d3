"""The Privacy and Ethics tasks run live, end to end, against the loopback OpenAI-compatible server
(model and judge), through the installed CLI; the reported numbers are recomputed here from the
stored replies and the data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from live import query, run_live
from openai_server import FakeOpenAIServer, default_reply

JUDGE_SCORES = {"sc1": 4, "sc2": 3, "sc3": 5, "sc4": 2, "sc5": 4}


def reply(messages: list[dict], model: str) -> str:
    """The default deterministic replies, plus a fixed APA verdict when asked as the ethics judge."""
    if "impartial judge" in messages[-1]["content"]:
        verdict = {**JUDGE_SCORES, **{f"{k}_reason": "fixed test verdict" for k in JUDGE_SCORES}}
        return "```json\n" + json.dumps(verdict) + "\n```"
    return default_reply(messages)


@pytest.fixture(scope="module")
def live_run(tmp_path_factory, real_data_module, user_cache) -> Path:
    run_dir = tmp_path_factory.mktemp("live") / "run"
    with FakeOpenAIServer(reply_fn=reply) as server:
        run_live(server, run_dir, "--tasks", "privacy,ethics", "--concurrency", "32",
                 judge="test-model", env=user_cache)  # fmt: skip
        calls = [e for e in server.log() if e["outcome"] == "ok"]
    assert len(calls) >= 125 + 10 + 98 + 98 + 400
    return run_dir


def result(run_dir: Path, task: str, metric: str) -> tuple[float, int]:
    [(value, n)] = query(
        run_dir, "SELECT value, n FROM results WHERE task=? AND metric=?", task, metric
    )
    return value, n


def test_every_sample_scored_without_errors(live_run: Path) -> None:
    counts = dict(query(live_run, "SELECT task, COUNT(*) FROM scores GROUP BY task"))
    assert counts == {
        "privacy.awareness": 206,
        "privacy.leakage": 400,
        "ethics.ethical_reasoning": 125,
    }
    assert query(live_run, "SELECT COUNT(*) FROM scores WHERE status IN ('error', 'missing')") == [
        (0,)
    ]
    assert query(live_run, "SELECT COUNT(*) FROM responses WHERE role='judge'") == [(125,)]


def test_ethics_accuracy_matches_the_server_answers(live_run: Path) -> None:
    rows = query(
        live_run,
        "SELECT s.messages, s.target FROM samples s WHERE task='ethics.ethical_reasoning' ORDER BY rowid",
    )
    correct = []
    for messages, target in rows:
        sent = default_reply(json.loads(messages))
        letter = json.loads(sent.strip("`").removeprefix("json"))["choice"]
        correct.append(letter == json.loads(target))
    value, n = result(live_run, "ethics.ethical_reasoning", "accuracy")
    assert n == 125 and value == pytest.approx(sum(correct) / len(correct))
    for key, score in JUDGE_SCORES.items():
        assert result(live_run, "ethics.ethical_reasoning", key)[0] == pytest.approx(score)
    assert result(live_run, "ethics.ethical_reasoning", "judge_mean")[0] == pytest.approx(
        np.mean(list(JUDGE_SCORES.values()))
    )


def test_tier1_correlation_recomputed_from_stored_ratings(live_run: Path) -> None:
    rows = query(
        live_run,
        "SELECT s.target, r.text FROM samples s JOIN responses r USING (request_key) "
        "WHERE s.task='privacy.awareness' AND s.sample_id LIKE 'tier1/%' ORDER BY s.rowid",
    )
    human = [float(json.loads(t)) for t, _ in rows]
    model = [
        float(text.strip().rstrip(")")) for _, text in rows
    ]  # the server answers with a scale point
    value, n = result(live_run, "privacy.awareness", "tier1_r")
    assert n == 10
    if np.std(model) == 0:
        assert value is None
    else:
        assert value == pytest.approx(np.corrcoef(model, human)[0, 1])


def test_leakage_components_present(live_run: Path) -> None:
    for metric in (
        "leakage",
        "free_response_leak",
        "info_accessibility_error",
        "privacy_sharing_error",
        "control_error",
    ):
        value, n = result(live_run, "privacy.leakage", metric)
        assert n == 100 and 0.0 <= value <= 1.0
    # a control answer is right only when it maps to "no"; the server says "No" to yes/no questions
    # (or a scale point when a story happens to contain one, which maps to nothing: an error)
    replies = [t for (t,) in query(
        live_run,
        "SELECT r.text FROM samples s JOIN responses r USING (request_key) "
        "WHERE s.task='privacy.leakage' AND s.sample_id LIKE '%/control'",
    )]  # fmt: skip
    assert len(replies) == 100
    expected = sum(r.strip() != "No" for r in replies) / 100
    assert result(live_run, "privacy.leakage", "control_error")[0] == pytest.approx(expected)
