"""MentalAlign-70k: 349,486 ratings (human experts and four LLM judges) of 1,000 contexts.

`ratings.csv` is large, so it is read with a plain csv reader into a compact column table
(`RatingsTable`, numpy arrays with category codes). Each row is checked cheaply against the same
categories as the `Rating` schema; a row that fails is re-validated with the schema to produce the
one-line error. Scores outside the 1-5 rubric are kept (the file has 0s for 33 human rows and 6s in
5 human cells) and flagged by `RatingsTable.in_rubric`.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, Field

from trustmh.data.loaders import validate_record
from trustmh.data.records import FIX_HINT, open_text, read_csv
from trustmh.data.sources import DataContext
from trustmh.errors import DataError

SOURCE = "mentalalign"
Rater = Literal["human", "claude-3.7-sonnet", "gemini-2.5-flash", "gpt-4o", "o4-mini"]
Attribute = Literal[
    "Guidance", "Informativeness", "Relevance", "Safety", "Empathy", "Helpfulness", "Understanding"
]
ResponseSource = Literal[
    "original",
    "claude",
    "ds_llama",
    "ds_qwen",
    "gemini",
    "gpt4o",
    "gpt4omini",
    "llama_3",
    "qwen_2",
    "qwen_3",
]
RATERS: tuple[str, ...] = get_args(Rater)
ATTRIBUTES: tuple[str, ...] = get_args(Attribute)
RESPONSE_SOURCES: tuple[str, ...] = get_args(ResponseSource)
CSS = ("Guidance", "Informativeness", "Relevance", "Safety")
ARS = ("Empathy", "Helpfulness", "Understanding")
COLUMNS = ("conv_id", "response_source", "rater", "attribute", "score")


class Rating(BaseModel):
    """One rating: a rater's score of one reply (conversation x response source) on one attribute."""

    conv_id: int = Field(ge=1)
    response_source: ResponseSource
    rater: Rater
    attribute: Attribute
    score: float = Field(allow_inf_nan=False)


class Context(BaseModel):
    """The user message of one conversation."""

    conv_id: int = Field(ge=1)
    context: str


@dataclass(frozen=True)
class RatingsTable:
    """Ratings as columns: category columns hold indexes into RESPONSE_SOURCES, RATERS, ATTRIBUTES."""

    conv_id: np.ndarray
    response_source: np.ndarray
    rater: np.ndarray
    attribute: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.score)

    @property
    def in_rubric(self) -> np.ndarray:
        """Mask of scores inside the 1-5 rubric."""
        return (self.score >= 1) & (self.score <= 5)

    def row(self, i: int) -> Rating:
        """Row `i` as a Rating record."""
        return Rating(
            conv_id=int(self.conv_id[i]),
            response_source=RESPONSE_SOURCES[self.response_source[i]],
            rater=RATERS[self.rater[i]],
            attribute=ATTRIBUTES[self.attribute[i]],
            score=float(self.score[i]),
        )


def read_ratings(ctx: DataContext) -> RatingsTable:
    """The ratings table; DataError naming the row and field of the first bad row."""
    path = ctx.file(SOURCE, "ratings.csv")
    reader = csv.reader(io.StringIO(open_text(path), newline=""))
    header = next(reader, [])
    if tuple(header) != COLUMNS:
        missing = [c for c in COLUMNS if c not in header]
        what = f"missing column {missing[0]!r}" if missing else f"columns must be {list(COLUMNS)}"
        raise DataError(f"{path}: {what} (header has {header}); {FIX_HINT}")
    source_code = {name: i for i, name in enumerate(RESPONSE_SOURCES)}
    rater_code = {name: i for i, name in enumerate(RATERS)}
    attribute_code = {name: i for i, name in enumerate(ATTRIBUTES)}
    conv, src, rater, attr, score = [], [], [], [], []
    for rowno, row in enumerate(reader, 2):
        try:
            c, s, r, a, v = (
                int(row[0]),
                source_code[row[1]],
                rater_code[row[2]],
                attribute_code[row[3]],
                float(row[4]),
            )
            if c < 1 or not math.isfinite(v) or len(row) != 5:
                raise ValueError
        except (ValueError, KeyError, IndexError):
            _explain(path, rowno, row)
        conv.append(c)
        src.append(s)
        rater.append(r)
        attr.append(a)
        score.append(v)
    return RatingsTable(
        conv_id=np.asarray(conv, dtype=np.int32),
        response_source=np.asarray(src, dtype=np.int8),
        rater=np.asarray(rater, dtype=np.int8),
        attribute=np.asarray(attr, dtype=np.int8),
        score=np.asarray(score, dtype=np.float32),
    )


def _explain(path: Any, rowno: int, row: list[str]) -> None:
    if len(row) != len(COLUMNS):
        raise DataError(
            f"{path}: row {rowno}: expected {len(COLUMNS)} fields, found {len(row)}; {FIX_HINT}"
        )
    validate_record(Rating, dict(zip(COLUMNS, row, strict=True)), f"{path}: row {rowno}")
    raise DataError(f"{path}: row {rowno}: invalid rating; {FIX_HINT}")


def load(ctx: DataContext) -> dict[str, Any]:
    """`ratings` (RatingsTable, 349,486 rows), `contexts` (1,000) and `guidelines` (rubric text)."""
    return {
        "ratings": read_ratings(ctx),
        "contexts": read_csv(ctx.file(SOURCE, "contexts.csv"), Context),
        "guidelines": open_text(ctx.file(SOURCE, "evaluation_guidelines.md")),
    }
