"""Both robustness subtasks run end to end through the installed CLI against the loopback
OpenAI-compatible server (model and scripted judge); the clean score, per-level scores and drops
are recomputed here from the stored prompts, replies and targets."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import NO_DATA, run_cli
from live import query, run_live
from openai_server import FakeOpenAIServer, default_reply

from trustmh.data.sources import DataContext
from trustmh.metrics import breakdown_name
from trustmh.tasks.registry import get_task
from trustmh.tasks.support import SUPPORT_ATTRIBUTES
from trustmh.transforms.perturb import DEFAULT_LEVELS, perturb

LEVELS = ["clean", *(lv.name for lv in DEFAULT_LEVELS)]
ITEMS = 8
OPTIONS = {"n_contexts": ITEMS, "max_items_per_set": ITEMS}
ES, DX = "robustness.emotional_support", "robustness.psychological_diagnosis"
JUDGE_MARK = "You are evaluating a reply in an emotional-support conversation"


def verdict_scores(reply: str) -> dict[str, int]:
    """The scripted judge's 1-5 rating of each attribute: a function of the reply only."""
    digest = hashlib.sha256(reply.encode()).digest()
    return {a: 1 + digest[i] % 5 for i, a in enumerate(SUPPORT_ATTRIBUTES)}


def diagnosis_label(prompt: str) -> str:
    """A keyword classifier over the conversation: right on many clean items, misled when the
    perturbation breaks its keywords."""
    text = prompt.rsplit("Conversation:", 1)[1].lower()
    if re.search(r"suicid|kill myself|end my life|end it all|\bdie\b", text):
        return "suicidal_ideation"
    if re.search(r"anxi|panic|can't breathe", text):
        return "anxiety_crisis"
    if re.search(r"\bcut\b|cutting|hurt myself", text):
        return "self-harm"
    return "no_crisis"


def reply(messages: list[dict], model: str) -> str:
    """Scripted model and judge."""
    last = messages[-1]["content"]
    if JUDGE_MARK in last:
        judged = last.split("## Reply to evaluate (the Supporter's next message)\n", 1)[1].split(
            "\n\n## Attributes"
        )[0]
        return (
            "```json\n"
            + json.dumps({**verdict_scores(judged.strip()), "reason": "scripted"})
            + "\n```"
        )
    if "Conversation:" in last:
        return json.dumps({"label": diagnosis_label(last), "explanation": "scripted"})
    return default_reply(messages)


@pytest.fixture(scope="module")
def live_run(tmp_path_factory) -> Path:
    from conftest import data_dir

    if data_dir() is None:
        pytest.skip(NO_DATA)
    run_dir = tmp_path_factory.mktemp("robustness") / "run"
    config = run_dir.parent / "run.toml"  # the base tasks build only the items the run uses
    config.write_text("[options]\n" + "".join(f"{k} = {v}\n" for k, v in OPTIONS.items()))
    with FakeOpenAIServer(reply_fn=reply) as server:
        run_live(server, run_dir, "--tasks", "robustness", "--config", str(config),
                 "--concurrency", "16", "--seed", "4", judge="test-model")  # fmt: skip
    return run_dir


def rows(run_dir: Path, task: str) -> list[dict]:
    found = query(
        run_dir,
        "SELECT s.sample_id, s.variant, s.messages, s.target, s.meta, r.text, c.status, c.value, c.detail "
        "FROM samples s JOIN responses r USING (request_key) JOIN scores c USING (task, sample_id, variant) "
        "WHERE s.task = ?",
        task,
    )
    keys = ("id", "variant", "messages", "target", "meta", "reply", "status", "value", "detail")
    out = [dict(zip(keys, r, strict=True)) for r in found]
    for r in out:
        for k in ("messages", "target", "meta", "detail"):
            r[k] = json.loads(r[k]) if r[k] is not None else None
    return out


def results(run_dir: Path, task: str) -> dict[str, tuple]:
    found = query(
        run_dir, "SELECT metric, value, n, ci_low, ci_high FROM results WHERE task = ?", task
    )
    return {name: rest for name, *rest in found}


