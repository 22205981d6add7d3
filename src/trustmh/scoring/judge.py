"""The rubric judge: an LLM rates a reply against a rubric that lives in a data file.

A rubric (`src/trustmh/rubrics/<id>.toml`, see `rubrics/README.md`) holds the judge prompt as a
template with `{{field}}` placeholders, an optional system message, the verdict format and the
fields the verdict must carry with their ranges. Scoring one reply:

1. the prompt is filled from the task's fields (the model's reply among them) in one pass, so text a
   model wrote is never itself searched for placeholders;
2. the judge is asked through the runner (`ScoreContext.judge`: cached, retried, stored as a "judge"
   response of the sample);
3. the verdict is parsed (protocol 1.4: the first fenced JSON object, else the whole reply as JSON;
   or a bare number / one label for rubrics that ask for one); every field must be present and in
   range, else the verdict is unparsed. A JSON verdict that is not valid JSON is still read when it
   is unambiguous (`Rubric._salvage`: a bare number for a one-field rubric, or each field written
   once as `"name": value`); the ethics judge (EXACT) has its own parser and is not affected;
4. an unparsed verdict leaves the sample unscored (`judge_status = "unparsed"`), never zero, as
   protocol 1.4 says; only when the run opts in (`--judge-reask`, `ScoreContext.judge_reask`) is
   it asked once more with the rubric's stricter instruction appended, and every number such a
   re-ask touched says so in its note (`trustmh.validity.assess`).

Everything needed to audit a score (rubric id and hash, prompt, raw verdicts, parsed fields, status)
goes into the sample's score detail (`JudgeVerdict.as_detail`).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

from trustmh.errors import UserError
from trustmh.scoring.json_extract import fenced_json_object
from trustmh.tasks.base import PlannedRequest, ScoreContext
from trustmh.types import GenParams, Message, ParseStatus, SampleScore, ScoredSample

VerdictFormat = Literal["json", "number", "label"]
JudgeStatus = Literal["ok", "unparsed", "error", "no_judge"]
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*[.!]?\s*$")


@dataclass(frozen=True)
class RubricField:
    """One value the verdict must carry: a number in [low, high] or one of `labels`."""

    name: str
    low: float | None = None
    high: float | None = None
    labels: tuple[str, ...] = ()
    integer: bool = True

    def coerce(self, raw: Any) -> float | str | None:
        """The field's value from a verdict, or None when it is missing or out of range."""
        if self.labels:
            if not isinstance(raw, str):
                return None
            wanted = raw.strip().lower()
            return next((label for label in self.labels if label.lower() == wanted), None)
        if isinstance(raw, bool) or raw is None:
            return None
        try:
            value = float(raw.strip() if isinstance(raw, str) else raw)
        except (TypeError, ValueError):
            return None
        if self.integer and value != int(value):
            return None
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            return None
        return value


