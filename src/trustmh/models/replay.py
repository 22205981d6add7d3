"""`replay:NAME`: the authors' recorded responses served as if the model answered.

The same samples, scorers and aggregates then run on them as on a live model. A response is found
by the request's `SampleRef` (task id, sample id, role "model" or "judge"); a sample the recording
lacks raises `NotRecorded` (tier-2 items 20-97 of four models, MH models on privacy, DeepSeek-V3.2's
missing story). Honest reconstructions, flagged in `Response.extra`:
- tier-2 recordings hold only the parsed rating, so the rating itself is served as the reply text
  (`extra["reconstructed"]`);
- the six MH models' ethics replies are their extracted reasoning; their separately stored choice
  is passed as `extra["recorded_choice"]`, which the ethics scorer uses.
When the recording keeps the prompt it answered, `extra["prompt_matches"]` says whether the
request's prompt is identical (the bundled copy drops prompts to stay small).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trustmh.data.loaders import recorded
from trustmh.data.sources import DataContext
from trustmh.errors import UserError
from trustmh.models.base import NotRecorded
from trustmh.types import GenRequest, Response

ETHICS = "ethics.ethical_reasoning"
AWARENESS = "privacy.awareness"
LEAKAGE = "privacy.leakage"


@dataclass(frozen=True)
class ReplayModel:
    """A model the replay backend can serve: `name` is what `replay:NAME` takes."""

    name: str
    recorded_id: str
    group: str
    subtasks: tuple[str, ...]

    @property
    def display(self) -> str:
        """The paper's name (same as `name`)."""
        return self.name


@dataclass(frozen=True)
class _Entry:
    text: str
    extra: dict[str, Any]
    prompt: str | None = None


def recorded_models(ctx: DataContext) -> list[ReplayModel]:
    """Every recorded model, in the paper's order, with the subtasks it has recordings for."""
    out = []
    for m in recorded.load_recorded_models(ctx):
        subtasks = []
        if m.privacy_tier1 or m.privacy_tier2:
            subtasks.append(AWARENESS)
        if m.privacy_tier3:
            subtasks.append(LEAKAGE)
        if m.ethics:
            subtasks.append(ETHICS)
        out.append(
            ReplayModel(
                name=m.display, recorded_id=m.recorded_id, group=m.group, subtasks=tuple(subtasks)
            )
        )
    return out


def resolve_model(ctx: DataContext, name: str, flag: str | None = None) -> ReplayModel:
    """The recorded model named `name` (paper name or recorded id, case-insensitive); the
    UserError names `flag` (default: the replay:NAME spec) and lists the recorded models."""
    models = recorded_models(ctx)
    for m in models:
        if name.lower() in (m.name.lower(), m.recorded_id.lower()):
            return m
    names = ", ".join(m.name for m in models) or "none found"
    where = f"{flag} {name}" if flag else f"replay:{name}"
    raise UserError(f"{where}: no recorded responses for this model; recorded models: {names}")


class ReplayBackend:
    """Serves one recorded model's responses."""

    endpoint = "replay"
    cacheable = False

    def __init__(self, name: str, data: DataContext):
        self.model = resolve_model(data, name)
        self.spec = f"replay:{self.model.name}"
        self._data = data
        self._index: dict[tuple[str, str, str], _Entry] | None = None
        tier2 = recorded.load_recorded_tier2(data, self.model.recorded_id, "2a")
        suffix = "; tier-2 replies rebuilt from the recorded ratings" if tier2 else ""
        self.label = f"replay: {self.model.name} (authors' recorded responses{suffix})"

    def recorded_prompt(self, task: str, sample_id: str, role: str = "model") -> str | None:
        """The prompt the recording answered, when the recording kept it."""
        entry = self._entries().get((task, sample_id, role))
        return entry.prompt if entry else None

    def sample_ids(self, task: str, role: str = "model") -> list[str]:
        """The sample ids recorded for a task and role."""
        return [sid for (t, sid, r) in self._entries() if t == task and r == role]

    async def generate(self, request: GenRequest) -> Response:
        """The recorded reply for the request's sample, or NotRecorded."""
        ref = request.ref
        if ref is None:
            raise NotRecorded(f"{self.spec}: a replayed request needs a sample reference")
        entry = self._entries().get((ref.task, ref.sample_id, ref.role))
        if entry is None or ref.variant != "clean":
            raise NotRecorded(
                f"{self.spec}: no recorded {ref.role} reply for {ref.task} sample {ref.sample_id} ({ref.variant})"
            )
        extra = dict(entry.extra)
        if entry.prompt is not None and request.messages:
            extra["prompt_matches"] = request.messages[-1].get("content") == entry.prompt
        return Response(text=entry.text, finish_reason="stop", extra=extra)

    async def aclose(self) -> None:
        """Nothing to release."""

    def _entries(self) -> dict[tuple[str, str, str], _Entry]:
        if self._index is None:
            rid = self.model.recorded_id
            index: dict[tuple[str, str, str], _Entry] = {}
            index.update(_ethics_entries(self._data, rid))
            index.update(_tier1_entries(self._data, rid))
            index.update(_tier2_entries(self._data, rid))
            index.update(_tier3_entries(self._data, rid, self.model.name))
            self._index = index
        return self._index


