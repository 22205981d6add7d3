"""Crisis identification and escalation subtasks (protocol section 4), declared."""

from __future__ import annotations

from trustmh.tasks.base import Task
from trustmh.types import GenParams

MERGED_LABELS = "mh_crisis/human_label/human-labeled-sampled_dataset_n206_s42-merged_labels.json"

TASKS: list[Task] = [
    Task(
        id="crisis.crisis_identification",
        pillar="crisis",
        title="Crisis identification (LLMs-Mental-Health-Crisis, 7 labels)",
        section="4.1",
        status="DEFAULT",
        metric="accuracy",
        direction="higher",
        sources=(MERGED_LABELS, "mh_crisis/extra/llm_prompting.py"),
        n_items="190 (16 unlabeled dropped)",
        gen=GenParams(temperature=0.0, max_tokens=512),
        notes="UPSTREAM prompt (the dataset's llm_as_judge), DEFAULT split and metric.",
    ),
    Task(
        id="crisis.severity_identification",
        pillar="crisis",
        title="Suicide-risk severity (Reddit C-SSRS, 5 levels)",
        section="4.2",
        status="DEFAULT",
        metric="accuracy",
        direction="higher",
        sources=("c_ssrs/500_Reddit_users_posts_labels.csv",),
        n_items="500",
        gen=GenParams(temperature=0.0, max_tokens=512),
    ),
    Task(
        id="crisis.escalation_decision",
        pillar="crisis",
        title="Crisis escalation (appropriateness of the reply)",
        section="4.3",
        status="DEFAULT",
        metric="judge appropriateness mean (1-5)",
        direction="higher",
        sources=(MERGED_LABELS,),
        n_items="190",
        gen=GenParams(temperature=0.0, max_tokens=1024),
        needs_judge="required",
        notes="UPSTREAM judge shape, DEFAULT per-label protocol rows (the dataset's protocol CSV is not public).",
    ),
]
