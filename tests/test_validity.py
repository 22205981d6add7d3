"""Protocol 1.8 end to end (issue 17): null responders against their floors on every subtask,
coverage rules, degenerate relative metrics, the offline detector's disclosure, --reask-unparsed,
and a full offline run's report.csv whose every interval contains its estimate."""

from __future__ import annotations

import asyncio
import csv
import math
import re
from pathlib import Path

import pytest
from conftest import run_cli
from live import query, run_live
from openai_server import FakeOpenAIServer

from trustmh.config import RunConfig
from trustmh.engine import run_evaluation
from trustmh.tasks.registry import select_tasks
from trustmh.validity import nulls

RESPONDERS = ("always-a", "refusing", "content-free", "random")


def run_null(tmp: Path, model: str, judge: str | None, tasks: list[str], limit: int, **cfg):
    config = RunConfig(model=model, judge=judge, tasks=tasks, limit=limit, run_dir=tmp,
                       no_cache=True, **cfg)  # fmt: skip
    return asyncio.run(run_evaluation(config, progress=False))


def better(a: float, b: float, direction: str) -> bool:
    return a > b + 1e-9 if direction == "higher" else a < b - 1e-9


@pytest.fixture(scope="module")
def null_runs(real_data_module, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("nulls")
    return {
        kind: run_null(root / kind, f"null:{kind}", "null:judge-random", ["all"], limit=25)
        for kind in RESPONDERS
    }


def test_no_null_responder_beats_its_floor_without_a_flag(null_runs):
    """Every subtask, every null responder: either its value is not better than the floor (the
    run's own for parser-scored subtasks; for judge-scored ones, the best null under the same
    judge) or it carries a flag."""
    tasks = [t.id for t in select_tasks(["all"]) if t.implemented]
    for task in tasks:
        values = {}
        for kind, summary in null_runs.items():
            primary = next((m for m in summary.results[task] if m.primary), None)
            if primary is not None and primary.value is not None and math.isfinite(primary.value):
                values[kind] = primary
        if not values:
            continue
        direction = next(iter(values.values())).direction
        records = {k: null_runs[k].validity.get(task, {}) for k in values}
        floors = [r["floors"][values[k].name]["value"] for k, r in records.items()
                  if values[k].name in r.get("floors", {})]  # fmt: skip
        floor = floors[0] if floors else None
        if floor is None:  # judge-scored: the best null responder under the same judge
            pick = max if direction == "higher" else min
            floor = pick(m.value for m in values.values())
        for kind, metric in values.items():
            if better(metric.value, floor, direction):
                assert records[kind].get("flags"), (task, kind, metric.value, floor)


def test_a_constant_responder_is_flagged_degenerate_wherever_it_is_scored(null_runs):
    for kind in ("always-a", "refusing", "content-free"):
        summary = null_runs[kind]
        for task, record in summary.validity.items():
            primary = next((m for m in summary.results[task] if m.primary), None)
            scored = primary is not None and primary.value is not None and primary.n >= 10
            if scored:
                kinds = [f["kind"] for f in record["flags"]]
                assert "degenerate" in kinds, (kind, task, record["flags"])


def test_floors_are_measured_on_the_items_not_assumed(null_runs):
    """The ethics floor is whatever the run's answer key gives a constant answer (the majority
    letter's share); always "A" scores the share of A, and its chance correction follows."""
    summary = null_runs["always-a"]
    record = summary.validity["ethics.ethical_reasoning"]
    accuracy = next(m for m in summary.results["ethics.ethical_reasoning"] if m.primary)
    keys = [t for (t,) in query(summary.run_dir, "SELECT target FROM samples WHERE task=?",
                                "ethics.ethical_reasoning")]  # fmt: skip
    majority = max(keys.count(k) for k in set(keys)) / len(keys)
    assert accuracy.value == pytest.approx(keys.count('"A"') / len(keys))
    floor = record["floors"]["accuracy"]
    assert floor["value"] == pytest.approx(majority)
    assert record["chance_corrected"] == pytest.approx((accuracy.value - majority) / (1 - majority))
    assert {f["kind"] for f in record["flags"]} >= {"degenerate", "at_floor"}
    # robustness: the constant responder loses nothing, and is named degenerate for it
    flags = null_runs["random"].validity["robustness.psychological_diagnosis"]["flags"]
    assert "degenerate" in [f["kind"] for f in flags]


def test_the_offline_detector_discloses_its_held_out_accuracy(tmp_path, real_data):
    summary = run_null(tmp_path, "null:random", None, ["safety.jailbreak_resistance"], limit=20)
    rta = next(m for m in summary.results["safety.jailbreak_resistance"] if m.primary)
    assert re.search(r"held-out accuracy \d\.\d\d \[\d\.\d\d, \d\.\d\d\]", rta.note)
    flags = summary.validity["safety.jailbreak_resistance"]["flags"]
    assert "offline_detector" in [f["kind"] for f in flags]
    # with a judge the judge decides, and nothing is said about the keyword detector
    judged = run_null(tmp_path / "j", "null:random", "null:judge-random",
                      ["safety.jailbreak_resistance"], limit=20)  # fmt: skip
    rta = next(m for m in judged.results["safety.jailbreak_resistance"] if m.primary)
    assert "held-out accuracy" not in rta.note


# --- coverage, re-asks and the report -------------------------------------------------------


def awareness_reply(messages, model):
    """A model that rates the ten tier-1 items (a 4-point scale) and about one tier-2 item in
    eight, at random, and answers the rest with something unreadable: about 15% parsed."""
    prompt = messages[-1]["content"]
    scale = nulls.answer_set(prompt)
    if scale is not None and (len(scale.groups[0]) == 4 or nulls.unit("cover", prompt) < 1 / 8):
        return f"{nulls.pick(scale.groups[0], 'rating', prompt)})"
    return "Hmm, that depends on who you ask."


def test_low_coverage_is_flagged_and_kept_out_of_ranks_and_the_radar(tmp_path, real_data):
    sparse, full = tmp_path / "sparse", tmp_path / "full"
    with FakeOpenAIServer(reply_fn=awareness_reply) as server:
        run_live(server, sparse, "--tasks", "privacy.awareness")
    result = run_cli("run", "--model", "null:random", "--tasks", "privacy.awareness",
                     "--run-dir", str(full), "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "low_coverage" in run_cli_summary(sparse)
    out = tmp_path / "report.html"
    assert run_cli("report", str(sparse), str(full), "-o", str(out), "--no-figures",
                   "--no-reference").returncode == 0  # fmt: skip
    rows = {r["run_dir"]: r for r in read_csv(out) if r["primary"] == "True"}
    low = rows[str(sparse)]
    assert float(low["coverage"]) < 0.8 and low["flags"].startswith("low_coverage")
    assert low["rank_among_runs"] == ""  # not ranked
    html = out.read_text(encoding="utf-8")
    assert "numbers flagged" in html and "low coverage" in html


def run_cli_summary(run_dir: Path) -> str:
    rows = query(run_dir, "SELECT value FROM meta WHERE key='validity'")
    return rows[0][0]


def test_reask_unparsed_asks_again_and_says_so(tmp_path, real_data):
    asked: dict[str, int] = {}

    def reply(messages, model):
        prompt = messages[-1]["content"]
        asked[prompt] = asked.get(prompt, 0) + 1
        if asked[prompt] == 1:
            return "Let me think about it."  # never parses
        return nulls.respond("random", messages)

    with FakeOpenAIServer(reply_fn=reply) as server:
        run_live(server, tmp_path / "once", "--tasks", "ethics", "--limit", "5")
        unparsed = query(tmp_path / "once", "SELECT COUNT(*) FROM scores WHERE status='unparsed'")
        assert unparsed == [(5,)]  # protocol 1.2 default: recorded as unparsed, no re-ask
        asked.clear()
        run_live(server, tmp_path / "reask", "--tasks", "ethics", "--limit", "5",
                 "--reask-unparsed", "2")  # fmt: skip
    assert query(tmp_path / "reask", "SELECT COUNT(*) FROM scores WHERE status='ok'") == [(5,)]
    assert set(asked.values()) == {2}
    notes = [n for (n,) in query(tmp_path / "reask", "SELECT note FROM results")]
    assert all("5 unparsed replies re-asked (--reask-unparsed" in (n or "") for n in notes)
    shown = query(
        tmp_path / "reask", "SELECT r.text FROM samples s JOIN responses r USING (request_key)"
    )
    assert all("Let me think" not in text for (text,) in shown)  # the scored reply is shown


def read_csv(html: Path) -> list[dict]:
    with html.with_suffix(".csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_interval_of_a_full_offline_run_contains_its_estimate(tmp_path, real_data):
    """All 19 subtasks, every item, the baseline as model and judge, plus a null run beside it;
    the report's header counts the flagged numbers of each run."""
    base, null = tmp_path / "baseline", tmp_path / "null"
    for args in (("--model", "baseline", "--run-dir", str(base)),
                 ("--model", "null:always-a", "--limit", "30", "--run-dir", str(null))):  # fmt: skip
        result = run_cli("run", *args, "--judge", "baseline", "--tasks", "all", "--no-progress",
                         timeout=600)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "validity (protocol 1.8):" in result.stdout
    out = tmp_path / "report.html"
    result = run_cli("report", str(base), str(null), "-o", str(out), "--no-figures",
                     "--no-reference")  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)
    checked = 0
    for row in rows:
        if row["ci_low"] and row["ci_high"] and row["value"]:
            low, high, value = float(row["ci_low"]), float(row["ci_high"]), float(row["value"])
            assert low - 1e-9 <= value <= high + 1e-9, (row["subtask"], row["metric"], row["group"])
            checked += 1
    assert checked > 200
    assert {r["subtask"] for r in rows} >= {t.id for t in select_tasks(["all"]) if t.implemented}
    primaries = [r for r in rows if r["primary"] == "True"]
    assert all("coverage" in r and "floor" in r for r in primaries)
    assert any(r["floor"] for r in primaries) and any(r["chance_corrected"] for r in primaries)
    html = out.read_text(encoding="utf-8")
    for label in ("baseline", "null:always-a"):
        assert re.search(rf"{re.escape(label)}[^<]*: \d+ numbers flagged</strong>", html), label
    assert "degenerate" in html and "at the null floor" in html