def _ethics_entries(ctx: DataContext, rid: str) -> dict[tuple[str, str, str], _Entry]:
    out = {}
    for rec in recorded.load_recorded_ethics(ctx, rid):
        sid = str(rec.sample_id)
        extra: dict[str, Any] = {"recorded_model": rec.model}
        if "recorded_choice" in rec.model_fields_set:
            extra["recorded_choice"] = rec.recorded_choice
            extra["reply_is_extracted_reasoning"] = True
        out[(ETHICS, sid, "model")] = _Entry(rec.response or "", extra, rec.prompt)
        out[(ETHICS, sid, "judge")] = _Entry(
            rec.judge_response or "", {"recorded_model": rec.judge_model}, rec.judge_prompt
        )
    return out


def _tier1_entries(ctx: DataContext, rid: str) -> dict[tuple[str, str, str], _Entry]:
    return {
        (AWARENESS, f"tier1/{rec.id}", "model"): _Entry(
            rec.raw, {"recorded_parsed": rec.parsed}, rec.prompt
        )
        for rec in recorded.load_recorded_tier1(ctx, rid)
    }


def _tier2_entries(ctx: DataContext, rid: str) -> dict[tuple[str, str, str], _Entry]:
    out = {}
    for tier in ("2a", "2b"):
        for rec in recorded.load_recorded_tier2(ctx, rid, tier):
            text = (
                str(int(rec.model_rating))
                if rec.model_rating.is_integer()
                else str(rec.model_rating)
            )
            extra = {"reconstructed": True, "recorded_rating": rec.model_rating}
            out[(AWARENESS, f"tier{tier}/{rec.id}", "model")] = _Entry(text, extra)
    return out


def _tier3_entries(ctx: DataContext, rid: str, display: str) -> dict[tuple[str, str, str], _Entry]:
    records = recorded.load_recorded_tier3(ctx, rid)
    by_key: dict[tuple[int, str], list[recorded.Tier3Record]] = {}
    for rec in records:
        by_key.setdefault((rec.data.scenario_idx, rec.data.question_type), []).append(rec)
    stories = {k[0] for k in by_key}
    repeated = sorted({k[0] for k, recs in by_key.items() if len(recs) > 1})
    absent = sorted(set(range(max(stories) + 1)) - stories) if stories else []
    note = None
    if repeated:
        note = (
            f"{display} tier-3 recording repeats story {', '.join(map(str, repeated))} with different replies"
            + (f" and lacks story {', '.join(map(str, absent))}" if absent else "")
            + f": scored on {len(stories)} stories, using the copy at its own file position"
        )
    out = {}
    for (story, qtype), recs in by_key.items():
        # the copy whose file position equals its data id is the one written in order
        rec = next((r for r in recs if r.index == r.data.data_id), recs[-1])
        extra: dict[str, Any] = {"recorded_index": rec.index}
        if note and story in repeated:
            extra["recording_note"] = note
            extra["other_copies"] = [r.index for r in recs if r is not rec]
        out[(LEAKAGE, f"story/{story}/{qtype}", "model")] = _Entry(rec.response, extra, rec.input)
    return out
