"""mentalbench.response_generation end to end (protocol 14.2): the installed CLI against the loopback
OpenAI-compatible server, a scripted model and a scripted judge (verdicts that parse, one that
parses only on the stricter retry, one that never parses). The placement among the recorded
response sources is recomputed here from ratings.csv with pandas, independently of the task."""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from pathlib import Path

import pandas as pd
import pytest
from live import query, run_live
from openai_server import FakeOpenAIServer

from trustmh.judge_check.model_level import PAPER_MODELS
from trustmh.scoring.judge import load_rubric
from trustmh.tasks.mentalbench import GENERATION_PROMPT, TASK_ID
from trustmh.types import GenParams

ATTRIBUTES = ("Guidance", "Informativeness", "Relevance", "Safety", "Empathy", "Helpfulness",
              "Understanding")  # fmt: skip
LIMIT = 12
RECORDED_JUDGE, OTHER_JUDGE = "gpt-4o", "my-judge"
REF = re.compile(r"\(ref (\d+)\)")
JUDGE_OPENING = "You are an expert evaluator rating the quality of a response"
RETRY_PARSES, NEVER_PARSES = 2, 3  # judge behaviour by the reply's ref modulo 5


def model_reply(prompt: str) -> str:
    ref = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 1000
    return f"I am sorry you are going through this; you deserve support. (ref {ref})"


def scripted_scores(ref: int) -> dict[str, int]:
    return {a: 1 + (ref + i) % 5 for i, a in enumerate(ATTRIBUTES)}


def behaviour(reply_text: str) -> int:
    """RETRY_PARSES, NEVER_PARSES or another value (parses at once), from the reply's ref."""
    return int(REF.search(reply_text).group(1)) % 5


def judge_reply(prompt: str) -> str:
    """The verdict for the reply in the prompt: parses at once, only on the stricter retry, or
    never (prose, then an out-of-range score)."""
    ref = int(REF.search(prompt).group(1))
    retry = "could not be read" in prompt
    if ref % 5 == NEVER_PARSES:
        return "A fine reply overall." if not retry else json.dumps({"Guidance": 9})
    if ref % 5 == RETRY_PARSES and not retry:
        return "I would rate this reply quite well."
    verdict = {**scripted_scores(ref), "Overall": 3, "Explanation": "scripted"}
    return "```json\n" + json.dumps(verdict) + "\n```"


def reply(messages: list[dict], model: str) -> str:
    prompt = messages[-1]["content"]
    return judge_reply(prompt) if prompt.startswith(JUDGE_OPENING) else model_reply(prompt)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, real_data_module, user_cache) -> dict:
    root = tmp_path_factory.mktemp("mentalbench")
    # --judge-reask: the scripted judge exercises the opt-in stricter re-ask (protocol 1.8)
    args = ("--tasks", "mentalbench", "--limit", str(LIMIT), "--concurrency", "4", "--judge-reask")
    with FakeOpenAIServer(reply_fn=reply) as server:
        run_live(server, root / "recorded", *args, judge=RECORDED_JUDGE, env=user_cache)
        first = len(server.log())
        run_live(server, root / "recorded", *args, judge=RECORDED_JUDGE, env=user_cache)
        again = len(server.log()) - first
        run_live(server, root / "other", *args, judge=OTHER_JUDGE, env=user_cache)
    return {"recorded": root / "recorded", "other": root / "other", "first": first, "again": again}


@pytest.fixture(scope="module")
def ratings(real_data_module: Path) -> pd.DataFrame:
    return pd.read_csv(real_data_module / "mentalalign" / "ratings.csv")


@pytest.fixture(scope="module")
def contexts(real_data_module: Path) -> dict[int, str]:
    frame = pd.read_csv(real_data_module / "mentalalign" / "contexts.csv")
    return dict(zip(frame.conv_id, frame.context, strict=True))


def samples(run_dir: Path) -> list[dict]:
    out = []
    for sample_id, messages, meta, text, status, detail in query(
        run_dir,
        "SELECT s.sample_id, s.messages, s.meta, r.text, c.status, c.detail FROM samples s "
        "JOIN responses r USING (request_key) JOIN scores c USING (task, sample_id, variant) "
        "WHERE s.task=? ORDER BY s.rowid",
        TASK_ID,
    ):
        out.append({"id": sample_id, "messages": json.loads(messages), "meta": json.loads(meta),
                    "reply": text, "status": status, "detail": json.loads(detail)})  # fmt: skip
    return out


def results(run_dir: Path) -> dict[str, tuple]:
    rows = query(run_dir, "SELECT metric, value, n, n_unparsed, note FROM results WHERE task=?",
                 TASK_ID)  # fmt: skip
    return {name: (value, n, unparsed, note) for name, value, n, unparsed, note in rows}


