"""The bill before a run: what `trustmh run` would send, per subtask and in total, without sending
anything (`trustmh run --dry-run`, and the plan shown before a run of every subtask).

Per subtask and role (the model, the judge, a simulated user): the requests, their input tokens
(exact with the model's own tokenizer where `trustmh.tokens` has it, else estimated) and output
tokens (estimated: a typical reply, and the ceiling of each request's max_tokens), and what they
cost at the price table's prices. Samples already finished in `--run-dir`, and model replies
already stored there or in the shared cache, are not counted: the plan is what the next run
sends. Judge requests are the ones each task declares (`Task.plan`), counted when every verdict
parses at the first try; "at most" adds the stricter retries and the longest rubric paths.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustmh.config import RunConfig
from trustmh.data.sources import DataContext, require_sources, resolve_data_context
from trustmh.errors import UserError
from trustmh.models.spec import parse_model_spec
from trustmh.prices import Price, PriceTable, load_prices
from trustmh.store import CACHE_DB, RUN_DB, request_key
from trustmh.tasks.base import PlanContext, PlannedRequest, Task
from trustmh.tokens import TokenCounter, counter_for
from trustmh.types import GenParams, GenRequest, SampleRef

# A typical reply, in tokens, when a task does not declare one (capped by max_tokens), and the
# ceiling assumed for a request without max_tokens (the Anthropic backend's default too).
TYPICAL_REPLY_TOKENS = {"model": 250, "judge": 100}
OTHER_REPLY_TOKENS = 250
UNBOUNDED_REPLY_TOKENS = 4096


def reply_ceiling(params: GenParams) -> int:
    """The most output tokens one request can cost."""
    return params.max_tokens or UNBOUNDED_REPLY_TOKENS


@dataclass
class Load:
    """Requests of one role and their tokens."""

    requests: int = 0
    max_requests: int = 0
    input_tokens: int = 0
    max_input_tokens: int = 0
    output_tokens: int = 0  # estimated: typical replies
    max_output_tokens: int = 0  # every reply at its ceiling

    def add(
        self, count: int, max_count: int, input_tokens: int, typical: int, ceiling: int
    ) -> None:
        """Count `count` requests (`max_count` at most) of this many input tokens each."""
        self.requests += count
        self.max_requests += max_count
        self.input_tokens += count * input_tokens
        self.max_input_tokens += max_count * input_tokens
        self.output_tokens += count * min(typical, ceiling)
        self.max_output_tokens += max_count * ceiling

    def merge(self, other: Load) -> None:
        """Add another load's counts."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class TaskPlan:
    """What one subtask would send."""

    task: str
    samples: int = 0  # samples of this invocation
    pending: int = 0  # not finished yet
    answered: int = 0  # pending samples whose model reply is already stored or cached
    loads: dict[str, Load] = field(default_factory=dict)

    def load(self, role: str) -> Load:
        """The load of a role (created empty)."""
        return self.loads.setdefault(role, Load())


@dataclass
class Plan:
    """What a run would send, with the models, token counters and prices behind the estimate."""

    tasks: list[TaskPlan]
    skipped: dict[str, str]
    specs: dict[str, str]  # role -> model spec
    counters: dict[str, TokenCounter]
    prices: dict[str, Price | None]
    batch: bool = False

    def cost(self, role: str, load: Load, ceiling: bool = False) -> float | None:
        """Dollars of a load (None when the role's model has no price)."""
        price = self.prices.get(role)
        if price is None:
            return None
        if ceiling:
            return price.cost(load.max_input_tokens, load.max_output_tokens, self.batch)
        return price.cost(load.input_tokens, load.output_tokens, self.batch)

    def totals(self) -> dict[str, Load]:
        """Loads of every role summed over the subtasks."""
        out: dict[str, Load] = {}
        for task in self.tasks:
            for role, load in task.loads.items():
                out.setdefault(role, Load()).merge(load)
        return out

    def total_cost(self, ceiling: bool = False) -> tuple[float, bool]:
        """(dollars over the priced roles, whether every role with requests has a price)."""
        usd, complete = 0.0, True
        for role, load in self.totals().items():
            if not load.requests and not load.max_requests:
                continue
            cost = self.cost(role, load, ceiling)
            if cost is None:
                complete = False
            else:
                usd += cost
        return usd, complete

    @property
    def requests(self) -> int:
        """Requests of every role (when every verdict parses at the first try)."""
        return sum(load.requests for load in self.totals().values())


