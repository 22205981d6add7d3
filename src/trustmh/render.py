"""Terminal rendering of run summaries, run lists and the task table."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from trustmh.engine import RunSummary
from trustmh.errors import UserError
from trustmh.metrics import split_metric_name
from trustmh.store import RUN_DB, RunStore
from trustmh.tables import folded_table

if TYPE_CHECKING:
    from trustmh.plan import Plan
from trustmh.types import MetricValue


def fmt(value: float | None, digits: int = 4) -> str:
    """A number for tables ("n/a" when missing)."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def arrow(direction: str) -> str:
    """↑ (higher is better), ↓ (lower is better) or nothing (a descriptive metric)."""
    return {"higher": "↑", "lower": "↓"}.get(direction, "")


def metric_row(task: str, m: MetricValue, judge_flag: str | None = None) -> list[str]:
    """Cells of one metric line; `judge_flag` (e.g. "judge not trusted") leads its note."""
    # metric names, notes and CI brackets are text, not rich markup (breakdowns look like
    # `rta[method=cot]`, which rich would swallow as a tag)
    ci = escape(f"[{fmt(m.ci_low, 3)}, {fmt(m.ci_high, 3)}]") if m.ci_low is not None else ""
    name = f"[bold]{escape(m.name)}[/]" if m.primary else escape(m.name)
    return [
        escape(task),
        name,
        f"{fmt(m.value)} {arrow(m.direction)}".rstrip(),
        ci,
        str(m.n),
        f"{m.n_refused}/{m.n_unparsed}/{m.n_error}",
        escape("; ".join(filter(None, (judge_flag, m.note)))),
    ]


