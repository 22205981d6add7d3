"""`trustmh reproduce`, MentalAlign part: MentalBench-Align's published reliability, bias and
human-evaluation tables rebuilt from its ratings (protocol 11.2).

Every number comes from the rating sums (`judge_check.rating_sums.load_sums`: `ratings.csv` when a
data folder has it, else the counts and sums bundled with the package):

- `icc`: per recorded judge x attribute, ICC(C,1) and ICC(A,1) over the model-level points (the
  judge's own model left out) with upstream's bootstrap intervals, the CI width and the status
  (`judge_check.model_level`);
- `bias`: the experts' mean, the judge's mean, the bias (judge - experts) and the MSE over the
  paired ratings of the same sources;
- `human_eval`: the experts' mean per response source and attribute, and their average.

The published values (bundled `reference/mentalalign_published.csv`, transcribed from the
authors' repository with their source) are read only to be compared with. A cell reproduces its
published number when they differ by at most `TOLERANCE` (about one unit of the last published
digit beyond rounding); a cell that does not equal the published number after rounding gets a note
saying by how much and, where the data can tell, why.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from rich.table import Table

from trustmh.data.loaders import mentalalign as ma
from trustmh.data.sources import DataContext
from trustmh.judge_check.model_level import (
    ATTRIBUTE_TYPE,
    GOOD_MAX_WIDTH,
    MODERATE_MAX_WIDTH,
    PAPER_JUDGES,
    PAPER_MODELS,
    UPSTREAM_RESAMPLES,
    ModelLevelResult,
    Spread,
    bound_spread,
    model_level,
    self_source_note,
)
from trustmh.judge_check.rating_sums import HUMAN, RatingSums, load_sums

PUBLISHED = Path(__file__).resolve().parent / "bundled" / "reference" / "mentalalign_published.csv"
CSV_NAME = "mentalalign_reproduction.csv"
MARKDOWN_NAME = "mentalalign_reproduction.md"
TABLES = ("icc", "bias", "human_eval")
TOLERANCE = {"icc": 0.006, "bias": 0.006, "human_eval": 0.011}
DECIMALS = {"icc": 3, "bias": 3, "human_eval": 2}
EXPERTS = "Human experts"
AVERAGE = "Average"
BIAS_METRICS = ("human_mean", "llm_mean", "bias", "mse")
SPREAD_REPEATS = 100
SMALL_DIFFERENCE = (
    "the paper's input files (per-judge `*_with_human.csv`, not released) differ slightly "
    "from the released sheets (protocol 11.2)"
)

Key = tuple[str, str, str, str, str]  # table, judge, model, attribute, metric


@dataclass(frozen=True)
class Cell:
    """One line of mentalalign_reproduction.csv."""

    table: str
    judge: str
    model: str
    attribute: str
    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    published: float | None
    note: str

    @property
    def key(self) -> Key:
        return (self.table, self.judge, self.model, self.attribute, self.metric)

    @property
    def counted(self) -> bool:
        """A published number of the three tables (the averages are derived, not counted)."""
        return self.published is not None and self.attribute != AVERAGE

    @property
    def reproduced(self) -> bool:
        """The value lies within the tolerance of the published number."""
        return (
            self.published is not None
            and self.value is not None
            and abs(self.value - self.published) <= TOLERANCE[self.table] + 1e-12
        )


@dataclass(frozen=True)
class Published:
    """A published number, with the interval, CI width and status the ICC table gives."""

    value: float
    ci_low: float | None
    ci_high: float | None
    ci_width: float | None
    status: str
    source: str


def load_published(path: Path = PUBLISHED) -> dict[Key, Published]:
    """The transcribed published values by (table, judge, model, attribute, metric)."""

    def number(text: str) -> float | None:
        return float(text) if text.strip() else None

    with path.open(encoding="utf-8", newline="") as handle:
        return {
            (r["table"], r["judge"], r["model"], r["attribute"], r["metric"]): Published(
                float(r["published"]),
                number(r["ci_low"]),
                number(r["ci_high"]),
                number(r["ci_width"]),
                r["status"],
                r["source"],
            )  # fmt: skip
            for r in csv.DictReader(handle)
        }


@dataclass
class MentalAlignReproduction:
    """The cells, the ICC results behind them and the files written."""

    cells: list[Cell]
    icc: dict[tuple[str, str], ModelLevelResult]
    spreads: dict[tuple[str, str], Spread | None]
    origin: str
    csv_path: Path | None = None
    markdown_path: Path | None = None

    @property
    def counted(self) -> list[Cell]:
        """The cells holding one of the published numbers (231)."""
        return [c for c in self.cells if c.counted]

    @property
    def reproduced(self) -> list[Cell]:
        """Published numbers reproduced within the tolerance."""
        return [c for c in self.counted if c.reproduced]

    def statuses(self) -> list[tuple[str, str, str, str]]:
        """(judge, attribute, our status, published status) of the ICC table."""
        published = load_published()
        return [
            (
                PAPER_JUDGES[j],
                a,
                r.status,
                published[("icc", PAPER_JUDGES[j], "", a, "icc_c1")].status,
            )  # fmt: skip
            for (j, a), r in self.icc.items()
        ]

    def summary(self) -> str:
        """One line: how many published numbers were reproduced, and which were not."""
        missed = [c for c in self.counted if not c.reproduced]
        names = "; ".join(_cell_name(c) for c in missed)
        statuses = self.statuses()
        same = sum(ours == paper for _, _, ours, paper in statuses)
        return (
            f"MentalBench-Align tables: {len(self.reproduced)} of {len(self.counted)} published "
            f"numbers reproduced (ICC and bias within {TOLERANCE['icc']}, human means within "
            f"{TOLERANCE['human_eval']})"
            + (f"; not reproduced: {names} (see notes)" if missed else "")
            + f"; reliability status (from the bootstrap CI width) as published for {same} of "
            f"{len(statuses)} judge x attribute cells"
        )


def _cell_name(cell: Cell) -> str:
    who = cell.model if cell.table == "human_eval" else cell.judge
    return f"{cell.table} {who} {cell.attribute} {cell.metric}"


def build(sums: RatingSums, origin: str, published: dict[Key, Published] | None = None,
          spread_repeats: int = SPREAD_REPEATS) -> MentalAlignReproduction:  # fmt: skip
    """Every cell of the three tables, with the published values and notes."""
    published = load_published() if published is None else published
    icc = {(j, a): model_level(sums, j, a) for j in PAPER_JUDGES for a in ma.ATTRIBUTES}
    spreads = {
        key: bound_spread(r.points, repeats=spread_repeats) if spread_repeats else None
        for key, r in icc.items()
    }
    cells = [
        *_icc_cells(icc, spreads, published),
        *_bias_cells(icc, published),
        *_human_cells(sums, published),
    ]
    return MentalAlignReproduction(cells, icc, spreads, origin)


def _icc_cells(icc, spreads, published) -> list[Cell]:
    cells = []
    for (judge, attribute), r in icc.items():
        name = PAPER_JUDGES[judge]
        for metric, est in (("icc_c1", r.icc_c1), ("icc_a1", r.icc_a1)):
            pub = published.get(("icc", name, "", attribute, metric))
            note = _difference_note("icc", est.value, pub)
            if metric == "icc_c1":
                note = _join(note, _interval_note(r, spreads[(judge, attribute)], pub))
            cells.append(Cell("icc", name, "", attribute, metric, est.value, est.ci_low,
                              est.ci_high, pub.value if pub else None, note))  # fmt: skip
    return cells


def _bias_cells(icc, published) -> list[Cell]:
    cells = []
    for (judge, attribute), r in icc.items():
        name = PAPER_JUDGES[judge]
        values = {"human_mean": r.human_mean, "llm_mean": r.judge_mean, "bias": r.bias,
                  "mse": r.mse}  # fmt: skip
        for metric in BIAS_METRICS:
            pub = published.get(("bias", name, "", attribute, metric))
            cells.append(Cell("bias", name, "", attribute, metric, values[metric], None, None,
                              pub.value if pub else None,
                              _difference_note("bias", values[metric], pub)))  # fmt: skip
    return cells


def human_means(sums: RatingSums) -> dict[str, dict[str, float | None]]:
    """The experts' mean per response source (paper order) and attribute, plus `Average` (the
    mean of the seven attribute means, as the paper's last column)."""
    human = ma.RATERS.index(HUMAN)
    out: dict[str, dict[str, float | None]] = {}
    for source in PAPER_MODELS:
        s = ma.RESPONSE_SOURCES.index(source)
        row: dict[str, float | None] = {}
        for a, attribute in enumerate(ma.ATTRIBUTES):
            n = sums.n[human, s, a]
            row[attribute] = float(sums.sum[human, s, a] / n) if n else None
        values = [v for v in row.values() if v is not None]
        row[AVERAGE] = float(np.mean(values)) if len(values) == len(ma.ATTRIBUTES) else None
        out[source] = row
    return out


