"""`trustmh data {list,verify,fetch}` and the table printed by `trustmh tasks`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trustmh.data.sources import (
    FETCH_BASE_URL_ENV,
    SOURCES,
    DataContext,
    require_sources,
    resolve_data_context,
    user_data_cache,
)
from trustmh.data.verify import verify_all
from trustmh.errors import DataError, UserError

data_app = typer.Typer(no_args_is_help=True, add_completion=False)
out = Console()

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data folder searched first (before $TRUSTMH_DATA_DIR, the user cache and the bundled "
        "subset), laid out as in docs/data.md, e.g. --data-dir ~/trustmh-data.",
    ),
]
SourcesArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="Source ids (folder names), e.g. `usmle_mental c_ssrs`. Default: all.",
        show_default=False,
    ),
]


def _check_ids(ids: list[str] | None) -> list[str] | None:
    for source_id in ids or []:
        if source_id not in SOURCES:
            raise UserError(
                f"unknown data source {source_id!r}; run `trustmh data list` to see the source ids"
            )
    return ids or None


@data_app.command("list")
def list_sources(data_dir: DataDirOption = None) -> None:
    """List every data source: license, upstream, files and where it is found, e.g.
    `trustmh data list --data-dir ~/trustmh-data`."""
    ctx = resolve_data_context(data_dir)
    table = Table(title="Data sources")
    for col in ("id", "title", "license", "public", "files", "found in", "upstream"):
        table.add_column(col, overflow="fold")
    for source in SOURCES.values():
        upstream = f"{source.upstream}@{source.commit[:10]}" if source.commit else source.upstream
        public = "yes" if source.public else "on request"
        table.add_row(
            source.id,
            source.title,
            source.license,
            public,
            str(len(source.files)),
            ctx.where(source.id),
            upstream,
        )
    out.print(table)


@data_app.command()
def verify(
    sources: SourcesArgument = None,
    data_dir: DataDirOption = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Also fail (exit 2) when a source is missing, e.g. in CI: --strict."
        ),
    ] = False,
) -> None:
    """Check every data file against its SHA-256: present / missing / corrupt per source, e.g.
    `trustmh data verify` or `trustmh data verify c_ssrs --data-dir ~/trustmh-data`.

    Exits with code 2 when a file is corrupt (or, with --strict, missing)."""
    ctx = resolve_data_context(data_dir)
    checks = verify_all(ctx, _check_ids(sources))
    table = Table(title="Data verification")
    for col in (
        "source",
        "status",
        "ok",
        "missing",
        "corrupt",
        "unverified (bundled, trimmed)",
        "found in",
    ):
        table.add_column(col, overflow="fold")
    for check in checks:
        missing = check.count("missing") + check.count("not bundled")
        table.add_row(
            check.source_id,
            check.status,
            str(check.count("ok")),
            str(missing),
            str(check.count("corrupt")),
            str(check.count("unverified")),
            check.where,
        )
    out.print(table)
    corrupt = [f for c in checks for f in c.files if f.status == "corrupt"]
    for bad in corrupt:
        out.print(f"corrupt: {bad.path} (SHA-256 mismatch)", markup=False, highlight=False)
    if corrupt:
        raise DataError(
            f"{len(corrupt)} corrupt file(s), first {corrupt[0].path}; restore with `trustmh data fetch` "
            "(into the user cache) or replace it from the original"
        )
    absent = [c.source_id for c in checks if c.status in ("missing", "partial")]
    if strict and absent:
        raise DataError(
            f"missing data: {', '.join(absent)}; run `trustmh data fetch {' '.join(absent)}`"
        )


@data_app.command()
def fetch(
    sources: SourcesArgument = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            envvar=FETCH_BASE_URL_ENV,
            help="Download from a mirror laid out like the data folder (<base>/<source>/<file>) "
            "instead of the upstream originals, e.g. --base-url http://127.0.0.1:8000.",
        ),
    ] = None,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            min=1,
            help="Attempts per file; each resumes the partial download, e.g. --retries 5.",
        ),
    ] = 3,
    progress: Annotated[
        bool,
        typer.Option(
            "--progress/--no-progress", help="Show the progress bar, e.g. --no-progress in CI logs."
        ),
    ] = True,
) -> None:
    """Download the public originals into the user cache ($TRUSTMH_CACHE_DIR/data), verified by
    SHA-256 and resumable, e.g. `trustmh data fetch usmle_mental emobench`.

    Sources that are not publicly downloadable (D4, SWMH, PAS) are listed with how to request them.
    Exits with code 2 when a download failed or did not match its checksum."""
    from trustmh.data.fetch import fetch_sources  # HTTP and archive modules: only here

    results = fetch_sources(
        _check_ids(sources), base_url=base_url, retries=retries, show_progress=progress
    )
    table = Table(title=f"Fetched into {user_data_cache()}")
    for col in ("source", "downloaded", "already present", "not downloadable", "failed"):
        table.add_column(col)
    by_source: dict[str, list] = {}
    for result in results:
        by_source.setdefault(result.source_id, []).append(result)
    for source_id, items in by_source.items():
        if items[0].status == "on request":
            continue

        def n(*statuses: str, items: list = items) -> str:
            return str(sum(1 for r in items if r.status in statuses))

        table.add_row(
            source_id, n("downloaded"), n("present"), n("not downloadable"), n("failed", "corrupt")
        )
    out.print(table)
    for result in results:
        if result.status == "on request":
            out.print(
                f"{result.source_id}: not publicly downloadable. {result.detail}",
                markup=False,
                highlight=False,
            )
    derived = [r for r in results if r.status == "not downloadable"]
    if derived:
        out.print(
            f"{len(derived)} file(s) are derived here and have no downloadable original "
            f"(e.g. {derived[0].source_id}/{derived[0].relpath}: {derived[0].detail}); "
            "use --data-dir with a copy of the data folder for them.",
            markup=False,
            highlight=False,
        )
    failed = [r for r in results if r.status in ("failed", "corrupt")]
    for result in failed:
        out.print(f"{result.status}: {result.detail}", markup=False, highlight=False)
    if failed:
        first = failed[0]
        raise DataError(
            f"{len(failed)} file(s) not installed, first {first.source_id}/{first.relpath}: {first.detail}"
        )


def task_data_status(ctx: DataContext, task: object) -> str:
    """`yes`, `no` or `on request` for whether a task's data is present."""
    required = tuple(getattr(task, "sources", ()))
    optional = tuple(getattr(task, "optional_sources", ()))
    try:
        require_sources(ctx, required)
        if optional and not any(_present(ctx, entry) for entry in optional):
            raise DataError("none of the optional data is present")
    except DataError:
        ids = {entry.partition("/")[0] for entry in (*required, *optional)}
        return "on request" if any(not SOURCES[i].public for i in ids if i in SOURCES) else "no"
    return "yes"


