"""Scripted replies for the end-to-end tests of the classification subtasks.

The test builds a task's first N samples in-process (the same ones `--limit N` sends), gives each
one a behaviour (cycling through `BEHAVIOURS`), and serves the matching reply from the loopback
OpenAI-compatible server (`run_script`). After the CLI run, the expected metrics are recomputed
from the script (`check_primary` for what every classification subtask reports).
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import NO_DATA, data_dir
from live import run_live
from openai_server import FakeOpenAIServer

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


def run_script(
    tmp_path_factory: pytest.TempPathFactory, makers: dict[str, ReplyMaker], limit: int
) -> tuple[Path, Script, subprocess.CompletedProcess]:
    """Script the first `limit` samples of each task, run them through the CLI against the
    loopback server; (run directory, script, CLI result). Skips without the real data."""
    root = data_dir()
    if root is None:
        pytest.skip(NO_DATA)
    script = Script(DataContext((root,)), makers, limit)
    run_dir = tmp_path_factory.mktemp("classification") / "run"
    with FakeOpenAIServer(reply_fn=script.reply) as server:
        result = run_live(server, run_dir, "--tasks", ",".join(makers), "--limit", str(limit),
                          "--concurrency", "16")  # fmt: skip
    return run_dir, script, result


def check_primary(
    run_dir: Path, task: str, entries: Sequence[Scripted], credit: Sequence[float]
) -> dict[str, dict[str, Any]]:
    """Check what every classification subtask reports against the script: the primary accuracy
    (value = mean `credit`, n, interval, refused and unparsed counts), each sample's status and the
    refusal rate; returns the task's stored metrics."""
    metrics = results(run_dir, task)
    primary = metrics["accuracy"]
    assert primary["is_primary"] == 1 and primary["n"] == len(credit) == len(entries)
    assert primary["value"] == pytest.approx(np.mean(credit))
    assert primary["ci_low"] <= primary["value"] <= primary["ci_high"]
    n_refused = sum(e.behaviour == "refusal" for e in entries)
    n_unparsed = sum(e.behaviour == "malformed" for e in entries)
    counts = (primary["n_refused"], primary["n_unparsed"], primary["n_error"])
    assert counts == (n_refused, n_unparsed, 0)
    expected = {"refusal": "refused", "malformed": "unparsed"}
    assert statuses(run_dir, task) == {
        e.sample.id: expected.get(e.behaviour, "ok") for e in entries
    }
    assert metrics["refusal_rate"]["value"] == pytest.approx(n_refused / len(entries))
    return metrics


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