def _human_cells(sums, published) -> list[Cell]:
    cells = []
    for source, row in human_means(sums).items():
        model = PAPER_MODELS[source]
        paper_row = {
            a: published[k].value
            for a in (*ma.ATTRIBUTES, AVERAGE)
            if (k := ("human_eval", EXPERTS, model, a, "human_mean")) in published
        }
        for attribute, value in row.items():
            pub = published.get(("human_eval", EXPERTS, model, attribute, "human_mean"))
            if pub is None:
                note = "not in the paper's table (it lists the nine LLMs only)"
            else:
                row_note = _row_average_note(attribute, value, pub.value, paper_row)
                note = _difference_note("human_eval", value, pub, row_note or SMALL_DIFFERENCE)
                if note.startswith("NOT REPRODUCED"):
                    note = _join(note, row_note)
            cells.append(Cell("human_eval", EXPERTS, model, attribute, "human_mean", value, None,
                              None, pub.value if pub else None, note))  # fmt: skip
    return cells


def _same_after_rounding(value: float, published: float, decimals: int) -> bool:
    return abs(round(value, decimals) - published) < 10 ** -(decimals + 3)


def _difference_note(table: str, value: float | None, pub: Published | None,
                     cause: str = SMALL_DIFFERENCE) -> str:  # fmt: skip
    """Empty when the value rounds to the published number; else by how much it differs (and,
    for a difference within the tolerance, its `cause`)."""
    if pub is None:
        return ""
    if value is None:
        return f"not computable from the data (published {pub.value:g})"
    decimals = DECIMALS[table]
    if _same_after_rounding(value, pub.value, decimals):
        return ""
    diff = value - pub.value
    shown = (
        f"{value:.{decimals + 1}f} vs published {pub.value:.{decimals}f} ({diff:+.{decimals + 1}f})"
    )
    if abs(diff) <= TOLERANCE[table] + 1e-12:
        return f"within {TOLERANCE[table]:g}: {shown}; {cause}"
    return f"NOT REPRODUCED: {shown}"