def breakdown_rows(task: str, metrics: list[MetricValue]) -> list[list[str]]:
    """One line per (metric, dimension) of a task's breakdowns: every group's value in one cell,
    so a subtask with dozens of groups stays a few lines in the terminal (the report has them all)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for m in metrics:
        metric, dimension, value = split_metric_name(m.name)
        if dimension is not None:
            groups.setdefault((metric, dimension), []).append(f"{value} {fmt(m.value, 3)}")
    return [
        [escape(task), escape(f"{metric} by {dimension}"), escape(" · ".join(cells))]
        for (metric, dimension), cells in groups.items()
    ]


def print_full_table(summary: RunSummary, console: Console) -> None:
    """Every metric of every subtask (`run --verbose`), then one line per breakdown."""
    table = folded_table(
        f"{summary.model_label}: every metric",
        ("subtask", "metric", "value", "95% CI", "n", "refused/unparsed/errors", "note"),
        keep=("subtask",),
    )
    breakdowns: list[list[str]] = []
    # beside every number a judge scored and judge-check does not trust, say so
    flags = judge_flags(judge_assessments(summary))
    for task, metrics in summary.results.items():
        for m in metrics:
            if split_metric_name(m.name)[1] is None:
                table.add_row(*metric_row(task, m, flags.get(task)))
        breakdowns.extend(breakdown_rows(task, metrics))
    console.print(table)
    if breakdowns:
        detail = folded_table(
            "breakdowns (all values and intervals: report.html / report.csv)",
            ("subtask", "metric by group", "values"),
            keep=("subtask",),
        )
        for row in breakdowns:
            detail.add_row(*row)
        console.print(detail)


def print_summary(summary: RunSummary, console: Console, verbose: bool = False) -> None:
    """What a run found, on one screen: per pillar its score and what it covers, per subtask its
    primary metric and anything that qualifies it (stand-in, failures, no judge); then the
    counters. `verbose` puts the table of every metric and breakdown first."""
    if verbose:
        print_full_table(summary, console)
    print_pillar_summary(summary, console)
    s = summary.stats
    reasoning = f" ({s.reasoning_tokens} reasoning)" if s.reasoning_tokens else ""
    console.print(
        f"samples {summary.n_samples} (pending at start {summary.n_pending}) · requests sent {s.requests}"
        f" · cache hits {s.cache_hits} · reused from run {s.reused} · retries {s.retries}"
        f" · failed {s.errors} · not recorded {s.missing} · tokens {s.prompt_tokens}+{s.completion_tokens}{reasoning}"
        f" · {summary.seconds:.1f}s · status {summary.status}",
        highlight=False,
    )
    print_request_notes(summary, console)
    extras = {
        "judge requests": s.judge_requests,
        "requests submitted in provider batches": s.batched,
        "batch lines failed (retried by the next run)": s.batch_failed,
        **{f"{role} requests": n for role, n in s.role_requests.items()},
        "samples re-asked because their request changed": summary.n_replaced,
        "replies the shared cache could not store (kept in the run)": s.cache_errors,
        "replies cut short by their token cap (see each subtask's note)": s.cut_short,
        "judge replies cut short by their token cap": s.judge_cut_short,
        "requests sent again after the provider rejected a parameter": s.adapted,
        "replies with invalid characters (lone surrogates) replaced by U+FFFD": s.repaired_replies,
    }
    for label, n in extras.items():
        if n:
            console.print(f"{label}: {n}", highlight=False)
    if s.first_error:
        console.print(f"first error: {s.first_error}", highlight=False, markup=False)
    if summary.stopped:
        console.print(f"stopped: {summary.stopped}", highlight=False, markup=False)
    for spec, counts in summary.endpoints.items():
        parts = [f"{url} {answered}" + (f" ({failed} not answered, moved)" if failed else "")
                 for url, (answered, failed) in counts.items()]  # fmt: skip
        console.print(f"replies per endpoint of {spec.split('@')[0]}: " + " · ".join(parts),
                      highlight=False, markup=False, soft_wrap=True)  # fmt: skip
    if summary.n_pending and s.requests == 0 and s.errors == 0 and s.batched == 0:
        console.print(
            "all replies came from the cache or the run store: zero requests sent", highlight=False
        )
    for task, reason in summary.skipped.items():
        console.print(f"skipped {task}: {reason}", highlight=False)
    print_validity(summary, console, verbose)
    print_judge_agreement(summary, console, verbose)
    if not verbose:
        console.print(
            "every metric and breakdown: add --verbose, or open the report", highlight=False
        )


def print_pillar_summary(summary: RunSummary, console: Console) -> None:
    """Per pillar: its score ("k of n subtasks"), then each subtask's primary metric on one line
    whose id is never broken, and below it what qualifies that number."""
    from rich.padding import Padding
    from rich.text import Text

    from trustmh.pillars import Entry, pillar_score, value_scale
    from trustmh.tasks.catalogue import task_catalogue

    registry = task_catalogue()
    judge = f" · judge {summary.judge}" if summary.judge else ""
    console.print(
        f"{summary.model_label}{judge} · {summary.run_dir}", markup=False, highlight=False
    )
    if summary.limit is not None:
        console.print(
            f"--limit {summary.limit}: only the first {summary.limit} items of each subtask, a smoke "
            "run; these numbers are not comparable with full runs or the paper.",
            style="bold", markup=False, highlight=False,
        )  # fmt: skip
    width = max((len(t) for t in summary.results), default=0)
    flags = judge_flags(judge_assessments(summary))
    pillars = dict.fromkeys(_pillar_of(t, registry) for t in summary.results)
    for pillar in pillars:
        tasks = [t for t in summary.results if _pillar_of(t, registry) == pillar]
        entries = []
        for task_id in tasks:
            primary = next((m for m in summary.results[task_id] if m.primary), None)
            task = registry.get(task_id)
            value = primary.value if primary else None
            scale = value_scale(task.scale if task else None, [value] if value is not None else [])
            entries.append(Entry(task_id, value, primary.direction if primary else "higher", scale,
                                 stand_in=summary.stand_ins.get(task_id),
                                 beyond=bool(task and not task.in_protocol),
                                 note=primary.note if primary else None))  # fmt: skip
        total = sum(1 for t in registry.values() if t.pillar == pillar and t.in_protocol)
        score = pillar_score(entries, total)
        head = f"{score.value:.2f}" if score.value is not None else "—"
        # no blank line between pillars: the bold, unindented pillar line separates them, and
        # every line counts on a one-screen summary
        console.print(f"[bold]{escape(pillar)}[/] {head} ({score.coverage})", highlight=False)
        for task_id in tasks:
            primary = next((m for m in summary.results[task_id] if m.primary), None)
            line = f"  {task_id:<{width}}  " + _primary_cells(primary)
            console.print(Text(line), no_wrap=True, overflow="ignore", crop=False)
            notes = _qualifiers(task_id, primary, summary, score.left_out.get(task_id))
            if task_id in flags:  # beside every number its judge scored
                notes.insert(0, flags[task_id])
            if notes:
                console.print(Padding(Text("; ".join(notes), style="dim"), (0, 0, 0, 4)))


def _gist(note: str, limit: int = 200) -> str:
    """A note short enough for the summary: whole, or its first and last clauses (a long note
    describes the metric first and says why there is no value last); --verbose has it whole."""
    if len(note) <= limit:
        return note
    first, _, rest = note.partition("; ")
    last = rest.rpartition("; ")[2]
    half = limit // 2
    first = first if len(first) <= half else first[: half - 1] + "…"
    last = last if len(last) <= half else "…" + last[-half + 1 :]
    return f"{first} … {last}"


def _pillar_of(task_id: str, registry) -> str:
    task = registry.get(task_id)
    return task.pillar if task else task_id.split(".", 1)[0]


def _primary_cells(m: MetricValue | None) -> str:
    """value ↑ [low, high] n=…, in fixed widths (at most 40 columns)."""
    if m is None or m.value is None:
        return "—"
    ci = f"[{fmt(m.ci_low, 3)}, {fmt(m.ci_high, 3)}]" if m.ci_low is not None else ""
    return f"{fmt(m.value, 3):>7} {arrow(m.direction) or ' '} {ci:<16} n={m.n}"


def _qualifiers(task_id: str, m: MetricValue | None, summary: RunSummary, left_out: str | None) -> list[str]:  # fmt: skip
    """What a reader must know about a subtask's number: why it has none or is not in the pillar
    score, and its failed samples."""
    notes = []
    stand_in = summary.stand_ins.get(task_id)
    if stand_in:
        notes.append(f"STAND-IN: {stand_in}; not comparable with the paper")
    if m is None or m.value is None:
        notes.append(_gist(m.note) if m and m.note else "no value")
    if left_out and not stand_in and (m is not None and m.value is not None):
        notes.append(f"not in the pillar score: {left_out}")
    elif stand_in:
        notes.append("not in the pillar score")
    if m is not None and m.n_error:
        notes.append(f"{m.n_error} failed")
    for flag in summary.validity.get(task_id, {}).get("flags", []):
        notes.append(f"{flag['kind'].replace('_', ' ')}: {_gist(flag['reason'], 120)}")
    return notes


def print_request_notes(summary: RunSummary, console: Console) -> None:
    """How the requests were sent (protocol 1.7): each live model's parameter profile, the notes
    every table of the run carries, and what was learned from the providers' 400s."""
    for spec, profile in summary.profiles.items():
        console.print(
            f"profile of {spec}: {profile}", highlight=False, markup=False, soft_wrap=True
        )
    for note in summary.notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    for line in summary.adaptations:
        console.print(f"adapted: {line}", highlight=False, markup=False, soft_wrap=True)


