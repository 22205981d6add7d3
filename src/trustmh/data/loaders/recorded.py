"""Loader for `trustmh_recorded/`: the authors' per-sample outputs (ethics: 12 models; privacy
tiers 1, 2a, 2b and 3: the six general models).

File names carry the authors' model ids; `DISPLAY_NAMES` maps them to the paper's names (two MH
files misspell theirs: `Meditron-8B`, `Medtron3-70B`). The bundled copy holds the same files
stripped of the fields the replay does not need (prompts, story texts) and gzip-compressed; the
schemas below therefore make those fields optional.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from trustmh.data.records import read_json_records, read_jsonl
from trustmh.data.sources import DataContext
from trustmh.errors import DataError

SOURCE = "trustmh_recorded"
Group = Literal["general", "MH"]

# recorded id -> (display name, group), in the paper's order.
DISPLAY_NAMES: dict[str, tuple[str, Group]] = {
    "gpt-5.1": ("GPT-5.1", "general"),
    "gpt-4o-mini": ("GPT-4o-mini", "general"),
    "claude-sonnet-4-5-20250929": ("Claude-Sonnet-4.5", "general"),
    "gemini-2.5-flash": ("Gemini-2.5-flash", "general"),
    "qwen3-235b-a22b-instruct-2507": ("Qwen3-235B", "general"),
    "deepseek-v3.2": ("DeepSeek-V3.2", "general"),
    "SoulChat2": ("SoulChat2", "MH"),
    "Simpsybot": ("Simpsybot", "MH"),
    "PsycoLLM": ("PsycoLLM", "MH"),
    "MentalLLaMA": ("MentalLLaMA", "MH"),
    "Meditron-8B": ("Meditron3-8B", "MH"),
    "Medtron3-70B": ("Meditron3-70B", "MH"),
}
ETHICS_GLOB = "ethics/{model}-ethics_reasoning-*.jsonl"
TIER1_FILE = "privacy/task1/outputs_{model}_tier1.jsonl"
TIER2_FILE = "privacy/task2/ratings_{model}_tier{tier}.json"
TIER3_FILE = "privacy/task3/outputs_{model}_data_tier_3_nsamples_1_q_free-response,info-accessibility,privacy-sharing,control.jsonl"


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EthicsRecord(_Record):
    """One recorded ethics answer and its GPT-4.1 verdict."""

    model: str
    judge_model: str
    temperature: float | None = None
    sample_id: int
    prompt: str | None = None
    response: str | None
    judge_prompt: str | None = None
    judge_response: str | None
    recorded_choice: str | None = None


class Tier1Record(_Record):
    """One recorded tier-1 reply: raw text and the authors' parsed rating string."""

    model: str
    id: int
    prompt: str | None = None
    raw: str
    parsed: str | None


class Tier2Rating(_Record):
    """One recorded tier-2 rating (parsed value only; raw replies were not released)."""

    id: int
    model_rating: float
    info: str | None = None


class Tier3Data(_Record):
    """The item a tier-3 reply answers (the authors' `data` field, story text optional)."""

    data_id: int
    scenario_idx: int
    question_type: str
    subject_agent: str | None = None
    aware_agent: str | None = None
    oblivious_agent: str | None = None


class Tier3Record(_Record):
    """One recorded tier-3 reply (already cut after the first "Answer:" by the authors' parser)."""

    index: int
    response: str
    input: str | None = None
    data: Tier3Data


class RecordedModel(BaseModel):
    """A model with recorded outputs and what was recorded for it."""

    recorded_id: str
    display: str
    group: Group
    ethics: bool
    privacy_tier1: bool
    privacy_tier2: bool
    privacy_tier3: bool


def display_name(recorded_id: str) -> str:
    """The paper's name for a recorded model id (unknown ids are returned unchanged)."""
    return DISPLAY_NAMES.get(recorded_id, (recorded_id, "general"))[0]


def _exists(path: Path) -> bool:
    return path.is_file() or path.with_name(path.name + ".gz").is_file()


