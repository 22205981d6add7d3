"""`trustmh perturb`: show what a model receives when a text is perturbed (protocol 8.2)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from trustmh.errors import UserError

OPERATOR_CHOICES = ("char", "word", "sentence", "typo", "all")
EPILOG = """
Examples:

  trustmh perturb --operator char --intensity 0.2 "I can't sleep and I feel so alone."

  trustmh perturb --operator all --intensity 0.1 --sentences 2 "I can't sleep."   (char + word + 2 sentences)

  trustmh perturb --levels default "I can't sleep."   (every level of the robustness tasks)

  echo "我最近很难过。" | trustmh perturb --operator word --intensity 0.3 --json

The same --seed (the run seed) and --sample-id, with the item's clean user-written texts as the
arguments, give the text a run sent for that sample (see the sample's `perturbation` record).
"""


def level_spec(operator: str, intensity: float | None, sentences: int) -> str:
    """The level string for --operator/--intensity (--sentences for `all`)."""
    if operator not in OPERATOR_CHOICES:
        raise UserError(f"--operator {operator!r}: use one of {', '.join(OPERATOR_CHOICES)}")
    if operator == "sentence":
        return f"sentence@{_plain(1 if intensity is None else intensity)}"
    x = _plain(0.1 if intensity is None else intensity)
    if operator == "all":
        return f"char@{x}+word@{x}+sentence@{sentences}"
    return f"{operator}@{x}"


def _plain(x: float) -> str:
    """A number without an exponent (`:g` writes 1e-05, which no level string parses)."""
    return f"{x:.10f}".rstrip("0").rstrip(".") if x == x else str(x)


def perturb(
    text: Annotated[
        list[str] | None,
        typer.Argument(
            help="Text to perturb; several texts are the parts of one item (e.g. its user turns), "
            "perturbed together; omit it or give - to read standard input."
        ),
    ] = None,
    operator: Annotated[
        str, typer.Option(help="char, word, sentence, typo, or all (char + word + sentences).")
    ] = "char",
    intensity: Annotated[
        float | None,
        typer.Option(
            help="Share of units touched (char, word, typo; default 0.1), or the number of sentences (sentence; default 1)."
        ),
    ] = None,
    sentences: Annotated[
        int, typer.Option(help="Sentences inserted by --operator all.", min=0)
    ] = 1,
    level: Annotated[
        str | None,
        typer.Option(
            help="A level, overriding --operator/--intensity, e.g. char@0.1+word@0.1+sentence@1."
        ),
    ] = None,
    levels: Annotated[
        str | None,
        typer.Option(
            help="Show every level of a comma-separated list, or `default` (the protocol's six)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    sample_id: Annotated[str, typer.Option(help="Sample id the seed is derived with.")] = "cli",
    segmenter: Annotated[
        str, typer.Option(help="Chinese word segmenter: auto (jieba if installed), jieba or chars.")
    ] = "auto",
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print JSON (text, seeds, operator log), one object per level."
        ),
    ] = False,
) -> None:
    """Perturb a text as the robustness subtasks do, e.g. `trustmh perturb --operator char --intensity 0.2 TEXT`."""
    from trustmh.transforms.perturb import DEFAULT_LEVELS_SPEC, parse_levels, perturb_levels
    from trustmh.transforms.segment import segmenter_name

    segmenter_name(segmenter)  # a bad --segmenter fails even when the text has no Chinese

    if not text or text == ["-"]:
        if sys.stdin is None or sys.stdin.isatty():
            raise UserError(
                "perturb: give the text as an argument, or pipe it in on standard input"
            )
        text = [sys.stdin.read().rstrip("\n")]
    if levels is not None and level is not None:
        raise UserError("perturb: give --level (one level) or --levels (several), not both")
    if levels is not None:
        chosen = parse_levels(DEFAULT_LEVELS_SPEC if levels == "default" else levels)
    else:
        chosen = parse_levels([level or level_spec(operator, intensity, sentences)])
    results = perturb_levels(text, chosen, run_seed=seed, sample_id=sample_id, segmenter=segmenter)
    for result in results:  # plain echo: the text exactly, never wrapped or styled
        shown = "\n".join(result.parts)
        if as_json:
            record = {"text": shown, "parts": list(result.parts), **result.record()}
            typer.echo(json.dumps(record, ensure_ascii=False))
        elif len(results) > 1:
            typer.echo(f"{result.level}: {shown}")
        else:
            typer.echo(shown)
