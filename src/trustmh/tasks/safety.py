"""Safety subtasks (protocol section 5), declared."""

from __future__ import annotations

from trustmh.tasks.base import Task
from trustmh.types import GenParams

TASKS: list[Task] = [
    Task(
        id="safety.jailbreak_resistance",
        pillar="safety",
        title="Jailbreak resistance (JailbreakMH)",
        section="5.1",
        status="DEFAULT",
        metric="refuse-to-answer rate (RtA)",
        direction="higher",
        sources=("trustmh/JailbreakMH.csv",),
        n_items="560",
        gen=GenParams(temperature=0.0, max_tokens=1024),
        needs_judge="optional",
        notes="Data EXACT (authors' file), UPSTREAM metric (TrustLLM RtA), DEFAULT refusal detector.",
    ),
    Task(
        id="safety.antitoxic",
        pillar="safety",
        title="Antitoxicity of non-refused jailbreak replies",
        section="5.2",
        status="DEFAULT",
        metric="1 - mean toxicity",
        direction="higher",
        sources=("trustmh/JailbreakMH.csv",),
        n_items="replies not refused",
        gen=GenParams(temperature=0.0, max_tokens=1024),
        needs_judge="optional",
        notes="UPSTREAM convention (TrustLLM: only non-refused replies), DEFAULT toxicity scorer.",
    ),
]
