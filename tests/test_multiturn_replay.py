"""VERA-MH's 105 recorded conversations replayed through crisis.multiturn_safety: judging them
needs only --judge (no simulator, no chatbot called), the judge reads each file exactly as it was
recorded, and the scores, recomputed here by an independent walk of the rubric with the scripted
judge's answers, are the stored ones. Needs the VERA-MH data (skips without it)."""

from __future__ import annotations

import json
import sqlite3
from functools import partial
from pathlib import Path

import pytest
from conftest import run_cli
from openai_server import FakeOpenAIServer
from vera_script import JUDGE, NR, Judge, conversation_of, judge_answer, read_rubric, reply_fn, walk

TASK = "crisis.multiturn_safety"
SETS = {
    "vera-mh/claude-opus-4.1": "p_claude_opus_4_1_20250805__a_claude_opus_4_1_20250805__t30__r5__20250915_103737",
    "vera-mh/claude-sonnet-4": "p_gpt_4o__a_claude_sonnet_4_20250514__t30__r5__20251007_150240",
    "vera-mh/gpt-5": "p_gpt_5__a_gpt_5__t30__r5__20250915_102113__max_completion_tokens_5000",
}  # fmt: skip


@pytest.fixture(scope="module")
def replayed(real_data_module: Path, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("replay")
    questions, order = read_rubric(real_data_module)
    systems: set[str] = set()
    judge = reply_fn(Judge(questions))

    def reply(messages, model):
        assert model == JUDGE, f"only the judge may be asked, not {model}"
        systems.add(messages[0]["content"])
        return judge(messages, model)

    server = FakeOpenAIServer(reply_fn=reply).start()
    runs = {}
    try:
        for name in SETS:
            run_dir = root / name.replace("/", "_")
            # no --simulator, no key for the chatbot; a turn budget does not cut a recording
            result = run_cli("run", "--model", f"replay:{name}", "--judge",
                             f"openai:{JUDGE}@{server.base_url}", "--tasks", TASK,
                             "--data-dir", str(real_data_module), "--option", "turns=4",
                             "--run-dir", str(run_dir), "--concurrency", "16", "--no-progress",
                             "--judge-reask",  # the scripted judge exercises the opt-in re-ask
                             env={"TRUSTMH_CACHE_DIR": str(root / "cache")})  # fmt: skip
            runs[name] = (run_dir, result)
    finally:
        server.stop()
    return {"runs": runs, "systems": systems, "questions": questions, "order": order,
            "data": real_data_module, "log": server.log()}  # fmt: skip


def rows(run_dir: Path) -> dict[str, tuple]:
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        found = conn.execute(
            """SELECT s.sample_id, c.status, c.detail, r.text FROM samples s
               JOIN scores c USING (task, sample_id, variant)
               LEFT JOIN responses r ON r.request_key = s.request_key"""
        ).fetchall()
    return {
        sid: (status, json.loads(detail) if detail else {}, text)
        for sid, status, detail, text in found
    }


def test_each_chatbot_is_judged_from_its_recordings_alone(replayed: dict) -> None:
    assert all(e["model"] == JUDGE for e in replayed["log"])
    for name, (run_dir, result) in replayed["runs"].items():
        assert result.returncode == 0, result.stderr
        got = rows(run_dir)
        scored = {sid: v for sid, v in got.items() if v[0] == "ok"}
        assert len(scored) == 35, name  # 7 personas x 5 runs recorded
        # the three personas the recordings lack are "not recorded", not failures
        missing = {sid.split("/")[0] for sid, v in got.items() if v[0] == "missing"}
        assert missing == {"Brian", "Kim", "Alix"}
        with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
            [(note,)] = conn.execute(
                "SELECT note FROM results WHERE task=? AND metric='best_practice'", (TASK,)
            ).fetchall()
        assert "15 items not recorded" in note


def test_the_judge_reads_each_file_as_recorded(replayed: dict) -> None:
    data = replayed["data"] / "vera_mh"
    beginning = (data / "data" / "rubric_prompt_beginning.txt").read_text(encoding="utf-8")
    n_files = 0
    for name, folder in SETS.items():
        run_dir, _ = replayed["runs"][name]
        got = rows(run_dir)
        for file in sorted((data / "concept_paper_conversations" / folder).glob("*.txt")):
            n_files += 1
            text = file.read_text(encoding="utf-8")
            persona, run = file.stem.split("_")[1], file.stem.rsplit("_run", 1)[1]
            status, detail, transcript = got[f"{persona}/run{run}"]
            assert transcript == text  # byte for byte, early ends and all
            assert detail["ended"] == "recording" and detail["replayed"] is True
            assert beginning.format(conversation=text) in replayed["systems"]
    assert n_files == 105


def test_the_scores_follow_from_the_judges_answers(replayed: dict) -> None:
    questions, order = replayed["questions"], replayed["order"]
    display = dict(zip(list(dict.fromkeys(q.dimension for q in questions.values())),
                       ["Detects Risk", "Confirms Risk", "Guides to Human Care",
                        "Supportive Conversation", "Follows AI Boundaries"], strict=True))  # fmt: skip
    for run_dir, _ in replayed["runs"].values():
        cells: list[str] = []
        for status, detail, transcript in rows(run_dir).values():
            if status != "ok":
                continue
            user, agent = conversation_of(f"<conversation>\n{transcript}\n</conversation>")
            path, ratings = walk(questions, order, partial(judge_answer, user=user, agent=agent))
            assert [s["id"] for s in detail["judge_path"]] == path
            assert detail["ratings"] == {display[d]: r for d, r in ratings.items()}
            cells += [r for r in ratings.values() if r != NR]
        with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
            [(value, note)] = conn.execute(
                "SELECT value, note FROM results WHERE task=? AND metric='best_practice'", (TASK,)
            ).fetchall()
        assert value == pytest.approx(cells.count("Best Practice") / len(cells))
        assert "turns as recorded" in note
