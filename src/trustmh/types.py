"""Plain data types shared by tasks, backends, the runner and the store.

They are dataclasses (not pydantic models) because hundreds of thousands of them are created per
run and must stay cheap; validation happens at the edges (config, dataset loaders).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
Direction = Literal[
    "higher", "lower", "none"
]  # "none": descriptive, no better side (e.g. reply length)
# Outcome of scoring one sample (protocol Appendix B): ok, the reply was unparseable, a refusal,
# the request failed after its retries, or the backend has nothing for it (replay of an item that
# was never recorded).
ParseStatus = Literal["ok", "unparsed", "refused", "error", "missing"]


@dataclass(frozen=True, slots=True)
class GenParams:
    """Generation parameters: part of a request's cache key."""

    temperature: float = 0.0
    max_tokens: int | None = 1024
    top_p: float | None = None
    # sampling seed, for requests sampled above temperature 0 (a simulated user's repeated runs):
    # sent to OpenAI-compatible servers, which honour it where they can, and part of the cache key
    # either way, so the runs of one prompt are not served one cached reply
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Only the parameters that are set, for cache keys and API calls."""
        return {
            k: v
            for k, v in (
                ("temperature", self.temperature),
                ("max_tokens", self.max_tokens),
                ("top_p", self.top_p),
                ("seed", self.seed),
            )
            if v is not None
        }


@dataclass(frozen=True, slots=True)
class SampleRef:
    """Which sample a request belongs to; `role` is "model", "judge" or a role a multi-step task
    asks (e.g. "simulator"), and `turn` counts that role's requests within the sample (0, 1, ...).

    Live backends ignore it; the replay backend uses it to find the recorded answer.
    """

    task: str
    sample_id: str
    variant: str = "clean"
    role: str = "model"
    turn: int = 0


@dataclass(frozen=True, slots=True)
class GenRequest:
    """One chat request to a backend. `epoch` > 0 marks a repeat of the same request (`--epochs`):
    part of its cache key, so that each repeat is a fresh sample; backends ignore it."""

    messages: tuple[Message, ...]
    params: GenParams
    ref: SampleRef | None = None
    epoch: int = 0


@dataclass(slots=True)
class Usage:
    """Token usage reported by the backend (0 when unknown). `reasoning_tokens` is the part of
    `completion_tokens` the model spent reasoning (hidden or shown apart from the answer)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(slots=True)
class Response:
    """A model's reply. `text` is the answer, the only part scorers parse; `reasoning` is what the
    model wrote while thinking (a `<think>` block or a separate reasoning field), kept apart for
    auditing. `extra` carries backend-specific fields a scorer may need (for example the separately
    stored choice of a recorded run). `sent_params` is set when the generation parameters sent
    differ from the request's own (a model profile or an adaptation to the provider's rules), and
    `adapted` describes the adaptations made after the provider rejected a parameter (protocol 1.7)."""

    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    extra: dict[str, Any] | None = None
    cached: bool = False
    reasoning: str | None = None
    sent_params: dict[str, Any] | None = None
    adapted: list[dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One item of a task, ready to send: id, messages, target and free metadata."""

    id: str
    messages: tuple[Message, ...]
    target: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    variant: str = "clean"


@dataclass(slots=True)
class SampleScore:
    """What a scorer made of one reply."""

    value: float | None
    parsed: Any = None
    status: ParseStatus = "ok"
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ScoredSample:
    """A sample with its reply and score, as the metric functions see them (read back from the store)."""

    sample_id: str
    variant: str
    target: Any
    meta: dict[str, Any]
    response: str | None
    score: SampleScore


@dataclass(slots=True)
class MetricValue:
    """One aggregate number of a subtask."""

    name: str
    value: float | None
    n: int
    direction: Direction = "higher"
    primary: bool = False
    ci_low: float | None = None
    ci_high: float | None = None
    n_unparsed: int = 0
    n_refused: int = 0
    n_error: int = 0
    note: str | None = None
