"""CPsyCounE: 45 Chinese counselling dialogues (9 topics x 5), each a JSON list of prefixed turns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from trustmh.data.records import FIX_HINT, read_json
from trustmh.data.sources import DataContext
from trustmh.errors import DataError

SOURCE = "cpsycoune"
TOPICS = (
    "Career",
    "Education",
    "Emotion&Stress",
    "Family Relationship",
    "Love&Marriage",
    "Mental Disease",
    "Self-growth",
    "Sex",
    "Social Relationship",
)
DIALOGUES_PER_TOPIC = 5
PREFIXES = {"求助者：": "client", "支持者：": "counsellor"}


class Turn(BaseModel):
    """One turn, its speaker prefix removed."""

    role: Literal["client", "counsellor"]
    text: str


class CounsellingDialogue(BaseModel):
    """A dialogue of one topic folder."""

    topic: str
    number: int
    turns: list[Turn]


def parse_dialogue(data: Any, where: str, topic: str, number: int) -> CounsellingDialogue:
    """Turn the raw list of prefixed strings into a dialogue; DataError naming the bad turn."""
    if not isinstance(data, list) or not data:
        raise DataError(f"{where}: expected a non-empty JSON list of turns; {FIX_HINT}")
    turns = []
    for index, raw in enumerate(data):
        if not isinstance(raw, str):
            raise DataError(
                f"{where}: turn {index}: expected a string, found {type(raw).__name__}; {FIX_HINT}"
            )
        prefix = raw[:4]
        if prefix not in PREFIXES:
            raise DataError(
                f"{where}: turn {index}: does not start with 求助者： or 支持者：; {FIX_HINT}"
            )
        turns.append(Turn(role=PREFIXES[prefix], text=raw[4:]))
    return CounsellingDialogue(topic=topic, number=number, turns=turns)


def load(ctx: DataContext) -> dict[str, Any]:
    """`dialogues`: the 45 dialogues in topic order."""
    dialogues = []
    for topic in TOPICS:
        for number in range(1, DIALOGUES_PER_TOPIC + 1):
            path = ctx.file(SOURCE, f"{topic}/{number}.json")
            dialogues.append(parse_dialogue(read_json(path), str(path), topic, number))
    return {"dialogues": dialogues}
