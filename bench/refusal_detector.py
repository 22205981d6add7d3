"""Accuracy of the jailbreak refusal detectors on the tuning and the held-out labelled replies.

Usage (from the repository root):

    .venv/bin/python bench/refusal_detector.py                       # the offline keyword classifier
    .venv/bin/python bench/refusal_detector.py --judge openai:gpt-4.1  # also a judge (paid requests)

Two labelled sets of replies to JailbreakMH-style prompts, each labelled refused, complied or
partial (English and Chinese):
- tuning (`tests/data/refusal_labelled.jsonl`): the keyword classifier's rules were written
  against every one of these (rounds 1-3), so its score there says little;
- held-out (`src/trustmh/validity/data/refusal_heldout.jsonl`): written for issue 17 and never
  used to tune the rules, weighted towards hard cases (compliance wrapped in disclaimers,
  refusals that only redirect to help, partial compliance, role play). Its refused-vs-not
  accuracy, with a Wilson 95% interval, is what reports print beside every number the keyword
  detector produced (`trustmh.validity.detector`).
Printed per set: 3-class accuracy, refusal-vs-not accuracy (what RtA counts) with its interval,
per language and kind, the confusion matrix and every miss. The judge is asked with the task's
own rubric (`jailbreak_refusal`), the JailbreakMH objective and a stand-in user message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from pathlib import Path

from trustmh.scoring.jailbreak_refusal import LABELS, classify_refusal
from trustmh.validity.detector import held_out_rows, wilson

LABELLED = Path(__file__).resolve().parent.parent / "tests" / "data" / "refusal_labelled.jsonl"


def load_labelled(path: Path = LABELLED) -> list[dict]:
    """The labelled replies, one dict per line."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def report(name: str, rows: list[dict], predicted: list[str | None]) -> None:
    """Print the accuracy figures of one detector."""
    pairs = list(zip(rows, predicted, strict=True))
    answered = [(row, label) for row, label in pairs if label is not None]
    exact = sum(row["label"] == label for row, label in answered)
    binary = sum((row["label"] == "refused") == (label == "refused") for row, label in answered)
    print(f"\n{name}: {len(rows)} labelled replies, {len(rows) - len(answered)} without a verdict")
    print(f"  3-class accuracy        {exact / len(answered):.3f} ({exact}/{len(answered)})")
    low, high = wilson(binary, len(answered))
    print(
        f"  refused-vs-not accuracy {binary / len(answered):.3f} ({binary}/{len(answered)}) "
        f"95% Wilson [{low:.3f}, {high:.3f}]"
    )
    for field, default in (("lang", ""), ("split", "round1"), ("kind", "-")):
        for value in sorted({row.get(field, default) for row in rows}):
            subset = [(row, label) for row, label in answered if row.get(field, default) == value]
            hits = sum(row["label"] == label for row, label in subset)
            print(f"  {field} {value}: {hits}/{len(subset)}")
    confusion = Counter((row["label"], label) for row, label in answered)
    print("  truth \\ predicted " + " ".join(f"{label:>9}" for label in LABELS))
    for truth in LABELS:
        cells = " ".join(f"{confusion[(truth, label)]:>9}" for label in LABELS)
        print(f"  {truth:<18}{cells}")
    for row, label in pairs:
        if label != row["label"]:
            print(f"  miss {row['id']}: {row['label']} -> {label}")


async def judge_labels(spec: str, rows: list[dict]) -> list[str | None]:
    """The judge's verdict on every labelled reply (None when it did not parse)."""
    from trustmh.data.sources import resolve_data_context
    from trustmh.models.factory import build_backend
    from trustmh.scoring.judge import load_rubric
    from trustmh.types import GenRequest

    rubric = load_rubric("jailbreak_refusal")
    backend = build_backend(
        spec,
        api_key_env=None,
        timeout=120,
        concurrency=8,
        data=resolve_data_context(),
        flag="--judge",
    )
    limit = asyncio.Semaphore(8)

    async def one(row: dict) -> str | None:
        values = {
            "objective": row["objective"],
            "prompt": f"(a JailbreakMH prompt with the objective: {row['objective']})",
            "reply": row["text"],
        }
        async with limit:
            response = await backend.generate(GenRequest(rubric.messages(values), rubric.gen))
        parsed = rubric.parse(response.text)
        return None if parsed is None else str(parsed["verdict"])

    try:
        return list(await asyncio.gather(*(one(row) for row in rows)))
    finally:
        await backend.aclose()


def main() -> None:
    """Score the labelled replies with the keyword classifier (and a judge when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--judge", default=None, help="also measure this judge, e.g. openai:gpt-4.1"
    )
    parser.add_argument("--labelled", type=Path, default=LABELLED, help="the labelled JSONL file")
    args = parser.parse_args()
    held_out = [{"split": "held-out", **row} for row in held_out_rows()]
    for part, rows in (("tuning", load_labelled(args.labelled)), ("held-out", held_out)):
        labels = [classify_refusal(row["text"]).label for row in rows]
        report(f"keyword classifier, {part}", rows, labels)
        if args.judge:
            report(f"judge {args.judge}, {part}", rows, asyncio.run(judge_labels(args.judge, rows)))


if __name__ == "__main__":
    main()
