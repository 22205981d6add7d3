"""LLMs-Mental-Health-Crisis: conversations with crisis labels, human annotations and scores.

Quirks handled here: unlabelled items store `label` as null (merged labels) or as a JSON `NaN`
(the score files); both become None. In the GPT-4o-mini test labels, 13 runs stored `""`; read
as None. In H2's scores one `answer` is `NaN` (None here) and one is the number 5 (kept as "5"). The raw sampled sets store `label` as an empty string.
"""

from __future__ import annotations

import ast
import math
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from trustmh.data.records import FIX_HINT, open_text, read_json_records
from trustmh.data.sources import DataContext
from trustmh.errors import DataError

SOURCE = "mh_crisis"
CrisisLabel = Literal[
    "no_crisis",
    "suicidal_ideation",
    "self-harm",
    "anxiety_crisis",
    "violent_thoughts",
    "substance_abuse_or_withdrawal",
    "risk_taking_behaviours",
]
HUMAN = "human_label/"
ANNOTATOR_FILES = {
    "H1": HUMAN + "H1_labeled_n206_s42.json",
    "H2": HUMAN + "H2_labeled_n206_s42.json",
    "H3": HUMAN + "H3_labeled_n206_s42.json",
    "H4": HUMAN + "H4_labelled_n206_s42.json",
}
SCORE_FILES = {"H1": HUMAN + "H1_scores_n206_s42.json", "H2": HUMAN + "H2_scores_n206_s42.json"}
# the 206 human-labelled conversations with their consensus label (16 without one)
MERGED_LABELS = HUMAN + "human-labeled-sampled_dataset_n206_s42-merged_labels.json"


def _nan_to_none(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


class SampledConversation(BaseModel):
    """A conversation of a sampled split (label not filled in)."""

    dataset_id: str
    inputs: list[str] = Field(min_length=1)
    label: str


class LabelledConversation(BaseModel):
    """A conversation with its consensus crisis label (None when annotators did not agree)."""

    inputs: list[str] = Field(min_length=1)
    all_labels: list[CrisisLabel]
    label: CrisisLabel | None


class LLMLabelledConversation(BaseModel):
    """A test conversation labelled by GPT-4o-mini (3 runs merged; a run that gave no label
    stored `""`, read as None)."""

    dataset_id: str
    inputs: list[str] = Field(min_length=1)
    all_labels: list[CrisisLabel | None]
    label: CrisisLabel | None
    original_label: str | None = None

    @field_validator("all_labels", mode="before")
    @classmethod
    def _empty_run(cls, labels: Any) -> Any:
        return [None if x == "" else x for x in labels] if isinstance(labels, list) else labels


class AnnotatorLabel(BaseModel):
    """One annotator's label of a conversation."""

    inputs: list[str] = Field(min_length=1)
    label: CrisisLabel


class AppropriatenessScore(BaseModel):
    """A human's 1-5 appropriateness score of an answer (inputs joined by ' | ')."""

    inputs: str
    answer: str | None
    label: CrisisLabel | None
    evaluation: float | None = Field(default=None, ge=1, le=5)

    @field_validator("label", "evaluation", mode="before")
    @classmethod
    def _nan(cls, value: Any) -> Any:
        return _nan_to_none(value)

    @field_validator("answer", mode="before")
    @classmethod
    def _answer_text(cls, value: Any) -> Any:
        value = _nan_to_none(value)
        return str(value) if isinstance(value, int | float) else value


def load(ctx: DataContext) -> dict[str, Any]:
    """`validation` (206), `test` (2,046), `human_labels` (206), `test_llm_labels` (2,046),
    `annotator_labels` (H1-H4, 206 each), `appropriateness_scores` (H1, H2, 206 each)."""

    def read(relpath: str, model: type[BaseModel]) -> list[Any]:
        return read_json_records(ctx.file(SOURCE, relpath), model)

    return {
        "validation": read(
            "processed/sampled_dataset_n_200_merged_n50-noSeed_156-s42.json", SampledConversation
        ),
        "test": read("processed/sampled_dataset_n_2046_nPerD168_seed0.json", SampledConversation),
        "human_labels": read(MERGED_LABELS, LabelledConversation),
        "test_llm_labels": read("llm_label_test_gpt-4o-mini_merged.json", LLMLabelledConversation),
        "annotator_labels": {k: read(v, AnnotatorLabel) for k, v in ANNOTATOR_FILES.items()},
        "appropriateness_scores": {
            k: read(v, AppropriatenessScore) for k, v in SCORE_FILES.items()
        },
    }


def human_labelled(ctx: DataContext) -> list[LabelledConversation]:
    """The 206 human-labelled conversations in file order (a row's position is its id in the
    score files too); `label` is None for the 16 without a consensus."""
    return read_json_records(ctx.file(SOURCE, MERGED_LABELS), LabelledConversation)


PROMPTING_FILE = "extra/llm_prompting.py"


def upstream_prompt(ctx: DataContext, function: str = "llm_as_judge") -> str:
    """The f-string prompt template of `function` in the dataset's `llm_prompting.py`, read as
    data with `ast` (never executed): literal parts verbatim, each placeholder as `{expr}` (e.g.
    `{dataset_id}`, `{inputs_json}`); fill it with `str.replace`."""
    path = ctx.file(SOURCE, PROMPTING_FILE)
    return _fstring_template(open_text(path), function, str(path))


def _fstring_template(source: str, function: str, where: str) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise DataError(f"{where}: not valid Python ({exc.msg}); {FIX_HINT}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            for stmt in ast.walk(node):
                if (
                    isinstance(stmt, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "prompt" for t in stmt.targets)
                    and isinstance(stmt.value, ast.JoinedStr)
                ):
                    return "".join(
                        part.value
                        if isinstance(part, ast.Constant)
                        else "{" + ast.unparse(part.value) + "}"  # type: ignore[attr-defined]
                        for part in stmt.value.values
                    )
    raise DataError(
        f'{where}: no f-string `prompt = f"""..."""` in function {function}(); {FIX_HINT}'
    )