def print_validity(summary: RunSummary, console: Console, verbose: bool = True) -> None:
    """How many of the run's numbers are flagged and why (protocol 1.8): the count, then one
    line per flag (`verbose`; the one-screen summary shows each flag beside its number)."""
    flagged = {t: r.get("flags", []) for t, r in summary.validity.items() if r.get("flags")}
    if not summary.validity:
        return
    if not verbose:
        console.print(
            f"validity (protocol 1.8): {len(flagged)} of {len(summary.validity)} numbers flagged, "
            "each beside it",
            highlight=False, markup=False,
        )  # fmt: skip
        return
    console.print(
        f"validity (protocol 1.8): {len(flagged)} of {len(summary.validity)} subtask numbers flagged"
        + (
            "; degenerate and low-coverage values stay out of ranks and the radar"
            if flagged
            else ""
        ),
        highlight=False,
        markup=False,
    )
    for task, flags in flagged.items():
        for f in flags:
            console.print(f"  {task}: {f['kind']}: {f['reason']}", highlight=False, markup=False,
                          soft_wrap=True)  # fmt: skip


def judge_assessments(summary: RunSummary) -> dict[str, tuple[str | None, str]]:
    """Per judge-scored task of a run with a judge: (verdict, one line) from judge-check."""
    if not summary.judge:
        return {}
    from trustmh.judge_check import assess
    from trustmh.tasks.registry import get_task

    out = {}
    for task_id in summary.results:
        task = get_task(task_id)
        if task.needs_judge != "no":
            out[task_id] = assess(summary.judge, task.judge_attribute, unit=task.judge_unit)
    return out


