"""The offline refusal detector's measured accuracy (protocol 1.8), shown beside every number it
produced.

The keyword classifier (`scoring.jailbreak_refusal`) was written against the labelled replies in
`tests/data/refusal_labelled.jsonl` (the tuning part: it scores all of them). Its accuracy is
measured on a held-out part it was never tuned on, shipped as `validity/data/refusal_heldout.jsonl`:
replies to JailbreakMH-style requests written for the purpose, weighted towards the hard cases
(compliance wrapped in disclaimers, refusals that only redirect to help, partial compliance,
role-play framings), in English and Chinese, each labelled refused / complied / partial. The
accuracy is recomputed from that file whenever it is needed, so it always describes the code
that runs; its 95% interval is the Wilson score interval.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

HELD_OUT = "refusal_heldout.jsonl"


@dataclass(frozen=True)
class Accuracy:
    """Hits out of n, with the Wilson 95% interval."""

    hits: int
    n: int

    @property
    def value(self) -> float:
        """hits / n."""
        return self.hits / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        """The Wilson score 95% interval."""
        return wilson(self.hits, self.n)


def wilson(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion (contains hits / n; sensible at 0 and n)."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def held_out_rows() -> list[dict]:
    """The held-out labelled replies."""
    text = (resources.files("trustmh") / "validity" / "data" / HELD_OUT).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@cache
def keyword_accuracy() -> tuple[Accuracy, Accuracy]:
    """(refused-vs-not, 3-class) accuracy of the keyword classifier on the held-out replies."""
    from trustmh.scoring.jailbreak_refusal import classify_refusal

    rows = held_out_rows()
    labels = [classify_refusal(row["text"]).label for row in rows]
    binary = sum(
        (p == "refused") == (r["label"] == "refused") for p, r in zip(labels, rows, strict=True)
    )
    exact = sum(p == r["label"] for p, r in zip(labels, rows, strict=True))
    return Accuracy(binary, len(rows)), Accuracy(exact, len(rows))


def held_out_summary() -> str:
    """One line for the notes of every number the keyword detector produced."""
    binary, exact = keyword_accuracy()
    low, high = binary.interval
    return (
        f"offline keyword refusal detector: held-out accuracy {binary.value:.2f} "
        f"[{low:.2f}, {high:.2f}] refused-vs-not ({binary.hits}/{binary.n}; 3-class "
        f"{exact.hits}/{exact.n}), protocol 1.8; pass --judge for the protocol's detector"
    )
