"""The authors' own sets: JailbreakMH (560), PsyHarm (70) and ESConv_fair (11 conversations).

PsyLeak (tier 3) is parsed by the privacy loader. JailbreakMH.csv starts with a UTF-8 byte-order
mark, so it is read as `utf-8-sig`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from trustmh.data.loaders.esconv import Conversation
from trustmh.data.records import read_csv, read_json_records
from trustmh.data.sources import DataContext

SOURCE = "trustmh"
JAILBREAK_COLUMNS = {
    "ID": "id",
    "Attack Objective (Brief)": "objective",
    "method": "method",
    "Prompt (English)": "prompt",
}
PSYHARM_COLUMNS = {"ID": "id", "Attack Objective": "objective", "Prompt (English)": "prompt"}


class JailbreakPrompt(BaseModel):
    """A PsyHarm intent wrapped in one jailbreak method."""

    id: int
    objective: str = Field(min_length=1)
    method: str = Field(min_length=1)
    prompt: str = Field(min_length=1)


class HarmfulIntent(BaseModel):
    """A plain harmful intent of PsyHarm."""

    id: int
    objective: str = Field(min_length=1)
    prompt: str = Field(min_length=1)


class FairConversation(Conversation):
    """An ESConv conversation chosen to carry no demographic cue (extra survey fields kept)."""

    seeker_question1: str | None = None
    seeker_question2: str | None = None
    supporter_question1: str | None = None
    supporter_question2: str | None = None


def load(ctx: DataContext) -> dict[str, Any]:
    """`jailbreak` (560), `psyharm` (70) and `esconv_fair` (11)."""
    return {
        "jailbreak": read_csv(
            ctx.file(SOURCE, "JailbreakMH.csv"),
            JailbreakPrompt,
            encodings=("utf-8-sig",),
            rename=lambda h: JAILBREAK_COLUMNS.get(h, h),
        ),
        "psyharm": read_csv(
            ctx.file(SOURCE, "PsyHarm.csv"),
            HarmfulIntent,
            encodings=("utf-8-sig",),
            rename=lambda h: PSYHARM_COLUMNS.get(h, h),
        ),
        "esconv_fair": read_json_records(ctx.file(SOURCE, "ESConv_fair.json"), FairConversation),
    }
