"""`trustmh reproduce`: score the authors' recorded responses with the paper's own metrics.

Each recorded model becomes a normal run (`--model replay:NAME --judge replay:NAME`) through the same
runner, store and scorers as a live model, so every number is traceable to its stored samples.
Then MentalBench-Align's published judge-reliability, bias and human-evaluation tables are rebuilt
from its ratings (`reproduce_mentalalign`, protocol 11.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trustmh.config import RunConfig
from trustmh.data.sources import DataContext, resolve_data_context
from trustmh.engine import RunSummary, run_evaluation, slug
from trustmh.models.replay import ETHICS, recorded_models, resolve_model
from trustmh.reproduce_table import Row, build_rows, write_csv, write_markdown
from trustmh.store import RunStore

if TYPE_CHECKING:
    from trustmh.reproduce_mentalalign import MentalAlignReproduction


@dataclass
class Reproduction:
    """The rows of the reproduction table, the files written and each model's run."""

    rows: list[Row]
    csv_path: Path
    markdown_path: Path
    summaries: dict[str, RunSummary]
    unparsed: dict[str, int]  # unparseable replies per model, over all its scored samples
    # MentalBench-Align's tables; None (with the reason) when not built
    mentalalign: MentalAlignReproduction | None = None
    mentalalign_skipped: str = ""


async def reproduce(out_dir: Path, data_dir: Path | None = None, runs_root: Path | None = None,
                    models: list[str] | None = None, on_model=None) -> Reproduction:  # fmt: skip
    """Run every recorded model (or those named) and write reproduction.csv and reproduction.md."""
    data = resolve_data_context(data_dir)
    runs_root = runs_root or out_dir / "runs"
    if models:
        named = {resolve_model(data, name, "--model").name for name in models}
        chosen = [m for m in recorded_models(data) if m.name in named]  # in the paper's order
    else:
        chosen = recorded_models(data)
    results, summaries, unparsed = {}, {}, {}
    for model in chosen:
        spec = f"replay:{model.name}"
        cfg = RunConfig(
            model=spec,
            judge=spec if ETHICS in model.subtasks else None,
            tasks=list(model.subtasks),
            run_dir=runs_root / f"reproduce-{slug(model.name)}",
            data_dir=data_dir,
            no_cache=True,  # replay costs nothing; the run store keeps every reply
            concurrency=64,
        )
        summary = await run_evaluation(cfg, progress=False)
        summaries[model.name] = summary
        results[model.name] = summary.results
        counts = status_counts(summary.run_dir)
        unparsed[model.name] = counts.get("unparsed", 0)
        if on_model:
            on_model(model.name, summary, counts)
    rows = build_rows(results)
    reproduction = Reproduction(
        rows, write_csv(rows, out_dir), write_markdown(rows, out_dir), summaries, unparsed
    )
    if models:
        reproduction.mentalalign_skipped = "--model selects recorded TrustMH-Bench models only"
    else:
        reproduction.mentalalign, reproduction.mentalalign_skipped = mentalalign_part(data, out_dir)
    return reproduction


def mentalalign_part(
    data: DataContext, out_dir: Path
) -> tuple[MentalAlignReproduction | None, str]:
    """MentalBench-Align's three tables, or None and why they could not be built."""
    from trustmh.errors import DataError
    from trustmh.reproduce_mentalalign import reproduce_mentalalign

    try:
        return reproduce_mentalalign(data, out_dir), ""
    except DataError as exc:
        return None, str(exc)


def status_counts(run_dir: Path) -> dict[str, int]:
    """Scored samples of a run by status (ok, unparsed, missing, ...), over all its subtasks."""
    store = RunStore(run_dir, readonly=True)
    try:
        return store.totals()
    finally:
        store.close()
