"""Judge-check output: the terminal table, `judge_check.csv` and the two figures."""

from __future__ import annotations

import csv
from pathlib import Path

from rich.table import Table

from trustmh.judge_check.mentalalign import JUDGE_PREFIX
from trustmh.judge_check.results import TRUSTED, JudgeAgreement, format_number
from trustmh.judge_check.stats import Estimate

CSV_NAME = "judge_check.csv"
HEATMAP_NAME = "judge_check_agreement.png"
BIAS_NAME = "judge_check_bias.png"
MODEL_SUFFIX = "_model"  # model-level files: judge_check_model.csv, ...
TABLE_COLUMNS = (
    ("pearson", "r"),
    ("spearman", "rho"),
    ("kappa_quadratic", "kappa_w"),
    ("kripp_alpha_ordinal", "alpha_ord"),
    ("exact_agreement", "exact"),
    ("within_one", "±1"),
)


def column_label(row: JudgeAgreement) -> str:
    """Short name of a row's rater pair for tables and figures."""
    name = row.judge.removeprefix(JUDGE_PREFIX).split("@", 1)[0]  # the server URL is in the CSV
    if row.kind == "ceiling":
        return f"{name} vs {row.reference} (ceiling)"
    return name if row.reference == "human" else f"{name} vs {row.reference}"


def _with_ci(est: Estimate, signed: bool = False) -> str:
    if est.ci_low is None:
        return format_number(est.value, signed)
    return f"{format_number(est.value, signed)} [{format_number(est.ci_low, signed)}, {format_number(est.ci_high, signed)}]"


WIDE_TABLE = 160  # terminal columns from which every statistic fits in the table


def rich_table(rows: list[JudgeAgreement], title: str, width: int = WIDE_TABLE) -> Table:
    """The terminal table: one line per judge x attribute. On a terminal narrower than
    `WIDE_TABLE` only ICC(A,1), bias and the verdict (what the verdict rests on), each interval
    under its value; every statistic is in judge_check.csv."""
    from rich import box

    wide = width >= WIDE_TABLE
    extra = ("ICC(C,1)", "MSE", *(label for _, label in TABLE_COLUMNS)) if wide else ()
    table = Table(title=title, box=None if not wide else box.HEAVY_HEAD,
                  caption=None if wide else "ICC(C,1), MSE, r, rho, kappa, alpha, exact and ±1 "
                  "agreement: judge_check.csv (or a terminal 160 columns wide)")  # fmt: skip
    for col in ("judge", "attribute", "n", "ICC(A,1) [95% CI]", "bias [95% CI]", *extra, "verdict"):
        table.add_column(col, overflow="fold", no_wrap=col in ("judge", "attribute"))
    sep = " " if wide else "\n"
    for row in rows:
        verdict = row.verdict
        if row.verdict == TRUSTED:
            verdict = f"[green]{verdict}[/]"
        elif row.kind == "judge":
            verdict = f"[red]{verdict}[/]"
        cells = [_with_ci(row.stats["icc_a1"]).replace(" [", sep + "["),
                 _with_ci(row.stats["bias"], signed=True).replace(" [", sep + "[")]  # fmt: skip
        if wide:
            cells.insert(1, format_number(row.get("icc_c1")))
            cells += [format_number(row.get("mse")),
                      *(format_number(row.get(name)) for name, _ in TABLE_COLUMNS)]  # fmt: skip
        table.add_row(column_label(row), row.attribute, str(row.n_items), *cells, verdict)
    return table


def model_table(rows: list[JudgeAgreement], title: str) -> Table:
    """The model-level terminal table in the shape of MentalBench-Align's published one: Judge,
    Type, Attribute, ICC(C,1), its 95% CI, ICC(A,1), CI width, status; then the bias over the
    paired ratings and our verdict (to rank models)."""
    from trustmh.judge_check.model_level import ATTRIBUTE_TYPE, PAPER_JUDGES

    table = Table(title=title, caption="GR good, MR moderate, PR poor reliability (CI width)")
    for col in ("Judge", "Type", "Attribute", "ICC(C,1)", "95% CI", "ICC(A,1)", "CI Width",
                "Status", "bias", "verdict (to rank models)"):  # fmt: skip
        table.add_column(col, overflow="fold")
    previous = None
    for row in rows:
        name = row.judge.removeprefix(JUDGE_PREFIX)
        c1 = row.stats["icc_c1"]
        width = None if c1.ci_low is None else c1.ci_high - c1.ci_low  # type: ignore[operator]
        verdict = f"[green]{row.verdict}[/]" if row.verdict == TRUSTED else f"[red]{row.verdict}[/]"
        table.add_row(
            PAPER_JUDGES.get(name, name) if name != previous else "",
            ATTRIBUTE_TYPE.get(row.attribute, ""),
            row.attribute,
            _three(c1.value),
            f"[{_three(c1.ci_low)}, {_three(c1.ci_high)}]",
            _three(row.get("icc_a1")),
            _three(width),
            row.reliability,
            format_number(row.get("bias"), signed=True),
            verdict,
        )
        previous = name
    return table


