"""`trustmh judge-check`: how far can a judge's scores be trusted (protocol 11)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from trustmh.errors import UserError

RATING_SETS = ("mentalalign", "crisis")
UNITS = ("item", "model")
EPILOG = """
Examples:

  trustmh judge-check --ratings mentalalign --out results/

  trustmh judge-check --ratings mentalalign --unit model      (MentalBench-Align's published table)

  trustmh judge-check --ratings mentalalign --judge gpt-4o --resamples 2000

  trustmh judge-check --ratings crisis --judge openai:gpt-4.1 --limit 40

  trustmh judge-check --ratings crisis --judge openai:qwen3@http://127.0.0.1:8000/v1

MentalAlign: the four recorded judges (claude-3.7-sonnet, gemini-2.5-flash, gpt-4o, o4-mini) against
the human experts, per attribute, at one of two units: item (default; does the judge rate each reply
like the experts) or model (does it rank models like the experts: one point per response source,
the paper's unit). Crisis: a new judge rates 190 crisis answers live (cached and
resumable: rerun the same command to continue) and is compared with two experts.
Results are saved for `trustmh run` summaries and reports, which show a judge's agreement beside
every judge-scored number.
"""


def judge_check(
    ratings: Annotated[
        str, typer.Option(help="Rating set: mentalalign (recorded judges) or crisis (live judge).")
    ] = "mentalalign",
    judge: Annotated[
        list[str] | None,
        typer.Option(
            help="crisis: the judge spec to check (e.g. openai:gpt-4.1). mentalalign: only these "
            "recorded judges (repeatable, e.g. gpt-4o)."
        ),
    ] = None,
    unit: Annotated[
        str,
        typer.Option(
            help="mentalalign: item = does the judge rate each reply like the experts (an item is "
            "one rated reply); model = does it rank models like the experts (an item is one "
            "response source, its mean rating; MentalBench-Align's published table)."
        ),
    ] = "item",
    limit: Annotated[
        int | None, typer.Option(min=1, help="crisis: rate only the first N answers.")
    ] = None,
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder for judge_check.csv (judge_check_model.csv at model level) and the "
            "figures. Default: current directory.",
        ),
    ] = Path("."),
    resamples: Annotated[
        int,
        typer.Option(
            min=1,
            help="Bootstrap resamples for the 95% CIs: of conversations (item level) or of "
            "models (model level).",
        ),
    ] = 1000,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of the bootstrap. Default: 0 at item level; at model level upstream's "
            "seeding (42), as in the published table."
        ),
    ] = None,
    min_icc: Annotated[
        float,
        typer.Option(
            help="Trusted only if the ICC's lower 95% bound reaches this: ICC(A,1) at item "
            "level, ICC(C,1) at model level."
        ),
    ] = 0.6,
    max_bias: Annotated[
        float,
        typer.Option(help="Item level: trusted only if |mean(judge - human)| is below this."),
    ] = 0.5,
    figures: Annotated[bool, typer.Option(help="Write the heatmap and bias PNGs.")] = True,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory searched first (see `trustmh run`).")
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="crisis: run directory of the judge's verdicts (reuse to resume). "
            "Default: OUT/judge-check-runs/<judge>."
        ),
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="crisis: environment variable holding the judge's API key.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="crisis: judge requests in flight. Default: 32.")
    ] = None,
    request_timeout: Annotated[
        float | None,
        typer.Option(help="crisis: seconds one attempt of a request may take in all. Default: 60."),
    ] = None,
    max_retries: Annotated[
        int | None, typer.Option(help="crisis: retries after 429/5xx/timeouts. Default: 3.")
    ] = None,
    retry_base_delay: Annotated[
        float | None, typer.Option(help="crisis: first backoff delay in seconds. Default: 1.")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="crisis: shared response cache directory.")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="crisis: do not use the shared response cache.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="crisis: show the live progress bar.")] = True,
) -> None:
    """Measure a judge's agreement with human experts before trusting its scores."""
    from trustmh.judge_check.results import Thresholds

    out, err = Console(), Console(stderr=True)
    kind = ratings.strip().lower()
    if kind not in RATING_SETS:
        raise UserError(f"--ratings {ratings}: choose mentalalign or crisis")
    unit = unit.strip().lower()
    if unit not in UNITS:
        raise UserError(f"--unit {unit}: choose item (rate replies) or model (rank models)")
    if unit == "model" and kind != "mentalalign":
        raise UserError(
            "--unit model needs ratings of several models' replies: use --ratings mentalalign "
            "(the crisis set rates one model's answers)"
        )
    for flag, value in (("--min-icc", min_icc), ("--max-bias", max_bias)):
        if not math.isfinite(value):  # a NaN threshold would mark every judge trusted
            raise UserError(f"{flag} {value}: give a finite number (defaults 0.6 and 0.5)")
    thresholds = Thresholds(min_icc, max_bias)
    if kind == "mentalalign":
        if limit is not None:
            raise UserError("--limit applies to --ratings crisis only; MentalAlign is read whole")
        if unit == "model":
            from trustmh.judge_check.model_level import UPSTREAM_SEED

            seed = UPSTREAM_SEED if seed is None else seed
            rows, notes, title = _mentalalign_models(judge, data_dir, resamples, seed, thresholds)
        else:
            rows, notes, title = _mentalalign(judge, data_dir, resamples, seed or 0, thresholds)
    else:
        seed = seed or 0
        if not judge or len(judge) != 1:
            raise UserError(
                "--ratings crisis needs exactly one --judge SPEC, e.g. --judge openai:gpt-4.1"
            )
        settings = {"api_key_env": api_key_env, "concurrency": concurrency,
                    "request_timeout": request_timeout, "max_retries": max_retries,
                    "retry_base_delay": retry_base_delay, "cache_dir": cache_dir,
                    "no_cache": no_cache or None}  # fmt: skip
        rows, notes, title = _crisis(judge[0], out_dir, run_dir, limit, data_dir, resamples,
                                     seed, thresholds, settings, progress, err)  # fmt: skip
    _report(rows, notes, title, out_dir, figures, kind, unit, out)


def _mentalalign(judges, data_dir, resamples, seed, thresholds):
    from trustmh.data.sources import require_sources, resolve_data_context
    from trustmh.judge_check.mentalalign import check_mentalalign, resolve_judges

    ctx = resolve_data_context(data_dir)
    names = resolve_judges(judges)
    try:
        require_sources(ctx, ["mentalalign/ratings.csv"])
    except UserError as exc:
        raise UserError(
            f"{exc} (the item level reads every rating; --unit model works from the bundled sums)"
        ) from None
    rows = check_mentalalign(ctx, names, resamples=resamples, seed=seed, thresholds=thresholds)
    n_skipped = max(r.n_skipped_reference for r in rows)
    notes = [
        "item level: does the judge rate each reply like the experts. An item is one "
        "(conversation, reply) rated by the human experts and the judge; up to "
        f"{n_skipped} per attribute skipped where the experts gave no score in 1-5; "
        f"95% CIs from {resamples} bootstrap resamples of conversations. Trusted: ICC(A,1) lower "
        "bound and |bias| within the thresholds (a score is read as an absolute number). "
        "MentalBench-Align's published table is model level: --unit model"
    ]
    notes += _findings(rows)
    return rows, notes, "MentalAlign-70k, item level: recorded LLM judges vs human experts"


def _mentalalign_models(judges, data_dir, resamples, seed, thresholds):
    from trustmh.data.sources import resolve_data_context
    from trustmh.judge_check.mentalalign import resolve_judges
    from trustmh.judge_check.model_level import (
        GOOD_MAX_WIDTH,
        MODERATE_MAX_WIDTH,
        PAPER_JUDGES,
        UPSTREAM_RESAMPLES,
        UPSTREAM_SEED,
        check_model_level,
        self_source_note,
    )
    from trustmh.judge_check.rating_sums import load_sums

    names = resolve_judges(judges)
    names = [j for j in PAPER_JUDGES if j in names]  # the paper's order
    loaded = load_sums(resolve_data_context(data_dir))
    rows = check_model_level(loaded.sums, names, thresholds=thresholds, resamples=resamples,
                             seed=seed)  # fmt: skip
    how = (
        "upstream's seeding"
        if (resamples, seed) == (UPSTREAM_RESAMPLES, UPSTREAM_SEED)
        else f"seed {seed}"
    )
    notes = [
        "model level: does the judge rank models like the experts. A point is one response "
        "source (9 LLMs and the original human reply): the experts' and the judge's mean rating "
        f"of its replies over the conversations both rated; the judge's own model is left out "
        f"({self_source_note()}). 95% CIs: percentile bootstrap over models ({resamples} "
        f"resamples, {how}; resamples outside [0, 1] dropped, as upstream). Status from the "
        f"ICC(C,1) CI width: GR <= {GOOD_MAX_WIDTH}, MR <= {MODERATE_MAX_WIDTH}, PR above. "
        "Trusted to rank models: the ICC(C,1) lower bound over every resample reaches --min-icc "
        "(an offset shared by every model does not change a ranking, so bias is no condition)",
        f"computed from {loaded.origin}",
    ]
    notes += _findings(rows)
    return (
        rows,
        notes,
        "MentalAlign-70k, model level (MentalBench-Align's table): recorded LLM judges vs human experts",
    )


def _crisis(judge, out_dir, run_dir, limit, data_dir, resamples, seed, thresholds, settings,
            progress, err):  # fmt: skip
    from trustmh.engine import slug
    from trustmh.errors import FatalBackendError
    from trustmh.judge_check.crisis import check_crisis

    run_dir = run_dir or out_dir / "judge-check-runs" / slug(judge)
    settings = {k: v for k, v in settings.items() if v is not None}
    try:
        check = asyncio.run(check_crisis(judge, run_dir=run_dir, limit=limit, data_dir=data_dir,
                                         resamples=resamples, seed=seed, thresholds=thresholds,
                                         run_settings=settings, progress=progress, console=err))  # fmt: skip
    except FatalBackendError as exc:
        raise UserError(f"--judge {judge}: {exc}; verdicts so far are kept in {run_dir}") from None
    except KeyboardInterrupt:
        err.print(f"Interrupted; verdicts so far are kept in {run_dir}. Rerun to continue.")
        raise typer.Exit(130) from None
    judge_row = check.rows[0]
    notes = [
        f"{check.n_sent} answers sent to the judge (run {check.run_dir}, status {check.status}); "
        f"{check.n_not_sent} conversations without a crisis label not sent (no expert scored them)",
        "left unscored by the experts (skipped for that expert): "
        + ", ".join(f"{e} {n}" for e, n in check.unscored_by.items()),
        f"verdicts that did not parse (skipped): {judge_row.n_skipped_judge}",
    ]
    if check.status != "complete":
        notes.append("some judge requests failed; rerun the same command to retry them")
    notes += _findings(check.rows)
    return check.rows, notes, f"Crisis appropriateness: {check.rows[0].judge} vs two experts"


def _findings(rows) -> list[str]:
    """Per judge: trusted attributes, and on how many attributes it rates above the experts."""
    from trustmh.judge_check.output import column_label

    lines = []
    for name in dict.fromkeys(column_label(r) for r in rows if r.kind == "judge"):
        mine = [r for r in rows if column_label(r) == name and r.kind == "judge"]
        trusted = [r.attribute for r in mine if r.trusted] or ["none"]
        above = sum((r.get("bias") or 0) > 0 for r in mine)
        claim = "to rank models" if mine[0].unit == "model" else "to rate replies"
        lines.append(
            f"{name}: trusted {claim} on {', '.join(trusted)}; rates higher than the experts on "
            f"{above} of {len(mine)}"
        )
    return lines


def _report(rows, notes, title, out_dir, figures, kind, unit, out) -> None:
    from trustmh.judge_check.output import model_table, rich_table, write_csv, write_figures
    from trustmh.judge_check.store import results_dir, save_results

    if unit == "model":
        Console(width=max(out.width, 180)).print(model_table(rows, title))
    else:
        out.print(rich_table(rows, title, out.width))
    for line in notes:
        out.print(line, highlight=False, markup=False)
    try:
        written = [write_csv(rows, out_dir, unit)]
        pngs = write_figures(rows, out_dir, unit) if figures else []
    except OSError as exc:
        raise UserError(
            f"--out {out_dir}: cannot write there ({exc.strerror or exc}); choose another folder"
        ) from None
    if figures and not pngs:
        out.print(
            "figures skipped: matplotlib is not installed (pip install 'trustmh[report]')",
            markup=False,  # "[report]" is not a style tag
        )
    written += pngs
    save_results(rows, kind if unit == "item" else f"{kind}:{unit}")
    out.print(f"wrote {', '.join(str(p) for p in written)}", highlight=False, soft_wrap=True)
    out.print(f"saved for reports in {results_dir()}", highlight=False, soft_wrap=True)
