"""One judge-check result (a judge x attribute row), its verdict, and its flat (CSV/JSON) form."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from trustmh.judge_check.stats import STATISTICS, Estimate, PairTables, estimate_all, pair_tables

RowKind = Literal["judge", "ceiling"]
# item: does the judge rate each reply like the experts; model: does it rank models like them
Unit = Literal["item", "model"]
TRUSTED = "trusted"
NOT_TRUSTED = "not trusted"
INSUFFICIENT = "insufficient data"
CEILING = "ceiling"


@dataclass(frozen=True)
class Thresholds:
    """When a judge is trusted on an attribute (protocol 11, DEFAULT values)."""

    # lower 95% bound the ICC must reach: ICC(A,1) at item level, ICC(C,1) at model level
    min_icc_a1_low: float = 0.6
    max_abs_bias: float = 0.5  # item level: |mean(judge - reference)| must stay below this


@dataclass(frozen=True)
class JudgeAgreement:
    """How well one judge agrees with one human reference on one attribute.

    `judge` is the judge key (a model spec, or `mentalalign:<name>` for the recorded judges),
    `reference` the human rater (`human` for MentalAlign's experts, `H1`/`H2` for the crisis
    experts), `source` the rating set (`mentalalign` or `crisis`). A `ceiling` row compares two
    human experts (the best agreement a judge can be expected to reach). `n_skipped_reference`
    counts items the reference left unscored (or scored outside the rubric), `n_skipped_judge`
    items the judge did not rate (missing or unparsed verdict). `matched_by` is set by `lookup`
    when the result was found for another spec naming the same model.

    `unit` says what the row measures (protocol 11.2): `item` (an item is one rated reply; the
    verdict rests on ICC(A,1) and the bias) or `model` (an item is one response source, the
    experts' and the judge's mean rating of its replies; `n_items` counts those models, the
    verdict rests on ICC(C,1), and `reliability` holds the published table's GR/MR/PR status).
    """

    judge: str
    attribute: str
    reference: str
    source: str
    stats: dict[str, Estimate]
    n_items: int
    n_conversations: int
    n_skipped_reference: int = 0
    n_skipped_judge: int = 0
    mean_reference: float | None = None
    mean_judge: float | None = None
    kind: RowKind = "judge"
    verdict: str = INSUFFICIENT
    reason: str = ""
    resamples: int = 0
    created: str = ""
    matched_by: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    unit: Unit = "item"
    reliability: str = ""

    def get(self, name: str) -> float | None:
        """Point estimate of a statistic (see `STATISTICS`)."""
        return self.stats[name].value

    @property
    def trusted(self) -> bool:
        """True when the verdict is `trusted`."""
        return self.verdict == TRUSTED

    def summary(self) -> str:
        """One line: verdict and unit, the ICC the verdict rests on with its interval (ICC(A,1)
        and the bias at item level, ICC(C,1) and the paper's status at model level), n, the
        reference (and how `lookup` matched it, when not by the exact spec)."""
        via = f" [{self.matched_by}]" if self.matched_by else ""
        if self.unit == "model":
            icc = self.stats["icc_c1"]
            status = f", {self.reliability}" if self.reliability else ""
            return (
                f"{self.verdict} to rank models (model level) on {self.attribute} vs "
                f"{self.reference} ({self.source}, {self.n_items} models): ICC(C,1) "
                f"{format_number(icc.value)} [{format_number(icc.ci_low)}, "
                f"{format_number(icc.ci_high)}]{status}{via}"
            )
        icc, bias = self.stats["icc_a1"], self.stats["bias"]
        label = f"{self.attribute} vs {self.reference} ({self.source}, n={self.n_items})"
        return (
            f"{self.verdict} to rate replies (item level) on {label}: ICC(A,1) {format_number(icc.value)} "
            f"[{format_number(icc.ci_low)}, {format_number(icc.ci_high)}], bias {format_number(bias.value, signed=True)}{via}"
        )

    def flat(self) -> dict[str, Any]:
        """A flat dict: identity columns, then `<stat>`, `<stat>_ci_low`, `<stat>_ci_high`."""
        row: dict[str, Any] = {
            "judge": self.judge,
            "unit": self.unit,
            "attribute": self.attribute,
            "reference": self.reference,
            "source": self.source,
            "kind": self.kind,
            "verdict": self.verdict,
            "reason": self.reason,
            "reliability": self.reliability,
            "n_items": self.n_items,
            "n_conversations": self.n_conversations,
            "n_skipped_reference": self.n_skipped_reference,
            "n_skipped_judge": self.n_skipped_judge,
            "mean_reference": self.mean_reference,
            "mean_judge": self.mean_judge,
        }
        for name in STATISTICS:
            est = self.stats[name]
            row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = (
                est.value,
                est.ci_low,
                est.ci_high,
            )
        row.update(
            resamples=self.resamples,
            min_icc_a1_low=self.thresholds.min_icc_a1_low,
            max_abs_bias=self.thresholds.max_abs_bias,
            created=self.created,
        )
        return row

    @classmethod
    def from_flat(cls, row: dict[str, Any]) -> JudgeAgreement:
        """The inverse of `flat` (as read back from JSON)."""
        stats = {
            name: Estimate(row.get(name), row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high"))
            for name in STATISTICS
        }
        return cls(
            judge=row["judge"],
            attribute=row["attribute"],
            reference=row["reference"],
            source=row["source"],
            stats=stats,
            n_items=int(row["n_items"]),
            n_conversations=int(row["n_conversations"]),
            n_skipped_reference=int(row.get("n_skipped_reference") or 0),
            n_skipped_judge=int(row.get("n_skipped_judge") or 0),
            mean_reference=row.get("mean_reference"),
            mean_judge=row.get("mean_judge"),
            kind=row.get("kind", "judge"),
            verdict=row.get("verdict", INSUFFICIENT),
            reason=row.get("reason", ""),
            resamples=int(row.get("resamples") or 0),
            created=row.get("created", ""),
            thresholds=Thresholds(
                float(row.get("min_icc_a1_low", 0.6)), float(row.get("max_abs_bias", 0.5))
            ),
            unit="model" if row.get("unit") == "model" else "item",
            reliability=row.get("reliability") or "",
        )

    def with_match(self, note: str) -> JudgeAgreement:
        """A copy noting how `lookup` matched it."""
        return replace(self, matched_by=note)


def verdict(stats: dict[str, Estimate], thresholds: Thresholds) -> tuple[str, str]:
    """(verdict, reason) at item level: trusted to rate replies when the ICC(A,1) lower bound
    reaches the threshold and the absolute bias stays below its threshold (protocol 11)."""
    low, bias = stats["icc_a1"].ci_low, stats["bias"].value
    if low is None or bias is None:
        return INSUFFICIENT, "item level: too few scored items for an interval"
    failures = []
    if low < thresholds.min_icc_a1_low:
        failures.append(f"ICC(A,1) lower bound {low:.2f} < {thresholds.min_icc_a1_low:g}")
    if abs(bias) >= thresholds.max_abs_bias:
        failures.append(f"|bias| {abs(bias):.2f} >= {thresholds.max_abs_bias:g}")
    if failures:
        return NOT_TRUSTED, "item level: " + "; ".join(failures)
    return TRUSTED, (
        f"item level: ICC(A,1) lower bound {low:.2f} >= {thresholds.min_icc_a1_low:g}, "
        f"|bias| {abs(bias):.2f} < {thresholds.max_abs_bias:g}; a score of a reply is read as "
        "an absolute number, so it needs absolute agreement and no offset"
    )


def agreement_row(
    *,
    judge: str,
    attribute: str,
    reference: str,
    source: str,
    pairs: PairTables,
    weights: np.ndarray | None,
    thresholds: Thresholds,
    n_skipped_reference: int = 0,
    n_skipped_judge: int = 0,
    kind: RowKind = "judge",
    created: str = "",
) -> JudgeAgreement:
    """Compute every statistic for one pair of raters and wrap it with its verdict."""
    stats = estimate_all(pairs, weights)
    total = pairs.total
    n = int(round(total.sum()))
    if kind == "ceiling":
        label, reason = CEILING, "agreement between the two human experts (the ceiling)"
    else:
        label, reason = verdict(stats, thresholds)
    return JudgeAgreement(
        judge=judge,
        attribute=attribute,
        reference=reference,
        source=source,
        stats=stats,
        n_items=n,
        n_conversations=int((pairs.tables.sum(axis=(1, 2)) > 0).sum()),
        n_skipped_reference=n_skipped_reference,
        n_skipped_judge=n_skipped_judge,
        mean_reference=float(total.sum(axis=1) @ pairs.values / n) if n else None,
        mean_judge=float(total.sum(axis=0) @ pairs.values / n) if n else None,
        kind=kind,
        verdict=label,
        reason=reason,
        resamples=0 if weights is None else int(weights.shape[0]),
        created=created,
        thresholds=thresholds,
    )


def compare_scores(
    reference_scores: np.ndarray,
    judge_scores: np.ndarray,
    cluster: np.ndarray,
    n_clusters: int,
    **row: Any,
) -> JudgeAgreement:
    """`agreement_row` on two raters' scores (NaN = unscored): items the reference left unscored
    count as `n_skipped_reference`, scored items the judge did not rate as `n_skipped_judge`."""
    has_ref, has_judge = np.isfinite(reference_scores), np.isfinite(judge_scores)
    both = has_ref & has_judge
    return agreement_row(
        pairs=pair_tables(reference_scores[both], judge_scores[both], cluster[both], n_clusters),
        n_skipped_reference=int((~has_ref).sum()),
        n_skipped_judge=int((has_ref & ~has_judge).sum()),
        **row,
    )


def format_number(value: float | None, signed: bool = False) -> str:
    """A statistic with two decimals (signed for biases); "n/a" when undefined."""
    if value is None:
        return "n/a"
    value = round(value, 2) + 0.0  # no "-0.00"
    return f"{value:+.2f}" if signed else f"{value:.2f}"