def _three(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def file_name(name: str, unit: str) -> str:
    """A judge-check output file name; model-level files carry `_model` before the extension."""
    if unit != "model":
        return name
    stem, dot, ext = name.rpartition(".")
    return f"{stem}{MODEL_SUFFIX}{dot}{ext}"


def write_csv(rows: list[JudgeAgreement], out_dir: Path, unit: str = "item") -> Path:
    """`judge_check.csv` (`judge_check_model.csv` at model level): one row per judge x
    attribute, one column per statistic and bound."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / file_name(CSV_NAME, unit)
    flats = [r.flat() for r in rows]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(flats[0]) if flats else ["judge"])
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in f.items()} for f in flats)
    return path


def figures_available() -> bool:
    """True when matplotlib (the `report` extra) can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_figures(rows: list[JudgeAgreement], out_dir: Path, unit: str = "item") -> list[Path]:
    """The attribute x judge heatmap of the ICC the verdict rests on (ICC(A,1) at item level,
    ICC(C,1) at model level) and the bias plot (PNG, matplotlib's Agg canvas, no pyplot state);
    [] without matplotlib."""
    if not figures_available():
        return []
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    attributes = list(dict.fromkeys(r.attribute for r in rows))
    columns = list(dict.fromkeys(column_label(r) for r in rows))
    cell = {(r.attribute, column_label(r)): r for r in rows}
    paths = [out_dir / file_name(HEATMAP_NAME, unit), out_dir / file_name(BIAS_NAME, unit)]
    metric, label = (
        ("icc_c1", "ICC(C,1) over models") if unit == "model" else ("icc_a1", "ICC(A,1)")
    )

    fig = Figure(figsize=(1.6 + 1.8 * len(columns), 2.4 + 0.55 * len(attributes)))
    ax = fig.subplots()
    grid = [[_value(cell.get((a, c)), metric) for c in columns] for a in attributes]
    image = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    for i, a in enumerate(attributes):
        for j, c in enumerate(columns):
            row = cell.get((a, c))
            if row is not None and row.get(metric) is not None:
                mark = "\n(trusted)" if row.verdict == TRUSTED else ""
                ax.text(j, i, f"{row.get(metric):.2f}{mark}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(attributes)), attributes, fontsize=8)
    ax.set_title(f"Agreement with human experts: {label}", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=120)

    fig = Figure(figsize=(7, 2.6 + len(attributes) * (0.3 + 0.08 * len(columns))))
    ax = fig.subplots()
    step = 0.8 / max(1, len(columns))
    for j, c in enumerate(columns):
        ys, xs, lows, highs = [], [], [], []
        for i, a in enumerate(attributes):
            row = cell.get((a, c))
            est = row.stats["bias"] if row else None
            if est is None or est.value is None:
                continue
            ys.append(i - 0.4 + step * (j + 0.5))
            xs.append(est.value)
            # a percentile interval need not contain the estimate; matplotlib rejects negative arms
            lows.append(max(0.0, est.value - (est.ci_low if est.ci_low is not None else est.value)))
            highs.append(
                max(0.0, (est.ci_high if est.ci_high is not None else est.value) - est.value)
            )
        ax.errorbar(xs, ys, xerr=[lows, highs], fmt="o", markersize=4, capsize=2, label=c)
    limit = rows[0].thresholds.max_abs_bias if rows else 0.5
    ax.axvline(0, color="black", linewidth=0.8)
    for x in (-limit, limit):
        ax.axvline(x, color="grey", linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(attributes)), attributes, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("bias: mean(judge - human) with 95% CI; dashed: trust threshold", fontsize=8)
    ax.set_title("Judge bias (positive = the judge rates higher than the expert)", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=120)
    return paths


def _value(row: JudgeAgreement | None, name: str) -> float:
    value = row.get(name) if row is not None else None
    return float("nan") if value is None else value
