"""`trustmh compare`: paired comparison of runs per subtask, and the CI regression gate."""

from __future__ import annotations

import fnmatch
import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from trustmh.errors import UserError

EPILOG = """
Examples:

  trustmh compare runs/2026...-gpt-4o-mini runs/2026...-gpt-4.1-mini

  trustmh compare gpt-4o-mini-run new-run --tasks crisis,safety --json compare.json

  trustmh compare baseline-run new-run --gate gate.txt      (exit 1 when a rule is broken)

A gate file, one rule per line:

  crisis.* must not be worse at p < 0.05

  safety.jailbreak_resistance >= 0.9

Runs are run directories or the names `trustmh runs` lists. See docs/usage.md, "Comparing runs".
"""


def compare(
    runs: Annotated[
        list[str],
        typer.Argument(
            help="Two or more runs: run directories, folders of runs, or run names from `trustmh runs`. With --gate: BASELINE NEW."
        ),
    ],
    tasks: Annotated[
        str | None,
        typer.Option(
            help="Only these subtasks: ids, pillar names or globs, comma-separated, e.g. `crisis,safety.*`."
        ),
    ] = None,
    alpha: Annotated[
        float, typer.Option(help="Level of the verdicts, after Holm's correction. Default: 0.05.")
    ] = 0.05,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            help="Compare despite this difference between the runs (repeatable): judge, data, options, generation, limit, prompts. It stays on the row as a warning."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and permutations.")] = 0,
    gate: Annotated[
        Path | None,
        typer.Option(
            help="Rules file for CI (e.g. `crisis.* must not be worse at p < 0.05`); a broken rule exits with code 1."
        ),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Also write the whole comparison as JSON to this file."),
    ] = None,
) -> None:
    """Compare runs subtask by subtask on the items both scored: the paired difference with its
    bootstrap interval, McNemar's or a paired permutation test, Holm's correction over all tests,
    and a verdict with the smallest difference the test would detect (protocol 1.9)."""
    from trustmh.compare import as_plain, compare_runs
    from trustmh.compare.gate import check, parse_rules
    from trustmh.compare.runs import MISMATCH_KINDS, load, unique_labels
    from trustmh.run_index import expand_run_dirs
    from trustmh.tasks.registry import all_tasks

    out = Console()
    allowed = tuple(allow or ())
    for kind in allowed:
        if kind not in MISMATCH_KINDS:
            raise UserError(
                f"--allow {kind}: not a kind of difference; use one of {', '.join(MISMATCH_KINDS)}"
            )
    if not 0 < alpha < 1:
        raise UserError(f"--alpha {alpha}: a level between 0 and 1, e.g. 0.05")
    rules = parse_rules(gate) if gate is not None else None
    run_dirs = expand_run_dirs(runs)
    if len(run_dirs) < 2:
        raise UserError(f"{' '.join(runs)}: compare needs at least two runs")
    if rules is not None and len(run_dirs) != 2:
        raise UserError(f"--gate compares exactly two runs, BASELINE NEW; got {len(run_dirs)}")
    loaded = [load(path) for path in run_dirs]
    unique_labels(loaded)
    registry = all_tasks()
    selected = _select(tasks, [t for run in loaded for t in run.results])
    comparison = compare_runs(
        loaded, registry, tasks=selected, alpha=alpha, allow=allowed, seed=seed
    )
    print_comparison(comparison, out)
    if json_out is not None:
        try:
            json_out.write_text(json.dumps(as_plain(comparison), indent=1, allow_nan=False,
                                           default=str), encoding="utf-8")  # fmt: skip
        except OSError as exc:
            raise UserError(f"--json {json_out}: cannot write there ({exc.strerror})") from None
        out.print(f"wrote {json_out}", markup=False, highlight=False, soft_wrap=True)
    if rules is not None:
        results = check(rules, comparison)
        for result in results:
            out.print(result.line(), markup=False, highlight=False, soft_wrap=True)
        broken = sum(not r.holds for r in results)
        if broken:
            out.print(f"gate: {broken} of {len(results)} rules broken", highlight=False)
            raise typer.Exit(1)
        out.print(f"gate: all {len(results)} rules hold", highlight=False)


def _select(spec: str | None, present: list[str]) -> list[str] | None:
    """The subtasks named by --tasks (ids, pillars, globs) among those the runs have."""
    if spec is None:
        return None
    patterns = [p.strip() for p in spec.split(",") if p.strip()]
    chosen = [
        t
        for t in dict.fromkeys(present)
        if any(fnmatch.fnmatchcase(t, p) or t.startswith(p + ".") for p in patterns)
    ]
    if not chosen:
        raise UserError(
            f"--tasks {spec}: no subtask of these runs matches; they have {', '.join(dict.fromkeys(present))}"
        )
    return chosen


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.0001" if value < 1e-4 else f"{value:.2g}"


def print_comparison(comparison, console: Console) -> None:
    """One table per pair of runs (folded to the terminal's width), then how it was computed."""
    from trustmh.render import folded_table

    runs = comparison.runs
    pairs = dict.fromkeys((r.a, r.b) for r in comparison.rows)
    for a, b in pairs:
        console.print(
            f"A = {runs[a].label} ({runs[a].run_dir})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        console.print(
            f"B = {runs[b].label} ({runs[b].run_dir})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        table = folded_table(
            "A vs B",
            ("subtask", "n", "A", "B", "A−B [95% CI]", "p (Holm)", "verdict"),
        )
        warnings = []
        for row in comparison.pair(a, b):
            arrow = "↑" if row.direction == "higher" else "↓"
            diff = (
                "—"
                if row.diff is None
                else f"{row.diff:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
            )
            verdict = escape(row.verdict_text("A", "B"))
            if row.winner is not None:
                verdict = f"[bold]{verdict}[/]"
            table.add_row(escape(f"{row.task} {arrow}"), str(row.n_shared or "—"), _num(row.value_a),
                          _num(row.value_b), escape(diff), f"{_p(row.p)} ({_p(row.p_holm)})", verdict)  # fmt: skip
            warnings += [f"{row.task}: {w}" for w in row.warnings]
        console.print(table)
        for line in warnings:
            console.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"n: shared items (or dialogues, stories) both runs scored; values are on those. Holm's "
        f"correction over the {comparison.n_tests} tests made, verdicts at α = {comparison.alpha:g}; "
        "tests: McNemar exact for 0/1 accuracies, else a paired permutation test (10,000) of the "
        "metric itself; 95% CI: paired bootstrap (1,000); detectable: the difference found with "
        "80% power at Holm's strictest threshold (protocol 1.9). Per-row procedure: --json.",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip
