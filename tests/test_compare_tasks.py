"""Every subtask's paired declaration (`Task.paired`, protocol 1.9) rebuilds exactly the primary
score its own aggregate stored, on real runs of every subtask through the CLI: a model on the
loopback server and a judge that gives random in-range verdicts for every shipped rubric (and
the ethics judge). Two such runs, judged with different random verdicts, are then compared on
every subtask: each gets a test and a verdict (none is refused for a declaration that does not
reproduce its score)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from conftest import run_cli
from openai_server import FakeOpenAIServer, default_reply

from trustmh.compare import NOT_COMPARABLE, TOO_FEW, _reproduces, compare_runs
from trustmh.compare import stats as compare_stats
from trustmh.compare.runs import load
from trustmh.models.baseline import _rubric_openings
from trustmh.paired import ACCURACY
from trustmh.tasks.registry import all_tasks

ETHICS_JUDGE = "You are an impartial judge model."
MENTALBENCH = "mentalbench.response_generation"  # BEYOND: not in `all`, declared all the same
CRISIS_LABELS = ("suicidal_ideation", "self-harm", "anxiety_crisis", "no_crisis")


def random_judge(salt: str):
    """A reply function: random valid verdicts for judge prompts, the default reply otherwise."""

    def reply(messages: list[dict], model: str) -> str:
        prompt = messages[-1]["content"]
        rng = random.Random(hashlib.sha256(f"{salt}|{prompt}".encode()).hexdigest())
        if prompt.lstrip().startswith(ETHICS_JUDGE):
            scores = {f"sc{i}": rng.randint(1, 5) for i in range(1, 6)}
            return "```json\n" + json.dumps(scores) + "\n```"
        matches = [(len(o), r) for o, r in _rubric_openings() if prompt.lstrip().startswith(o)]
        if not matches and "no_crisis" in prompt:  # the crisis labels (and the diagnosis stand-in)
            return json.dumps({"label": rng.choice(CRISIS_LABELS)})
        if not matches:
            text = default_reply(messages)
            return text if rng.random() < 0.8 else "I'm not sure I can answer that."
        rubric = max(matches, key=lambda m: m[0])[1]
        values = {}
        for field in rubric.fields:
            if field.labels:
                values[field.name] = rng.choice(field.labels)
            elif field.integer:
                values[field.name] = rng.randint(int(field.low or 0), int(field.high or 0))
            else:
                values[field.name] = round(rng.uniform(field.low or 0.0, field.high or 1.0), 3)
        if rubric.format != "json":
            return str(next(iter(values.values())))
        return "```json\n" + json.dumps({**values, "explanation": "random test verdict"}) + "\n```"

    return reply


@pytest.fixture(scope="module")
def runs(tmp_path_factory, real_data_module, user_cache) -> list[Path]:
    """Two runs of every subtask (first 6 items; privacy awareness whole, so its three tiers are
    all there), each judged with its own random verdicts."""
    root = tmp_path_factory.mktemp("every-task")
    dirs = []
    with FakeOpenAIServer(models=("m", "judge")) as server:  # one judge spec for both runs
        url = server.base_url
        for salt in ("one", "two"):
            server.set_reply_fn(random_judge(salt))
            common = ["--model", f"openai:m@{url}", "--judge", f"openai:judge@{url}",
                      "--no-progress", "--concurrency", "16", "--cache-dir", str(root / f"cache-{salt}")]  # fmt: skip
            for name, extra in (("all", ["--tasks", f"all,{MENTALBENCH}", "--limit", "6"]),
                                ("awareness", ["--tasks", "privacy.awareness"])):  # fmt: skip
                run_dir = root / f"{name}-{salt}"
                result = run_cli("run", *common, *extra, "--run-dir", str(run_dir), env=user_cache)
                assert result.returncode == 0, result.stderr
                dirs.append(run_dir)
    return dirs


def test_every_declaration_rebuilds_its_stored_score(runs: list[Path]) -> None:
    registry = all_tasks()
    checked = []
    for run_dir in runs:
        run = load(run_dir)
        for task_id in run.results:
            task = registry[task_id]
            paired = task.paired or ACCURACY
            units = paired.units(run.samples.get(task_id, []), run.options_for(task_id))
            stored = run.primary(task_id)
            recomputed = compare_stats.units_metric(paired, units, run.options_for(task_id))
            if stored is None or stored.value is None:
                assert recomputed != recomputed or not units, (task_id, recomputed)  # NaN
                continue
            assert recomputed == pytest.approx(stored.value, rel=1e-9, abs=1e-12), task_id
            assert _reproduces(paired, run, task_id, units) is None
            checked.append(task_id)
    # every implemented subtask with data and a judge has a score to check
    expected = {
        t.id
        for t in registry.values()
        if t.implemented and t.in_protocol and t.id != "sycophancy.pas"
    }
    assert set(checked) >= expected | {MENTALBENCH}


def test_every_subtask_gets_a_test_and_a_verdict(runs: list[Path]) -> None:
    registry = all_tasks()
    first, second = load(runs[0]), load(runs[2])
    comparison = compare_runs([first, second], registry)
    for row in comparison.rows:
        if any(
            r.primary(row.task) is None or r.primary(row.task).value is None
            for r in (first, second)
        ):
            assert row.verdict == NOT_COMPARABLE  # e.g. PAS without its data, a drop from 0
            assert "has no score on it" in row.reasons[-1]
            continue
        assert row.verdict != NOT_COMPARABLE, (row.task, row.reasons)
        if row.verdict == TOO_FEW:  # the first 6 intervention turns are one dialogue: no test
            assert row.task == "reliability.psychological_intervention" and row.n_shared == 1
            assert row.unit == "dialogue" and "too few shared dialogues (1)" in row.verdict_text()
            continue
        assert row.tested and 0 < row.p <= 1 and row.p_holm >= row.p, row.task
        if row.diff is not None and row.ci_low is not None:
            assert row.ci_low <= row.ci_high
    tests = {r.task: r.test for r in comparison.rows if r.tested}
    assert tests["safety.jailbreak_resistance"] == "McNemar exact"
    assert tests["fairness.overall"].startswith("paired permutation")
    awareness = compare_runs([load(runs[1]), load(runs[3])], registry)
    [row] = awareness.rows
    # the model's ratings do not depend on the judge: where both runs parsed a reply (a fifth of
    # the replies are unparseable, picked per run) they are equal, so nothing can differ
    assert row.tested and 100 < row.n_shared < 206 and row.unit == "item"
    assert row.diff == 0 and row.p == 1 and row.mdd is None and row.verdict == "no_difference"