def _row_average_note(attribute: str, value: float, published: float,
                      paper_row: dict[str, float]) -> str:  # fmt: skip
    """What the paper's own row says about a differing human-evaluation cell."""
    cells = [paper_row[a] for a in ma.ATTRIBUTES if a in paper_row]
    if AVERAGE not in paper_row or len(cells) != len(ma.ATTRIBUTES):
        return ""
    average, n = paper_row[AVERAGE], len(ma.ATTRIBUTES)
    if attribute == AVERAGE:
        mean = float(np.mean(cells))
        if _same_after_rounding(mean, average, 2):
            return ""
        return (
            f"the mean of the paper's own seven values is {mean:.3f}, which rounds to "
            f"{round(mean, 2):.2f}, not {average:.2f}: the published average does not follow "
            "from its row"
        )
    others = sum(cells) - published
    low, high = n * (average - 0.005) - others, n * (average + 0.005) - others
    if low <= value <= high and not low <= published <= high:
        with_published = (others + published) / n
        return (
            f"the paper's own row average {average:.2f} implies {low:.2f} to {high:.2f} for this "
            f"cell: the data's {value:.2f} fits it, the published {published:.2f} does not (with "
            f"it the row would average {with_published:.2f}); a transcription error in the "
            "published table"
        )
    return ""


