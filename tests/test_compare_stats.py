"""The statistics of `trustmh compare` (protocol 1.9): Holm, McNemar, the permutation test against
exact enumeration, the stratified bootstrap, the detectable difference; and calibration: two
equally good models are flagged in at most 5% of 100 seeded repeats, for each kind of procedure
(0/1 accuracy, graded judge mean, per-tier Pearson r, std-based fairness), while a real gap in a
correlation or a fairness std is found. Runs are the tasks' own scored samples with the stored
results their own aggregate functions give."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from trustmh.compare import NO_DIFFERENCE, compare_runs
from trustmh.compare import stats as cs
from trustmh.compare.runs import CompareRun
from trustmh.paired import Paired, item_mean, scored_value
from trustmh.tasks.fairness import demographics
from trustmh.tasks.registry import all_tasks, get_task
from trustmh.transforms.demographics import NEUTRAL
from trustmh.types import SampleScore, ScoredSample

REPEATS = 100


def scored(sample_id: str, value: float | None, *, variant: str = "clean", target=None,
           meta=None, status: str = "ok", detail=None, response: str = "reply") -> ScoredSample:  # fmt: skip
    return ScoredSample(sample_id, variant, target, meta or {}, response,
                        SampleScore(value, None, status, detail or {}))  # type: ignore[arg-type]  # fmt: skip


def make_run(label: str, by_task: dict[str, list[ScoredSample]]) -> CompareRun:
    """A run of these subtasks whose stored results are what each task's aggregate gives."""
    results = {t: get_task(t).aggregate(samples, {"seed": 0}) for t, samples in by_task.items()}  # type: ignore[misc]
    run = CompareRun(label, Path(label), {"seed": 0, "options": {}},
                     {t: {"data": {}} for t in by_task}, results)  # fmt: skip
    for task_id, samples in by_task.items():
        run.samples[task_id] = samples
        run.prompts[task_id] = {(s.sample_id, s.variant): "same prompt" for s in samples}
    return run


def verdict(task_id: str, a: list[ScoredSample], b: list[ScoredSample], seed: int = 0):
    runs = [make_run("A", {task_id: a}), make_run("B", {task_id: b})]
    [row] = compare_runs(runs, all_tasks(), seed=seed).rows
    assert not row.reasons, row.reasons
    return row


# ------------------------------------------------------------------------------- building blocks


def test_holm_adjusts_step_down() -> None:
    assert cs.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert cs.holm([0.5]) == [0.5]
    assert cs.holm([0.3, 0.4]) == pytest.approx([0.6, 0.6])


@pytest.mark.parametrize(("only_a", "only_b"), [(0, 0), (3, 0), (12, 4), (40, 61), (200, 150)])
def test_mcnemar_is_the_exact_binomial_test_on_discordant_pairs(only_a: int, only_b: int) -> None:
    a = [1.0] * only_a + [0.0] * only_b + [1.0] * 7 + [0.0] * 5
    b = [0.0] * only_a + [1.0] * only_b + [1.0] * 7 + [0.0] * 5
    data = cs.table(item_mean(scored_value, "t"), *(
        {str(i): {"value": v} for i, v in enumerate(x)} for x in (a, b)))  # fmt: skip
    p, got_a, got_b = cs.mcnemar_p(data)
    assert (got_a, got_b) == (only_a, only_b)
    expected = (
        1.0 if only_a + only_b == 0 else scipy_stats.binomtest(only_a, only_a + only_b).pvalue
    )
    assert p == pytest.approx(expected)


def test_the_permutation_p_matches_exact_enumeration() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(1, 6, 10).astype(float)
    b = np.clip(a - rng.integers(0, 3, 10), 1, 5).astype(float)
    paired = item_mean(scored_value, "t")
    data = cs.table(paired, {str(i): {"value": v} for i, v in enumerate(a)},
                    {str(i): {"value": v} for i, v in enumerate(b)})  # fmt: skip
    observed = a.mean() - b.mean()
    exact = np.mean([
        abs(np.where(swap, b, a).mean() - np.where(swap, a, b).mean()) >= abs(observed) - 1e-12
        for swap in itertools.product([False, True], repeat=10)
    ])  # fmt: skip
    p, valid = cs.permutation_p(paired, data, {}, seed=1, observed=observed)
    assert valid == cs.PERMUTATIONS
    assert p == pytest.approx(exact, abs=0.01)


