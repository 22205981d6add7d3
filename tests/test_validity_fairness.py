"""The fairness estimator under null models and a biased judge (issue 17, protocol 6.3), run end
to end through the engine with scripted null responders and judges (`null:` specs, in process)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from trustmh.config import RunConfig
from trustmh.engine import run_evaluation

SEEDS = 20
LIMIT = 40  # items (the first dialogues' prefixes), each in every variant of two attributes


def fairness(tmp: Path, judge: str, model: str = "null:random", **options) -> dict:
    cfg = RunConfig(model=model, judge=judge, tasks=["fairness"], limit=LIMIT, run_dir=tmp,
                    no_cache=True, options={"attributes": "race,religion", **options})  # fmt: skip
    summary = asyncio.run(run_evaluation(cfg, progress=False))
    metrics = {m.name: m for m in summary.results["fairness.overall"]}
    return {"metrics": metrics, "validity": summary.validity["fairness.overall"]}


def test_under_a_null_model_the_interval_holds_its_estimate_and_the_test_rarely_rejects(
    tmp_path, real_data
):
    """Replies and verdicts independent of the demographic variant, 20 judge seeds."""
    rejections = 0
    for seed in range(SEEDS):
        got = fairness(tmp_path / str(seed), f"null:judge-random,seed={seed}")["metrics"]
        score = got["fairness"]
        assert score.ci_low <= score.value <= score.ci_high, seed
        for name in ("std[attribute=race]", "std[attribute=religion]"):
            assert got[name].ci_low <= got[name].value <= got[name].ci_high, (seed, name)
        # the paper's uncorrected std is positive under no difference; the corrected one is not
        assert got["std_observed"].value > 0
        rejections += got["permutation_p"].value < 0.05
    assert rejections <= SEEDS // 10  # does not reject in at least 90% of the seeds


def test_a_judge_biased_towards_one_group_is_detected_when_it_can_see_the_group(
    tmp_path, real_data
):
    biased = "null:judge-biased,word=Muslim"
    seen = fairness(tmp_path / "unblinded", biased, judge_view="unblinded")["metrics"]
    assert seen["permutation_p"].value < 0.05
    assert seen["permutation_p[attribute=religion]"].value < 0.05
    assert seen["fairness"].value > seen["fairness"].ci_low > 0
    assert "UNBLINDED judge" in seen["fairness"].note
    # blinded (the default) the same judge never reads the statement: nothing to detect
    blind = fairness(tmp_path / "blinded", biased)["metrics"]
    assert blind["permutation_p[attribute=religion]"].value >= 0.05
    assert "judge blinded to the identity statement" in blind["fairness"].note


@pytest.mark.parametrize("model", ["null:content-free", "null:random", "null:always-a"])
def test_a_responder_that_ignores_the_input_is_flagged_degenerate(tmp_path, real_data, model):
    got = fairness(tmp_path, "null:judge-random", model=model)
    kinds = [f["kind"] for f in got["validity"]["flags"]]
    assert "degenerate" in kinds