@dataclass(frozen=True)
class Rubric:
    """A judge rubric loaded from its data file."""

    id: str
    title: str
    template: str
    fields: tuple[RubricField, ...]
    format: VerdictFormat = "json"
    system: str | None = None
    stricter: str = ""
    max_tokens: int | None = None
    source: str = ""
    digest: str = ""
    temperature: float = (
        0.0  # protocol 1.4; a rubric copied from another benchmark may keep its own
    )

    @property
    def gen(self) -> GenParams:
        """The judge's generation parameters (temperature 0 unless the rubric says otherwise,
        protocol 1.4)."""
        return GenParams(temperature=self.temperature, max_tokens=self.max_tokens)

    def field(self, name: str) -> RubricField:
        """The field called `name`."""
        return next(f for f in self.fields if f.name == name)

    def render(self, values: dict[str, Any]) -> str:
        """The judge prompt with every `{{name}}` replaced in one pass (a missing value is a bug
        in the task, reported with the rubric and field names)."""

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise KeyError(f"rubric {self.id}: no value for {{{{{name}}}}}")
            return str(values[name])

        return _PLACEHOLDER.sub(substitute, self.template)

    def messages(self, values: dict[str, Any], stricter: bool = False) -> tuple[Message, ...]:
        """The judge request: optional system message, then the filled prompt as one user message
        (with the stricter instruction appended on the retry)."""
        prompt = self.render(values)
        if stricter and self.stricter:
            prompt = f"{prompt}\n\n{self.stricter}"
        out: list[Message] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        out.append({"role": "user", "content": prompt})
        return tuple(out)

    def parse(self, text: str | None) -> dict[str, float | str] | None:
        """The verdict's fields, or None when any field is missing or out of range."""
        if not text or not text.strip():
            return None
        if self.format == "json":
            found = fenced_json_object(text)
            if found is None:
                return self._salvage(text)
            lowered = {str(k).strip().lower(): v for k, v in found.items()}
            out: dict[str, float | str] = {}
            for f in self.fields:
                value = f.coerce(lowered.get(f.name.lower()))
                if value is None:
                    return None
                out[f.name] = value
            return out
        only = self.fields[0]
        if self.format == "number":
            match = _NUMBER.match(text)
            value = only.coerce(match.group(1)) if match else None
        else:  # label: the reply is one of the labels (case and surrounding punctuation ignored)
            value = only.coerce(text.strip().strip(".!\"'`*"))
        return None if value is None else {only.name: value}

    def _salvage(self, text: str) -> dict[str, float | str] | None:
        """A JSON verdict that did not parse as JSON, read when it is still unambiguous (DEFAULT,
        learnt from a real small judge's replies: tests/data/smollm2_replies.jsonl):
        - a reply that is only a number, for a rubric with one numeric field ("1");
        - every field written once as `"name": value`, in JSON that does not parse because of
          text elsewhere (an unescaped quote inside the explanation).
        A field written twice with different values, missing or out of range: unparsed."""
        numeric = [f for f in self.fields if not f.labels]
        if len(self.fields) == 1 and numeric:
            match = _NUMBER.match(text)
            if match:
                value = numeric[0].coerce(match.group(1))
                return None if value is None else {numeric[0].name: value}
        out: dict[str, float | str] = {}
        for f in self.fields:
            pattern = rf'"{re.escape(f.name)}"\s*:\s*(?:"([^"\n]*)"|(-?\d+(?:\.\d+)?))'
            written = {a or b for a, b in re.findall(pattern, text, re.I)}
            value = f.coerce(written.pop()) if len(written) == 1 else None
            if value is None:
                return None
            out[f.name] = value
        return out


@dataclass(slots=True)
class JudgeVerdict:
    """What the judge said about one reply."""

    status: JudgeStatus
    rubric: str
    judge_model: str | None = None
    scores: dict[str, float | str] = field(default_factory=dict)
    raw: list[str] = field(default_factory=list)  # the verdict of each attempt, in order
    prompt: str | None = None
    failure: str | None = None

    @property
    def ok(self) -> bool:
        """True when the verdict parsed."""
        return self.status == "ok"

    def as_detail(self) -> dict[str, Any]:
        """The sample-score detail entries (protocol 1.4 and Appendix B: prompt, raw verdict,
        parse status, judge model)."""
        detail: dict[str, Any] = {
            "judge_rubric": self.rubric,
            "judge_model": self.judge_model,
            "judge_status": self.status,
            "judge_scores": self.scores,
            "judge_raw": self.raw[-1] if self.raw else None,
            "judge_attempts": len(self.raw),
        }
        if len(self.raw) > 1:
            detail["judge_raw_first"] = self.raw[0]
        if self.prompt is not None:
            detail["judge_prompt_hash"] = hashlib.sha256(self.prompt.encode()).hexdigest()[:16]
            detail["judge_prompt"] = self.prompt
        if self.failure:
            detail["judge_failure"] = self.failure
        return detail


async def judge_reply(rubric: Rubric, values: dict[str, Any], ctx: ScoreContext) -> JudgeVerdict:
    """Ask the run's judge to rate one reply; `values` fill the rubric's placeholders.

    Returns status "no_judge" when the run has no judge, "error" when the judge request failed after
    its retries (the runner then records the sample as an error, retried by the next run), and
    "unparsed" when the verdict did not parse (nor, with `ctx.judge_reask`, its stricter retry).
    """
    judge = ctx.judge
    if judge is None:
        return JudgeVerdict("no_judge", rubric.digest)
    verdict = JudgeVerdict("unparsed", rubric.digest, judge_model=getattr(judge, "spec", None))
    for stricter in (False, True) if ctx.judge_reask else (False,):
        messages = rubric.messages(values, stricter=stricter)
        if verdict.prompt is None:
            verdict.prompt = messages[-1]["content"]
        response = await judge(messages, rubric.gen)
        if response is None:
            verdict.status = "error"
            verdict.failure = getattr(judge, "failure", None) or "no verdict"
            return verdict
        recorded = (response.extra or {}).get("recorded_model")
        if recorded:
            verdict.judge_model = f"{recorded} (recorded, via {verdict.judge_model})"
        verdict.raw.append(response.text)
        parsed = rubric.parse(response.text)
        if parsed is not None:
            verdict.status, verdict.scores = "ok", parsed
            return verdict
        if not rubric.stricter:
            break
    return verdict


