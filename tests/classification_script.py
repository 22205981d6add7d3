"""Scripted replies for the end-to-end tests of the classification subtasks.

The test builds a task's first N samples in-process (the same ones `--limit N` sends), gives each
one a behaviour (cycling through `BEHAVIOURS`), and serves the matching reply from the loopback
OpenAI-compatible server. After the CLI run, the expected metrics are recomputed from the script.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustmh.data.sources import DataContext
from trustmh.tasks.registry import get_task
from trustmh.types import Sample

# correct: right answer as the protocol's JSON; prose: right answer in free text; wrong: a wrong
# answer as JSON; refusal: no answer and a refusal phrase; malformed: no answer, no refusal
BEHAVIOURS = ("correct", "wrong", "prose", "refusal", "malformed")
REFUSALS = {"en": "I'm sorry, but I can't help with that.", "zh": "抱歉，我无法回答这个问题。"}
MALFORMED = {"en": "Let me think about this one step by step first.", "zh": "嗯，让我想一想。"}


@dataclass
class Scripted:
    """One sample and the reply the server gives to it."""

    task: str
    sample: Sample
    behaviour: str
    reply: str
    info: dict[str, Any] = field(default_factory=dict)


# (sample, behaviour) -> (reply text, info the test needs to recompute the metrics)
ReplyMaker = Callable[[Sample, str], tuple[str, dict[str, Any]]]


class Script:
    """The scripted replies of several tasks, served by prompt text."""

    def __init__(self, ctx: DataContext, makers: dict[str, ReplyMaker], limit: int) -> None:
        self.by_prompt: dict[str, Scripted] = {}
        self.by_task: dict[str, list[Scripted]] = {}
        for task_id, make in makers.items():
            samples = itertools.islice(get_task(task_id).samples(ctx, {}), limit)
            entries = []
            for i, sample in enumerate(samples):
                behaviour = BEHAVIOURS[i % len(BEHAVIOURS)]
                reply, info = make(sample, behaviour)
                entry = Scripted(task_id, sample, behaviour, reply, info)
                key = sample.messages[-1]["content"]
                assert key not in self.by_prompt, "prompts must be unique to script them"
                self.by_prompt[key] = entry
                entries.append(entry)
            self.by_task[task_id] = entries

    def reply(self, messages: list[dict[str, Any]], model: str) -> str:
        """The server's reply function."""
        return self.by_prompt[messages[-1]["content"]].reply


def other(choices: list[str], right: str) -> str:
    """A choice that is not `right` (the first such)."""
    return next(c for c in choices if c != right)


def results(run_dir: Path, task: str) -> dict[str, dict[str, Any]]:
    """The stored metrics of a task by name."""
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM results WHERE task=?", (task,)).fetchall()
    return {r["metric"]: dict(r) for r in rows}


def statuses(run_dir: Path, task: str) -> dict[str, str]:
    """sample id -> stored score status."""
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        return dict(
            conn.execute("SELECT sample_id, status FROM scores WHERE task=?", (task,)).fetchall()
        )


def as_json_block(value: dict[str, Any]) -> str:
    """A fenced JSON reply."""
    return "```json\n" + json.dumps(value, ensure_ascii=False) + "\n```"
