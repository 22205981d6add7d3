"""Saved judge-check results and the public lookup API that reports and run summaries use."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from rich.console import Console

from trustmh.judge_check import describe, lookup, results_dir, save_results
from trustmh.judge_check.results import JudgeAgreement, Thresholds, agreement_row
from trustmh.judge_check.stats import pair_tables, resample_weights


def make_row(judge: str, attribute: str, offset: float, reference: str = "human",
             kind: str = "judge", source: str = "mentalalign") -> JudgeAgreement:  # fmt: skip
    """A row from scripted scores: the judge = reference + offset on a 1-5 spread."""
    rng = np.random.default_rng(len(judge) + len(attribute))
    ref = rng.integers(1, 5, 80).astype(float)
    jud = np.clip(ref + offset, 1, 5)
    return agreement_row(judge=judge, attribute=attribute, reference=reference, source=source,
                         pairs=pair_tables(ref, jud, np.arange(80)),
                         weights=resample_weights(80, 50, 0), thresholds=Thresholds(),
                         kind=kind)  # fmt: skip


def test_results_live_under_the_cache_root(isolated_cache: Path) -> None:
    assert results_dir() == isolated_cache / "judge_checks"


def test_save_then_lookup_round_trips(isolated_cache: Path) -> None:
    row = make_row("openai:gpt-4.1", "Empathy", 0.0)
    [path] = save_results([row, make_row("openai:gpt-4.1", "CSS", 1.0)], "mentalalign")
    assert path.parent == isolated_cache / "judge_checks"
    found = lookup("openai:gpt-4.1", "empathy")  # any case
    assert found == row and found.trusted and found.matched_by is None
    assert lookup("openai:gpt-4.1", "cognitive").attribute == "CSS"  # group alias
    assert lookup("openai:gpt-4.1", "Safety") is None
    assert lookup("openai:gpt-4o-mini", "Empathy") is None


def test_a_new_run_replaces_only_its_own_rating_set() -> None:
    save_results([make_row("openai:j", "Guidance", 0.0)], "mentalalign")
    save_results([make_row("openai:j", "appropriateness", 0.0, "H1", source="crisis")], "crisis")
    replaced = make_row("openai:j", "Guidance", 1.0)
    save_results([replaced], "mentalalign")
    assert lookup("openai:j", "Guidance") == replaced
    assert lookup("openai:j", "appropriateness").reference == "H1"


def test_lookup_returns_the_most_conservative_expert_and_never_the_ceiling() -> None:
    vs_h1 = make_row("openai:j", "appropriateness", 0.0, "H1", source="crisis")
    vs_h2 = make_row("openai:j", "appropriateness", 1.0, "H2", source="crisis")
    ceiling = make_row("H2", "appropriateness", 0.0, "H1", kind="ceiling", source="crisis")
    save_results([vs_h1, vs_h2, ceiling], "crisis")
    found = lookup("openai:j", "appropriateness")
    assert found == vs_h2  # its ICC(A,1) lower bound is the lower one
    assert found.stats["icc_a1"].ci_low < vs_h1.stats["icc_a1"].ci_low
    assert lookup("H2", "appropriateness") is None  # ceilings are stored with the judge only


def test_a_spec_naming_a_recorded_judge_falls_back_to_its_published_agreement() -> None:
    recorded = make_row("mentalalign:gpt-4o", "Helpfulness", 1.0)
    save_results([recorded], "mentalalign")
    found = lookup("openai:gpt-4o@http://127.0.0.1:9/v1", "Helpfulness")
    assert found is not None and found.judge == "mentalalign:gpt-4o"
    assert "mentalalign:gpt-4o" in found.matched_by and found.matched_by in found.summary()
    own = make_row("openai:gpt-4o", "Helpfulness", 0.0)
    save_results([own], "mentalalign")
    assert lookup("openai:gpt-4o", "Helpfulness") == own  # the spec's own result wins


def test_unreadable_results_are_ignored(isolated_cache: Path) -> None:
    save_results([make_row("openai:j", "Guidance", 0.0)], "mentalalign")
    for path in (isolated_cache / "judge_checks").iterdir():
        path.write_text("{not json")
    assert lookup("openai:j", "Guidance") is None


def test_describe_names_the_judge_and_its_agreement() -> None:
    assert describe(None, "Empathy") is None
    line = describe("openai:j", "Empathy")
    assert "no judge-check result on Empathy (not measurable for this judge" in line
    row = make_row("openai:j", "Empathy", 1.0)
    save_results([row], "mentalalign")
    line = describe("openai:j", "Empathy")
    assert line.startswith(
        "judge openai:j: not trusted to rate replies (item level) on Empathy vs human"
    )
    assert f"{row.get('icc_a1'):.2f}" in line and "bias +" in line


def test_run_summary_prints_the_judge_line(tmp_path: Path) -> None:
    from trustmh.engine import RunSummary
    from trustmh.render import print_judge_agreement
    from trustmh.runner import RunStats

    save_results([make_row("openai:j", "appropriateness", 0.0, "H1", source="crisis")], "crisis")
    summary = RunSummary(tmp_path, "baseline", "baseline", "openai:j",
                         ["crisis.escalation_decision", "ethics.ethical_reasoning"],
                         {"crisis.escalation_decision": [], "privacy.awareness": []},
                         RunStats())  # fmt: skip
    buffer = io.StringIO()
    print_judge_agreement(summary, Console(file=buffer, width=300))
    lines = buffer.getvalue().splitlines()
    # one line per judge-scored task of the run; privacy.awareness has no judge
    assert len(lines) == 1
    assert lines[0].startswith(
        "crisis.escalation_decision: judge openai:j: trusted to rate replies (item level) on "
        "appropriateness"
    )


def test_one_screen_summary_folds_inferred_distrust_into_the_measured_line(tmp_path: Path) -> None:
    """A judge that failed judge-check where it was measured is not trusted where it was not:
    --verbose says so per subtask, the one-screen summary once, on the measured line."""
    from trustmh.engine import RunSummary
    from trustmh.render import print_judge_agreement
    from trustmh.runner import RunStats

    save_results([make_row("openai:j", "appropriateness", 1.0, "H1", source="crisis")], "crisis")
    tasks = [
        "crisis.escalation_decision",
        "ethics.ethical_reasoning",
        "safety.jailbreak_resistance",
    ]
    summary = RunSummary(tmp_path, "baseline", "baseline", "openai:j", tasks,
                         {t: [] for t in tasks}, RunStats())  # fmt: skip

    def printed(verbose: bool) -> list[str]:
        buffer = io.StringIO()
        print_judge_agreement(summary, Console(file=buffer, width=400), verbose)
        return buffer.getvalue().splitlines()

    every = printed(True)
    assert [ln.split(":", 1)[0] for ln in every] == tasks
    assert "not checked on Safety; judge-check found not trusted" in every[1]
    assert "these verdicts not checked; judge-check found not trusted" in every[2]
    [line] = printed(False)
    measured = every[0]
    assert line.startswith(measured + "; so not trusted on Safety, label verdicts either")


def test_specs_naming_a_recorded_judge_by_a_providers_id() -> None:
    from trustmh.judge_check.store import recorded_equivalent

    expected = {
        "openai:gpt-4o": "mentalalign:gpt-4o",
        "openai:gpt-4o-2024-08-06@http://127.0.0.1:9/v1": "mentalalign:gpt-4o",
        "openai:o4-mini-2025-04-16": "mentalalign:o4-mini",
        "anthropic:claude-3-7-sonnet-20250219": "mentalalign:claude-3.7-sonnet",
        "anthropic:claude-3-7-sonnet-latest": "mentalalign:claude-3.7-sonnet",
        "openai:google/gemini-2.5-flash@http://127.0.0.1:9/v1": "mentalalign:gemini-2.5-flash",
        "openai:gemini-2.5-flash-preview-05-20": "mentalalign:gemini-2.5-flash",
        "openai:gpt-4o-mini": None,  # another model of the family
        "openai:gpt-4.1": None,
        "mentalalign:gpt-4o": None,
    }
    assert {spec: recorded_equivalent(spec) for spec in expected} == expected


def test_model_level_lookup_is_computed_for_recorded_judges_and_kept_apart() -> None:
    # no judge-check was run: the model level of a recorded judge comes from the ratings (or the
    # bundled sums); the item level is not invented
    found = lookup("openai:gpt-4o", "Guidance", unit="model")
    assert found is not None and found.unit == "model" and found.n_items == 9
    assert found.judge == "mentalalign:gpt-4o" and "mentalalign:gpt-4o" in found.matched_by
    assert round(found.get("icc_c1"), 3) == 0.849 and found.reliability == "GR"
    assert "to rank models (model level)" in found.summary()
    assert lookup("openai:gpt-4o", "Guidance") is None
    assert lookup("openai:gpt-4.1", "Guidance", unit="model") is None
    # a saved item-level row is never returned for the model level, nor the reverse
    save_results([make_row("openai:j", "Guidance", 0.0)], "mentalalign")
    assert lookup("openai:j", "Guidance", unit="model") is None
    line = describe("openai:j", "Guidance", "model")
    assert "no model-level judge-check result on Guidance" in line and "--unit model" in line


def test_a_judge_that_failed_every_check_is_not_trusted_where_it_was_not_checked() -> None:
    from trustmh.judge_check import assess

    failed = make_row("local:smollm2", "appropriateness", 1.0, "H1", source="crisis")
    assert failed.verdict == "not trusted"
    save_results([failed], "crisis")
    verdict, line = assess("local:smollm2", "Empathy")
    assert verdict == "not trusted"
    assert line.startswith("not trusted: not checked on Empathy; judge-check found not trusted")
    assert "on appropriateness vs H1 (crisis" in line
    assert assess("local:smollm2", None)[0] == "not trusted"  # label verdicts (refusal, 0/1)
    assert assess("local:smollm2", "appropriateness") == ("not trusted", failed.summary())
    # a judge trusted somewhere is not judged where it was not measured
    save_results([make_row("openai:j", "appropriateness", 0.0, "H1", source="crisis")], "crisis")
    assert assess("openai:j", "Empathy") == (
        None,
        "no judge-check result on Empathy (not measurable for this judge: of these attributes, "
        "only MentalAlign's four recorded judges have ratings to compare with experts')",
    )
    assert assess("openai:j", None) == (None, "not measured against humans")
    # nor at model level (ranking models) for a judge checked at item level only
    assert assess("local:smollm2", "Empathy", unit="model")[0] is None


def test_run_summary_says_judge_not_trusted_beside_every_judged_number(tmp_path: Path) -> None:
    from trustmh.engine import RunSummary
    from trustmh.render import print_summary
    from trustmh.runner import RunStats
    from trustmh.types import MetricValue

    save_results(
        [make_row("local:smollm2", "appropriateness", 1.0, "H1", source="crisis")], "crisis"
    )
    results = {
        "crisis.escalation_decision": [MetricValue("appropriateness", 2.5, 2, "higher", True, note="n")],
        "reliability.emotional_support": [MetricValue("judge_mean", 3.0, 2, "higher", True),
                                          MetricValue("css", 3.0, 2, "higher")],
        "reliability.knowledge": [MetricValue("accuracy", 0.5, 2, "higher", True)],
    }  # fmt: skip
    summary = RunSummary(tmp_path, "local:smollm2", "local:smollm2", "local:smollm2", list(results),
                         results, RunStats())  # fmt: skip
    buffer = io.StringIO()
    print_summary(summary, Console(file=buffer, width=400))
    short = buffer.getvalue()  # the one-screen summary: the flag under each judged subtask
    assert short.count("judge not trusted") == 2, short
    buffer = io.StringIO()
    print_summary(summary, Console(file=buffer, width=400), verbose=True)  # every metric
    rows = [ln for ln in buffer.getvalue().splitlines() if "│" in ln and "." in ln.split("│")[1]]
    flagged = {
        ln.split("│")[1].strip() + "/" + ln.split("│")[2].strip()
        for ln in rows
        if "judge not trusted" in ln
    }
    assert flagged == {
        "crisis.escalation_decision/appropriateness",
        "reliability.emotional_support/judge_mean",
        "reliability.emotional_support/css",
    }  # not reliability.knowledge: no judge scored it
