"""`trustmh compare` end to end: scripted models with a known accuracy gap run through the real CLI
against the loopback server are found different (McNemar on the items both scored), equal ones
are not; runs that cannot be compared are refused with the reason; the --gate rules' exit codes
and lines. Expected numbers come from the scripts and the runs' SQLite stores."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from compare_script import ScriptedModels, run_models
from conftest import run_cli
from openai_server import FakeOpenAIServer

from trustmh.data.sources import DataContext

SMOKE = "smoke"
KNOWLEDGE = "reliability.knowledge"


def compare_json(*args: str, env: dict[str, str], tmp: Path) -> tuple[dict, object]:
    out = tmp / "compare.json"
    result = run_cli("compare", *args, "--json", str(out), env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text()), result


def only_row(report: dict, task: str, a: int = 0, b: int = 1) -> dict:
    [row] = [r for r in report["subtasks"] if r["task"] == task and (r["a"], r["b"]) == (a, b)]
    return row


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory, user_cache) -> dict:
    """Three scripted models on 600 smoke items: A right on 70%, B on 60%, C on 70% (other items)."""
    root = tmp_path_factory.mktemp("compare-smoke")
    script = ScriptedModels(
        DataContext(()), SMOKE, 600, {"model-a": 0.7, "model-b": 0.6, "model-c": 0.7}
    )
    dirs = run_models(script, ["model-a", "model-b", "model-c"], root, SMOKE, 600, user_cache)
    return {"root": root, "dirs": dirs, "script": script, "env": user_cache}


def test_a_known_accuracy_gap_is_found_without_the_data_folder(smoke_runs, tmp_path) -> None:
    a, b, c = smoke_runs["dirs"]
    script = smoke_runs["script"]
    report, result = compare_json(str(a), str(b), env=smoke_runs["env"], tmp=tmp_path)
    row = only_row(report, SMOKE)
    assert row["n_shared"] == 600
    assert row["value_a"] == pytest.approx(script.accuracy("model-a")) == pytest.approx(0.7)
    assert row["value_b"] == pytest.approx(script.accuracy("model-b")) == pytest.approx(0.6)
    assert row["diff"] == pytest.approx(0.1)
    assert row["ci_low"] < 0.1 < row["ci_high"] and row["ci_low"] > 0
    assert row["test"] == "McNemar exact"
    right_a, right_b = script.right["model-a"], script.right["model-b"]
    assert row["counts"] == {"only_a": len(right_a - right_b), "only_b": len(right_b - right_a)}
    assert row["p"] < 0.01 and row["verdict"] == "a_better"
    assert "A better" in result.stdout
    # the other order says the same thing from the other side
    report, _ = compare_json(str(b), str(a), env=smoke_runs["env"], tmp=tmp_path)
    row = only_row(report, SMOKE)
    assert row["verdict"] == "b_better" and row["diff"] == pytest.approx(-0.1)
    # equal accuracy, different items: no detectable difference, with the detectable size
    report, result = compare_json(str(a), str(c), env=smoke_runs["env"], tmp=tmp_path)
    row = only_row(report, SMOKE)
    assert row["verdict"] == "no_difference" and row["diff"] == pytest.approx(0.0)
    assert 0.03 < row["mdd"] < 0.2
    assert "no detectable difference (detectable: ±" in result.stdout


def test_three_runs_are_compared_pairwise_with_holm_over_all_tests(smoke_runs, tmp_path) -> None:
    a, b, c = smoke_runs["dirs"]
    report, result = compare_json(str(a), str(b), str(c), env=smoke_runs["env"], tmp=tmp_path)
    pairs = {(r["a"], r["b"]) for r in report["subtasks"]}
    assert pairs == {(0, 1), (0, 2), (1, 2)}
    assert report["tests"] == 3
    ps = sorted(r["p"] for r in report["subtasks"])
    holm = sorted(r["p_holm"] for r in report["subtasks"])
    assert holm[0] == pytest.approx(min(1.0, 3 * ps[0]))
    assert all(h >= p for h, p in zip(holm, ps, strict=True))
    assert result.stdout.count("A vs B") == 3


def test_runs_of_a_folder_and_by_name(smoke_runs, tmp_path) -> None:
    """A folder of runs expands to its runs; run names resolve through the index."""
    report, _ = compare_json(str(smoke_runs["root"]), env=smoke_runs["env"], tmp=tmp_path)
    assert len(report["runs"]) == 3


def test_runs_that_differ_are_refused_with_the_reason_or_labelled_when_allowed(
    smoke_runs, tmp_path
) -> None:
    a = smoke_runs["dirs"][0]
    env = smoke_runs["env"]
    other = tmp_path / "other"
    shutil.copytree(a, other)
    with sqlite3.connect(other / "trustmh.sqlite") as conn:
        config = json.loads(conn.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0])
        config.update(limit=500, temperature=0.7)
        conn.execute("UPDATE meta SET value=? WHERE key='config'", (json.dumps(config),))
        info = json.loads(
            conn.execute("SELECT value FROM meta WHERE key='task_info'").fetchone()[0]
        )
        del info[SMOKE]  # as a run made before trustmh recorded data checksums
        conn.execute("UPDATE meta SET value=? WHERE key='task_info'", (json.dumps(info),))
    report, result = compare_json(str(a), str(other), env=env, tmp=tmp_path)
    row = only_row(report, SMOKE)
    assert row["verdict"] == "not_comparable" and row["p"] is None
    reasons = " | ".join(row["reasons"])
    assert "--limit 600 vs 500" in reasons and "temperature=None vs 0.7" in reasons
    assert "not comparable" in result.stdout
    # a run with no checksums on one side is compared, with a warning that it was not checked
    assert any("recorded no data checksums" in w for w in row["warnings"])
    report, _ = compare_json(str(a), str(other), "--allow", "limit", "--allow", "generation",
                             env=env, tmp=tmp_path)  # fmt: skip
    row = only_row(report, SMOKE)
    assert row["verdict"] == "no_difference" and row["n_shared"] == 500
    assert any("--limit" in w for w in row["warnings"])
    bad = run_cli("compare", str(a), str(other), "--allow", "colour", env=env)
    assert bad.returncode == 2 and "--allow colour: not a kind of difference" in bad.stderr


def test_different_data_checksums_and_stale_results_are_refused(smoke_runs, tmp_path) -> None:
    a = smoke_runs["dirs"][0]
    env = smoke_runs["env"]
    copies = []
    for name in ("data1", "data2"):
        copy = tmp_path / name
        shutil.copytree(a, copy)
        copies.append(copy)
        with sqlite3.connect(copy / "trustmh.sqlite") as conn:
            info = json.loads(
                conn.execute("SELECT value FROM meta WHERE key='task_info'").fetchone()[0]
            )
            info[SMOKE]["data"] = {"f.jsonl": {"sha256": name * 16, "size": 1}}
            conn.execute("UPDATE meta SET value=? WHERE key='task_info'", (json.dumps(info),))
    report, _ = compare_json(*map(str, copies), env=env, tmp=tmp_path)
    assert "different data files (sha256): f.jsonl" in only_row(report, SMOKE)["reasons"]
    # a stored score that its samples do not give (e.g. results left by an older trustmh)
    with sqlite3.connect(copies[1] / "trustmh.sqlite") as conn:
        conn.execute("UPDATE results SET value=0.5 WHERE task=? AND is_primary=1", (SMOKE,))
    report, _ = compare_json(str(a), str(copies[1]), "--allow", "data", env=env, tmp=tmp_path)
    [reason] = only_row(report, SMOKE)["reasons"]
    assert "stored accuracy (0.5) is not what its scored samples give (0.7)" in reason


def test_a_different_judge_is_refused_where_the_metric_reads_verdicts(
    tmp_path, real_data_module
) -> None:
    """Two runs judged by different judges: crisis escalation (a judge mean) is refused; ethics'
    accuracy reads no verdict (its judge scores are secondary), so it is compared."""
    ethics = '```json\n{"sc1": 4, "sc2": 3, "sc3": 5, "sc4": 2, "sc5": 4}\n```'
    appropriateness = '```json\n{"appropriateness": 4, "explanation": "fixed"}\n```'

    def reply(messages, model):
        from openai_server import default_reply

        prompt = messages[-1]["content"]
        if "impartial judge" in prompt:
            return ethics
        if "evaluate the appropriateness" in prompt:
            return appropriateness
        return default_reply(messages)

    env = {"TRUSTMH_CACHE_DIR": str(tmp_path / "cache")}
    dirs = []
    with FakeOpenAIServer(reply_fn=reply, models=("m", "judge-1", "judge-2")) as server:
        for judge in ("judge-1", "judge-2"):
            run_dir = tmp_path / judge
            result = run_cli("run", "--model", f"openai:m@{server.base_url}", "--judge",
                             f"openai:{judge}@{server.base_url}", "--tasks",
                             "ethics,crisis.escalation_decision", "--limit", "8", "--run-dir",
                             str(run_dir), "--no-progress", env=env)  # fmt: skip
            assert result.returncode == 0, result.stderr
            dirs.append(run_dir)
    url = server.base_url
    report, _ = compare_json(*map(str, dirs), env=env, tmp=tmp_path)
    escalation = only_row(report, "crisis.escalation_decision")
    assert escalation["verdict"] == "not_comparable"
    assert escalation["reasons"] == [f"judged by openai:judge-1@{url} vs openai:judge-2@{url}"]
    assert only_row(report, "ethics.ethical_reasoning")["verdict"] == "no_difference"
    report, _ = compare_json(*map(str, dirs), "--allow", "judge", env=env, tmp=tmp_path)
    escalation = only_row(report, "crisis.escalation_decision")
    assert escalation["verdict"] == "no_difference" and escalation["warnings"]


def test_the_knowledge_gap_of_the_acceptance_is_found(tmp_path, real_data, user_cache) -> None:
    """0.70 vs 0.60 over the 727 USMLE-mental items, each model right on its own random items."""
    script = ScriptedModels(DataContext((real_data,)), KNOWLEDGE, None,
                            {"strong": 0.7, "weak": 0.6})  # fmt: skip
    assert script.n_items == 727
    strong, weak = run_models(script, ["strong", "weak"], tmp_path, KNOWLEDGE, None, user_cache)
    report, result = compare_json(str(strong), str(weak), env=user_cache, tmp=tmp_path)
    row = only_row(report, KNOWLEDGE)
    assert row["n_shared"] == 727
    assert row["value_a"] == pytest.approx(509 / 727) and row["value_b"] == pytest.approx(436 / 727)
    assert row["verdict"] == "a_better" and row["p_holm"] < 0.001
    assert row["ci_low"] > 0
    gate = tmp_path / "gate.txt"
    gate.write_text("reliability must not be worse at p < 0.05\n")
    broken = run_cli("compare", str(strong), str(weak), "--gate", str(gate), env=user_cache)
    assert broken.returncode == 1
    assert (
        f"gate BROKEN: {gate}:1: reliability must not be worse at p < 0.05: {KNOWLEDGE}: "
        in broken.stdout
    )
    held = run_cli("compare", str(weak), str(strong), "--gate", str(gate), env=user_cache)
    assert held.returncode == 0, held.stdout + held.stderr


# ---------------------------------------------------------------------------------------- gate


def write_rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.txt"
    path.write_text(text)
    return path


def test_the_gate_passes_when_every_rule_holds(smoke_runs, tmp_path) -> None:
    a, b, _ = smoke_runs["dirs"]
    rules = write_rules(
        tmp_path,
        "# CI gate\nsmoke must not be worse at p < 0.05\n\nsmoke >= 0.65  # new model's own score\n",
    )
    result = run_cli("compare", str(b), str(a), "--gate", str(rules), env=smoke_runs["env"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"gate ok: {rules}:2: smoke must not be worse at p < 0.05: 1 subtasks, none worse"
        in result.stdout
    )
    assert f"gate ok: {rules}:4: smoke >= 0.65: smoke 0.7" in result.stdout
    assert "gate: all 2 rules hold" in result.stdout


def test_each_broken_rule_is_one_line_and_exit_code_1(smoke_runs, tmp_path) -> None:
    a, b, _ = smoke_runs["dirs"]
    rules = write_rules(
        tmp_path,
        "smoke must not be worse\nsmoke >= 0.65\n* > 0.1\ncrisis.* must not be worse\nsmoke <= 0.9\n",
    )
    result = run_cli("compare", str(a), str(b), "--gate", str(rules), env=smoke_runs["env"])
    assert result.returncode == 1
    broken = [line for line in result.stdout.splitlines() if line.startswith("gate BROKEN")]
    assert broken == [
        line for line in broken if line.count("gate BROKEN") == 1
    ]  # one rule per line
    assert len(broken) == 3
    assert broken[0].startswith(f"gate BROKEN: {rules}:1: smoke must not be worse: smoke: ")
    assert "worse, accuracy 0.6 vs 0.7" in broken[0] and "Holm p = " in broken[0]
    assert broken[1] == f"gate BROKEN: {rules}:2: smoke >= 0.65: smoke: accuracy 0.6, not >= 0.65"
    assert broken[2].startswith(
        f"gate BROKEN: {rules}:4: crisis.* must not be worse: matches no subtask"
    )
    assert "gate: 3 of 5 rules broken" in result.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("smoke must be great\n", "rules.txt:1: cannot read rule 'smoke must be great'"),
        ("# nothing\n", "no rule in the file"),
        ("smoke >= high\n", "rules.txt:1: the threshold 'high' is not a number"),
        (
            "\nsmoke must not be worse at p < 5\n",
            "rules.txt:2: the level p < 5 must lie between 0 and 1",
        ),
    ],
)
def test_a_bad_rules_file_is_a_user_error(smoke_runs, tmp_path, text, message) -> None:
    a, b, _ = smoke_runs["dirs"]
    rules = write_rules(tmp_path, text)
    result = run_cli("compare", str(a), str(b), "--gate", str(rules), env=smoke_runs["env"])
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr


def test_the_gate_takes_exactly_two_runs(smoke_runs, tmp_path) -> None:
    rules = write_rules(tmp_path, "smoke >= 0.5\n")
    result = run_cli(
        "compare", *map(str, smoke_runs["dirs"]), "--gate", str(rules), env=smoke_runs["env"]
    )
    assert result.returncode == 2 and "--gate compares exactly two runs" in result.stderr
    missing = run_cli("compare", *map(str, smoke_runs["dirs"][:2]), "--gate", str(tmp_path / "no.txt"),
                      env=smoke_runs["env"])  # fmt: skip
    assert missing.returncode == 2 and "cannot read the rules file" in missing.stderr
