"""Loader for `trustmh_prompts/`: the authors' privacy and ethics templates, kept as data.

The templates are EXACT (verified by their extractor against every recorded prompt); they are
filled by literal `str.replace`, never `str.format`, because they contain JSON braces.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from trustmh.data.records import read_json
from trustmh.data.sources import DataContext
from trustmh.errors import DataError

SOURCE = "trustmh_prompts"
PRIVACY_FILE = "privacy_confaide_psyleak.json"
ETHICS_FILE = "ethics_ethicmh.json"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class RatingTier(_Lenient):
    """Tier-1 or tier-2 input wrapper, allowed ratings and phrase map (in its listed order)."""

    input_template: str
    targets: list[int]
    phrase_map: dict[str, str]
    model_params: dict[str, float]


class Awareness(_Lenient):
    """Privacy awareness (tiers 1, 2a, 2b)."""

    tier1: RatingTier
    tier2: RatingTier


class Leakage(_Lenient):
    """Privacy leakage (PsyLeak tier 3): instruction, input templates, questions, proxy prompt."""

    instruction_prefix: str
    input_template_when_question_has_colon_space: str
    input_template_otherwise: str
    questions: dict[str, str]
    model_params: dict[str, float]
    proxy_question: str
    proxy_instruction: str


class PrivacyPrompts(_Lenient):
    """`privacy_confaide_psyleak.json`."""

    provenance: dict
    awareness: Awareness
    leakage: Leakage


class EthicsPrompts(_Lenient):
    """`ethics_ethicmh.json`."""

    provenance: dict
    reasoning_prompt: str
    judge_prompt: str
    judge_model: str
    judge_scale: dict


def fill(template: str, values: dict[str, str]) -> str:
    """Replace each `{name}` of `template` literally (the templates hold JSON braces)."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


@lru_cache(maxsize=8)
def _load(path: Path, model: type[BaseModel]) -> BaseModel:
    data = read_json(path)
    try:
        return model.model_validate(data)
    except Exception as exc:  # pydantic ValidationError: one line naming the file
        raise DataError(
            f"{path}: does not match the expected template schema ({str(exc).splitlines()[0]})"
        ) from None


def load_privacy_prompts(ctx: DataContext) -> PrivacyPrompts:
    """The privacy templates (tiers 1-3)."""
    return _load(ctx.file(SOURCE, PRIVACY_FILE), PrivacyPrompts)  # type: ignore[return-value]


def load_ethics_prompts(ctx: DataContext) -> EthicsPrompts:
    """The ethics model prompt and GPT-4.1 judge prompt."""
    return _load(ctx.file(SOURCE, ETHICS_FILE), EthicsPrompts)  # type: ignore[return-value]


def load(ctx: DataContext) -> dict[str, BaseModel]:
    """Registry entry for `trustmh_prompts`: the privacy and ethics templates."""
    return {"privacy": load_privacy_prompts(ctx), "ethics": load_ethics_prompts(ctx)}
