"""The task interface: a subtask is declared once, as data plus four functions.

    dataset loader -> samples -> generate (by the runner) -> score -> metric

A `Task` names its protocol subtask id, pillar, the data sources it reads, its generation
parameters, how records become samples (`samples`), how a reply is scored (`score`) and how scored
samples aggregate (`aggregate`). The core (runner, store, CLI) only ever sees this interface.

Multi-step generation (a conversation with a simulated user, a scripted escalation, a therapy
session) is one more function, `solve(sample, generate) -> Response`, in the spirit of inspect_ai's
solvers: the runner calls it instead of sending the sample's messages once, and `generate` asks the
runner for one turn at a time. Every turn is an ordinary request: looked up in the run store and
the shared cache, sent with retries only when neither has it, and stored as soon as it arrives. So
a run killed mid-conversation replays the stored turns without asking them again and goes on from
the first missing one, and an identical rerun asks nothing. `solve` must build each turn from the
sample and the replies it got (no clock, no unseeded randomness), so that a replay asks for the same
turns. Models other than the one under test are named by role (`roles`, e.g. "simulator"); the run
supplies them (`--simulator SPEC`).
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
    from trustmh.paired import Paired

# EXACT / UPSTREAM / DEFAULT (protocol 0); STAND-IN: a substitute dataset; BEYOND: an extension
# beyond the paper (in_protocol=False: out of `all`, of paper-comparable scores and ranks)
StatusLabel = Literal["EXACT", "UPSTREAM", "DEFAULT", "STAND-IN", "BEYOND"]


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
    data: DataContext | None = None  # the run's data folders (a rubric kept as data, say)
    # ask the judge once more with the rubric's stricter instruction when its verdict does not
    # parse (opt-in: protocol 1.4 asks once)
    judge_reask: bool = False
    # scoring null replies for floors (protocol 1.8): no judge and no outside service may be
    # asked; a scorer that would need one returns status "missing"
    offline: bool = False


class Generate(Protocol):
    """One turn of a multi-step sample, asked through the runner (see the module docstring)."""

    async def __call__(
        self, messages: Sequence[Message], *, role: str = "model", params: GenParams | None = None
    ) -> Response:
        """The reply of the model playing `role` ("model": the one under test, with the run's
        generation parameters unless `params` is given; any other role: a model of the task's
        `roles`, with `params` or the defaults). Raises like a single request: `NotRecorded`
        when a replayed recording has no such turn, `TransientError`/`SampleError` after the
        retries (the sample is then recorded as failed, and its stored turns are kept)."""
        ...


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """Requests of one role that one sample sends, as its task declares them for the run's plan
    (`trustmh run --dry-run`) and cost estimates. The model's own request of a one-request task
    is not declared: the runner knows it."""

    role: str  # "judge", "model" (the turns of a multi-step task) or a role of `Task.roles`
    messages: tuple[Message, ...] = ()  # the prompt as far as it is known before the run
    params: GenParams = field(default_factory=GenParams)  # max_tokens: each reply's ceiling
    count: int = 1  # requests of this shape when every verdict parses at the first try
    max_count: int | None = None  # at most (a stricter retry, the longest rubric path); None: count
    extra_chars: int = 0  # prompt characters beyond `messages` (a conversation not played yet)
    reply_tokens: int | None = None  # a typical reply's length; None: the plan's default


@dataclass(frozen=True, slots=True)
class PlanContext:
    """What a task's `plan` may use besides the sample."""

    options: dict[str, Any]
    judge: bool  # the run has a judge
    reply: str  # a stand-in for the model's reply, of a typical length, to build judge prompts
    offline: bool = False  # as ScoreContext.offline; a plan is of a live run, so never offline


SamplesFn = Callable[["DataContext", dict[str, Any]], Iterable[Sample]]
PlanFn = Callable[[Sample, PlanContext], Sequence[PlannedRequest]]
SolveFn = Callable[[Sample, Generate], Awaitable[Response]]
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
    # multi-step generation: the runner calls solve(sample, generate) instead of sending the
    # sample's messages once; what it returns is the reply that `score` sees (None: one request)
    solve: SolveFn | None = None
    roles: tuple[str, ...] = ()  # models besides the one under test that `solve` asks, by role
    # the requests one sample sends besides its own model request (judge verdicts; a multi-step
    # task's turns), for the plan and the cost estimate of `trustmh run --dry-run`; every task
    # with a judge or `solve` declares it (tests/test_plan.py checks)
    plan: PlanFn | None = None
    reply_tokens: int | None = None  # a typical reply of the model (tokens); None: the default
    needs_judge: Literal["no", "optional", "required"] = "no"
    option_names: tuple[
        str, ...
    ] = ()  # task options it reads (besides "seed"); others are rejected
    in_protocol: bool = True
    # the MentalAlign attribute (protocol 11) nearest to what this task's judge rates, so reports can
    # show the judge's measured agreement beside the score (None: not judge-scored)
    judge_attribute: str | None = None
    # the claim the task's judge-scored number makes (protocol 11.2), which picks the unit of the
    # judge agreement shown beside it: "item" (a score of replies: does the judge rate each reply
    # like the experts) or "model" (a placement among models: does it rank models like them)
    judge_unit: Literal["item", "model"] = "item"
    # the range the primary metric can take when it is not 0-1 (a 1-5 judge mean, a correlation),
    # so reports can put every subtask on one 0-1 scale (1 = best, after `direction`)
    scale: tuple[float, float] | None = None
    # how `trustmh compare` rebuilds the primary metric from units both runs scored (protocol 1.9);
    # None: the accuracy form (mean of the 0/1 credit), used only where it reproduces the score
    paired: Paired | None = None
    # a relative metric (a spread between groups, a drop between levels) compares a model with
    # itself: a responder whose replies ignore the input gets its best value, so reports flag such
    # responders "degenerate" instead of ranking them (protocol 1.8); `quality_metric` names the
    # stored metric measuring the replies' own quality (e.g. the clean score), whose null floor
    # tells whether the relative number means anything
    relative: bool = False
    quality_metric: str | None = None
    # the subtask whose scorer rates this one's replies (a relative subtask built on it): the null
    # floor of `quality_metric` is that subtask's, measured on this run's reference variant
    base_task: str | None = None
    notes: str = ""
    # what one run of the task costs per model at its default options, for `trustmh tasks`
    # (requests and tokens; empty when it is just one request per item)
    cost: str = ""
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
