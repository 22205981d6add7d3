"""Every source loads from the real data (TRUSTMH_DATA_DIR) with the counts INVENTORY.md gives."""

from __future__ import annotations

import ast
import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from trustmh.data.loaders import LOADERS, LoadReport, count_records, load_all, load_source
from trustmh.data.loaders.c_ssrs import LEVELS
from trustmh.data.loaders.emobench import EUItem
from trustmh.data.loaders.esconv import Conversation
from trustmh.data.loaders.mentalalign import ATTRIBUTES, RATERS
from trustmh.data.loaders.mh_crisis import LabelledConversation
from trustmh.data.loaders.usmle_mental import USMLEItem
from trustmh.data.sources import DataContext, require_sources, resolve_data_context
from trustmh.errors import DataError

MINE = [
    "trustmh",
    "usmle_mental",
    "emobench",
    "cpsycoune",
    "esconv",
    "c_ssrs",
    "mh_crisis",
    "elephant",
    "mentalalign",
    "vera_mh",
]

# (source, collection, count) as stated in ../shared/data/INVENTORY.md
INVENTORY_COUNTS = [
    ("trustmh", "jailbreak", 560),
    ("trustmh", "psyharm", 70),
    ("trustmh", "esconv_fair", 11),
    ("usmle_mental", "usmle", 727),
    ("usmle_mental", "crisis_qa", 153),
    ("emobench", "eu", 400),
    ("emobench", "ea", 400),
    ("cpsycoune", "dialogues", 45),
    ("esconv", "test", 2775),
    ("esconv", "dev", 2985),
    ("esconv", "failed", 196),
    ("c_ssrs", "users", 500),
    ("mh_crisis", "validation", 206),
    ("mh_crisis", "test", 2046),
    ("mh_crisis", "human_labels", 206),
    ("mh_crisis", "test_llm_labels", 2046),
    ("elephant", "oeq", 10),
    ("elephant", "aita", 10),
    ("mentalalign", "ratings", 349_486),
    ("mentalalign", "contexts", 1000),
    ("vera_mh", "personas", 10),
    ("vera_mh", "conversations", 105),
]


@pytest.fixture(scope="module")
def report(real_data_module: Path) -> LoadReport:
    return load_all(DataContext((real_data_module,), ("TRUSTMH_DATA_DIR",)))


def test_every_source_present_loads_or_reports_its_loader_missing(report: LoadReport) -> None:
    assert report.errors == {}
    assert set(MINE) <= set(report.records)
    assert set(report.records) | set(report.unavailable) == set(LOADERS)


@pytest.mark.parametrize(("source", "collection", "expected"), INVENTORY_COUNTS)
def test_record_counts_match_inventory(
    report: LoadReport, source: str, collection: str, expected: int
) -> None:
    assert count_records(report.records[source][collection]) == expected


def test_cssrs_labels_and_post_lists(report: LoadReport, real_data: Path) -> None:
    users = report.records["c_ssrs"]["users"]
    assert Counter(u.label for u in users) == {
        "Supportive": 108,
        "Indicator": 99,
        "Ideation": 171,
        "Behavior": 77,
        "Attempt": 45,
    }
    assert set(LEVELS) == {u.label for u in users}
    with open(
        real_data / "c_ssrs" / "500_Reddit_users_posts_labels.csv", encoding="utf-8", newline=""
    ) as f:
        raw = {row["User"]: row["Post"] for row in csv.DictReader(f)}
    for user in users:
        assert user.posts, user.user
        if user.truncated:
            # a cut cell keeps every complete post plus the cut one: nearly all of the cell's text
            assert len(raw[user.user]) == 32_759
            assert sum(len(p) for p in user.posts) > 0.9 * 32_759
            assert user.posts[-1][:15] in raw[user.user]
        else:
            assert user.posts == ast.literal_eval(raw[user.user])
    assert sum(u.truncated for u in users) == 28


def test_emobench_languages_and_labels(report: LoadReport) -> None:
    eu = report.records["emobench"]["eu"]
    assert Counter(i.language for i in eu) == {"en": 200, "zh": 200}
    assert all(
        i.emotion_label in i.emotion_choices and i.cause_label in i.cause_choices for i in eu
    )
    assert "{scenario}" in report.records["emobench"]["prompts"].eu.en


def test_cpsycoune_topics_and_roles(report: LoadReport) -> None:
    dialogues = report.records["cpsycoune"]["dialogues"]
    assert Counter(d.topic for d in dialogues) == dict.fromkeys(
        Counter(d.topic for d in dialogues), 5
    )
    assert len({d.topic for d in dialogues}) == 9
    assert all({t.role for t in d.turns} == {"client", "counsellor"} for d in dialogues)
    assert not any(t.text.startswith(("求助者：", "支持者：")) for d in dialogues for t in d.turns)


def test_esconv_prefix_turns(report: LoadReport) -> None:
    test = report.records["esconv"]["test"]
    first = test[0].turns
    assert [t.speaker for t in first] == ["seeker", "supporter"]
    assert first[1].strategy == "Questions" and first[1].text == "How are you feeling?"
    assert all(t.strategy is None for p in test for t in p.turns if t.speaker == "seeker")


def test_mh_crisis_labels(report: LoadReport) -> None:
    labelled = report.records["mh_crisis"]["human_labels"]
    assert sum(1 for c in labelled if c.label is None) == 16
    assert "risk_taking_behaviours" not in {c.label for c in labelled}
    scores = report.records["mh_crisis"]["appropriateness_scores"]
    assert sum(1 for s in scores["H1"] if s.evaluation is None) == 16
    assert {
        k: len(v) for k, v in report.records["mh_crisis"]["annotator_labels"].items()
    } == dict.fromkeys(["H1", "H2", "H3", "H4"], 206)


