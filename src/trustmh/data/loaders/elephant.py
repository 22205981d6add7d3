"""ELEPHANT social-sycophancy data: OEQ and AITA (10-row samples here; the full CSVs are read
instead when a data root supplies `OEQ.csv` / `AITA.csv`), plus the scored example outputs.

The CSVs were written by pandas: the first column is an unnamed index (`""` or `Unnamed: 0`),
renamed to `row_id` here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from trustmh.data.records import existing, read_csv
from trustmh.data.sources import DataContext
from trustmh.errors import DataError

SOURCE = "elephant"


def _rename(header: str) -> str:
    return "row_id" if header in ("", "Unnamed: 0") else header


class OEQItem(BaseModel):
    """An open-ended advice request with the human answer's ELEPHANT ratings (0/1)."""

    row_id: int
    prompt: str = Field(min_length=1)
    human: str
    source: str
    emotional_validation_human: float = Field(ge=0, le=1)
    indirect_language_human: float = Field(ge=0, le=1)
    indirect_action_human: float = Field(ge=0, le=1)
    accept_framing_human: float = Field(ge=0, le=1)


class AITAItem(BaseModel):
    """An r/AmITheAsshole post with its community verdict (is_asshole 1 = YTA)."""

    row_id: int
    prompt: str = Field(min_length=1)
    top_comment: str
    is_asshole: int = Field(ge=0, le=1)
    ytanta: Literal["YTA", "NTA"]


class OEQOutput(OEQItem):
    """An OEQ item with GPT-4o's reply and its ELEPHANT scores."""

    gpt_response: str
    emotional_validation_gpt4o: float
    indirect_language_gpt4o: float
    indirect_action_gpt4o: float
    accept_framing_gpt4o: float


class AITAOutput(AITAItem):
    """An AITA item with GPT-4o's reply and its moral-endorsement score."""

    gpt_response: str
    moral_endorsement_gpt4o: float


def _full_or_sample(ctx: DataContext, full: str, sample: str) -> Path:
    try:
        return existing(ctx.file(SOURCE, full))
    except DataError:
        return ctx.file(SOURCE, sample)


def load(ctx: DataContext) -> dict[str, Any]:
    """`oeq`, `aita` (full sets when supplied, else the 10-row samples), `oeq_outputs`,
    `aita_outputs` (10 each), and `oeq_file` / `aita_file` naming what was read."""
    oeq_path = _full_or_sample(ctx, "OEQ.csv", "OEQ_sample.csv")
    aita_path = _full_or_sample(ctx, "AITA.csv", "AITA_sample.csv")
    return {
        "oeq": read_csv(oeq_path, OEQItem, rename=_rename),
        "aita": read_csv(aita_path, AITAItem, rename=_rename),
        "oeq_outputs": read_csv(ctx.file(SOURCE, "oeq_outputs.csv"), OEQOutput, rename=_rename),
        "aita_outputs": read_csv(
            ctx.file(SOURCE, "AITA_responses_elephant_scored.csv"), AITAOutput, rename=_rename
        ),
        "oeq_file": oeq_path.name,
        "aita_file": aita_path.name,
    }


# PAS (protocol 9.3) is not public: a user who has it supplies `PAS.csv` beside the full OEQ and
# AITA files (`<data-dir>/elephant/PAS.csv`) or in the catalogue's own folder (`<data-dir>/pas/`).
PAS_SOURCE = "pas"
PAS_FILE = "PAS.csv"


class PASItem(BaseModel):
    """A statement in which the speaker describes a problematic action (column `prompt`, as in
    ELEPHANT's OEQ and AITA files; an unnamed pandas index column becomes `row_id`)."""

    row_id: int | None = None
    prompt: str = Field(min_length=1)


def load_pas(ctx: DataContext) -> tuple[list[PASItem], str] | None:
    """The PAS statements and where they were read (`elephant/PAS.csv` or `pas/PAS.csv`), or None
    when no data root supplies them."""
    for source in (SOURCE, PAS_SOURCE):
        if ctx.root_of(source) is None:
            continue
        try:
            path = existing(ctx.file(source, PAS_FILE))
        except DataError:
            continue
        return read_csv(path, PASItem, rename=_rename), f"{source}/{path.name}"
    return None
