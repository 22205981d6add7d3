"""Scripted models with a known accuracy, served by the loopback OpenAI-compatible server, for the
comparison tests: model `NAME` answers right on exactly its chosen share of a task's items (a
seeded choice per model, independent between models) and wrong on the others."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from pathlib import Path

from conftest import run_cli
from openai_server import FakeOpenAIServer

from trustmh.data.sources import DataContext
from trustmh.tasks.registry import get_task
from trustmh.types import Sample


class ScriptedModels:
    """Per model name, the set of items it answers right; replies by prompt text."""

    def __init__(self, ctx: DataContext, task_id: str, limit: int | None,
                 accuracy: dict[str, float]) -> None:  # fmt: skip
        samples = list(itertools.islice(get_task(task_id).samples(ctx, {}), limit))
        self.samples: dict[str, Sample] = {}
        for s in samples:
            self.samples.setdefault(s.messages[-1]["content"], s)
        ids = [s.id for s in samples]
        self.right: dict[str, set[str]] = {}
        for k, (model, share) in enumerate(accuracy.items()):
            rng = random.Random(f"{task_id}/{model}/{k}")
            self.right[model] = set(rng.sample(ids, round(share * len(ids))))
        self.n_items = len(ids)

    def reply(self, messages: list[dict], model: str) -> str:
        """The right letter as JSON when `model` knows the item, else a wrong one."""
        sample = self.samples[messages[-1]["content"]]
        letters = list(sample.meta.get("options") or "ABCD")
        target = sample.target
        letter = (
            target if sample.id in self.right[model] else next(x for x in letters if x != target)
        )
        return f'```json\n{{"answer": "{letter}"}}\n```'

    def accuracy(self, model: str) -> float:
        """The model's true accuracy on these items."""
        return len(self.right[model]) / self.n_items


def run_models(script: ScriptedModels, models: Sequence[str], root: Path, task_id: str,
               limit: int | None, env: dict[str, str]) -> list[Path]:  # fmt: skip
    """One `trustmh run` per scripted model; their run directories."""
    dirs = []
    with FakeOpenAIServer(reply_fn=script.reply, models=tuple(models)) as server:
        for model in models:
            run_dir = root / model
            args = ["run", "--model", f"openai:{model}@{server.base_url}", "--tasks", task_id,
                    "--run-dir", str(run_dir), "--no-progress", "--concurrency", "16"]  # fmt: skip
            if limit is not None:
                args += ["--limit", str(limit)]
            result = run_cli(*args, env=env)
            assert result.returncode == 0, result.stderr
            dirs.append(run_dir)
    return dirs
