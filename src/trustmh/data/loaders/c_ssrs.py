"""Reddit C-SSRS: 500 users, each with their posts and a Columbia-scale risk label.

Quirks handled here: `Post` is a Python list literal stored as text (parsed with
`ast.literal_eval`, never `eval`); 28 cells were cut at 32,759 characters by a spreadsheet, so
their literal is unterminated. Those are closed after the last complete post and the cut post is
kept as the final item, with `truncated=True` on the record.
"""

from __future__ import annotations

import ast
from typing import Any, Literal

from pydantic import BaseModel, Field

from trustmh.data.records import FIX_HINT, read_csv
from trustmh.data.sources import DataContext
from trustmh.errors import DataError

SOURCE = "c_ssrs"
FILE = "500_Reddit_users_posts_labels.csv"
CssrsLabel = Literal["Supportive", "Indicator", "Ideation", "Behavior", "Attempt"]
LEVELS: tuple[str, ...] = ("Supportive", "Indicator", "Ideation", "Behavior", "Attempt")


class _Row(BaseModel):
    user: str = Field(min_length=1)
    post: str
    label: CssrsLabel


class CssrsUser(BaseModel):
    """One user: posts in file order, the risk label, and whether the post list was cut."""

    user: str
    posts: list[str]
    label: CssrsLabel
    truncated: bool = False


def parse_posts(cell: str) -> tuple[list[str], bool]:
    """The posts of a `Post` cell and whether the cell was cut; ValueError if it is no list."""
    try:
        value = ast.literal_eval(cell)
    except (SyntaxError, ValueError):
        value = _close_cut_literal(cell)
        if value is None:
            raise ValueError("is not a Python list literal of strings") from None
        return value, True
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ValueError("is not a Python list literal of strings")
    return value, False


def _close_cut_literal(cell: str) -> list[str] | None:
    # A cut cell ends inside its last string: close that string (either quote style, dropping a
    # dangling backslash) and the list.
    for body in (cell, cell[:-1]):
        for closer in ("']", '"]'):
            try:
                value = ast.literal_eval(body + closer)
            except (SyntaxError, ValueError):
                continue
            if isinstance(value, list) and all(isinstance(p, str) for p in value):
                return value
    return None


def load(ctx: DataContext) -> dict[str, Any]:
    """`users`: the 500 labelled users."""
    path = ctx.file(SOURCE, FILE)
    users = []
    for rowno, row in enumerate(read_csv(path, _Row, rename=str.lower), 2):
        try:
            posts, truncated = parse_posts(row.post)
        except ValueError as exc:
            raise DataError(f"{path}: row {rowno}: field 'Post' {exc}; {FIX_HINT}") from None
        users.append(CssrsUser(user=row.user, posts=posts, label=row.label, truncated=truncated))
    return {"users": users}
