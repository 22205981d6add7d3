"""PsyEval's USMLE-mental (727 MCQs) and Crisis_Response_QA (153 MCQs).

Quirk handled here: four Crisis_Response_QA answers carry stray spaces (`'A '`, `' B '`); the
answer letter is stripped before it is checked against the options.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationInfo, field_validator

from trustmh.data.records import read_jsonl
from trustmh.data.sources import DataContext

SOURCE = "usmle_mental"


class MCQItem(BaseModel):
    """A multiple-choice question: options letter -> text, `answer` one of the letters."""

    question: str
    options: dict[str, str]
    answer: str

    @field_validator("options")
    @classmethod
    def _some_options(cls, options: dict[str, str]) -> dict[str, str]:
        if len(options) < 2:
            raise ValueError("needs at least two options")
        return options

    @field_validator("answer", mode="before")
    @classmethod
    def _strip(cls, answer: object) -> object:
        return answer.strip() if isinstance(answer, str) else answer

    @field_validator("answer")
    @classmethod
    def _answer_is_an_option(cls, answer: str, info: ValidationInfo) -> str:
        options = info.data.get("options")
        if options is not None and answer not in options:
            raise ValueError(
                f"answer {answer!r} is not one of the option letters {sorted(options)}"
            )
        return answer


class USMLEItem(MCQItem):
    """A USMLE-mental question with its exam step and topic tags."""

    meta_info1: str
    answer_description: str
    meta_info2: list[str]


def load(ctx: DataContext) -> dict[str, Any]:
    """`usmle` (727 items) and `crisis_qa` (153 items)."""
    return {
        "usmle": read_jsonl(ctx.file(SOURCE, "USMLE-mental.jsonl"), USMLEItem),
        "crisis_qa": read_jsonl(ctx.file(SOURCE, "Crisis_Response_QA.jsonl"), MCQItem),
    }