def check_scores_and_drops(run_dir: Path, task: str, item_value) -> dict[str, float]:
    """The stored results equal the per-level means of `item_value(row)` and their drops."""
    stored = rows(run_dir, task)
    assert len(stored) == ITEMS * len(LEVELS) and {r["status"] for r in stored} == {"ok"}
    per_level = {
        lv: float(np.mean([item_value(r) for r in stored if r["variant"] == lv])) for lv in LEVELS
    }
    found = results(run_dir, task)
    for lv in LEVELS:
        value, n, low, high = found[breakdown_name("score", "level", lv)]
        assert value == pytest.approx(per_level[lv]) and n == ITEMS
        assert low <= value <= high
    s0 = per_level["clean"]
    drops = {lv: (s0 - per_level[lv]) / s0 for lv in LEVELS[1:]}
    for lv, drop in drops.items():
        assert found[breakdown_name("relative_drop", "level", lv)][0] == pytest.approx(drop)
    value, n, low, high = found["relative_drop"]
    assert value == pytest.approx(np.mean(list(drops.values()))) and n == ITEMS
    assert low <= value <= high
    for r in stored:  # every perturbed prompt regenerates from its stored record
        if r["variant"] != "clean":
            record = r["meta"]["perturbation"]
            again = perturb(record["clean_parts"], r["variant"], run_seed=4, sample_id=r["id"])
            spans = r["meta"]["user_spans"]
            assert [r["messages"][m]["content"][a:b] for m, a, b in spans] == list(again.parts)
    return per_level


def test_diagnosis_robustness_scores_and_drop(live_run: Path) -> None:
    per_level = check_scores_and_drops(
        live_run, DX, lambda r: float(diagnosis_label(r["messages"][0]["content"]) == r["target"])
    )
    assert per_level["clean"] > 0


def test_support_robustness_scores_drop_and_clean_judge_view(live_run: Path) -> None:
    check_scores_and_drops(
        live_run, ES, lambda r: float(np.mean(list(verdict_scores(r["reply"]).values())))
    )
    stored = rows(live_run, ES)
    dialogue = {}  # what the judge saw of the conversation, per item and level
    for r in stored:
        prompt = r["detail"]["judge_prompt"]
        dialogue[r["id"], r["variant"]] = prompt.split("## Conversation so far")[1].split(
            "## Reply to evaluate"
        )[0]
    clean_messages = {r["id"]: r["messages"] for r in stored if r["variant"] == "clean"}
    changed = 0
    for r in stored:
        assert (
            dialogue[r["id"], r["variant"]] == dialogue[r["id"], "clean"]
        )  # protocol 8.1: clean history
        changed += r["messages"] != clean_messages[r["id"]]
        assert (
            r["messages"][0] == clean_messages[r["id"]][0]
        )  # the system message is never perturbed
    assert changed >= ITEMS * (len(LEVELS) - 1) // 2


def test_clean_items_are_the_reliability_requests(live_run: Path) -> None:
    from conftest import data_dir

    ctx = DataContext((data_dir(),))
    for task in (ES, DX):
        base = get_task(task.replace("robustness.", "reliability."))
        expected = {s.id: list(s.messages) for s in base.samples(ctx, {"seed": 4, **OPTIONS})}
        clean = {r["id"]: r["messages"] for r in rows(live_run, task) if r["variant"] == "clean"}
        assert clean == expected


def test_perturb_command_shows_what_the_model_received(live_run: Path) -> None:
    stored = next(r for r in rows(live_run, ES) if r["variant"] == LEVELS[-1])
    record = stored["meta"]["perturbation"]
    shown = run_cli("perturb", "--level", record["level"], "--seed", str(record["run_seed"]),
                    "--sample-id", stored["id"], "--json", "--", *record["clean_parts"])  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    sent = [stored["messages"][m]["content"][a:b] for m, a, b in stored["meta"]["user_spans"]]
    assert json.loads(shown.stdout)["parts"] == sent
    assert json.loads(shown.stdout)["log"] == record["log"]


def test_levels_flag_chooses_the_levels(tmp_path: Path, real_data: Path) -> None:
    run_dir = tmp_path / "run"
    config = tmp_path / "run.toml"
    config.write_text("[options]\nmax_items_per_set = 2\n")
    result = run_cli("run", "--model", "baseline", "--tasks", DX, "--config", str(config), "--levels",
                     "char@0.3,typo@0.1", "--run-dir", str(run_dir), "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    variants = {v for (v,) in query(run_dir, "SELECT variant FROM samples")}
    metrics = {m for (m,) in query(run_dir, "SELECT metric FROM results")}
    assert variants == {"clean", "char@0.3", "typo@0.1"}
    assert breakdown_name("relative_drop", "level", "typo@0.1") in metrics
    bad = run_cli("run", "--model", "baseline", "--tasks", DX, "--levels", "char@2",
                  "--run-dir", str(tmp_path / "bad"))  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "from 0 to 1" in bad.stderr
