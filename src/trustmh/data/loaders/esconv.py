"""ESConv: dialogue prefixes of the test/dev splits (TSV) and FailedESConv conversations (JSON).

A TSV line is one dialogue prefix; turns are joined by ` EOS `, each turn
`<score> <speaker 0=seeker,1=supporter> <turn index> [Strategy] text` (strategy on supporter turns).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from trustmh.data.records import FIX_HINT, read_json_records, read_lines
from trustmh.data.sources import DataContext
from trustmh.errors import DataError

SOURCE = "esconv"
TURN_RE = re.compile(
    r"^(?P<score>-?\d+(?:\.\d+)?) (?P<speaker>[01]) (?P<index>\d+) (?P<rest>.*)$", re.S
)
STRATEGY_RE = re.compile(r"^\[(?P<strategy>[^\]]+)\] ?(?P<text>.*)$", re.S)


class PrefixTurn(BaseModel):
    """One turn of a TSV prefix."""

    score: float
    speaker: Literal["seeker", "supporter"]
    index: int
    strategy: str | None
    text: str


class DialoguePrefix(BaseModel):
    """One TSV line: a dialogue so far."""

    line: int
    turns: list[PrefixTurn] = Field(min_length=1)


class DialogTurn(BaseModel):
    """A turn of an ESConv JSON conversation (speaker `seeker`/`supporter`, or in FailedESConv
    `speaker`/`listener`)."""

    speaker: Literal["seeker", "supporter", "speaker", "listener"]
    annotation: dict[str, Any]
    content: str


class Conversation(BaseModel):
    """An ESConv JSON conversation."""

    experience_type: str
    emotion_type: str
    problem_type: str
    situation: str
    survey_score: dict[str, Any]
    dialog: list[DialogTurn] = Field(min_length=1)


def parse_prefix(line: str, where: str, lineno: int) -> DialoguePrefix:
    """Parse one TSV line; DataError naming the line and turn on a malformed turn."""
    turns = []
    for position, raw in enumerate(line.split(" EOS ")):
        match = TURN_RE.match(raw.strip())
        if match is None:
            raise DataError(
                f"{where}: line {lineno}: turn {position + 1} is not '<score> <0|1> <index> text'; {FIX_HINT}"
            )
        rest = match["rest"]
        strategy = None
        tagged = STRATEGY_RE.match(rest)
        if tagged is not None:
            strategy, rest = tagged["strategy"], tagged["text"]
        turns.append(
            PrefixTurn(
                score=float(match["score"]),
                speaker="supporter" if match["speaker"] == "1" else "seeker",
                index=int(match["index"]),
                strategy=strategy,
                text=rest.strip(),
            )
        )
    return DialoguePrefix(line=lineno, turns=turns)


def read_prefixes(ctx: DataContext, name: str) -> list[DialoguePrefix]:
    """All prefixes of one TSV split (blank lines skipped)."""
    path = ctx.file(SOURCE, name)
    return [
        parse_prefix(line, str(path), n)
        for n, line in enumerate(read_lines(path), 1)
        if line.strip()
    ]


def load(ctx: DataContext) -> dict[str, Any]:
    """`test` (2,775 prefixes), `dev` (2,985) and `failed` (196 conversations)."""
    return {
        "test": read_prefixes(ctx, "testWithStrategy_short.tsv"),
        "dev": read_prefixes(ctx, "devWithStrategy_short.tsv"),
        "failed": read_json_records(ctx.file(SOURCE, "FailedESConv.json"), Conversation),
    }
