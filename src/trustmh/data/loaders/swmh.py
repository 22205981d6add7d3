"""SWMH (Ji et al. 2022): Reddit posts from five mental-health subreddits, released on request
(not in the public data). Read from `<data-dir>/swmh/test.csv`, the layout of the release:
columns `text` (title and body) and `label` (`self.depression`, `self.Anxiety`, `self.bipolar`,
`self.SuicideWatch`, `self.offmychest`). Labels are kept as lower-case subreddit names.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, field_validator

from trustmh.data.records import read_csv
from trustmh.data.sources import DataContext

SOURCE = "swmh"
TEST_FILE = "test.csv"
SwmhLabel = Literal["depression", "suicidewatch", "anxiety", "bipolar", "offmychest"]


class SwmhPost(BaseModel):
    """A post and its subreddit label."""

    text: str
    label: SwmhLabel

    @field_validator("label", mode="before")
    @classmethod
    def _subreddit(cls, value: Any) -> Any:
        return str(value).strip().removeprefix("self.").lower() if isinstance(value, str) else value


def load(ctx: DataContext) -> dict[str, Any]:
    """`test`: the SWMH test posts."""
    return {"test": read_csv(ctx.file(SOURCE, TEST_FILE), SwmhPost, rename=str.lower)}
