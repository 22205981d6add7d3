"""`trustmh report` without a browser: the embedded JSON, the files beside the page, the paper's
ranks, pillar ranks, placement among the recorded models and errors. Runs are real SQLite stores
(written by the CLI, or synthetic through RunStore); expected values are computed here."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from pathlib import Path

import pytest
from conftest import run_cli
from report_synthetic import SyntheticTask, write_synthetic_run

from trustmh.metrics import split_metric_name
from trustmh.report import make_report, write_report
from trustmh.report.aggregate import rank_by_mean
from trustmh.report.reference import PAPER_RANKS, load_paper
from trustmh.report.samples import drill_down, script_json

ETHICS = "ethics.ethical_reasoning"
LEAKAGE = "privacy.leakage"
HOSTILE = ("</script><script>alert(1)</script>", "<!--", "a & b < c > d", "\u2028\u2029", "]]>")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_script_json_cannot_end_its_element_and_round_trips() -> None:
    value = {"texts": list(HOSTILE), "n": [1, None, 2.5]}
    text = script_json(value)
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == value


def test_page_holds_model_text_only_as_json(tmp_path: Path) -> None:
    def hostile(task: str, index: int, rng) -> str:
        return HOSTILE[index % len(HOSTILE)] + f" #{index}"

    run = write_synthetic_run(tmp_path / "run", [SyntheticTask(ETHICS, 10, judged=True)],
                              label="<script>x</script>", response_fn=hostile, judge_fn=hostile)  # fmt: skip
    files = write_report([run], tmp_path / "report.html", figures=False, reference=False)
    page = files.html.read_text(encoding="utf-8")
    assert page.count("<script") == 3  # the two JSON blocks and the page's own script
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    block = re.search(
        r'<script type="application/json" id="trustmh-samples">(.*?)</script>', page, re.S
    )
    data = json.loads(block.group(1))  # type: ignore[union-attr]
    col = {name: i for i, name in enumerate(data["columns"])}
    with sqlite3.connect(run / "trustmh.sqlite") as conn:
        stored = dict(
            conn.execute(
                "SELECT s.sample_id, r.text FROM samples s JOIN responses r USING (request_key)"
            )
        )
    assert {row[col["id"]]: row[col["response"]] for row in data["rows"]} == stored
    assert any(HOSTILE[0] in row[col["judge"]] for row in data["rows"])


def test_files_beside_the_page_and_radar_values(tmp_path: Path) -> None:
    levels = ("0.1", "0.3")
    tasks = [SyntheticTask(ETHICS, 40, "higher", "level", levels, p_correct=0.8),
             SyntheticTask(LEAKAGE, 30, "lower", p_correct=0.4)]  # fmt: skip
    run = write_synthetic_run(tmp_path / "run", tasks, label="synthetic")
    files = write_report([run], tmp_path / "out" / "r.html", figures=False, reference=False)
    assert (files.csv.name, files.json.name) == ("r.csv", "r.json")
    with sqlite3.connect(run / "trustmh.sqlite") as conn:
        stored = {(t, m): v for t, m, v in conn.execute("SELECT task, metric, value FROM results")}
    rows = read_csv(files.csv)
    assert {(r["subtask"], r["metric"] + (f"[{r['dimension']}={r['group']}]" if r["dimension"] else "")):
            float(r["value"]) for r in rows} == pytest.approx(stored)  # fmt: skip
    level_rows = [r for r in rows if r["dimension"] == "level"]
    assert sorted(r["group"] for r in level_rows) == sorted(levels)
    primary = {r["subtask"]: r for r in rows if r["primary"] == "True"}
    assert primary[ETHICS]["samples"] == str(40 * len(levels))

    report = json.loads(files.json.read_text(encoding="utf-8"))
    pillars = report["pillars"]
    radar = dict(zip(pillars, report["radar"][0], strict=True))
    # 0-1 metrics enter as they are when higher is better, as 1 - value when lower is better
    assert radar["ethics"]["value"] == pytest.approx(stored[(ETHICS, "accuracy")])
    assert radar["privacy"]["value"] == pytest.approx(1 - stored[(LEAKAGE, "accuracy")])
    assert all(radar[p]["value"] is None for p in pillars if p not in ("ethics", "privacy"))
    assert [b["dimension"] for b in report["breakdowns"]] == ["level"]


def test_long_texts_are_cut_to_fit_the_budget(tmp_path: Path) -> None:
    def long(task: str, index: int, rng) -> str:
        return f"start {index} " + "x" * (5_000 + 100 * index) + " end"

    run = write_synthetic_run(tmp_path / "run", [SyntheticTask(ETHICS, 40)], response_fn=long)
    report = make_report([run], reference=False)
    budget = 120_000
    drill = drill_down(report, budget=budget)
    col = drill.columns.index("response")
    texts = [row[col] for row in drill.rows]
    assert drill.n_cut == 40 and all("characters cut here" in t for t in texts)
    assert all(t.startswith(f"start {i} ") and t.endswith(" end") for i, t in enumerate(texts))
    marker = max(len(t) for t in texts) - drill.field_chars
    assert 0 < marker < 100  # every text cut to the same limit, plus the marker
    assert len(drill.prompts) == 40  # one distinct prompt per item
    assert sum(len(t) for t in texts) + sum(map(len, drill.prompts)) <= budget + 80 * 100
    assert drill_down(report).n_cut == 0  # the default budget keeps a small run whole
    runs = [write_synthetic_run(tmp_path / name, [SyntheticTask(ETHICS, 40)], seed=seed,
                                prompt_fn=lambda task, i, rng: f"item {i}")
            for name, seed in (("a", 0), ("b", 1))]  # fmt: skip
    both = drill_down(make_report(runs, reference=False))
    assert len(both.rows) == 80 and len(both.prompts) == 40  # the same prompts, stored once


def test_paper_ranks_resolve_the_doubtful_cell() -> None:
    paper = load_paper()
    rows = read_csv(PAPER_RANKS)
    assert len(paper.models) == 12
    doubtful = [r for r in rows if r["note"].startswith("DOUBTFUL")]
    assert doubtful
    for r in rows:
        cell = paper.by_subtask[r["subtask"]][r["model"]]
        assert cell.printed == int(r["rank"])
        if r in doubtful:
            printed = {int(x["rank"]) for x in rows if x["subtask"] == r["subtask"]}
            [absent] = set(range(1, 13)) - printed
            assert cell.used == absent
        else:
            assert cell.used == cell.printed


def test_pillar_rank_is_the_rank_of_mean_subtask_ranks() -> None:
    ranks = {"p.a": {"X": 1, "Y": 2, "Z": 3, "W": 4}, "p.b": {"X": 3, "Y": 2, "Z": 1, "W": 4},
             "q.c": {"X": 2, "Y": 1, "Z": None, "W": 3}}  # fmt: skip
    pillars = rank_by_mean(ranks, lambda t: t.split(".")[0])
    # p: means X 2, Y 2, Z 2, W 4; X and Z tie on their best rank 1 and share rank 1, Y comes 3rd
    assert pillars["p"] == {"X": 1, "Z": 1, "Y": 3, "W": 4}
    assert pillars["q"] == {"Y": 1, "X": 2, "W": 3}


def test_comparable_run_is_placed_among_the_recorded_models(
    tmp_path: Path, isolated_cache: Path
) -> None:
    full, limited = tmp_path / "full", tmp_path / "limited"
    first = run_cli(
        "run", "--model", "baseline", "--tasks", ETHICS, "--run-dir", str(full), "--no-progress"
    )
    assert first.returncode == 0, first.stderr
    second = run_cli("run", "--model", "baseline", "--tasks", ETHICS, "--limit", "10",
                     "--run-dir", str(limited), "--no-progress")  # fmt: skip
    assert second.returncode == 0, second.stderr
    made = run_cli(
        "report", str(full), str(limited), "-o", str(tmp_path / "report.html"), "--no-figures"
    )
    assert made.returncode == 0, made.stderr

    [reproduction] = isolated_cache.glob("reference/*/reproduction.csv")
    recorded = {r["model"]: float(r["value"]) for r in read_csv(reproduction)
                if r["subtask"] == ETHICS and r["primary"] == "True"}  # fmt: skip
    assert len(recorded) == 12
    with sqlite3.connect(full / "trustmh.sqlite") as conn:
        [(ours,)] = conn.execute(
            "SELECT value FROM results WHERE task=? AND is_primary=1", (ETHICS,)
        )
    # ties go to the recorded models: they have the judge-mean tie-break, the baseline has no judge
    expected = 1 + sum(1 for v in recorded.values() if round(v, 12) >= round(ours, 12))
    rows = {r["run_dir"]: r for r in read_csv(tmp_path / "report.csv") if r["primary"] == "True"}
    assert int(rows[str(full)]["rank_among_recorded"]) == expected
    assert set(rows[str(full)]["recorded_compared"].split(";")) == set(recorded)
    assert rows[str(limited)]["rank_among_recorded"] == ""
    assert "--limit 10" in rows[str(limited)]["not_placed_because"]
    # the run's own report (written at the end of `trustmh run`) places it too
    own = {r["subtask"]: r for r in read_csv(full / "report.csv") if r["primary"] == "True"}
    assert int(own[ETHICS]["rank_among_recorded"]) == expected


def test_report_errors_are_one_line(tmp_path: Path) -> None:
    missing = run_cli("report", str(tmp_path / "nope"), "-o", str(tmp_path / "r.html"))
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "not a run directory" in missing.stderr
    run = write_synthetic_run(tmp_path / "run", [SyntheticTask(ETHICS, 3)])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    unwritable = run_cli("report", str(run), "-o", str(blocker / "r.html"), "--no-reference")
    assert unwritable.returncode == 2 and "cannot write there" in unwritable.stderr
    assert unwritable.stderr.strip().count("\n") == 0


def test_breakdown_names_follow_the_metrics_convention(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "run", [SyntheticTask(ETHICS, 5, dimension="method",
                                                                variants=("a=b", "c"))])  # fmt: skip
    report = make_report([run], reference=False)
    [breakdown] = report.breakdowns
    assert (breakdown.metric, breakdown.dimension) == ("accuracy", "method")
    assert not breakdown.numeric and not breakdown.curve
    groups = [split_metric_name(f"accuracy[method={g}]")[2] for g in ("a=b", "c")]
    assert [p.group for p in breakdown.points] == groups


def test_named_levels_are_a_curve_in_their_stored_order(tmp_path: Path) -> None:
    levels = ("clean", "char@0.1", "char@0.1+word@0.1", "char@0.1+word@0.1+sentence@2")
    tasks = [SyntheticTask(ETHICS, 5, dimension="level", variants=levels)]
    run = write_synthetic_run(tmp_path / "run", tasks)
    files = write_report([run], tmp_path / "r.html", reference=False)
    [breakdown] = make_report([run], reference=False).breakdowns
    assert breakdown.curve and not breakdown.numeric
    assert [(p.group, p.x) for p in breakdown.points] == [
        (g, float(i)) for i, g in enumerate(levels)
    ]
    names = sorted(p.name for p in files.figures)
    assert names == [f"{ETHICS}-accuracy-by-level.png", "radar.png"]


def test_judges_show_their_measured_agreement(tmp_path: Path) -> None:
    from trustmh.judge_check import JudgeAgreement, save_results
    from trustmh.tasks.registry import all_tasks

    judged = [t for t in all_tasks().values() if t.judge_attribute][:2]
    assert len(judged) == 2, "needs two registered subtasks that declare a judge attribute"
    tasks = [SyntheticTask(t.id, 4, t.direction, judged=True) for t in judged]
    run = write_synthetic_run(tmp_path / "run", tasks)  # its judge: synthetic:judge
    checked = judged[0].judge_attribute
    row = JudgeAgreement.from_flat({"judge": "synthetic:judge", "attribute": checked, "reference": "human",
                                    "source": "mentalalign", "n_items": 500, "n_conversations": 100,
                                    "icc_a1": 0.71, "icc_a1_ci_low": 0.65, "icc_a1_ci_high": 0.77,
                                    "bias": 0.12, "verdict": "trusted"})  # fmt: skip
    save_results([row], "mentalalign")
    report = make_report([run], reference=False)
    rows = {j.task: j for j in report.judges}
    assert set(rows) == {t.id for t in judged}
    first = rows[judged[0].id]
    assert (first.models, first.verdict, first.attribute) == (
        ["synthetic:judge"],
        "trusted",
        checked,
    )
    assert first.agreement == row.summary() and first.status == {"judge_status=ok": 4}
    other = rows[judged[1].id]
    if other.attribute.lower() != checked.lower():
        assert other.verdict is None and "not measured" in other.agreement


def test_ranking_runs_shows_the_judges_model_level_agreement_too(tmp_path: Path) -> None:
    # one run: a score of replies, item level only; two runs ranked on it: ranking models is a
    # claim about models, so the model level is shown beside it (not measured for this judge)
    from trustmh.tasks.registry import all_tasks

    judged = next(t for t in all_tasks().values() if t.judge_attribute and t.in_protocol)
    tasks = [SyntheticTask(judged.id, 4, judged.direction, judged=True)]
    runs = [write_synthetic_run(tmp_path / f"run{i}", tasks, seed=i) for i in range(2)]
    [alone] = make_report(runs[:1], reference=False).judges
    assert alone.rank_agreement is None
    both = make_report(runs, reference=False).judges
    assert len(both) == 2
    for row in both:
        assert "not measured at model level (ranking models)" in row.rank_agreement
        assert row.rank_verdict is None and "not measured" in row.agreement
    html = write_report(runs, tmp_path / "r.html", reference=False).html.read_text(encoding="utf-8")
    assert "ranks: not measured at model level" in html and "<em>model level</em>" in html


def test_an_untrusted_judge_is_named_beside_every_number_it_judged(tmp_path: Path) -> None:
    from trustmh.judge_check import JudgeAgreement, save_results
    from trustmh.tasks.registry import all_tasks

    judged = [t for t in all_tasks().values() if t.judge_attribute][:2]
    tasks = [SyntheticTask(t.id, 4, t.direction, judged=True) for t in judged]
    tasks.append(SyntheticTask(LEAKAGE, 4, "lower"))  # no judge verdicts stored
    run = write_synthetic_run(tmp_path / "run", tasks)  # its judge: synthetic:judge
    failed = JudgeAgreement.from_flat({"judge": "synthetic:judge", "attribute": "appropriateness",
                                       "reference": "H1", "source": "crisis", "n_items": 20,
                                       "n_conversations": 20, "icc_a1": 0.05, "icc_a1_ci_low": -0.3,
                                       "icc_a1_ci_high": 0.4, "bias": 0.9, "verdict": "not trusted"})  # fmt: skip
    save_results([failed], "crisis")
    files = write_report([run], tmp_path / "out" / "r.html", figures=False, reference=False)
    page = files.html.read_text(encoding="utf-8")
    assert page.count('<span class="judge-verdict untrusted"') == len(judged)
    rows = read_csv(files.csv)
    verdicts = {(r["subtask"], r["judge_verdict"]) for r in rows}
    assert verdicts == {*((t.id, "not trusted") for t in judged), (LEAKAGE, "")}


def test_runs_with_one_label_keep_their_own_ranks(tmp_path: Path) -> None:
    from trustmh.store import RunStore

    # two runs named alike in folders named alike, and a third without a score
    tasks = [SyntheticTask(ETHICS, 30, p_correct=0.8)]
    same = [write_synthetic_run(tmp_path / p / "run", tasks, label="same", seed=seed)
            for p, seed in (("a", 1), ("b", 2))]  # fmt: skip
    blank = write_synthetic_run(tmp_path / "c", tasks, status_fn=lambda task, i: "error")
    values = []
    for run in same:
        store = RunStore(run)
        try:
            values.append(next(m.value for m in store.results()[ETHICS] if m.primary))
        finally:
            store.close()
    assert values[0] != values[1], "the seeds should give the two runs different scores"
    report = make_report([*same, blank], reference=False)
    assert len({r.label for r in report.runs}) == 3
    [row] = report.rows
    expected = [1 + sum(other > mine for other in values) for mine in values]
    assert [c.rank for c in row.cells] == [*expected, None]  # type: ignore[union-attr]
    files = write_report([*same, blank], tmp_path / "r.html", figures=False, reference=False)
    page = files.html.read_text(encoding="utf-8")
    assert "of 2</span>" in page and "of 3</span>" not in page  # ranked among the scored runs


def test_figures_accept_an_interval_that_excludes_the_value(tmp_path: Path) -> None:
    from trustmh.metrics import breakdown_name
    from trustmh.store import RunStore
    from trustmh.types import MetricValue

    run = tmp_path / "run"
    store = RunStore(run)
    try:
        store.set_meta("config", {"model": "m"})
        # percentile bootstrap intervals need not contain the point estimate
        store.put_results(ETHICS, [
            MetricValue("accuracy", 0.5, 10, "higher", True, 0.55, 0.7),
            *(MetricValue(breakdown_name("accuracy", dim, group), 0.4, 10, "higher", False, 0.45, 0.6)
              for dim, group in (("level", "0.1"), ("level", "0.2"), ("method", "a"))),
        ])  # fmt: skip
    finally:
        store.close()
    files = write_report([run], tmp_path / "r.html", reference=False)
    assert len(files.figures) == 3  # the radar, the level curve and the method bars