def role_specs(cfg: RunConfig, tasks: list[Task], data: DataContext) -> dict[str, str]:
    """The model spec of every role of the run: the model, the judge, the roles the tasks ask
    for (a replay that plays a role answers it itself)."""
    from trustmh.engine import ROLE_FLAGS

    specs = {"model": parse_model_spec(cfg.model).canonical}
    if cfg.judge:
        specs["judge"] = parse_model_spec(cfg.judge, "--judge").canonical
    plays = _plays(cfg.model, data)
    for role in dict.fromkeys(r for t in tasks for r in t.roles):
        if role in plays:
            specs[role] = specs["model"]
            continue
        spec_field = ROLE_FLAGS.get(role, (role, None))[0]
        flag = "--" + spec_field.replace("_", "-")
        spec = getattr(cfg, spec_field, None)
        if not spec:
            needing = ", ".join(t.id for t in tasks if role in t.roles)
            raise UserError(f"--tasks {needing}: needs a {role} model; pass {flag} SPEC")
        specs[role] = parse_model_spec(spec, flag).canonical
    return specs


def _plays(model: str, data: DataContext) -> tuple[str, ...]:
    """The roles a replayed recording answers besides the model (no key is needed to know)."""
    spec = parse_model_spec(model)
    if spec.provider != "replay":
        return ()
    from trustmh.models.factory import build_backend

    backend = build_backend(model, api_key_env=None, timeout=1, concurrency=1, data=data)
    return tuple(getattr(backend, "plays", ()))


def _cacheable(spec: str) -> bool:
    return parse_model_spec(spec).provider in ("openai", "anthropic")


class _Stored:
    """Read-only view of what a run directory and the shared cache already hold (nothing is
    created: a dry run writes no file)."""

    def __init__(self, run_dir: Path | None, cache_dir: Path | None):
        self.run = _open_ro(run_dir / RUN_DB) if run_dir else None
        self.cache = _open_ro(cache_dir / CACHE_DB) if cache_dir else None

    def samples(self, task: str) -> tuple[dict[tuple[str, str], str], set[tuple[str, str]]]:
        """Stored request keys of a task's samples, and those with a final score."""
        if self.run is None:
            return {}, set()
        rows = self.run.execute(
            "SELECT sample_id, variant, request_key FROM samples WHERE task=?", (task,)
        )
        known = {(sid, var): key for sid, var, key in rows}
        done = self.run.execute(
            "SELECT sample_id, variant FROM scores WHERE task=? AND status != 'error'", (task,)
        )
        return known, {(sid, var) for sid, var in done}

    def has_reply(self, key: str, cacheable: bool) -> bool:
        """True when the reply to this request is stored in the run (or cached, if cacheable)."""
        query = "SELECT 1 FROM responses WHERE request_key=?"
        if self.run is not None and self.run.execute(query, (key,)).fetchone():
            return True
        return bool(cacheable and self.cache and self.cache.execute(query, (key,)).fetchone())

    def close(self) -> None:
        """Close both connections."""
        for conn in (self.run, self.cache):
            if conn is not None:
                conn.close()


def _open_ro(path: Path) -> sqlite3.Connection | None:
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        conn.execute("SELECT 1 FROM responses LIMIT 1")
        return conn
    except sqlite3.Error:  # not a trustmh database (or locked): nothing is known to be stored
        return None


def stand_in_reply(tokens: int) -> str:
    """A reply of about `tokens` tokens, to build judge prompts before the model answered."""
    return " ".join(["word"] * max(tokens, 0))


def build_plan(cfg: RunConfig, *, batch: bool = False, prices: PriceTable | None = None) -> Plan:
    """What `trustmh run` with this configuration would send (see the module docstring)."""
    from trustmh.engine import check_options, choose_tasks, default_cache_dir

    data = resolve_data_context(cfg.data_dir)
    tasks, skipped = choose_tasks(cfg.tasks)
    check_options(cfg.options, tasks)
    if not cfg.judge:
        for task in tasks:
            if task.needs_judge == "required":
                skipped[task.id] = "not scored: no judge (pass --judge SPEC); nothing sent"
        tasks = [t for t in tasks if t.id not in skipped]
    for task in tasks:
        require_sources(data, task)
    specs = role_specs(cfg, tasks, data)
    table = prices or load_prices(getattr(cfg, "prices", None))
    plan = Plan([], skipped, specs, {r: counter_for(s) for r, s in specs.items()},
                {r: table.lookup(s) for r, s in specs.items()}, batch)  # fmt: skip
    wire = _wire(cfg, specs["model"])
    cache_dir = None if cfg.no_cache else (cfg.cache_dir or default_cache_dir())
    stored = _Stored(cfg.run_dir, cache_dir)
    try:
        for task in tasks:
            plan.tasks.append(_plan_task(cfg, task, data, plan, stored, wire))
    finally:
        stored.close()
    return plan