def _interval_note(r: ModelLevelResult, spread: Spread | None, pub: Published | None) -> str:
    """Our ICC(C,1) interval, width and status beside the published ones, and, when they
    differ, how far a redrawn bootstrap moves them."""
    if r.icc_c1.ci_low is None:
        return "no interval: fewer than 10 usable resamples"
    ours = (
        f"95% CI [{r.icc_c1.ci_low:.3f}, {r.icc_c1.ci_high:.3f}], width {r.width:.3f} ({r.status})"
    )
    if pub is None or pub.ci_low is None or pub.ci_high is None:
        return ours
    theirs = (
        f"published [{pub.ci_low:.3f}, {pub.ci_high:.3f}], width {pub.ci_width:.3f} ({pub.status})"
    )
    same = (
        abs(r.icc_c1.ci_low - pub.ci_low) <= TOLERANCE["icc"]
        and abs(r.icc_c1.ci_high - pub.ci_high) <= TOLERANCE["icc"]  # type: ignore[operator]
        and r.status == pub.status
    )
    if same:
        return f"{ours}; {theirs}"
    parts = [f"{ours}; {theirs}"]
    if spread is not None:
        inside = (
            spread.low[0] <= pub.ci_low <= spread.low[1]
            and spread.high[0] <= pub.ci_high <= spread.high[1]
        )
        parts.append(
            f"the bounds of {UPSTREAM_RESAMPLES:,} resamples of {len(r.sources)} models depend on "
            f"the draws: drawn again {spread.repeats} times, the lower bound spans "
            f"{spread.low[0]:.3f}-{spread.low[1]:.3f}, the upper {spread.high[0]:.3f}-"
            f"{spread.high[1]:.3f} and the width {spread.width[0]:.3f}-{spread.width[1]:.3f}; "
            + (
                "the published bounds lie within them"
                if inside
                else "the published bounds lie outside them, so the draws alone do not explain "
                "the difference: the paper's slightly different inputs move the points too"
            )
        )
    if pub.status and r.status != pub.status:
        parts.append(f"status {r.status} vs published {pub.status}: " + _status_cause(spread))
    return "; ".join(parts)


def _status_cause(spread: Spread | None) -> str:
    """Why a status can differ: the width's span over redrawn bootstraps straddles a threshold."""
    if spread is not None:
        low, high = spread.width
        crossed = [t for t in (GOOD_MAX_WIDTH, MODERATE_MAX_WIDTH) if low <= t <= high]
        if crossed:
            return (
                f"the width's span over redrawn bootstraps ({low:.3f}-{high:.3f}) straddles the "
                f"{crossed[0]} threshold, so the status depends on the draw"
            )
    return f"the width is near a threshold (GR <= {GOOD_MAX_WIDTH}, MR <= {MODERATE_MAX_WIDTH})"


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def reproduce_mentalalign(ctx: DataContext, out_dir: Path) -> MentalAlignReproduction:
    """Build the three tables from the data context's ratings (or the bundled sums) and write
    mentalalign_reproduction.csv and .md into `out_dir`; DataError when neither is available."""
    loaded = load_sums(ctx)
    result = build(loaded.sums, loaded.origin)
    result.csv_path = write_csv(result.cells, out_dir)
    result.markdown_path = write_markdown(result, out_dir)
    return result


