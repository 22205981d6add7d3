"""Loader for `ethicmh/EthicMH.csv` (125 counselling dilemmas, options A-D, the correct letter).

The file is GB18030, not UTF-8; like the authors' loader we try UTF-8 first and fall back to
GB18030. Some apostrophes are mojibake (a UTF-8 right quote decoded twice as GB18030, e.g.
"patient閳ユ獨 consent"); the models were sent that text, so EXACT mode keeps it.
`repair_mojibake` undoes it for the fixed variant.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from trustmh.data.records import read_csv
from trustmh.data.sources import DataContext

SOURCE = "ethicmh"
FILE = "EthicMH.csv"
ENCODINGS = ("utf-8", "gb18030")
# A mojibake run: CJK characters produced by decoding UTF-8 bytes as GB18030, twice. A "?" after the
# run stands for a byte the double decoding lost (the space after a plural possessive).
_MOJIBAKE = re.compile(r"閳[^\x00-\x7f]*\??")


class EthicsItem(BaseModel):
    """One EthicMH row."""

    model_config = ConfigDict(extra="ignore")

    index: int
    subcategory: str
    scenario: str
    options: str
    reasoning_task: str
    expected_reasoning: str
    model_behavior: str
    real_world_impact: str = ""
    viewpoints: str = ""
    row: int = Field(
        default=0, description="0-based position in the file (the authors' head(N) order)"
    )


def load_ethicmh(ctx: DataContext, repair: bool = False) -> list[EthicsItem]:
    """All rows in file order; `repair=True` undoes the apostrophe mojibake (fixed variant)."""
    path = ctx.file(SOURCE, FILE)
    items = read_csv(path, EthicsItem, encodings=ENCODINGS)
    out: list[EthicsItem] = []
    for row, item in enumerate(items):
        data = item.model_dump()
        data["row"] = row
        if repair:
            data = {k: repair_mojibake(v) if isinstance(v, str) else v for k, v in data.items()}
        out.append(EthicsItem.model_validate(data))
    return out


def repair_mojibake(text: str) -> str:
    """Undo the double UTF-8 -> GB18030 decoding of right quotes ("閳ユ獨" -> "’s")."""
    return _MOJIBAKE.sub(_repair_run, text)


def _repair_run(match: re.Match[str]) -> str:
    run = match.group()
    lost_byte = run.endswith("?")
    core = run.removesuffix("?")
    try:
        once = core.encode("gb18030").decode("utf-8")
        fixed = once.encode("gb18030").decode("utf-8")
    except UnicodeError:
        # Truncated sequence: only the right quote's lead survived; restore it and the lost space.
        return "\u2019 " if lost_byte else run
    return fixed + (" " if lost_byte else "")


def load(ctx: DataContext) -> dict[str, list[EthicsItem]]:
    """Registry entry for `ethicmh`: the 125 items as sent to the models (mojibake kept)."""
    return {"items": load_ethicmh(ctx)}