def _ethics_path(root: Path, model: str) -> Path | None:
    pattern = ETHICS_GLOB.format(model=model)
    hits = sorted({p.name.removesuffix(".gz") for p in root.glob(pattern + "*")})
    hits = [h for h in hits if h.endswith(".jsonl")]
    if len(hits) > 1:
        raise DataError(f"{root / 'ethics'}: {len(hits)} ethics files for {model!r}; keep one")
    return root / "ethics" / hits[0] if hits else None


def load_recorded_models(ctx: DataContext) -> list[RecordedModel]:
    """Every model of `DISPLAY_NAMES` with at least one recorded file, in the paper's order."""
    root = ctx.locate(SOURCE)
    out = []
    for rid, (display, group) in DISPLAY_NAMES.items():
        entry = RecordedModel(
            recorded_id=rid,
            display=display,
            group=group,
            ethics=_ethics_path(root, rid) is not None,
            privacy_tier1=_exists(root / TIER1_FILE.format(model=rid)),
            privacy_tier2=_exists(root / TIER2_FILE.format(model=rid, tier="2a")),
            privacy_tier3=_exists(root / TIER3_FILE.format(model=rid)),
        )
        if entry.ethics or entry.privacy_tier1 or entry.privacy_tier2 or entry.privacy_tier3:
            out.append(entry)
    return out


def load_recorded_ethics(ctx: DataContext, model: str) -> list[EthicsRecord]:
    """The 125 recorded ethics answers of `model` (recorded id); [] when none were recorded."""
    path = _ethics_path(ctx.locate(SOURCE), model)
    return _cached(path, EthicsRecord) if path else []


def load_recorded_tier1(ctx: DataContext, model: str) -> list[Tier1Record]:
    """The recorded tier-1 replies of `model`; [] when none were recorded."""
    return _optional(ctx.locate(SOURCE) / TIER1_FILE.format(model=model), Tier1Record)


def load_recorded_tier2(
    ctx: DataContext, model: str, tier: Literal["2a", "2b"]
) -> list[Tier2Rating]:
    """The recorded tier-2a or 2b ratings of `model`; [] when none were recorded."""
    return _optional(ctx.locate(SOURCE) / TIER2_FILE.format(model=model, tier=tier), Tier2Rating)


def load_recorded_tier3(ctx: DataContext, model: str) -> list[Tier3Record]:
    """The 400 recorded tier-3 replies of `model` in file order; [] when none were recorded."""
    return _optional(ctx.locate(SOURCE) / TIER3_FILE.format(model=model), Tier3Record)


def _optional(path: Path, model: type[_Record]) -> list[Any]:
    return _cached(path, model) if _exists(path) else []


@lru_cache(maxsize=64)
def _cached(path: Path, model: type[_Record]) -> list[Any]:
    if path.name.endswith(".json"):
        return read_json_records(path, model)
    return read_jsonl(path, model)


def load(ctx: DataContext) -> dict[str, Any]:
    """Registry entry for `trustmh_recorded`: the model index and every recorded file, by recorded id."""
    models = load_recorded_models(ctx)
    return {
        "models": models,
        "ethics": {
            m.recorded_id: load_recorded_ethics(ctx, m.recorded_id) for m in models if m.ethics
        },
        "tier1": {
            m.recorded_id: load_recorded_tier1(ctx, m.recorded_id)
            for m in models
            if m.privacy_tier1
        },
        "tier2a": {
            m.recorded_id: load_recorded_tier2(ctx, m.recorded_id, "2a")
            for m in models
            if m.privacy_tier2
        },
        "tier2b": {
            m.recorded_id: load_recorded_tier2(ctx, m.recorded_id, "2b")
            for m in models
            if m.privacy_tier2
        },
        "tier3": {
            m.recorded_id: load_recorded_tier3(ctx, m.recorded_id)
            for m in models
            if m.privacy_tier3
        },
    }
