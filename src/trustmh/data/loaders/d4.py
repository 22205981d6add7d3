"""D4 (Yao et al. 2022): Chinese doctor-patient dialogues for depression diagnosis, released on
application (not in the public data). Read from `<data-dir>/d4/raw_data_test.json`, the layout of
the D4 release: a JSON list of sessions, each with `log` (turns `{speaker: doctor | patient,
action, text}`), `portrait` and `record` (`drisk` depression risk, `srisk` suicide risk, `summary`).

Labels are clipped to 0-3 (`min(3, x)`), as D4's own preprocessing does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trustmh.data.records import read_json_records
from trustmh.data.sources import DataContext

SOURCE = "d4"
TEST_FILE = "raw_data_test.json"
MAX_LEVEL = 3


class D4Turn(BaseModel):
    """One dialogue turn."""

    model_config = ConfigDict(extra="ignore")

    speaker: str
    text: str


class D4Record(BaseModel):
    """The psychiatrist's record of a session: depression and suicide risk levels."""

    model_config = ConfigDict(extra="ignore")

    drisk: int = Field(ge=0)
    srisk: int = Field(ge=0)


class D4Session(BaseModel):
    """A diagnosis dialogue and its labels."""

    model_config = ConfigDict(extra="ignore")

    log: list[D4Turn] = Field(min_length=1)
    record: D4Record

    @property
    def depression(self) -> int:
        """Depression level 0-3 (0 none, 1 mild, 2 moderate, 3 severe)."""
        return min(MAX_LEVEL, self.record.drisk)

    @property
    def suicide_risk(self) -> int:
        """Suicide-risk level 0-3 (0 none, 1 low, 2 medium, 3 high)."""
        return min(MAX_LEVEL, self.record.srisk)


def load(ctx: DataContext) -> dict[str, Any]:
    """`test`: the D4 test sessions."""
    return {"test": read_json_records(ctx.file(SOURCE, TEST_FILE), D4Session)}
