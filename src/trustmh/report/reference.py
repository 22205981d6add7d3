"""The paper's reference rows for reports: its published per-subtask ranks of the 12 models, and the
scores of its recorded models reproduced from their replies by `trustmh reproduce`.

Protocol 1.6: a new model is placed among the paper's models only where those models' scores exist
(reproduced from the recorded runs); elsewhere the paper's ranks are shown as context. Scores are
never derived from ranks.
"""

from __future__ import annotations

import asyncio
import csv
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from trustmh.cache_root import user_cache_root
from trustmh.code_fingerprint import code_fingerprint
from trustmh.errors import UserError
from trustmh.reproduce_table import CSV_NAME, PAPER_RANKS, load_paper_ranks
from trustmh.types import MetricValue

PAPER_SOURCE = (
    "TrustMH-Bench (Xiong et al. 2026, arXiv 2603.03047): the per-subtask rank table figure of the "
    "authors' repository Qiyuan0130/TrustMH_Bench, transcribed in trustmh/bundled/reference/"
    "paper_ranks.csv (see bundled/PROVENANCE.md)"
)
REPRODUCED_SOURCE = (
    "scores of the paper's recorded models, reproduced by `trustmh reproduce` from the authors' "
    "recorded replies with the paper's own metrics (privacy: the six general models; ethics: all twelve)"
)
DOUBTFUL = "DOUBTFUL"


@dataclass(frozen=True)
class PaperRank:
    """One published rank: as printed, the rank used when comparing, and the transcriber's note."""

    printed: int
    used: int
    note: str = ""


@dataclass
class PaperRanks:
    """The published ranks: subtask -> model -> rank, the models in the paper's order, the source."""

    by_subtask: dict[str, dict[str, PaperRank]]
    models: list[str]
    source: str = PAPER_SOURCE


def load_paper(path: Path = PAPER_RANKS) -> PaperRanks:
    """The paper's ranks, with each doubtful cell resolved for comparisons (protocol 1.6).

    A cell whose note starts with DOUBTFUL is compared as the one rank its row lacks, when exactly
    one is absent (the printed value stays visible with the note)."""
    by_subtask: dict[str, dict[str, PaperRank]] = {}
    models: list[str] = []
    for (subtask, model), (rank, note) in load_paper_ranks(path).items():
        by_subtask.setdefault(subtask, {})[model] = PaperRank(rank, rank, note)
        if model not in models:
            models.append(model)
    for row in by_subtask.values():
        absent = sorted(set(range(1, len(row) + 1)) - {r.printed for r in row.values()})
        for model, cell in row.items():
            if cell.note.startswith(DOUBTFUL) and len(absent) == 1:
                row[model] = PaperRank(cell.printed, absent[0], cell.note)
    return PaperRanks(by_subtask, models)


@dataclass
class ReproducedScores:
    """Per recorded model and subtask, the metrics reproduced from the recorded replies."""

    results: dict[str, dict[str, list[MetricValue]]] = field(default_factory=dict)
    source: str = REPRODUCED_SOURCE
    error: str | None = None  # why the scores are unavailable, when they are

    def models_with(self, task_id: str) -> list[str]:
        """The recorded models that have a primary score on this subtask."""
        return [
            m
            for m, per_task in self.results.items()
            if any(x.primary and x.value is not None for x in per_task.get(task_id, ()))
        ]


def warm_up() -> None:
    """Import what `recorded_subtasks` reads the recordings with (the data loaders: about a tenth
    of a second); a run calls this while its replies are out, not after the last one."""
    import trustmh.models.replay  # noqa: F401


def recorded_subtasks() -> set[str]:
    """The subtasks the paper's recorded replies cover (cheap: reads no reply); empty when the
    recordings cannot be found."""
    from trustmh.data.sources import resolve_data_context
    from trustmh.models.replay import recorded_models

    try:
        return {t for m in recorded_models(resolve_data_context(None)) for t in m.subtasks}
    except (UserError, OSError):
        return set()


def reference_cache_dir() -> Path:
    """Where reproduced reference scores are kept ($TRUSTMH_CACHE_DIR or the user cache)."""
    return user_cache_root() / "reference"


def read_reproduction_csv(path: Path) -> dict[str, dict[str, list[MetricValue]]]:
    """Metrics by model and subtask from a reproduction.csv written by `trustmh reproduce`."""

    def num(text: str) -> float | None:
        return float(text) if text not in ("", None) else None

    out: dict[str, dict[str, list[MetricValue]]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            metric = MetricValue(
                name=row["metric"],
                value=num(row["value"]),
                n=int(row["n_scored"] or 0),
                direction=row["direction"],  # type: ignore[arg-type]
                primary=row["primary"] == "True",
                ci_low=num(row["ci_low"]),
                ci_high=num(row["ci_high"]),
                n_unparsed=int(row["n_unparseable"] or 0),
                note=row["note"] or None,
            )
            out.setdefault(row["model"], {}).setdefault(row["subtask"], []).append(metric)
    return out


def load_reproduced(cache_dir: Path | None = None) -> ReproducedScores:
    """The recorded models' reproduced scores, computed once per code version and cached (about 5 s
    the first time). Failures become `error`, never an exception: the report then shows the
    paper's ranks only."""
    from trustmh.reproduce import reproduce

    root = cache_dir or reference_cache_dir()
    target = root / code_fingerprint()[:16]  # any change to a scorer invalidates the table
    csv_path = target / CSV_NAME
    if not csv_path.is_file():
        try:
            root.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix="reproduce-", dir=root))
            try:
                # the replayed runs' databases are not kept: only the table is needed
                asyncio.run(reproduce(work, runs_root=work / "runs"))
                target.mkdir(exist_ok=True)
                os.replace(work / CSV_NAME, csv_path)  # atomic: concurrent reports agree
            finally:
                shutil.rmtree(work, ignore_errors=True)
            for old in root.iterdir():  # tables of older code versions
                if old.is_dir() and old != target and (old / CSV_NAME).is_file():
                    shutil.rmtree(old, ignore_errors=True)
        except (UserError, OSError) as exc:
            return ReproducedScores(error=f"reference scores unavailable: {exc}")
    return ReproducedScores(read_reproduction_csv(csv_path))
