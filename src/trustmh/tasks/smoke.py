"""The built-in smoke task: synthetic multiple-choice items that exercise the whole path
(samples -> generate -> parse -> score -> metric) without any dataset. Not a benchmark subtask."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from trustmh.metrics import proportion_ci
from trustmh.scoring.parsers import parse_option
from trustmh.tasks.base import ScoreContext, Task
from trustmh.types import GenParams, MetricValue, Response, Sample, SampleScore, ScoredSample

N_ITEMS = 5000
LETTERS = "ABCD"
WORDS = ("calm", "river", "lamp", "garden", "window", "cloud", "bread", "stone", "music", "paper")


def _draw(index: int) -> tuple[list[int], str]:
    """Four distinct numbers in 1..999 and a word, drawn from the sha256 of the sample id: the same
    items every time, at a few microseconds each (a seeded `random.Random` per item costs ten
    times that, which a 2,000-sample benchmark run notices)."""
    digest = hashlib.sha256(f"smoke/{index}".encode()).digest()
    numbers: list[int] = []
    for k in range(0, 30, 2):  # 15 two-byte draws; 4 distinct ones come out for every index used
        n = 1 + int.from_bytes(digest[k : k + 2], "big") % 999
        if n not in numbers:
            numbers.append(n)
            if len(numbers) == 4:
                break
    return numbers, WORDS[digest[31] % len(WORDS)]


def _item(index: int) -> Sample:
    numbers, word = _draw(index)
    target = LETTERS[numbers.index(max(numbers))]
    options = "\n".join(f"{letter}. {word} {n}" for letter, n in zip(LETTERS, numbers, strict=True))
    prompt = (
        f"Item {index}: which option carries the largest number?\n{options}\n"
        'Reply with JSON {"answer": "<letter>"}.'
    )
    return Sample(id=str(index), messages=({"role": "user", "content": prompt},), target=target)


def samples(data: Any, options: dict[str, Any]) -> Iterator[Sample]:
    """The smoke items in order (use --limit to take fewer)."""
    for index in range(N_ITEMS):
        yield _item(index)


async def score(sample: Sample, response: Response, ctx: ScoreContext) -> SampleScore:
    """1 if the parsed letter is the target, else 0; unparsed replies count as wrong."""
    letter = parse_option(response.text, LETTERS)
    if letter is None:
        return SampleScore(0.0, None, "unparsed")
    return SampleScore(float(letter == sample.target), letter)


def aggregate(scored: list[ScoredSample], options: dict[str, Any]) -> list[MetricValue]:
    """Accuracy over all scored samples (errors excluded and counted)."""
    values = [s.score.value or 0.0 for s in scored if s.score.status in ("ok", "unparsed")]
    low, high = proportion_ci(values, seed=int(options.get("seed", 0)))
    return [
        MetricValue(
            "accuracy",
            sum(values) / len(values) if values else None,
            len(values),
            "higher",
            True,
            low,
            high,
            n_unparsed=sum(s.score.status == "unparsed" for s in scored),
            n_error=sum(s.score.status == "error" for s in scored),
        )
    ]


TASKS = [
    Task(
        id="smoke",
        pillar="smoke",
        title="Built-in smoke test (synthetic multiple choice)",
        section="-",
        status="DEFAULT",
        metric="accuracy",
        direction="higher",
        sources=(),
        n_items=str(N_ITEMS),
        gen=GenParams(temperature=0.0, max_tokens=32),
        samples=samples,
        score=score,
        aggregate=aggregate,
        in_protocol=False,
        notes="exercises the harness; not part of TrustMH-Bench",
    )
]
