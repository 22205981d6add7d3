"""Tables of `trustmh reproduce`: rows, ranks, `reproduction.csv`, a Markdown table and a rich Table.

Input: per-model results `{model display name: {task id: [MetricValue, ...]}}` as the tasks'
`aggregate` returned them. Every number comes from those MetricValues; the paper's published
ranks (bundled `reference/paper_ranks.csv`) are shown next to ours as context only.

Ranking (protocol 1.6): per subtask, models with a primary value are ranked 1..k on it in the
metric's direction; ties are broken by the subtask's secondary metric where one exists (ethics:
the mean judge score, higher is better), otherwise they share a standard competition rank (1, 2, 2, 4).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from rich.table import Table

from trustmh.outputs import atomic_output, write_text_atomic
from trustmh.types import MetricValue

PAPER_RANKS = Path(__file__).resolve().parent / "bundled" / "reference" / "paper_ranks.csv"
# per subtask, what is known to keep a reproduction from matching the paper (protocol sections)
KNOWN_GAPS = PAPER_RANKS.with_name("reproduction_gaps.csv")
# subtask -> (secondary metric, its direction) used to break ties on the primary metric.
TIE_BREAKS: dict[str, tuple[str, str]] = {"ethics.ethical_reasoning": ("judge_mean", "higher")}
CSV_NAME = "reproduction.csv"
MARKDOWN_NAME = "reproduction.md"
_DIGITS = 12  # primary values equal to this many digits are a tie

Results = Mapping[str, Mapping[str, Sequence[MetricValue]]]


@dataclass(frozen=True)
class Row:
    """One line of reproduction.csv."""

    model: str
    pillar: str
    subtask: str
    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    direction: str
    primary: bool
    n_scored: int
    n_unparseable: int
    rank: int | None
    paper_rank: int | None
    note: str


def pillar_of(task_id: str) -> str:
    """The pillar part of a subtask id ("privacy.awareness" -> "privacy")."""
    return task_id.split(".", 1)[0]


def primary_metric(metrics: Sequence[MetricValue]) -> MetricValue | None:
    """The metric flagged primary, if any."""
    return next((m for m in metrics if m.primary), None)


def _usable(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def rank_models(results: Results, task_id: str) -> dict[str, int | None]:
    """Rank (1 = best) of every model on a subtask; None for models without a primary value."""
    keys: dict[str, tuple[float, float]] = {}
    ranks: dict[str, int | None] = {}
    tie_break = TIE_BREAKS.get(task_id)
    for model, per_task in results.items():
        metrics = per_task.get(task_id)
        if not metrics:
            continue
        primary = primary_metric(metrics)
        if primary is None or not _usable(primary.value):
            ranks[model] = None
            continue
        sign = -1.0 if primary.direction == "higher" else 1.0
        second = 0.0
        if tie_break:
            found = next((m for m in metrics if m.name == tie_break[0] and _usable(m.value)), None)
            if found is not None:
                second = (-1.0 if tie_break[1] == "higher" else 1.0) * found.value  # type: ignore[operator]
        keys[model] = (round(sign * primary.value, _DIGITS), round(second, _DIGITS))  # type: ignore[operator]
    for model, key in keys.items():
        ranks[model] = 1 + sum(1 for other in keys.values() if other < key)
    return ranks


def load_paper_ranks(path: Path = PAPER_RANKS) -> dict[tuple[str, str], tuple[int, str]]:
    """The paper's published ranks: (subtask, model) -> (rank, note)."""
    with path.open(encoding="utf-8", newline="") as fh:
        return {
            (r["subtask"], r["model"]): (int(r["rank"]), r.get("note") or "")
            for r in csv.DictReader(fh)
        }


def build_rows(
    results: Results, paper_ranks: Mapping[tuple[str, str], tuple[int, str]] | None = None
) -> list[Row]:
    """One row per (model, subtask, metric), primary metric first, with our and the paper's rank."""
    paper = load_paper_ranks() if paper_ranks is None else paper_ranks
    task_ids = list(dict.fromkeys(t for per_task in results.values() for t in per_task))
    ranks = {t: rank_models(results, t) for t in task_ids}
    rows: list[Row] = []
    for model, per_task in results.items():
        for task_id, metrics in per_task.items():
            ordered = sorted(metrics, key=lambda m: not m.primary)
            for m in ordered:
                rows.append(
                    Row(
                        model=model,
                        pillar=pillar_of(task_id),
                        subtask=task_id,
                        metric=m.name,
                        value=m.value if _usable(m.value) else None,
                        ci_low=m.ci_low,
                        ci_high=m.ci_high,
                        direction=m.direction,
                        primary=m.primary,
                        n_scored=m.n,
                        n_unparseable=m.n_unparsed,
                        rank=ranks[task_id].get(model) if m.primary else None,
                        paper_rank=paper.get((task_id, model), (None, ""))[0]
                        if m.primary
                        else None,
                        note=m.note or "",
                    )
                )
    return rows