def _wire(cfg: RunConfig, spec: str) -> Callable[[GenParams], dict[str, Any]]:
    """The parameters sent for a task's (the model's profile applied, protocol 1.7), which the
    request keys cover; adaptations a provider's 400s taught an earlier run are not known here."""
    from trustmh.models.profiles import ParameterRules, load_profiles, plan_for

    parsed = parse_model_spec(spec)
    if parsed.provider not in ("openai", "anthropic"):
        return lambda params: plan_for(None, params).wire
    profiles = load_profiles(cfg.model_profiles) if cfg.model_profiles else None
    rules = ParameterRules(parsed.provider, parsed.model, spec, profiles=profiles,
                           effort=cfg.reasoning_effort)  # fmt: skip
    return lambda params: rules.plan(params).wire


def _plan_task(cfg: RunConfig, task: Task, data: DataContext, plan: Plan, stored: _Stored,
               wire: Callable[[GenParams], dict[str, Any]]) -> TaskPlan:  # fmt: skip
    from trustmh.engine import gen_params, iter_limited, steps_key, task_options, with_system_prompt
    from trustmh.epochs import epoch_of, with_epochs

    out = TaskPlan(task.id)
    options = task_options(cfg, task)
    params = gen_params(cfg, task)
    model = plan.specs["model"]
    cacheable = _cacheable(model)
    known, finished = stored.samples(task.id)
    typical = min(task.reply_tokens or TYPICAL_REPLY_TOKENS["model"], reply_ceiling(params))
    context = PlanContext(options, "judge" in plan.specs, stand_in_reply(typical))
    sent = wire(params)
    items = iter_limited(task.samples(data, options), cfg.limit)  # type: ignore[misc]
    for sample in with_epochs(items, cfg.epochs):
        out.samples += 1
        request = GenRequest(with_system_prompt(sample.messages, cfg.system_prompt), params,
                             SampleRef(task.id, sample.id, sample.variant, "model"),
                             epoch_of(sample.meta))  # fmt: skip
        key = request_key(model, request, include_ref=not cacheable,
                          extra=steps_key(task, sample, plan.specs), params=sent)  # fmt: skip
        where = (sample.id, sample.variant)
        if where in finished and known.get(where) == key:
            continue
        out.pending += 1
        answered = stored.has_reply(key, cacheable)
        if answered:
            out.answered += 1
        elif task.solve is None:
            counter = plan.counters["model"]
            out.load("model").add(1, 1, counter.messages(request.messages), typical,
                                  reply_ceiling(params))  # fmt: skip
        planned = task.plan(sample, context) if task.plan else ()
        for item in _declared(planned, task, answered, plan):
            _count(out, item, params, plan)
    return out


def _declared(planned: Any, task: Task, answered: bool, plan: Plan) -> Iterator[PlannedRequest]:
    """The declared requests the run would send: the judge's only with a judge, a multi-step
    sample's turns only while its conversation is not stored."""
    for item in planned:
        if item.role == "judge":
            if "judge" in plan.specs:
                yield item
        elif task.solve is not None and not answered:
            yield item


def _count(out: TaskPlan, item: PlannedRequest, params: GenParams, plan: Plan) -> None:
    counter = plan.counters.get(item.role) or plan.counters["model"]
    item_params = params if item.role == "model" and item.params == GenParams() else item.params
    inputs = (counter.messages(item.messages) if item.messages else 0) + counter.chars(
        item.extra_chars
    )
    ceiling = reply_ceiling(item_params)
    typical = item.reply_tokens or TYPICAL_REPLY_TOKENS.get(item.role, OTHER_REPLY_TOKENS)
    max_count = item.count if item.max_count is None else item.max_count
    out.load(item.role).add(item.count, max_count, inputs, typical, ceiling)


def sample_counts(plan: Plan) -> tuple[int, int, int]:
    """(samples, pending, answered) over the subtasks."""
    return (sum(t.samples for t in plan.tasks), sum(t.pending for t in plan.tasks),
            sum(t.answered for t in plan.tasks))  # fmt: skip
