"""The task interface: a subtask is declared once, as data plus four functions.

    dataset loader -> samples -> generate (by the runner) -> score -> metric

A `Task` names its protocol subtask id, pillar, the data sources it reads, its generation
parameters, how records become samples (`samples`), how a reply is scored (`score`) and how scored
samples aggregate (`aggregate`). The core (runner, store, CLI) only ever sees this interface.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from trustmh.types import (
    Direction,
    GenParams,
    Message,
    MetricValue,
    Response,
    Sample,
    SampleScore,
    ScoredSample,
)

if TYPE_CHECKING:
    from trustmh.data.sources import DataContext

StatusLabel = Literal["EXACT", "UPSTREAM", "DEFAULT"]


class Judge(Protocol):
    """A judge the scorer may call; requests go through the runner (cached, retried, stored)."""

    spec: str

    async def __call__(
        self, messages: Sequence[Message], params: GenParams | None = None
    ) -> Response | None:
        """Ask the judge; None when the judge request failed after its retries."""
        ...


@dataclass(slots=True)
class ScoreContext:
    """What a scorer may use besides the sample and the reply."""

    judge: Judge | None = None
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0


SamplesFn = Callable[["DataContext", dict[str, Any]], Iterable[Sample]]
ScoreFn = Callable[[Sample, Response, ScoreContext], Awaitable[SampleScore]]
AggregateFn = Callable[[list[ScoredSample], dict[str, Any]], list[MetricValue]]


@dataclass(frozen=True)
class Task:
    """A subtask declaration. `samples`, `score` and `aggregate` are None for a subtask that is
    registered (so `trustmh tasks` shows it) but not implemented yet.

    `samples` yields every variant of an item (perturbation level, demographic group) together,
    item after item: `--limit N` keeps the first N items with all their variants."""

    id: str
    pillar: str
    title: str
    section: str
    status: StatusLabel
    metric: str
    direction: Direction
    sources: tuple[str, ...]
    n_items: str
    # data read when a data root supplies it, never required (e.g. PAS, which is not public):
    # `trustmh tasks` says whether one is present, and a run records the files it found
    optional_sources: tuple[str, ...] = ()
    gen: GenParams = field(default_factory=GenParams)
    samples: SamplesFn | None = None
    score: ScoreFn | None = None
    aggregate: AggregateFn | None = None
    needs_judge: Literal["no", "optional", "required"] = "no"
    option_names: tuple[
        str, ...
    ] = ()  # task options it reads (besides "seed"); others are rejected
    in_protocol: bool = True
    # the MentalAlign attribute (protocol 11) nearest to what this task's judge rates, so reports can
    # show the judge's measured agreement beside the score (None: not judge-scored)
    judge_attribute: str | None = None
    # the range the primary metric can take when it is not 0-1 (a 1-5 judge mean, a correlation),
    # so reports can put every subtask on one 0-1 scale (1 = best, after `direction`)
    scale: tuple[float, float] | None = None
    notes: str = ""
    # when the paper's data is absent and the task runs on a substitute: (data, options) -> a
    # short name of the STAND-IN it would use, else None. Reports then name the stand-in in every
    # title and keep its score out of pillar averages unless asked (protocol 0).
    stand_in: Callable[[DataContext, dict[str, Any]], str | None] | None = None

    @property
    def implemented(self) -> bool:
        """True when the task can run."""
        return self.samples is not None and self.score is not None and self.aggregate is not None


def display_title(title: str, stand_in: str | None) -> str:
    """A subtask's title as reports show it: when it ran on a STAND-IN, the stand-in replaces the
    paper's data named in brackets at the end of the title ("Psychological diagnosis (D4 + SWMH)"
    -> "Psychological diagnosis — STAND-IN: ...")."""
    if not stand_in:
        return title
    head, bracket, _ = title.rpartition(" (")
    return f"{head if bracket and title.endswith(')') else title} — STAND-IN: {stand_in}"
