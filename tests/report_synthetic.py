"""Synthetic runs written into a real run store (SQLite), for report tests and bench/report.py.

A synthetic run has the shape of a real one (meta, samples, responses, scores, results with
breakdown metrics) with generated texts, so reports can be tested on sizes and contents (hostile
HTML, very long replies) no live run produces cheaply.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from trustmh.metrics import breakdown_name, proportion_ci
from trustmh.store import RunStore
from trustmh.types import MetricValue, Response, Sample, SampleScore

TextFn = Callable[[str, int, random.Random], str]  # (task, item index, rng) -> text


@dataclass(frozen=True)
class SyntheticTask:
    """One subtask of a synthetic run: n items, optional variants (e.g. perturbation levels or
    groups, each a breakdown group of dimension `dimension`), a 0/1 score with `p_correct`."""

    id: str
    n_items: int
    direction: str = "higher"
    dimension: str | None = None
    variants: tuple[str, ...] = ()
    p_correct: float = 0.7
    judged: bool = False


def _words(rng: random.Random, n: int) -> str:
    vocab = ("feel", "anxious", "support", "sleep", "family", "work", "calm", "talk", "help", "today",
             "friend", "worry", "therapy", "breathe", "alone", "safe", "week", "hard", "care")  # fmt: skip
    return " ".join(rng.choice(vocab) for _ in range(n))


def default_prompt(task: str, index: int, rng: random.Random) -> str:
    """A prompt of about 1,200 characters (template + item), like the benchmark's."""
    return (
        f"You are a counsellor. Read the conversation and answer the question.\n"
        f"Item {index} of {task}.\n"
        + _words(rng, 170)
        + "\nA. first\nB. second\nC. third\nD. fourth"
    )


def default_response(task: str, index: int, rng: random.Random) -> str:
    """A reply of about 800 characters."""
    return f"Answer: {rng.choice('ABCD')}. " + _words(rng, 110)


def write_synthetic_run(
    run_dir: Path,
    tasks: Sequence[SyntheticTask],
    *,
    model: str = "synthetic:model",
    label: str | None = None,
    seed: int = 0,
    prompt_fn: TextFn = default_prompt,
    response_fn: TextFn = default_response,
    judge_fn: TextFn | None = None,
    status_fn: Callable[[str, int], str] | None = None,
) -> Path:
    """Write a complete run into `run_dir` and return it. Scores are 0/1 drawn with each task's
    p_correct; `status_fn(task, index)` may mark samples refused/unparsed/error; results hold the
    primary accuracy and, per variant, `breakdown_name(metric, dimension, variant)`."""
    rng = random.Random(seed)
    store = RunStore(run_dir)
    try:
        store.set_meta("config", {"model": model, "judge": "synthetic:judge", "seed": seed,
                                  "tasks": [t.id for t in tasks], "limit": None})  # fmt: skip
        store.set_meta("model_label", label or model)
        store.set_meta("tasks", [t.id for t in tasks])
        store.set_meta("status", "complete")
        store.set_meta("versions", {"trustmh": "synthetic"})
        for task in tasks:
            _write_task(store, task, rng, model, prompt_fn, response_fn, judge_fn, status_fn)
    finally:
        store.close()
    return run_dir


def _write_task(store, task, rng, model, prompt_fn, response_fn, judge_fn, status_fn) -> None:
    variants = task.variants or ("clean",)
    rows: list[tuple[Sample, str, Response, SampleScore]] = []
    for index in range(task.n_items):
        prompt = prompt_fn(task.id, index, rng)
        for variant in variants:
            key = hashlib.sha256(f"{task.id}|{index}|{variant}|{model}".encode()).hexdigest()
            sample = Sample(str(index), ({"role": "user", "content": prompt},), "A", {}, variant)
            status = status_fn(task.id, index) if status_fn else "ok"
            value = None if status == "error" else float(rng.random() < task.p_correct)
            if status == "unparsed":
                value = 0.0
            detail = {}
            if task.judged:
                verdict = judge_fn(task.id, index, rng) if judge_fn else '{"score": 4}'
                detail = {
                    "judge_model": "synthetic:judge",
                    "judge_raw": verdict,
                    "judge_status": "ok",
                }
            text = response_fn(task.id, index, rng)
            rows.append((sample, key, Response(text), SampleScore(value, "A", status, detail)))  # type: ignore[arg-type]
    store.add_samples(task.id, ((s, k) for s, k, _, _ in rows))
    store.begin()
    for sample, key, response, score in rows:
        store.put_response(key, model, "model", response, "synthetic", 1, 0.0, commit=False)
        store.conn.execute(
            "INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?,?,?,?,?)",
            (task.id, sample.id, sample.variant, score.status, score.value, '"A"',
             _json(score.detail), "synthetic failure" if score.status == "error" else None, key, 0.0),
        )  # fmt: skip
    store.commit_pending()
    store.put_results(task.id, _metrics(task, rows))


def _json(detail: dict) -> str | None:
    import json

    return json.dumps(detail, ensure_ascii=False) if detail else None


def _metrics(task: SyntheticTask, rows) -> list[MetricValue]:
    def metric(name: str, picked) -> MetricValue:
        values = [s.value for _, _, _, s in picked if s.value is not None]
        low, high = proportion_ci(values, seed=0)
        return MetricValue(name, sum(values) / len(values) if values else None, len(values),
                           task.direction, name == "accuracy", low, high,  # type: ignore[arg-type]
                           n_unparsed=sum(s.status == "unparsed" for _, _, _, s in picked))  # fmt: skip

    out = [metric("accuracy", rows)]
    if task.dimension:
        for variant in task.variants:
            picked = [r for r in rows if r[0].variant == variant]
            out.append(metric(breakdown_name("accuracy", task.dimension, variant), picked))
    return out