def write_csv(rows: Sequence[Row], out_dir: Path) -> Path:
    """Write reproduction.csv into `out_dir` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / CSV_NAME
    with atomic_output(path, "--out", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[f.name for f in fields(Row)])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in asdict(row).items()})
    return path


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _fmt_ci(row: Row) -> str:
    if row.ci_low is None or row.ci_high is None:
        return ""
    return f" [{row.ci_low:.3f}, {row.ci_high:.3f}]"


def render_markdown(rows: Sequence[Row]) -> str:
    """A readable Markdown report: per subtask, each model's primary value, rank and paper rank,
    then every other metric; notes follow each table."""
    lines = [
        "# Reproduction of the paper's privacy and ethics results from the authors' recorded responses",
        "",
        "Every number is computed by the scorers from the recorded response files. Ranks are among the models",
        "scored here; the paper ranked all 12 models, so the comparison is with its order of the same models.",
        "",
        "## Verdict per pillar",
        "",
        *(f"- {line}" for line in verdict_lines(rows)),
        "",
    ]
    for subtask in dict.fromkeys(r.subtask for r in rows):
        sub_rows = [r for r in rows if r.subtask == subtask]
        primaries = sorted(
            (r for r in sub_rows if r.primary), key=lambda r: (r.rank is None, r.rank or 0, r.model)
        )
        if not primaries:
            continue
        direction = primaries[0].direction
        others = list(dict.fromkeys(r.metric for r in sub_rows if not r.primary))
        lines += [f"## {subtask} — {primaries[0].metric} ({direction} is better)", ""]
        header = [
            "model",
            primaries[0].metric,
            "rank",
            "paper rank",
            "n scored",
            "n unparseable",
            *others,
        ]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        notes: dict[str, list[str]] = {}
        for p in primaries:
            extra = {
                r.metric: _fmt(r.value) for r in sub_rows if r.model == p.model and not r.primary
            }
            cells = [
                p.model,
                _fmt(p.value) + _fmt_ci(p),
                "—" if p.rank is None else str(p.rank),
                "—" if p.paper_rank is None else str(p.paper_rank),
                str(p.n_scored),
                str(p.n_unparseable),
                *(extra.get(o, "") for o in others),
            ]
            lines.append("| " + " | ".join(cells) + " |")
            model_notes = dict.fromkeys(r.note for r in sub_rows if r.model == p.model and r.note)
            if model_notes:
                notes[p.model] = list(model_notes)
        if notes:
            lines += ["", "Notes:"]
            for model, model_notes in notes.items():
                for note in model_notes:
                    lines.append(f"- {model}: {note}")
        lines.append("")
    return "\n".join(lines)


def write_markdown(rows: Sequence[Row], out_dir: Path) -> Path:
    """Write reproduction.md into `out_dir` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MARKDOWN_NAME
    write_text_atomic(path, render_markdown(rows), "--out")
    return path