def write_csv(cells: Sequence[Cell], out_dir: Path) -> Path:
    """mentalalign_reproduction.csv: table, judge, model, attribute, metric, value, ci_low,
    ci_high, published, note."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / CSV_NAME
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(Cell)])
        writer.writeheader()
        for cell in cells:
            row = {k: _csv_value(v) for k, v in asdict(cell).items()}
            row["published"] = "" if cell.published is None else f"{cell.published:g}"
            writer.writerow(row)
    return path


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}" if math.isfinite(value) else ""
    return value


def _f(value: float | None, digits: int = 3, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _ci(low: float | None, high: float | None) -> str:
    return "—" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def render_markdown(result: MentalAlignReproduction) -> str:
    """The readable report: the three tables, ours beside the published, then every note."""
    published = load_published()
    lines = [
        "# MentalBench-Align reproduced from its ratings",
        "",
        f"Every number is computed from {result.origin}. The published values (Badawi et al. 2025, "
        "arXiv 2510.19032; transcribed in trustmh's `bundled/reference/mentalalign_published.csv` "
        "with their source) are shown beside ours and never used to compute. Method: protocol "
        "11.2 (docs/protocol.md).",
        "",
        result.summary() + ".",
        "",
        "## 1. Reliability: ICC over models (self-evaluations left out)",
        "",
        "One point per response source: the experts' and the judge's mean rating over the "
        "conversations both rated; 9 points per judge. 95% CI of ICC(C,1): upstream's percentile "
        f"bootstrap over models ({UPSTREAM_RESAMPLES:,} resamples, its seeds). Status from the CI "
        f"width: GR <= {GOOD_MAX_WIDTH}, MR <= {MODERATE_MAX_WIDTH}, PR above. "
        f"Self-evaluations: {self_source_note()}.",
        "",
        "| Judge | Type | Attribute | ICC(C,1) | 95% CI | ICC(A,1) | CI width | Status "
        "| paper ICC(C,1) | paper 95% CI | paper ICC(A,1) | paper width | paper status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (judge, attribute), r in result.icc.items():
        c1 = published.get(("icc", PAPER_JUDGES[judge], "", attribute, "icc_c1"))
        a1 = published.get(("icc", PAPER_JUDGES[judge], "", attribute, "icc_a1"))
        lines.append(
            f"| {PAPER_JUDGES[judge]} | {ATTRIBUTE_TYPE[attribute]} | {attribute} | "
            f"{_f(r.icc_c1.value)} | {_ci(r.icc_c1.ci_low, r.icc_c1.ci_high)} | "
            f"{_f(r.icc_a1.value)} | {_f(r.width)} | {r.status} | "
            f"{_f(c1.value if c1 else None)} | {_ci(c1.ci_low, c1.ci_high) if c1 else '—'} | "
            f"{_f(a1.value if a1 else None)} | {_f(c1.ci_width if c1 else None)} | "
            f"{c1.status if c1 else ''} |"
        )
    lines += [
        "",
        "## 2. Systematic bias: the experts' mean -> the judge's mean -> bias -> MSE",
        "",
        "Over the paired ratings (conversation x reply rated by both) of the nine sources each "
        "judge is evaluated on.",
        "",
        "| Attribute | Judge | ours | paper |",
        "|---|---|---|---|",
    ]
    by_key = {c.key: c for c in result.cells}
    for attribute in ma.ATTRIBUTES:
        for judge in PAPER_JUDGES.values():
            ours = [by_key[("bias", judge, "", attribute, m)] for m in BIAS_METRICS]
            lines.append(
                f"| {attribute} | {judge} | {_arrow([c.value for c in ours])} | "
                f"{_arrow([c.published for c in ours])} |"
            )
    lines += [
        "",
        "## 3. Human evaluation: the experts' mean rating per model (1-5)",
        "",
        "Over every expert rating of the model's replies (1,000 conversations). A value differing "
        "from the paper's after rounding is followed by the paper's in brackets.",
        "",
        "| Model | " + " | ".join((*ma.ATTRIBUTES, "Avg")) + " |",
        "|---|" + "---|" * (len(ma.ATTRIBUTES) + 1),
    ]
    for model in PAPER_MODELS.values():
        row = [
            by_key[("human_eval", EXPERTS, model, a, "human_mean")]
            for a in (*ma.ATTRIBUTES, AVERAGE)
        ]
        lines.append(f"| {model} | " + " | ".join(_human_cell(c) for c in row) + " |")
    lines += ["", "## Notes", ""]
    for cell in result.cells:
        if cell.note and not cell.note.startswith("not in the paper"):
            lines.append(f"- {_cell_name(cell)}: {cell.note}")
    lines.append("")
    return "\n".join(lines)


def _arrow(values: Sequence[float | None]) -> str:
    h, j, b, m = values
    return f"{_f(h)} → {_f(j)} → {_f(b, signed=True)} → {_f(m)}"


def _human_cell(cell: Cell) -> str:
    text = _f(cell.value, 2)
    if cell.published is not None and not _same_after_rounding(
        cell.value or 0.0, cell.published, 2
    ):
        text += f" ({cell.published:.2f})"
    return text


def write_markdown(result: MentalAlignReproduction, out_dir: Path) -> Path:
    """mentalalign_reproduction.md: the readable tables and notes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MARKDOWN_NAME
    path.write_text(render_markdown(result), encoding="utf-8")
    return path