def _present(ctx: DataContext, entry: str) -> bool:
    try:
        require_sources(ctx, (entry,))
    except DataError:
        return False
    return True


def tasks_command(pillar: str | None = None, data_dir: Path | None = None) -> None:
    """Print every subtask, pillar by pillar, optionally for one pillar, e.g. `trustmh tasks
    --pillar privacy`: a first line with the id, status label, direction and whether its data is
    present, a second with the metric, the size and the data files (folded to the terminal); then
    the subtasks beyond the paper, each as a block."""
    from trustmh.tasks.registry import all_tasks, canonical, pillars

    tasks = [t for t in all_tasks().values() if t.in_protocol]
    if pillar is not None:
        pillar = canonical(pillar)
        known = [p for p in pillars() if p != "smoke"]
        if pillar.lower() not in known:
            raise UserError(
                f"--pillar: unknown pillar {pillar!r}; choose one of {', '.join(known)}"
            )
        tasks = [t for t in tasks if t.pillar == pillar.lower()]
    ctx = resolve_data_context(data_dir)
    if tasks:  # a pillar of extensions only (e.g. mentalbench) has no protocol subtask
        print_protocol_tasks(tasks, ctx)
    beyond = [t for t in all_tasks().values() if t.status == "BEYOND"]
    if pillar is not None:
        beyond = [t for t in beyond if t.pillar == pillar.lower()]
    if beyond:
        out.print(
            "\nBeyond the paper (BEYOND): run only when named in --tasks; not in `all`, pillar "
            "scores or ranks",
            highlight=False,
        )
        for task in beyond:
            out.print(beyond_block(task, ctx))


def print_protocol_tasks(tasks, ctx: DataContext) -> None:
    """The protocol subtasks, pillar by pillar: a line with the id, status label, direction and
    whether the data is present, then one with the metric, the size and the data files."""
    from rich.padding import Padding
    from rich.text import Text

    width = max(len(t.id) for t in tasks)
    n_pillars = len({t.pillar for t in tasks})
    out.print(
        f"TrustMH-Bench subtasks: {len(tasks)} in {n_pillars} pillar{'s' * (n_pillars != 1)}. "
        "Status labels (EXACT, UPSTREAM, DEFAULT, STAND-IN) and each subtask's protocol: "
        "docs/protocol.md; ↑ higher is better, ↓ lower.",
        highlight=False,
    )
    for name in dict.fromkeys(t.pillar for t in tasks):
        out.print(f"\n[bold]{name}[/]", highlight=False)
        for task in (t for t in tasks if t.pillar == name):
            arrow = "↑" if task.direction == "higher" else "↓"
            present = task_data_status(ctx, task) if task.implemented else "not implemented"
            if present == "yes" and task.stand_in and task.stand_in(ctx, {}):
                present = "stand-in"
            out.print(
                Text(f"  {task.id:<{width}}  {task.status:<8}  {arrow}  data: {present}"),
                no_wrap=True,
                overflow="ignore",
                crop=False,
            )
            files = ", ".join((*task.sources, *task.optional_sources)) or "built-in"
            detail = f"{task.metric}; n = {task.n_items}; §{task.section}; {files}"
            out.print(Padding(Text(detail, style="dim"), (0, 0, 0, 4)))


def beyond_block(task, ctx: DataContext) -> Table:
    """A subtask beyond the paper as a two-column block (folds at any width; the id stays whole):
    its data, size, metric, what a run needs, and its cost per model."""
    by_source: dict[str, list[str]] = {}
    for entry in task.sources:
        source, _, path = entry.partition("/")
        by_source.setdefault(source, []).append(path.rsplit("/", 1)[-1])
    data = "; ".join(f"{s} ({', '.join(filter(None, f))})" if any(f) else s
                     for s, f in by_source.items())  # fmt: skip
    needs = [f"--{role} SPEC" for role in task.roles]
    if task.needs_judge != "no":
        needs.insert(0, "--judge SPEC" if task.needs_judge == "required" else "--judge (optional)")
    block = Table.grid(padding=(0, 2))
    block.add_column(no_wrap=True, style="bold")
    block.add_column(overflow="fold")
    block.add_row(escape(task.id), escape(f"{task.title} [protocol {task.section}, {task.status}]"))
    for key, value in (
        ("data", f"{data}; present: {task_data_status(ctx, task)}"),
        ("items", task.n_items),
        ("metric", f"{task.metric} ({task.direction} is better)"),
        ("needs", ", ".join(needs) or "-"),
        ("cost/model", task.cost or "one request per item"),
    ):
        block.add_row(f"  {key}", escape(value))
    return block