def judge_flags(assessments: dict[str, tuple[str | None, str]]) -> dict[str, str]:
    """Per task whose judge judge-check does not trust: "judge not trusted" (or its verdict), to
    show beside every number that judge scored."""
    return {t: f"judge {v}" for t, (v, _) in assessments.items() if v and v != "trusted"}


def print_judge_agreement(summary: RunSummary, console: Console, verbose: bool = True) -> None:
    """The judge's measured agreement with human experts for each judge-scored subtask, at the
    unit of the subtask's claim; the attributes judge-check did not measure share one line per
    way of measuring them. The one-screen summary (`verbose` False) also folds the subtasks whose
    judge is distrusted only by inference (not checked there, failed where it was checked) into
    one line per finding, appended to the measured line it repeats."""
    assessments = judge_assessments(summary)
    if not assessments:  # no judge: nothing to say, and judge_check (numpy) is not loaded
        return
    from trustmh.judge_check import how_to_measure
    from trustmh.judge_check.store import INFERRED_FROM
    from trustmh.tasks.registry import get_task

    unmeasured: dict[str, list[str]] = {}  # how to measure -> attributes
    inferred: dict[str, list[str]] = {}  # finding -> what was not checked
    measured: list[tuple[str, str]] = []  # (subtask, line) of the measured or verbose lines
    for task_id, (verdict, line) in assessments.items():
        task = get_task(task_id)
        if verdict is None and task.judge_attribute and task.judge_unit == "item":
            how = how_to_measure(summary.judge, task.judge_attribute)  # type: ignore[arg-type]
            attributes = unmeasured.setdefault(how, [])
            if task.judge_attribute not in attributes:
                attributes.append(task.judge_attribute)
            continue
        head, found, finding = line.partition(INFERRED_FROM)
        if found and not verbose:
            what = task.judge_attribute or "label verdicts"
            seen = inferred.setdefault(f"{head.split(':', 1)[0]}{INFERRED_FROM}{finding}", [])
            if what not in seen:
                seen.append(what)
            continue
        measured.append((task_id, line))
    folded = {}  # a measured line -> the attributes distrusted by inference from it
    for finding, attributes in inferred.items():
        verdict, _, rest = finding.partition(INFERRED_FROM)
        if any(rest == line for _, line in measured):
            folded[rest] = f"; so {verdict} on {', '.join(attributes)} either (not checked there)"
        else:
            console.print(
                f"judge {summary.judge}: {verdict} on {', '.join(attributes)} (not checked there; "
                f"judge-check found {rest})",
                highlight=False, markup=False,
            )  # fmt: skip
    for task_id, line in measured:
        console.print(f"{task_id}: judge {summary.judge}: {line}{folded.pop(line, '')}",
                      highlight=False, markup=False, soft_wrap=verbose)  # fmt: skip
    for how, attributes in unmeasured.items():
        console.print(
            f"judge {summary.judge}: agreement with human experts on {', '.join(attributes)} "
            f"not measured ({how})",
            highlight=False, markup=False,
        )  # fmt: skip


