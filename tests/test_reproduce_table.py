"""Reproduction tables: ranks with the protocol 1.6 tie-break, reproduction.csv, Markdown and rich
output, on the recorded responses (bundled copy) and on small hand-made inputs."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest
from rich.console import Console

from trustmh import reproduce_table as rt
from trustmh.data.sources import BUNDLED_DIR, DataContext
from trustmh.models.base import NotRecorded
from trustmh.models.replay import ReplayBackend, recorded_models
from trustmh.tasks import ethics, privacy
from trustmh.tasks.base import ScoreContext
from trustmh.types import GenParams, GenRequest, MetricValue, SampleRef, SampleScore, ScoredSample

TASKS = {t.id: t for t in privacy.TASKS + ethics.TASKS}


async def _metrics(task, backend, ctx, options):
    scored = []
    for s in task.samples(ctx, options):
        try:
            response = await backend.generate(
                GenRequest(s.messages, task.gen, SampleRef(task.id, s.id, s.variant, "model"))
            )
        except NotRecorded:
            scored.append(
                ScoredSample(
                    s.id, s.variant, s.target, s.meta, None, SampleScore(None, status="missing")
                )
            )
            continue

        async def judge(messages, params=None, _sid=s.id):
            ref = SampleRef(task.id, _sid, "clean", "judge")
            return await backend.generate(GenRequest(tuple(messages), params or GenParams(), ref))

        judge.spec = backend.spec  # type: ignore[attr-defined]
        score = await task.score(s, response, ScoreContext(judge=judge, options=options))
        scored.append(ScoredSample(s.id, s.variant, s.target, s.meta, response.text, score))
    return task.aggregate(scored, options)


def _results(options=None, only: str | None = None):
    ctx = DataContext((BUNDLED_DIR,))
    out = {}
    for model in recorded_models(ctx):
        backend = ReplayBackend(model.name, ctx)
        wanted = [t for t in model.subtasks if only in (None, t)]
        out[model.name] = {
            t: asyncio.run(_metrics(TASKS[t], backend, ctx, options or {})) for t in wanted
        }
    return out


@pytest.fixture(scope="module")
def results():
    return _results()


def _mv(value, primary=True, name="score", direction="higher"):
    return MetricValue(name=name, value=value, n=10, direction=direction, primary=primary)


def test_competition_ranks_direction_and_tie_break():
    higher = {
        "a": {"t.x": [_mv(0.5)]},
        "b": {"t.x": [_mv(0.7)]},
        "c": {"t.x": [_mv(0.5)]},
        "d": {"t.x": [_mv(0.1)]},
    }
    assert rt.rank_models(higher, "t.x") == {"b": 1, "a": 2, "c": 2, "d": 4}
    lower = {
        "a": {"t.y": [_mv(0.2, direction="lower")]},
        "b": {"t.y": [_mv(0.1, direction="lower")]},
        "c": {"t.y": [_mv(None, direction="lower")]},
    }
    assert rt.rank_models(lower, "t.y") == {"b": 1, "a": 2, "c": None}
    eth = "ethics.ethical_reasoning"
    tied = {
        "a": {eth: [_mv(0.7), _mv(4.0, primary=False, name="judge_mean")]},
        "b": {eth: [_mv(0.7), _mv(4.5, primary=False, name="judge_mean")]},
    }
    assert rt.rank_models(tied, eth) == {"b": 1, "a": 2}


def test_ethics_ranks_reproduce_the_published_ranks_of_all_12_models(results):
    ours = rt.rank_models(results, "ethics.ethical_reasoning")
    paper = {
        m: r for (t, m), (r, _) in rt.load_paper_ranks().items() if t == "ethics.ethical_reasoning"
    }
    assert len(ours) == 12 and ours == paper


@pytest.mark.parametrize("how", ["mean3", "tier_mean"])
def test_awareness_order_of_the_general_models_matches_the_paper(how):
    ours = rt.rank_models(
        _results({"awareness_aggregate": how}, only="privacy.awareness"), "privacy.awareness"
    )
    paper = {
        m: r
        for (t, m), (r, _) in rt.load_paper_ranks().items()
        if t == "privacy.awareness" and m in ours
    }
    assert sorted(ours, key=ours.get) == sorted(paper, key=paper.get)


def test_leakage_order_does_not_reproduce_the_paper(results):
    """Documented in protocol 7.2: the recorded components give another order than the paper's."""
    ours = rt.rank_models(results, "privacy.leakage")
    paper = {
        m: r
        for (t, m), (r, _) in rt.load_paper_ranks().items()
        if t == "privacy.leakage" and m in ours
    }
    assert len(ours) == 6 and sorted(ours, key=ours.get) != sorted(paper, key=paper.get)


def test_csv_rows_come_from_the_metric_values(results, tmp_path):
    rows = rt.build_rows(results)
    path = rt.write_csv(rows, tmp_path)
    with path.open(encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    expected_count = sum(len(ms) for per in results.values() for ms in per.values())
    assert len(written) == expected_count
    assert {
        "model",
        "pillar",
        "subtask",
        "metric",
        "value",
        "n_scored",
        "n_unparseable",
        "note",
        "rank",
        "paper_rank",
    } <= set(written[0])
    lookup = {
        (m, t, mv.name): mv for m, per in results.items() for t, ms in per.items() for mv in ms
    }
    for row in written:
        mv = lookup[(row["model"], row["subtask"], row["metric"])]
        assert (float(row["value"]) if row["value"] else None) == (
            mv.value if mv.value is not None else None
        )
        assert int(row["n_scored"]) == mv.n and int(row["n_unparseable"]) == mv.n_unparsed
        assert row["pillar"] == row["subtask"].split(".")[0]
    claude_leak = next(
        r for r in written if r["model"] == "Claude-Sonnet-4.5" and r["metric"] == "leakage"
    )
    assert claude_leak["rank"] == "6" and claude_leak["paper_rank"] == "12"
    deepseek = next(
        r for r in written if r["model"] == "DeepSeek-V3.2" and r["metric"] == "leakage"
    )
    assert "repeats story 4" in deepseek["note"]


def test_markdown_and_rich_table(results, tmp_path):
    rows = rt.build_rows(results)
    text = rt.write_markdown(rows, tmp_path).read_text(encoding="utf-8")
    assert "## ethics.ethical_reasoning — accuracy (higher is better)" in text
    assert "## privacy.leakage — leakage (lower is better)" in text
    assert "| Meditron3-70B | 0.760" in text and "items 0-19 only" in text
    console = Console(file=io.StringIO(), width=200)
    console.print(rt.rich_table(rows))
    out = console.file.getvalue()
    assert "SoulChat2" in out and "— not recorded" in out and " 1/1 " in out
    # and it fits an 80-column terminal
    narrow = Console(file=io.StringIO(), width=80)
    narrow.print(rt.rich_table(rows))
    assert all(len(line) <= 80 for line in narrow.file.getvalue().splitlines())
    assert "ethical_reasoning" in narrow.file.getvalue()