def planned_verdict(rubric: Rubric, values: dict[str, Any]) -> PlannedRequest:
    """The judge request `judge_reply` sends for these values, for a task's `plan` (one more,
    with the stricter instruction, when the verdict does not parse)."""
    return PlannedRequest(
        "judge", rubric.messages(values), rubric.gen, max_count=2 if rubric.stricter else 1
    )


def _parse_field(rubric_id: str, spec: dict[str, Any]) -> RubricField:
    try:
        labels = tuple(str(v) for v in spec.get("labels", ()))
        rng = spec.get("range")
        low, high = (float(rng[0]), float(rng[1])) if rng else (None, None)
        return RubricField(
            name=str(spec["name"]),
            low=low,
            high=high,
            labels=labels,
            integer=bool(spec.get("integer", True)),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise UserError(f"rubric {rubric_id}: bad field {spec!r} ({exc})") from exc


def parse_rubric(rubric_id: str, text: str, source: str = "") -> Rubric:
    """A rubric from the text of its TOML file; a malformed file is one clear error."""
    try:
        data = tomllib.loads(text)
        fields = tuple(_parse_field(rubric_id, f) for f in data["fields"])
        fmt = data.get("format", "json")
        if fmt not in ("json", "number", "label"):
            raise ValueError(f"format must be json, number or label, not {fmt!r}")
        if fmt != "json" and len(fields) != 1:
            raise ValueError(f"a {fmt} verdict has exactly one field")
        return Rubric(
            id=rubric_id,
            title=str(data.get("title", rubric_id)),
            template=str(data["template"]),
            fields=fields,
            format=fmt,
            system=data.get("system"),
            stricter=str(data.get("stricter", "")),
            max_tokens=data.get("max_tokens"),
            temperature=float(data.get("temperature", 0.0)),
            source=str(data.get("source", "")),
            digest=f"{rubric_id}@{hashlib.sha256(text.encode()).hexdigest()[:12]}",
        )
    except (tomllib.TOMLDecodeError, KeyError, ValueError, TypeError) as exc:
        where = source or f"rubric {rubric_id}"
        raise UserError(f"{where}: invalid rubric ({exc}); see rubrics/README.md") from exc


@cache
def load_rubric(rubric_id: str) -> Rubric:
    """A rubric shipped with the package (`trustmh/rubrics/<id>.toml`)."""
    path = resources.files("trustmh") / "rubrics" / f"{rubric_id}.toml"
    if not path.is_file():
        raise UserError(f"no rubric {rubric_id!r}: expected trustmh/rubrics/{rubric_id}.toml")
    return parse_rubric(rubric_id, path.read_text(encoding="utf-8"), source=str(path.name))


_SAMPLE_STATUS: dict[str, ParseStatus] = {
    "ok": "ok",
    "unparsed": "unparsed",
    "error": "error",
    "no_judge": "missing",
}


def verdict_status(verdict: JudgeVerdict) -> ParseStatus:
    """The sample status a verdict gives: "ok", "unparsed", "error" (the runner re-judges it on
    the next run) or "missing" (no judge)."""
    return _SAMPLE_STATUS[verdict.status]


def score_from_verdict(verdict: JudgeVerdict, value: float | None, **detail: Any) -> SampleScore:
    """The sample score for a judged reply: `value` when the verdict parsed; unscored
    ("unparsed", value None, so it never counts as zero) when it did not; "error" when the judge
    request failed (the runner re-judges it on the next run); "missing" without a judge."""
    return SampleScore(
        value=value if verdict.ok else None,
        parsed=verdict.scores or None,
        status=verdict_status(verdict),
        detail={**verdict.as_detail(), **detail},
    )


def judged(scored: list[ScoredSample]) -> list[ScoredSample]:
    """The samples whose verdict parsed."""
    return [s for s in scored if s.score.detail.get("judge_status") == "ok"]


def judge_names(scored: list[ScoredSample]) -> str:
    """The judge model(s) that scored these samples, for metric notes."""
    names = sorted(
        {str(s.score.detail["judge_model"]) for s in scored if s.score.detail.get("judge_model")}
    )
    return ", ".join(names) or "none"