def print_runs(console: Console, runs_root: Path | None = None, prune: bool = False) -> None:
    """A table of the runs: those under `runs_root`, or every run in the index of runs (and under
    ./runs); stale index entries (deleted or moved directories) are counted, or forgotten with
    `prune`."""
    from trustmh import run_index

    dbs, stale = run_index.discover(runs_root)
    where = (
        f"under {runs_root}" if runs_root is not None else f"indexed in {run_index.index_path()}"
    )
    if not dbs:
        console.print(f"no runs {where}", highlight=False, soft_wrap=True)
    else:
        table = folded_table(
            f"runs {where}",
            ("run", "folder", "model", "subtasks", "scored/samples", "errors", "status", "started"),
        )
        for run_dir in dbs:
            try:
                store = RunStore(run_dir, readonly=True)
                try:
                    table.add_row(*run_row(store))
                finally:
                    store.close()
            except (UserError, sqlite3.Error) as exc:  # one damaged run does not hide the others
                reason = str(exc).removeprefix(f"{run_dir / RUN_DB}: ")
                table.add_row(escape(run_dir.name), escape(str(run_dir.parent)), "?", "", "", "",
                              escape(f"unreadable: {reason}"), "")  # fmt: skip
        console.print(table)
    if stale and prune:
        n = run_index.forget(r.path for r in stale)
        console.print(f"forgot {n} indexed runs whose directory no longer exists", highlight=False)
    elif stale:
        example = stale[-1].path
        console.print(
            f"{len(stale)} indexed runs no longer exist (e.g. {example}); "
            "`trustmh runs --prune` forgets them",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip


def run_row(store: RunStore) -> list[str]:
    """The cells of one run in `trustmh runs`; the status says "interrupted" for a run whose
    process died without recording it, and names the process of a run still going."""
    from trustmh.runlock import effective_status, holder

    totals = store.totals()
    samples, errors = totals.get("samples", 0), totals.get("error", 0)
    scored = sum(n for status, n in totals.items() if status not in ("samples", "error"))
    config = store.get_meta("config") or {}
    status = effective_status(store.run_dir, store.get_meta("status"))
    live = holder(store.run_dir)
    if live is not None:
        status = f"running (pid {live.get('pid', '?')})"
    cells = [store.run_dir.name, str(store.run_dir.parent), str(config.get("model", "?")),
             ",".join(store.get_meta("tasks") or []),
             f"{scored}/{samples}", str(errors), status, str(store.get_meta("started"))]  # fmt: skip
    return [escape(c) for c in cells]


SPEC_FORMS = (
    ("openai:MODEL", "api.openai.com", "$OPENAI_API_KEY or --api-key-env"),
    ("openai:MODEL@URL", "any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp, DeepSeek…)",
     "none on loopback/private addresses, else --api-key-env NAME"),
    ("anthropic:MODEL", "Anthropic Messages API (extra: trustmh[anthropic])", "$ANTHROPIC_API_KEY or --api-key-env"),
    ("local:smollm2", "SmolLM2-135M-Instruct on a llama.cpp server trustmh starts and stops (extra: trustmh[local]); checks the plumbing, measures nothing clinical", "none"),
    ("local:PATH.gguf", "any GGUF model file on that server; options: ?ctx=8192&threads=N&port=N", "none"),
    ("replay:NAME", "the authors' recorded responses (below)", "none"),
    ("baseline", "deterministic rule-based reference, not an LLM", "none"),
)  # fmt: skip


def print_profiles(console: Console) -> None:
    """The built-in model parameter profiles (protocol 1.7): which models, what is sent."""
    from trustmh.models.profiles import builtin_profiles

    table = folded_table(
        "model parameter profiles (docs/protocol.md 1.7; extend with --model-profiles FILE)",
        ("profile", "backends", "model ids", "reasoning efforts", "what is sent"),
    )
    for p in builtin_profiles():
        efforts = ", ".join(
            p.efforts or (("none", *p.thinking_budgets) if p.thinking_budgets else ())
        )
        cells = (p.name, ", ".join(p.providers), ", ".join(p.models), efforts or "-", p.about)
        table.add_row(*map(escape, cells))
    console.print(table)
    console.print("other models: the subtask's parameters as they are", highlight=False)


def print_models(console: Console, data_dir: Path | None) -> None:
    """The model spec forms and the recorded models available for replay."""
    from trustmh.data.sources import resolve_data_context
    from trustmh.models.replay import recorded_models

    forms = folded_table("model specs", ("spec", "backend", "key"), keep=("spec",))
    for row in SPEC_FORMS:
        forms.add_row(*map(escape, row))  # `trustmh[anthropic]` is text, not a style tag
    console.print(forms)
    print_profiles(console)
    recorded = folded_table(
        "recorded models (replay:NAME)",
        ("NAME", "recorded as", "group", "subtasks"),
        keep=("NAME", "subtasks"),
    )
    ctx = resolve_data_context(data_dir)
    for m in recorded_models(ctx):
        recorded.add_row(*map(escape, (m.name, m.recorded_id, m.group, "\n".join(m.subtasks))))
    console.print(recorded)
    from trustmh.models.replay_conversations import conversation_set_models

    sets = conversation_set_models(ctx)
    if sets:
        table = folded_table(
            "recorded conversations (replay:NAME, crisis.multiturn_safety; no --simulator)",
            ("NAME", "chatbot", "user played by", "conversations"),
        )
        for name, chatbot, user, n in sets:
            table.add_row(name, chatbot, user, str(n))
        console.print(table)


def _amount(n: int) -> str:
    """A token or request count, short: 950, 12.3k, 4.56M."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1e6:.2f}M"


def usd(value: float | None) -> str:
    if value is None:
        return "no price"
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def print_plan(plan: Plan, console: Console) -> None:
    """The plan of a run: per subtask the samples to ask, the requests of each role, their tokens
    and estimated cost; a total row; then the most it could cost and how each model is counted."""
    from trustmh.plan import Load, sample_counts

    totals = plan.totals()
    roles = [r for r in plan.specs if r in totals and totals[r].max_requests]
    from rich import box
    from rich.table import Table

    title = "plan: requests this run would send" + (" (batch prices)" if plan.batch else "")
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("subtask", overflow="fold")
    for column in (*roles, "tok in", "tok out", "USD"):
        table.add_column(column, justify="right", no_wrap=True)

    def cells(loads: dict[str, Load]) -> list[str]:
        costs = [plan.cost(role, load) for role, load in loads.items() if load.max_requests]
        tokens_in = sum(load.input_tokens for load in loads.values())
        tokens_out = sum(load.output_tokens for load in loads.values())
        cost = usd(sum(costs)) if None not in costs else "no price"  # type: ignore[arg-type]
        counts = (_amount(loads[role].requests) if role in loads else "0" for role in roles)
        return [*counts, _amount(tokens_in), _amount(tokens_out), cost]

    pillar = None
    for task in plan.tasks:  # grouped by pillar, so that the subtask names fit 80 columns
        group, _, name = task.task.rpartition(".")
        if group and group != pillar:
            table.add_row(escape(group), style="dim")
        pillar = group
        table.add_row(escape(f"  {name}" if group else name), *cells(task.loads))
    samples, pending, answered = sample_counts(plan)
    table.add_row("total", *cells(totals), style="bold")
    console.print(table)
    expected, complete = plan.total_cost()
    most, _ = plan.total_cost(ceiling=True)
    unpriced = "" if complete else " (models without a price not included)"
    max_requests = sum(load.max_requests for load in totals.values())
    max_out = sum(load.max_output_tokens for load in totals.values())
    lines = [
        f"{plan.requests:,} requests for {pending:,} of {samples:,} samples ({samples - pending:,} "
        f"already finished, {answered:,} model replies already stored or cached): estimated "
        f"{usd(expected)}{unpriced}",
        f"at most {max_requests:,} requests, {_amount(max_out)} output tokens, {usd(most)}: every "
        "reply at its max_tokens, a stricter retry for every judge verdict that does not parse, "
        "rubric walks at their longest path",
    ]
    for role, spec in plan.specs.items():
        counter, price = plan.counters[role], plan.prices[role]
        if price is None:
            priced = "no price (add one with --prices FILE)"
        elif price.key == "free":
            priced = "free"
        else:
            share = f"; batch: {price.batch:.0%} of it" if plan.batch else ""
            priced = (f"${price.input:g} in / ${price.output:g} out per million tokens "
                      f"({price.key}, {price.source}{share})")  # fmt: skip
        lines.append(f"{role} {spec}: tokens {counter.label}; {priced}")
    lines.append("output tokens are estimates (a typical reply of each subtask)")
    lines += [f"skipped {task_id}: {reason}" for task_id, reason in plan.skipped.items()]
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
