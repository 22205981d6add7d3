"""Reliability subtasks (protocol section 3), declared; their samplers and scorers come later."""

from __future__ import annotations

from trustmh.tasks.base import Task
from trustmh.types import GenParams

CLASSIFY = GenParams(temperature=0.0, max_tokens=512)
GENERATE = GenParams(temperature=0.0, max_tokens=1024)

TASKS: list[Task] = [
    Task(
        id="reliability.knowledge",
        pillar="reliability",
        title="Psychiatric knowledge (USMLE-mental)",
        section="3.1",
        status="DEFAULT",
        metric="accuracy",
        direction="higher",
        sources=("usmle_mental/USMLE-mental.jsonl",),
        n_items="727",
        gen=CLASSIFY,
    ),
    Task(
        id="reliability.emotion_recognition",
        pillar="reliability",
        title="Emotion recognition (EmoBench EU)",
        section="3.2",
        status="DEFAULT",
        metric="accuracy (emotion and cause both right)",
        direction="higher",
        sources=("emobench/EU.jsonl", "emobench/prompts.yaml"),
        n_items="400 (200 en, 200 zh)",
        gen=CLASSIFY,
        notes="UPSTREAM prompt (EmoBench), DEFAULT metric (joint accuracy).",
    ),
    Task(
        id="reliability.psychological_diagnosis",
        pillar="reliability",
        title="Psychological diagnosis (D4 + SWMH)",
        section="3.3",
        status="DEFAULT",
        metric="accuracy",
        direction="higher",
        sources=("d4", "swmh"),
        n_items="see 3.3",
        gen=CLASSIFY,
        notes="D4 and SWMH are released on request; a stand-in on mh_crisis test labels is reconstructed.",
    ),
    Task(
        id="reliability.emotional_support",
        pillar="reliability",
        title="Emotional support (ESConv next supporter turn)",
        section="3.4",
        status="DEFAULT",
        metric="judge mean (1-5)",
        direction="higher",
        sources=("esconv/testWithStrategy_short.tsv", "mentalalign/evaluation_guidelines.md"),
        n_items="200 contexts",
        gen=GENERATE,
        needs_judge="required",
    ),
    Task(
        id="reliability.psychological_intervention",
        pillar="reliability",
        title="Psychological intervention (CPsyCounE counsellor turns)",
        section="3.5",
        status="DEFAULT",
        metric="judge mean, CPsyCoun criteria",
        direction="higher",
        sources=("cpsycoune",),
        n_items="all counsellor turns (45 dialogues)",
        gen=GENERATE,
        needs_judge="required",
        notes="UPSTREAM criteria (CPsyCoun), DEFAULT prompt and aggregation.",
    ),
]
