"""Comparing runs honestly (protocol 1.9): per subtask and pair of runs, on the units both runs
scored, the paired difference of the primary metric with a paired bootstrap interval, a test
suited to the metric (McNemar's exact test for a mean of 0/1 values, else a paired permutation
test of the metric itself), Holm's correction over every test made, and a verdict with the
minimum detectable difference at this n.

    runs.py   reading runs, and why two runs may not be comparable on a subtask
    stats.py  the paired bootstrap, permutation and McNemar tests, Holm, the detectable difference
    gate.py   regression rules for CI (`trustmh compare BASELINE NEW --gate RULES`)
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from trustmh.compare.runs import CompareRun, data_warnings, mismatches
from trustmh.paired import ACCURACY, Paired, Units
from trustmh.tasks.base import Task

ALPHA = 0.05
MIN_SHARED = 2  # fewer shared units than this: no test

# verdict codes
A_BETTER, B_BETTER, NO_DIFFERENCE = "a_better", "b_better", "no_difference"
NOT_COMPARABLE, TOO_FEW = "not_comparable", "too_few"


@dataclass
class SubtaskComparison:
    """Two runs on one subtask. Values are on the shared units; `diff` is A - B."""

    task: str
    title: str
    metric: str
    direction: str
    a: int  # run indices
    b: int
    unit: str = "item"
    procedure: str = ""
    n_shared: int = 0
    n_a: int = 0  # units the run scored on this subtask
    n_b: int = 0
    value_a: float | None = None
    value_b: float | None = None
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    se: float | None = None  # standard error of the difference (bootstrap)
    test: str | None = None
    p: float | None = None
    p_holm: float | None = None
    mdd: float | None = None
    verdict: str = NOT_COMPARABLE
    reasons: list[str] = field(default_factory=list)  # why not comparable
    warnings: list[str] = field(default_factory=list)  # accepted differences, unchecked things
    counts: dict[str, int] = field(default_factory=dict)  # e.g. McNemar's discordant pairs

    @property
    def tested(self) -> bool:
        """True when a test was made (the row is in Holm's family)."""
        return self.p is not None

    @property
    def winner(self) -> int | None:
        """The index of the better run, or None."""
        return {A_BETTER: self.a, B_BETTER: self.b}.get(self.verdict)

    def verdict_text(self, label_a: str = "A", label_b: str = "B") -> str:
        """The verdict in words."""
        if self.verdict == A_BETTER:
            return f"{label_a} better"
        if self.verdict == B_BETTER:
            return f"{label_b} better"
        if self.verdict == NO_DIFFERENCE:
            detectable = f" (detectable: ±{self.mdd:.3g})" if self.mdd is not None else ""
            return f"no detectable difference{detectable}"
        if self.verdict == TOO_FEW:
            return f"too few shared {self.unit}s ({self.n_shared})"
        return "not comparable: " + "; ".join(self.reasons)


@dataclass
class Comparison:
    """Every pair of runs on every subtask they have, with Holm's correction over all tests."""

    runs: list[CompareRun]
    rows: list[SubtaskComparison]
    alpha: float
    seed: int
    allowed: tuple[str, ...] = ()

    @property
    def n_tests(self) -> int:
        """Size of Holm's family: the tests made."""
        return sum(r.tested for r in self.rows)

    def pair(self, a: int, b: int) -> list[SubtaskComparison]:
        """The rows of one pair, in subtask order."""
        return [r for r in self.rows if (r.a, r.b) == (a, b)]


def compare_runs(runs: Sequence[CompareRun], registry: Mapping[str, Task], *,
                 tasks: Sequence[str] | None = None, alpha: float = ALPHA,
                 allow: Sequence[str] = (), seed: int = 0,
                 permutations: int | None = None) -> Comparison:  # fmt: skip
    """Compare every pair of runs (in the order given: the first of a pair is A) on every subtask
    both ran (or those in `tasks`), then correct all p-values together (Holm)."""
    order = list(registry)
    ids = dict.fromkeys(t for run in runs for t in run.results)
    if tasks is not None:
        ids = dict.fromkeys(t for t in ids if t in tasks)
    task_ids = sorted(ids, key=lambda t: order.index(t) if t in order else len(order))
    units: dict[tuple[int, str], Units] = {}
    rows = []
    for i, j in combinations(range(len(runs)), 2):
        for task_id in task_ids:
            rows.append(_compare(runs, i, j, task_id, registry.get(task_id), units, allow, seed,
                                 permutations))  # fmt: skip
    tested = [r for r in rows if r.tested]
    from trustmh.compare.stats import holm, minimum_detectable

    for row, adjusted in zip(tested, holm([r.p for r in tested]), strict=True):  # type: ignore[misc]
        row.p_holm = adjusted
        if row.diff is not None and adjusted < alpha and row.diff != 0:
            a_higher = row.diff > 0
            row.verdict = A_BETTER if a_higher == (row.direction == "higher") else B_BETTER
        else:
            row.verdict = NO_DIFFERENCE
        # at the strictest of Holm's thresholds: a difference this large is detected (80% power)
        # whatever the other tests give
        row.mdd = minimum_detectable(row.se or 0.0, alpha / len(tested))
    return Comparison(list(runs), rows, alpha, seed, tuple(allow))


def _seed(seed: int, task_id: str) -> int:
    """A resampling seed per (compare seed, subtask): the same numbers whatever else is compared."""
    return zlib.crc32(f"{seed}|{task_id}".encode())


def _units(runs: Sequence[CompareRun], index: int, task_id: str, paired: Paired,
           cache: dict[tuple[int, str], Units]) -> Units:  # fmt: skip
    key = (index, task_id)
    if key not in cache:
        run = runs[index]
        cache[key] = paired.units(run.samples.get(task_id, []), run.options_for(task_id))
    return cache[key]


def _compare(runs: Sequence[CompareRun], i: int, j: int, task_id: str, task: Task | None,
             cache: dict[tuple[int, str], Units], allow: Sequence[str], seed: int,
             permutations: int | None = None) -> SubtaskComparison:  # fmt: skip
    import numpy as np

    from trustmh.compare import stats
    from trustmh.metrics import percentile_interval

    a, b = runs[i], runs[j]
    primary = a.primary(task_id) or b.primary(task_id)
    row = SubtaskComparison(
        task=task_id,
        title=task.title if task else task_id,
        metric=primary.name if primary else (task.metric if task else "?"),
        direction=(primary.direction if primary else (task.direction if task else "higher")),
        a=i,
        b=j,
    )
    missing = [run.label for run in (a, b) if task_id not in run.results]
    if missing:
        row.reasons.append(f"not run by {', '.join(missing)}")
        return row
    if task is None:
        row.reasons.append("this subtask is not registered in this installation of trustmh")
        return row
    paired = task.paired or ACCURACY
    row.unit, row.procedure = paired.unit, paired.procedure
    found = mismatches(a, b, task_id, task.needs_judge, task.option_names, paired.judged)
    row.reasons += [m.reason for m in found if m.kind not in allow]
    row.warnings += [m.reason for m in found if m.kind in allow]
    row.warnings += data_warnings(a, b, task_id)
    try:
        units_a = _units(runs, i, task_id, paired, cache)
        units_b = _units(runs, j, task_id, paired, cache)
    except (KeyError, TypeError, ValueError) as exc:  # samples without what the metric reads
        row.reasons.append(
            f"the metric cannot be rebuilt from the stored samples ({type(exc).__name__}: {exc})"
        )
        return row
    row.n_a, row.n_b = len(units_a), len(units_b)
    for run, units in ((a, units_a), (b, units_b)):
        problem = _reproduces(paired, run, task_id, units)
        if problem and task.paired is None and "is not what" in problem:
            problem += (
                f", or {task_id} is not an accuracy over its samples and declares no paired form "
                "(protocol 1.9)"
            )
        if problem and problem not in row.reasons:
            row.reasons.append(problem)
    if row.reasons:
        return row
    options = a.options_for(task_id)
    data = stats.table(paired, units_a, units_b)
    row.n_shared = data.n
    if data.n < MIN_SHARED:
        row.verdict = TOO_FEW
        return row
    value_a = stats.metric(paired, data.a, data.columns, options)
    value_b = stats.metric(paired, data.b, data.columns, options)
    if not (math.isfinite(value_a) and math.isfinite(value_b)):
        row.reasons.append(f"the metric is undefined on the {data.n} shared {paired.unit}s")
        return row
    row.value_a, row.value_b, row.diff = value_a, value_b, value_a - value_b
    boot = stats.bootstrap_differences(paired, data, options, _seed(seed, task_id))
    row.ci_low, row.ci_high = percentile_interval(boot)
    finite = boot[np.isfinite(boot)]
    row.se = float(np.std(finite, ddof=1)) if finite.size > 1 else 0.0
    if data.binary_mean(paired):
        row.p, only_a, only_b = stats.mcnemar_p(data)
        row.test = "McNemar exact"
        row.counts.update({"only_a": only_a, "only_b": only_b})
    else:
        row.p, valid = stats.permutation_p(paired, data, options, _seed(seed, task_id) + 1, row.diff,
                                           permutations or stats.PERMUTATIONS)  # fmt: skip
        row.test = f"paired permutation ({valid:,})"
    return row


def _reproduces(paired: Paired, run: CompareRun, task_id: str, units: Units) -> str | None:
    """None when the paired form gives the run's stored primary value from all its units, else why
    not (the procedure would compare something else than the subtask's score)."""
    from trustmh.compare import stats

    stored = run.primary(task_id)
    recomputed = stats.units_metric(paired, units, run.options_for(task_id))
    value = stored.value if stored else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if math.isfinite(recomputed):
            return (
                f"{run.label} has no stored score on it ({stored.note if stored else 'no result'})"
            )
        return f"{run.label} has no score on it" + (
            f" ({stored.note})" if stored and stored.note else ""
        )
    if not math.isfinite(recomputed) or abs(recomputed - value) > 1e-6 * max(1.0, abs(value)):
        return (
            f"{run.label}'s stored {stored.name} ({value:.6g}) is not what its scored samples give "  # type: ignore[union-attr]
            f"({recomputed:.6g}); rerun its `trustmh run` with the same --run-dir to refresh it"
        )
    return None


def as_plain(comparison: Comparison) -> dict[str, Any]:
    """The comparison as plain data (for --json and the report's JSON)."""
    from dataclasses import asdict

    return {
        "alpha": comparison.alpha,
        "seed": comparison.seed,
        "allowed": list(comparison.allowed),
        "tests": comparison.n_tests,
        "correction": "Holm over every test in this comparison",
        "runs": [
            {"index": k, "label": r.label, "run_dir": str(r.run_dir)}
            for k, r in enumerate(comparison.runs)
        ],  # fmt: skip
        "subtasks": [
            {
                **asdict(row),
                "verdict_text": row.verdict_text(
                    comparison.runs[row.a].label, comparison.runs[row.b].label
                ),
            }
            for row in comparison.rows
        ],  # fmt: skip
    }