def rich_table(rows: Sequence[Row], unparsed: Mapping[str, int] | None = None) -> Table:
    """Terminal table (80 columns): one row per model, one column per subtask: value and
    rank/paper rank; the caption says which subtask each column is.

    `unparsed` gives each model's count of unparseable replies over all its scored samples; without
    it the column sums the primary metrics' counts."""
    from rich import box

    subtasks = list(dict.fromkeys(r.subtask for r in rows if r.primary))
    table = Table(
        title="Reproduction from recorded responses",
        caption=f"Columns: {', '.join(subtasks)}: primary metric (↑ higher is better, ↓ lower), "
        "our rank among the recorded models / the paper's rank among its 12; — not recorded.",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
    )
    table.add_column("model", no_wrap=True)
    for subtask in subtasks:
        first = next(r for r in rows if r.primary and r.subtask == subtask)
        arrow = "↑" if first.direction == "higher" else "↓"
        table.add_column(f"{subtask.split('.', 1)[1]} {arrow}", justify="right", no_wrap=True)
    table.add_column("unparsed", justify="right", no_wrap=True)
    for model in dict.fromkeys(r.model for r in rows):
        cells = [model]
        for subtask in subtasks:
            p = next(
                (r for r in rows if r.primary and r.model == model and r.subtask == subtask), None
            )
            if p is None:
                cells.append("—")
                continue
            rank = "—" if p.rank is None else str(p.rank)
            paper = "—" if p.paper_rank is None else str(p.paper_rank)
            cells.append(f"{_fmt(p.value)} {rank}/{paper}")
        if unparsed is not None:
            cells.append(str(unparsed.get(model, 0)))
        else:
            cells.append(str(sum(r.n_unparseable for r in rows if r.primary and r.model == model)))
        table.add_row(*cells)
    return table


# ------------------------------------------------------------------------------------ verdicts


@dataclass(frozen=True)
class Comparison:
    """Our ranks of the recorded models on one subtask against the paper's order of the same
    models (its ranks among all 12, re-ranked among these)."""

    subtask: str
    models: list[str]
    ours: dict[str, int]
    paper: dict[str, int]  # the paper's order among `models`, 1..k

    @property
    def matched(self) -> bool:
        """Every model in the paper's place."""
        return self.ours == self.paper

    @property
    def misplaced(self) -> list[str]:
        """Models whose rank differs from the paper's order, worst first."""
        return sorted((m for m in self.models if self.ours[m] != self.paper[m]),
                      key=lambda m: (-abs(self.ours[m] - self.paper[m]), m))  # fmt: skip


def compare_with_paper(rows: Sequence[Row]) -> list[Comparison]:
    """Per subtask with published ranks: our ranks against the paper's order of the same models."""
    out = []
    for subtask in dict.fromkeys(r.subtask for r in rows if r.primary):
        ranked = [r for r in rows if r.primary and r.subtask == subtask
                  and r.rank is not None and r.paper_rank is not None]  # fmt: skip
        if len(ranked) < 2:
            continue
        paper = {r.model: 1 + sum(o.paper_rank < r.paper_rank for o in ranked) for r in ranked}  # type: ignore[operator]
        out.append(Comparison(subtask, [r.model for r in ranked],
                              {r.model: r.rank for r in ranked}, paper))  # type: ignore[misc]  # fmt: skip
    return out


def load_known_gaps(path: Path = KNOWN_GAPS) -> dict[str, tuple[str, str]]:
    """subtask -> (protocol section, what keeps its reproduction from matching the paper)."""
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as fh:
        return {r["subtask"]: (r["section"], r["reason"]) for r in csv.DictReader(fh)}


def verdict_lines(rows: Sequence[Row], gaps: Mapping[str, tuple[str, str]] | None = None) -> list[str]:  # fmt: skip
    """One line per pillar: did the reproduction rank the recorded models as the paper did, and
    where not, which models moved and why (the known gap, with its protocol section)."""
    gaps = load_known_gaps() if gaps is None else gaps
    by_pillar: dict[str, list[Comparison]] = {}
    for c in compare_with_paper(rows):
        by_pillar.setdefault(pillar_of(c.subtask), []).append(c)
    lines = []
    for pillar, comparisons in by_pillar.items():
        parts = []
        for c in comparisons:
            name = c.subtask.split(".", 1)[1]
            if c.matched:
                parts.append(
                    f"{name} ranks all {len(c.models)} recorded models in the paper's order"
                )
                continue
            moved = ", ".join(f"{m} {c.ours[m]} (paper's order: {c.paper[m]})" for m in c.misplaced)
            section, reason = gaps.get(c.subtask, ("", ""))
            why = f": {reason} (protocol {section})" if reason else ""
            parts.append(
                f"{name} does not ({len(c.misplaced)} of {len(c.models)} models out of place: {moved}){why}"
            )
        matched = sum(c.matched for c in comparisons)
        verdict = ("matched" if matched == len(comparisons)
                   else "not matched" if matched == 0 else "partly matched")  # fmt: skip
        lines.append(f"{pillar}: {verdict}: " + "; ".join(parts) + ".")
    return lines
