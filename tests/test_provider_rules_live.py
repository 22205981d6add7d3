"""Real providers' parameter rules end to end (protocol 1.7): the installed CLI against the loopback
server, which answers OpenAI's reasoning models and Claude with the providers' own 400s.

- The paper's GPT-5.1, MentalAlign's o4-mini and a current Claude run every subtask (`--tasks all
  --limit 2`, a loopback judge) with zero 400s; a run whose temperature could not be set says so
  in its terminal table, report and CSV.
- A model the profile table does not know is adapted from its 400s: once, recorded with the run,
  and the adapted request is what the cache key covers.
- A 400 naming no parameter is not retried: the provider's message is recorded and the run exits 3.
- Replies cut short by their cap are counted and never parsed; `--epochs` repeats and spreads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from live import query, run_live
from openai_server import FakeOpenAIServer

from trustmh.store import request_key
from trustmh.tasks.registry import get_task
from trustmh.types import GenParams, GenRequest

NOTE = "temperature not settable: provider default 1; replies are not deterministic"
CLAUDE = "claude-sonnet-4-5-20250929"
NO_HEADROOM = """
[[profile]]
name = "o4-mini-as-an-unknown-model"
models = ["o4-mini"]
"""


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer() as running:
        yield running


def anthropic_env(server) -> dict[str, str]:
    return {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "sk-ant-loopback"}


def primary_notes(run_dir: Path) -> dict[str, str]:
    return dict(query(run_dir, "SELECT task, note FROM results WHERE is_primary=1"))


def outcomes(server) -> list[str]:
    return [e["outcome"] for e in server.log()]


ALL = ("--tasks", "all", "--limit", "2")
# the notes' variants on fewer subtasks: one that asks temperature 0, one that asks 1, a judged one
SOME = ("--tasks", "reliability.knowledge,privacy.awareness,sycophancy.oeq", "--limit", "2")
CASES = {  # id: (model spec form, flags, judge model, temperature note expected)
    "gpt-5.1": ("openai:gpt-5.1", ALL, "gpt-4.1", False),  # effort none: temperature 0 is sent
    "o4-mini": ("openai:o4-mini", ALL, "o4-mini", True),
    "claude": (f"anthropic:{CLAUDE}", ALL, "gpt-4.1", False),
    "gpt-5.1-low": ("openai:gpt-5.1", (*SOME, "--reasoning-effort", "low"), "gpt-4.1", True),
    "claude-thinking": (
        f"anthropic:{CLAUDE}",
        (*SOME, "--reasoning-effort", "low"),
        "gpt-4.1",
        True,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_subtask_runs_with_zero_400s_and_says_what_was_not_set(
    case: str, server, real_data_module, tmp_path: Path
) -> None:
    pytest.importorskip("anthropic")
    spec, flags, judge, noted = CASES[case]
    server.reset()
    run_dir = tmp_path / "run"
    model = spec.split(":", 1)[1]
    if spec.startswith("openai:"):
        result = run_live(server, run_dir, *flags, judge=judge, model=model)
    else:  # anthropic: the client is pointed at the loopback server by ANTHROPIC_BASE_URL
        result = run_cli("run", "--model", spec, "--judge", f"openai:{judge}@{server.base_url}",
                         "--run-dir", str(run_dir), "--cache-dir", str(tmp_path / "cache"),
                         "--no-progress", *flags, env=anthropic_env(server))  # fmt: skip
        assert result.returncode == 0, result.stderr
    assert "400" not in outcomes(server), [e for e in server.log() if e["outcome"] == "400"][:2]
    assert query(run_dir, "SELECT value FROM meta WHERE key='status'") == [('"complete"',)]
    notes = primary_notes(run_dir)
    assert len(notes) == (19 if flags[:2] == ALL[:2] else 3)  # every subtask asked for ran
    report, table = (run_dir / "report.html").read_text(), (run_dir / "report.csv").read_text()
    if noted:  # every subtask asking another temperature than the provider's default 1 says so
        asks_other = {t for t in notes if get_task(t).gen.temperature != 1.0}
        assert asks_other and {t for t, n in notes.items() if NOTE in (n or "")} == asks_other
        assert NOTE in result.stdout and NOTE in report and NOTE in table
    else:
        assert not any(NOTE in (n or "") for n in notes.values())
        assert NOTE not in report
    sent = [e["params"] for e in server.log() if e["model"] == model]
    if case == "gpt-5.1":  # the protocol's temperature 0 reached the model
        assert {p.get("temperature") for p in sent} >= {0.0} and not any(
            "max_tokens" in p for p in sent
        )
    if case == "claude":  # privacy tiers 1-2 ask temperature 1 and top_p 1: only one is sent
        assert not any("temperature" in p and "top_p" in p for p in sent)
        assert {"temperature": 1.0, "max_tokens": 365} in sent
    if case == "o4-mini":  # ELEPHANT's 2-token judge cap got room for the judge's reasoning
        assert "judge max_tokens 2 sent as 25002" in notes["sycophancy.oeq"]
        assert {"max_completion_tokens": 25002} in [e["params"] for e in server.log()]
        # resumed with nothing left to ask, the run's tables say the same
        server.reset()
        run_live(server, run_dir, *flags, judge=judge, model=model)
        assert server.log() == [] and primary_notes(run_dir) == notes


def smoke(server, run_dir: Path, *flags: str, model: str = "o4-mini", n: int = 6):
    return run_cli("run", "--model", f"openai:{model}@{server.base_url}", "--tasks", "smoke",
                   "--limit", str(n), "--run-dir", str(run_dir), "--cache-dir", str(run_dir.parent / "cache"),
                   "--no-progress", "--retry-base-delay", "0.01", *flags)  # fmt: skip


def test_a_model_the_table_does_not_know_is_adapted_once_and_recorded(
    server, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(NO_HEADROOM, encoding="utf-8")
    server.reset()
    run_dir = tmp_path / "run"
    result = smoke(server, run_dir, "--model-profiles", str(profiles))
    assert result.returncode == 0, result.stderr
    log = server.log()
    # each adaptation is made once per request: max_tokens renamed, then temperature dropped
    assert [e["outcome"] for e in log].count("ok") == 6
    assert {e.get("error", "")[:22] for e in log if e["outcome"] == "400"} == {
        "Unsupported parameter:",
        "Unsupported value: 'te",
    }
    per_prompt: dict[str, int] = {}
    for e in log:
        per_prompt[e["prompt_hash"]] = per_prompt.get(e["prompt_hash"], 0) + 1
    assert max(per_prompt.values()) <= 3
    adapted = json.loads(query(run_dir, "SELECT value FROM meta WHERE key='adaptations'")[0][0])
    learned = next(iter(adapted.values()))
    assert [(a["param"], a["action"]) for a in learned] == [
        ("max_tokens", "rename"),
        ("temperature", "drop"),
    ]
    assert "adapted: " in result.stdout and NOTE in result.stdout
    # the adapted request is what the keys cover: a sample's key is that of what was sent
    spec = f"openai:o4-mini@{server.base_url}"
    for messages, key in query(run_dir, "SELECT messages, request_key FROM samples"):
        request = GenRequest(tuple(json.loads(messages)), GenParams(0.0, 32))
        assert key == request_key(spec, request, params={"max_completion_tokens": 32})
    # a new run (another directory) starts adapted: every reply comes from the shared cache
    server.reset()
    again = smoke(server, tmp_path / "again", "--model-profiles", str(profiles))
    assert again.returncode == 0 and server.log() == []
    # resuming the first run sends nothing either
    assert smoke(server, run_dir, "--model-profiles", str(profiles)).returncode == 0
    assert server.log() == []


def test_replies_cut_short_are_counted_never_parsed(server, tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(NO_HEADROOM, encoding="utf-8")
    run_dir = tmp_path / "run"
    # without headroom the smoke task's 32-token cap is spent reasoning: no answer at all
    result = smoke(server, run_dir, "--model-profiles", str(profiles))
    assert result.returncode == 0, result.stderr
    scores = query(run_dir, "SELECT status, value, detail FROM scores")
    assert [(s, v, json.loads(d)) for s, v, d in scores] == [
        ("unparsed", None, {"cut_short": "empty"})
    ] * 6  # not a refusal, not a wrong letter
    assert "6 replies cut short by their token cap" in primary_notes(run_dir)["smoke"]
    assert "replies cut short by their token cap (see each subtask's note): 6" in result.stdout
    reasoning = query(run_dir, "SELECT prompt_tokens, completion_tokens, extra FROM responses")
    assert all(json.loads(extra)["reasoning_tokens"] == c == 32 for _, c, extra in reasoning)
    # with the built-in profile the cap has room for the reasoning: whole answers
    fine = smoke(server, tmp_path / "fine" / "run")
    assert fine.returncode == 0
    details = query(tmp_path / "fine" / "run", "SELECT status, detail FROM scores")
    assert len(details) == 6 and not any("cut_short" in (d or "") for _, d in details)


def test_an_unknown_400_is_not_retried_and_the_run_is_incomplete(server, tmp_path: Path) -> None:
    message = "Invalid prompt: your prompt was flagged as potentially violating our usage policy."
    server.set_faults([{"kind": "400", "message": message, "contains": "Item 3:"}])
    server.reset()
    try:
        result = smoke(server, tmp_path / "run", model="test-model")
    finally:
        server.set_faults([])
    assert result.returncode == 3, result.stderr  # a run that ended incomplete
    assert "incomplete: 1 of 6 samples failed" in result.stderr and "--run-dir" in result.stderr
    output = " ".join((result.stdout + result.stderr).split())
    assert f"first error: HTTP 400: {message}" in output
    assert [e["outcome"] for e in server.log()].count("400") == 1  # asked once, not retried
    errors = query(tmp_path / "run", "SELECT error FROM scores WHERE status='error'")
    assert errors == [(f"HTTP 400: {message}",)]


def test_epochs_repeat_each_item_and_report_the_spread(
    server, real_data_module, tmp_path: Path
) -> None:
    server.reset()
    run_dir = tmp_path / "run"
    run_live(server, run_dir, "--tasks", "reliability.knowledge", "--limit", "8", "--epochs", "3",
             model="o4-mini")  # fmt: skip
    assert len(server.log()) == 24
    per_epoch: list[list[float]] = [[], [], []]
    for sample_id, value in query(run_dir, "SELECT sample_id, value FROM scores"):
        per_epoch[int(sample_id.rsplit("#e", 1)[1]) if "#e" in sample_id else 0].append(value)
    assert [len(values) for values in per_epoch] == [8, 8, 8]
    results = {name: (value, low, high, note) for name, value, low, high, note in query(
        run_dir, "SELECT metric, value, ci_low, ci_high, note FROM results")}  # fmt: skip
    accuracies = [sum(v) / len(v) for v in per_epoch]
    value, low, high, note = results["accuracy"]
    assert value == pytest.approx(sum(accuracies) / 3) and low <= value <= high
    for epoch, expected in enumerate(accuracies):
        assert results[f"accuracy[epoch={epoch}]"][0] == pytest.approx(expected)
    assert "mean of 3 epochs" in note and "--epochs N" not in note
    assert results["accuracy_epoch_sd"][0] is not None
    # a replayed or rule-based model gives the same reply every time: epochs are refused
    refused = run_cli("run", "--model", "baseline", "--tasks", "smoke", "--epochs", "2",
                      "--run-dir", str(tmp_path / "b"))  # fmt: skip
    assert refused.returncode == 2 and refused.stderr.startswith("error: --epochs 2")