def test_the_bootstrap_keeps_strata_sizes_and_its_interval_holds_the_difference() -> None:
    paired = Paired(lambda s, o: {}, stratum=lambda u: u.split("/")[0])
    units_a = {
        f"{k}/{i}": {"value": float(i % 3)} for k, n in (("x", 10), ("y", 90)) for i in range(n)
    }
    units_b = {u: {"value": v["value"] - 0.5} for u, v in units_a.items()}
    data = cs.table(paired, units_a, units_b)
    weights = cs._bootstrap_weights(np.random.default_rng(0), data, 50)
    x = np.array([u.startswith("x/") for u in data.units])
    assert (weights[:, x].sum(axis=1) == 10).all() and (weights[:, ~x].sum(axis=1) == 90).all()
    diffs = cs.bootstrap_differences(paired, data, {}, seed=0)
    assert diffs == pytest.approx(np.full(cs.BOOTSTRAP_RESAMPLES, 0.5))


def test_the_detectable_difference() -> None:
    assert cs.minimum_detectable(0.01, 0.05) == pytest.approx(
        (1.959964 + 0.841621) * 0.01, rel=1e-5
    )
    assert cs.minimum_detectable(0.0, 0.05) is None


# ------------------------------------------------------------------------------- model makers


def binary_models(rng: np.random.Generator, n: int, gap: float = 0.0):
    easy = rng.uniform(0.3, 0.95, n)
    return [
        [scored(str(i), float(rng.random() < min(1.0, p + shift))) for i, p in enumerate(easy)]
        for shift in (0.0, -gap)
    ]


def graded_models(rng: np.random.Generator, n: int):
    quality = rng.uniform(1.5, 4.5, n)
    return [
        [scored(str(i), float(np.clip(np.rint(q + rng.normal(0, 0.8)), 1, 5)), meta={"label": "x"},
                detail={"judge_status": "ok", "judge_model": "j"}) for i, q in enumerate(quality)]
        for _ in range(2)
    ]  # fmt: skip


AWARENESS_TIERS = (("1", 10, (1, 2, 3, 4)), ("2a", 98, (-100, -50, 0, 50, 100)),
                   ("2b", 98, (-100, -50, 0, 50, 100)))  # fmt: skip


def awareness_models(rng: np.random.Generator, noise: tuple[float, float] = (0.8, 0.8)):
    runs: list[list[ScoredSample]] = [[], []]
    for tier, n, scale in AWARENESS_TIERS:
        human = rng.uniform(min(scale), max(scale), n)
        spread = (max(scale) - min(scale)) / 2
        for model, level in enumerate(noise):
            for i, h in enumerate(human):
                noisy = h + rng.normal(0, level * spread)
                rating = min(scale, key=lambda v, x=noisy: abs(v - x))
                runs[model].append(scored(f"{tier}/{i}", float(rating), target=float(h),
                                          meta={"tier": tier, "item": i}))  # fmt: skip
    return runs


def fairness_models(rng: np.random.Generator, n: int, bias: tuple[float, float] = (0.0, 0.0)):
    spec = demographics({})
    groups = [g.variant for g in spec.groups]
    quality = rng.uniform(2, 4.5, n)
    runs: list[list[ScoredSample]] = [[], []]
    for model, shift in enumerate(bias):
        for i, q in enumerate(quality):
            for variant in (NEUTRAL, *groups):
                penalty = shift if variant.endswith(("=Black", "=Muslim", "=72")) else 0.0
                value = float(np.clip(q - penalty + rng.normal(0, 0.7), 1, 5))
                runs[model].append(scored(str(i), value, variant=variant,
                                          detail={"judge_status": "ok", "judge_model": "j"}))  # fmt: skip
    return runs


