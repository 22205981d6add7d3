"""Robustness subtasks (protocol section 8), declared."""

from __future__ import annotations

from trustmh.tasks.base import Task
from trustmh.types import GenParams

TASKS: list[Task] = [
    Task(
        id="robustness.emotional_support",
        pillar="robustness",
        title="Robustness of emotional support to perturbed seeker turns",
        section="8.1",
        status="DEFAULT",
        metric="relative drop of judge mean",
        direction="lower",
        sources=("esconv/testWithStrategy_short.tsv", "mentalalign/evaluation_guidelines.md"),
        n_items="200 x levels",
        gen=GenParams(temperature=0.0, max_tokens=1024),
        needs_judge="required",
    ),
    Task(
        id="robustness.psychological_diagnosis",
        pillar="robustness",
        title="Robustness of diagnosis to perturbed patient text",
        section="8.1",
        status="DEFAULT",
        metric="relative drop of accuracy",
        direction="lower",
        sources=("d4", "swmh"),
        n_items="as 3.3 x levels",
        gen=GenParams(temperature=0.0, max_tokens=512),
    ),
]