def test_the_first_conversations_get_mentalbenchs_prompts(runs, contexts) -> None:
    got = samples(runs["recorded"])
    assert [s["id"] for s in got] == [f"conv-{i}" for i in range(1, LIMIT + 1)]
    for s in got:
        context = contexts[s["meta"]["conv_id"]]
        assert s["messages"] == [
            {"role": "user", "content": GENERATION_PROMPT.format(user_concern=context)}
        ]
        prompt = s["detail"]["judge_prompt"]
        assert prompt.startswith(JUDGE_OPENING)
        assert f'Context:\n"{context}"\n\nResponse to evaluate:\n"{s["reply"]}"' in prompt
        assert prompt.rstrip().endswith('"Explanation": "your explanation here"\n}')
    # a second run of the same command sends nothing: replies and verdicts are stored
    modes = [behaviour(s["reply"]) for s in got]
    assert RETRY_PARSES in modes and NEVER_PARSES in modes  # the script covers both
    assert runs["again"] == 0
    assert runs["first"] == LIMIT * 2 + sum(m in (RETRY_PARSES, NEVER_PARSES) for m in modes)


def expected_scores(run_dir: Path) -> tuple[list[dict], list[dict]]:
    got = samples(run_dir)
    ok = [s for s in got if behaviour(s["reply"]) != NEVER_PARSES]
    assert {s["status"] for s in ok} == {"ok"} and len(got) - len(ok) >= 1
    assert {s["status"] for s in got if s not in ok} == {"unparsed"}
    return got, ok


def test_scores_are_the_judges_verdicts(runs) -> None:
    got, ok = expected_scores(runs["recorded"])
    res = results(runs["recorded"])
    per_item = [scripted_scores(int(REF.search(s["reply"]).group(1))) for s in ok]
    value, n, unparsed, _ = res["judge_mean"]
    assert n == len(ok) and unparsed == len(got) - len(ok)
    assert value == pytest.approx(statistics.mean(statistics.mean(p.values()) for p in per_item))
    for a in ATTRIBUTES:
        assert res[a.lower()][0] == pytest.approx(statistics.mean(p[a] for p in per_item))


def recorded_means(ratings: pd.DataFrame, rater: str, conv_ids: list[int]) -> pd.DataFrame:
    """(response source x attribute) mean of a rater over these conversations, from the CSV."""
    chosen = ratings[(ratings.rater == rater) & ratings.conv_id.isin(conv_ids)]
    return chosen.groupby(["response_source", "attribute"]).score.mean().unstack()[list(ATTRIBUTES)]


def test_placement_is_among_the_same_judges_ratings_of_the_same_conversations(
    runs, ratings
) -> None:
    got, ok = expected_scores(runs["recorded"])
    res = results(runs["recorded"])
    conv_ids = [s["meta"]["conv_id"] for s in ok]
    means = recorded_means(ratings, RECORDED_JUDGE, conv_ids)
    overall = means.mean(axis=1)
    mine = res["judge_mean"][0]
    value, n, _, note = res["rank"]
    assert (value, n) == (1 + int((overall > mine).sum()), len(ok))
    assert "like-for-like" in note and "NOT like-for-like" not in note
    assert "GPT-4o's replies" in note and "same-family" in note  # the judge rates its own model
    for source, model in PAPER_MODELS.items():
        assert res[f"judge_mean[source={model}]"][0] == pytest.approx(overall[source])
    for a in ATTRIBUTES:
        place = 1 + int((means[a] > res[a.lower()][0]).sum())
        assert res[f"rank[attribute={a}]"][0] == place
        assert f"place {place} of 11" in res[a.lower()][3]
    # how far the judge is trusted, per attribute, at model level (ranking models)
    assert "judge gpt-4o trusted to rank models on Guidance" in res["guidance"][3]
    assert "judge gpt-4o not trusted to rank models on Safety" in res["safety"][3]
    assert "ICC(C,1) 0.48" in res["safety"][3] and "PR" in res["safety"][3]


def test_another_judge_is_flagged_and_set_among_the_experts(runs, ratings) -> None:
    res = results(runs["other"])
    assert "rank" not in res
    _, ok = expected_scores(runs["other"])
    means = recorded_means(ratings, "human", [s["meta"]["conv_id"] for s in ok]).mean(axis=1)
    value, _, _, note = res["rank_vs_experts"]
    assert value == 1 + int((means > res["judge_mean"][0]).sum())
    assert "NOT like-for-like" in note and "--judge openai:gpt-4o" in note
    assert "no model-level agreement known on Guidance" in res["guidance"][3]
    assert res["expert_mean[source=GPT-4o]"][0] == pytest.approx(means["gpt4o"])


def test_the_task_stays_out_of_all_and_names_its_cost() -> None:
    from trustmh.tasks.registry import get_task, select_tasks

    assert TASK_ID not in {t.id for t in select_tasks("all")}
    task = get_task(TASK_ID)
    assert (task.status, task.in_protocol, task.pillar, task.section) == (
        "BEYOND", False, "mentalbench", "14.2",
    )  # fmt: skip
    assert task.gen.temperature == 0.7 and task.gen.max_tokens == 512  # MentalBench's settings
    assert load_rubric("mentalbench_judge").gen == GenParams(temperature=0.7, max_tokens=512)
    assert "1,000 replies + 1,000 judge verdicts" in task.n_items