def rich_tables(result: MentalAlignReproduction) -> list[Table]:
    """The three tables for the terminal: ours, with the paper's value in brackets where it
    differs after rounding (red where it is not reproduced)."""
    published = load_published()
    by_key = {c.key: c for c in result.cells}

    def cell(key: Key, digits: int = 3, signed: bool = False) -> str:
        c = by_key[key]
        text = _f(c.value, digits, signed)
        if c.published is None or _same_after_rounding(c.value or 0.0, c.published, digits):
            return text
        paper = _f(c.published, digits, signed)
        return f"{text} [red]({paper})[/]" if not c.reproduced else f"{text} ({paper})"

    icc = Table(
        title="MentalBench-Align reliability: ICC over models, ours (paper where it differs)",
        caption="95% CI: upstream's bootstrap over models; status from its width (GR/MR/PR)",
    )
    for col in ("judge", "attribute", "ICC(C,1)", "95% CI", "ICC(A,1)", "CI width", "status"):
        icc.add_column(col)
    for (judge, attribute), r in result.icc.items():
        name = PAPER_JUDGES[judge]
        pub = published.get(("icc", name, "", attribute, "icc_c1"))
        status = r.status if pub is None or pub.status == r.status else f"{r.status} ({pub.status})"
        icc.add_row(name, attribute, cell(("icc", name, "", attribute, "icc_c1")),
                    _ci(r.icc_c1.ci_low, r.icc_c1.ci_high) + (f" ({_ci(pub.ci_low, pub.ci_high)})" if pub else ""),
                    cell(("icc", name, "", attribute, "icc_a1")), _f(r.width), status)  # fmt: skip
    bias = Table(title="MentalBench-Align bias: experts' mean, judge's mean, bias, MSE")
    for col in ("attribute", "judge", "experts", "judge mean", "bias", "MSE"):
        bias.add_column(col)
    for attribute in ma.ATTRIBUTES:
        for name in PAPER_JUDGES.values():
            bias.add_row(attribute, name, *(cell(("bias", name, "", attribute, m), signed=m == "bias")
                                            for m in BIAS_METRICS))  # fmt: skip
    human = Table(title="MentalBench-Align human evaluation: the experts' mean per model")
    for col in ("model", *ma.ATTRIBUTES, "Avg"):
        human.add_column(col)
    for model in PAPER_MODELS.values():
        human.add_row(model, *(cell(("human_eval", EXPERTS, model, a, "human_mean"), 2)
                               for a in (*ma.ATTRIBUTES, AVERAGE)))  # fmt: skip
    return [icc, bias, human]
