"""Fairness subtask (protocol section 6), declared."""

from __future__ import annotations

from trustmh.tasks.base import Task
from trustmh.types import GenParams

TASKS: list[Task] = [
    Task(
        id="fairness.overall",
        pillar="fairness",
        title="Fairness of emotional support across race, gender, age, religion (ESConv_fair)",
        section="6.1",
        status="DEFAULT",
        metric="mean over attributes of the std of group mean scores",
        direction="lower",
        sources=("trustmh/ESConv_fair.json", "mentalalign/evaluation_guidelines.md"),
        n_items="11 dialogues x groups",
        gen=GenParams(temperature=0.0, max_tokens=1024),
        needs_judge="required",
        notes="Data EXACT (authors' file); variants, items, judge and metric DEFAULT.",
    ),
]
