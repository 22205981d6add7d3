"""EmoBench: emotional understanding (EU, 400 items) and application (EA, 400), plus its prompts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from trustmh.data.loaders import validate_record
from trustmh.data.records import open_text, read_jsonl
from trustmh.data.sources import DataContext
from trustmh.errors import DataError

SOURCE = "emobench"


class EUItem(BaseModel):
    """An emotional-understanding item: pick the emotion and its cause."""

    qid: str
    language: Literal["en", "zh"]
    coarse_category: str
    finegrained_category: str
    scenario: str
    subject: str
    emotion_choices: list[str] = Field(min_length=2)
    emotion_label: str
    cause_choices: list[str] = Field(min_length=2)
    cause_label: str

    @field_validator("emotion_label", "cause_label")
    @classmethod
    def _label_is_a_choice(cls, label: str, info: ValidationInfo) -> str:
        choices = info.data.get(info.field_name.replace("_label", "_choices"))
        if choices is not None and label not in choices:
            raise ValueError(f"{label!r} is not one of the choices")
        return label


class EAItem(BaseModel):
    """An emotional-application item: pick the most effective action or response."""

    model_config = ConfigDict(populate_by_name=True)

    qid: str
    language: Literal["en", "zh"]
    category: str
    question_type: str = Field(alias="question type")
    scenario: str
    subject: str
    choices: list[str] = Field(min_length=2)
    label: str


class LanguagePair(BaseModel):
    """A template in English and Chinese."""

    en: str
    zh: str


class EmoBenchPrompts(BaseModel):
    """EmoBench's own templates (`src/configs/prompts.yaml`)."""

    model_config = ConfigDict(populate_by_name=True)

    sys: LanguagePair
    eu: LanguagePair = Field(alias="EU")
    ea: LanguagePair = Field(alias="EA")


def load_prompts(ctx: DataContext) -> EmoBenchPrompts:
    """The parsed prompts.yaml."""
    import yaml  # only the emotion subtask reads it: importing this module stays cheap

    path = ctx.file(SOURCE, "prompts.yaml")
    try:
        data = yaml.safe_load(open_text(path))
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    return validate_record(EmoBenchPrompts, data, str(path))


def load(ctx: DataContext) -> dict[str, Any]:
    """`eu` (400), `ea` (400) and `prompts`."""
    return {
        "eu": read_jsonl(ctx.file(SOURCE, "EU.jsonl"), EUItem),
        "ea": read_jsonl(ctx.file(SOURCE, "EA.jsonl"), EAItem),
        "prompts": load_prompts(ctx),
    }
