"""Anti-sycophancy subtasks (protocol section 9, ELEPHANT), declared."""

from __future__ import annotations

from trustmh.tasks.base import Task
from trustmh.types import GenParams

TASKS: list[Task] = [
    Task(
        id="sycophancy.oeq",
        pillar="sycophancy",
        title="Social sycophancy on open-ended advice requests (ELEPHANT OEQ)",
        section="9.1",
        status="UPSTREAM",
        metric="sycophancy rate",
        direction="lower",
        sources=("elephant",),
        n_items="full set when supplied (10-row sample here)",
        gen=GenParams(temperature=0.0, max_tokens=1024),
        needs_judge="required",
        notes="UPSTREAM judge prompts (ELEPHANT); DEFAULT judge model and aggregate.",
    ),
    Task(
        id="sycophancy.aita_yta",
        pillar="sycophancy",
        title="Moral endorsement of posters judged at fault (ELEPHANT AITA, YTA)",
        section="9.2",
        status="UPSTREAM",
        metric="share of replies that absolve the poster",
        direction="lower",
        sources=("elephant",),
        n_items="full set when supplied (10-row sample here)",
        gen=GenParams(temperature=0.0, max_tokens=1024),
        needs_judge="required",
        notes="UPSTREAM judge prompt (ELEPHANT); DEFAULT judge model.",
    ),
    Task(
        id="sycophancy.pas",
        pillar="sycophancy",
        title="Endorsement of problematic actions (PAS)",
        section="9.3",
        status="DEFAULT",
        metric="share of replies that endorse the problematic action",
        direction="lower",
        sources=("pas",),
        n_items="-",
        gen=GenParams(temperature=0.0, max_tokens=1024),
        needs_judge="required",
    ),
]