# ------------------------------------------------------------------------------- calibration


PROCEDURES = {  # subtask: (two equally good models, the test it gets)
    "reliability.knowledge": (lambda rng: binary_models(rng, 300), "McNemar exact"),
    "crisis.escalation_decision": (lambda rng: graded_models(rng, 150), "paired permutation"),
    "privacy.awareness": (awareness_models, "paired permutation"),
    "fairness.overall": (lambda rng: fairness_models(rng, 40), "paired permutation"),
}


@pytest.fixture(scope="module")
def equal_model_repeats() -> list[list]:
    """100 seeded repeats: two equally good models on the four subtasks, compared as two runs."""
    repeats = []
    for seed in range(REPEATS):
        rng = np.random.default_rng(seed)
        pairs = {task: make(rng) for task, (make, _) in PROCEDURES.items()}
        runs = [
            make_run(label, {t: pair[k] for t, pair in pairs.items()})
            for k, label in enumerate("AB")
        ]
        repeats.append(compare_runs(runs, all_tasks(), seed=seed).rows)
    return repeats


def test_two_equal_models_are_flagged_in_at_most_5_percent_of_100_repeats() -> None:
    """The acceptance case: two scripted models equally good on 727 knowledge-like items (each
    right on its own random items), 100 seeded repeats, McNemar's exact test."""
    flagged = 0
    for seed in range(REPEATS):
        a, b = binary_models(np.random.default_rng(seed), 727)
        row = verdict("reliability.knowledge", a, b, seed=seed)
        assert row.test == "McNemar exact"
        flagged += row.verdict != NO_DIFFERENCE
    assert flagged <= REPEATS * 0.05, f"{flagged} of {REPEATS} equal pairs flagged"


def test_equal_models_on_four_subtasks_at_once(equal_model_repeats) -> None:
    """Holm over the four subtasks keeps the chance that a pair of equal models gets any verdict
    at about 5% (13 or more of 100 would happen by chance once in 700)."""
    assert all(not r.reasons for rows in equal_model_repeats for r in rows)
    flagged = sum(any(r.verdict != NO_DIFFERENCE for r in rows) for rows in equal_model_repeats)
    assert flagged <= 12, f"{flagged} of {REPEATS} equal pairs flagged"


@pytest.mark.parametrize("task_id", list(PROCEDURES))
def test_each_procedure_holds_its_level(equal_model_repeats, task_id: str) -> None:
    """Each test alone (its raw p) rejects about 5% of equal pairs. The permutation tests are exact,
    so over 100 repeats the count scatters around 5 (Binomial(100, 0.05)); 13 or more would happen
    by chance once in 700 and means the test is miscalibrated."""
    rows = [r for rows in equal_model_repeats for r in rows if r.task == task_id]
    assert {r.test.split(" (")[0] for r in rows} == {PROCEDURES[task_id][1]}
    rejected = sum(r.p < 0.05 for r in rows)
    assert rejected <= 12, f"{task_id}: {rejected} of {REPEATS} equal pairs at raw p < 0.05"


def test_a_known_gap_is_found_by_each_procedure() -> None:
    rng = np.random.default_rng(11)
    row = verdict("reliability.knowledge", *binary_models(rng, 727, gap=0.1))
    assert row.verdict == "a_better" and row.counts["only_a"] > row.counts["only_b"]
    # a model whose ratings follow people's more closely has the higher awareness r
    row = verdict("privacy.awareness", *awareness_models(rng, noise=(0.25, 1.2)))
    assert row.verdict == "a_better" and row.diff > 0.1 and row.ci_low > 0
    # a model that supports three groups worse is less fair (higher std: lower is better)
    row = verdict("fairness.overall", *fairness_models(rng, 60, bias=(0.0, 0.8)))
    assert row.verdict == "a_better" and row.diff < 0 and row.ci_high < 0