def test_jailbreak_design(report: LoadReport) -> None:
    jailbreak = report.records["trustmh"]["jailbreak"]
    assert set(Counter(p.method for p in jailbreak).values()) == {70}
    assert len({p.method for p in jailbreak}) == 8
    objectives = Counter(p.objective for p in jailbreak)
    assert len(objectives) == 14 and set(objectives.values()) == {40}
    psyharm = report.records["trustmh"]["psyharm"]
    assert set(Counter(p.objective for p in psyharm).values()) == {5}


def test_mentalalign_table(report: LoadReport, real_data: Path) -> None:
    ratings = report.records["mentalalign"]["ratings"]
    assert len(np.unique(ratings.conv_id)) == 1000
    assert set(np.unique(ratings.rater)) == set(range(len(RATERS)))
    assert set(np.unique(ratings.attribute)) == set(range(len(ATTRIBUTES)))
    with open(real_data / "mentalalign" / "ratings.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    last = rows[-1]
    row = ratings.row(len(ratings) - 1)
    assert [str(row.conv_id), row.response_source, row.rater, row.attribute, float(last[4])] == [
        *last[:4],
        row.score,
    ]
    # mean human score re-derived from the raw file
    human = [float(r[4]) for r in rows[1:] if r[2] == "human"]
    mask = ratings.rater == RATERS.index("human")
    assert float(ratings.score[mask].mean()) == pytest.approx(sum(human) / len(human), rel=1e-6)


@pytest.mark.parametrize(
    ("relpath", "model"),
    [
        ("usmle_mental/USMLE-mental.jsonl", USMLEItem),
        ("emobench/EU.jsonl", EUItem),
        ("esconv/FailedESConv.json", Conversation),
        (
            "mh_crisis/human_label/human-labeled-sampled_dataset_n206_s42-merged_labels.json",
            LabelledConversation,
        ),
    ],
)
def test_raw_records_carry_every_required_schema_field(
    real_data: Path, relpath: str, model: type
) -> None:
    path = real_data / relpath
    text = path.read_text(encoding="utf-8")
    records = (
        [json.loads(line) for line in text.splitlines() if line.strip()]
        if path.suffix == ".jsonl"
        else json.loads(text)
    )
    required = {f.alias or name for name, f in model.model_fields.items() if f.is_required()}
    for record in records:
        assert required <= set(record)


def test_elephant_prefers_full_files(real_data: Path, tmp_path: Path) -> None:
    shutil.copytree(real_data / "elephant", tmp_path / "elephant")
    sample = (tmp_path / "elephant" / "OEQ_sample.csv").read_text(encoding="utf-8")
    (tmp_path / "elephant" / "OEQ.csv").write_text(sample, encoding="utf-8")
    loaded = load_source(DataContext((tmp_path,), ("--data-dir",)), "elephant")
    assert loaded["oeq_file"] == "OEQ.csv" and loaded["aita_file"] == "AITA_sample.csv"


def test_search_order_and_where(
    real_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    override = tmp_path / "override"
    (override / "usmle_mental").mkdir(parents=True)
    monkeypatch.setenv("TRUSTMH_DATA_DIR", str(real_data))
    ctx = resolve_data_context(override)
    assert ctx.labels == ("--data-dir", "TRUSTMH_DATA_DIR", "user cache", "bundled")
    assert ctx.where("usmle_mental").startswith("--data-dir")
    assert ctx.where("emobench").startswith("TRUSTMH_DATA_DIR")
    # a file absent from the first root holding the source falls through to the next root
    assert (
        ctx.file("usmle_mental", "USMLE-mental.jsonl")
        == real_data / "usmle_mental" / "USMLE-mental.jsonl"
    )
    assert ctx.where("d4") == "not found"


def test_require_sources_names_data_and_remedy(real_data: Path, tmp_path: Path) -> None:
    from trustmh.tasks.registry import get_task

    full = DataContext((real_data,), ("TRUSTMH_DATA_DIR",))
    require_sources(full, get_task("reliability.knowledge"))
    with pytest.raises(DataError, match=r"x-lance\.github\.io/D4") as info:
        require_sources(full, ["d4"])
    assert "'d4'" in str(info.value)
    empty = DataContext((tmp_path,), ("--data-dir",))
    with pytest.raises(DataError, match=r"trustmh data fetch usmle_mental"):
        require_sources(empty, get_task("reliability.knowledge"))


def test_vera_mh_conversations_round_trip_and_rubric_shape(
    report: LoadReport, real_data: Path
) -> None:
    from trustmh.data.loaders.vera_mh import format_conversation

    records = report.records["vera_mh"]
    folder = real_data / "vera_mh" / "concept_paper_conversations"
    for conversation in records["conversations"]:
        text = (folder / conversation.file).read_text(encoding="utf-8")
        assert format_conversation(conversation.turns) == text  # the judge reads the file as is
        assert [who for who, _ in conversation.turns][:2] == ["user", "agent"]
    assert Counter(c.set_name for c in records["conversations"]) == {
        "vera-mh/claude-opus-4.1": 35,
        "vera-mh/claude-sonnet-4": 35,
        "vera-mh/gpt-5": 35,
    }
    assert {c.persona for c in records["conversations"]} == {
        "Omar",
        "Lena",
        "Ray",
        "Maya",
        "Noah",
        "Kevin",
        "Sky",
    }
    rubric = records["rubric"]
    assert len(rubric.questions) == 34 and rubric.order[0] == "4" and len(rubric.dimensions) == 5
    assert [p.risk_level for p in records["personas"]].count("None") == 1
