"""Crisis identification and escalation subtasks (protocol section 4), and the multi-turn
extension beyond the paper (protocol 14.1): the declarations; the functions live in
`crisis_classification`, `escalation` and `multiturn_safety`."""

from __future__ import annotations

from trustmh.data.loaders import mh_crisis
from trustmh.tasks import crisis_classification, escalation, multiturn_safety
from trustmh.tasks.base import Task
from trustmh.types import GenParams

MERGED_LABELS = f"{mh_crisis.SOURCE}/{mh_crisis.MERGED_LABELS}"

TASKS: list[Task] = [
    Task(
        id="crisis.crisis_identification",
        pillar="crisis",
        title="Crisis identification (LLMs-Mental-Health-Crisis, 7 labels)",
        section="4.1",
        status="DEFAULT",
        metric="accuracy",
        direction="higher",
        sources=(
            MERGED_LABELS,
            "mh_crisis/processed/sampled_dataset_n_200_merged_n50-noSeed_156-s42.json",
            "mh_crisis/extra/llm_prompting.py",
        ),
        n_items="190 (16 unlabeled dropped)",
        gen=GenParams(temperature=0.0, max_tokens=512),
        samples=crisis_classification.crisis_samples,
        score=crisis_classification.crisis_score,
        aggregate=crisis_classification.crisis_aggregate,
        option_names=("split",),
        notes="UPSTREAM prompt (the dataset's llm_as_judge), DEFAULT split (split = human | test) and metric.",
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
        samples=crisis_classification.severity_samples,
        score=crisis_classification.severity_score,
        aggregate=crisis_classification.severity_aggregate,
        option_names=("max_words",),
        notes="DEFAULT prompt and parser; the most recent posts up to max_words (6,000) words are sent.",
    ),
    Task(
        id="crisis.escalation_decision",
        pillar="crisis",
        title="Crisis escalation (appropriateness of the reply)",
        section="4.3",
        status="DEFAULT",
        metric="judge appropriateness mean (1-5)",
        scale=(1.0, 5.0),
        direction="higher",
        sources=(MERGED_LABELS,),
        n_items="190",
        gen=GenParams(temperature=0.0, max_tokens=1024),
        samples=escalation.escalation_samples,
        score=escalation.escalation_score,
        plan=escalation.escalation_plan,
        aggregate=escalation.escalation_aggregate,
        paired=escalation.ESCALATION_PAIRED,
        needs_judge="required",
        option_names=("input_join",),
        judge_attribute="appropriateness",  # judge-check rates this rubric against experts H1/H2
        notes="UPSTREAM judge shape, DEFAULT per-label protocol rows (the dataset's protocol CSV is not public).",
    ),
    Task(
        id="crisis.multiturn_safety",
        pillar="crisis",
        title="Multi-turn crisis safety with a simulated user (VERA-MH personas and rubric)",
        section="14.1",
        status="BEYOND",
        metric="best-practice share of rated dimensions (VERA-MH rubric)",
        direction="higher",
        sources=(
            "vera_mh/data/personas.tsv",
            "vera_mh/data/persona_prompt_template.txt",
            "vera_mh/data/rubric.tsv",
            "vera_mh/data/rubric_prompt_beginning.txt",
        ),
        n_items="10 personas x 5 runs",
        gen=GenParams(temperature=0.0, max_tokens=2048),
        samples=multiturn_safety.samples,
        solve=multiturn_safety.solve,
        score=multiturn_safety.score,
        plan=multiturn_safety.plan,
        aggregate=multiturn_safety.aggregate,
        needs_judge="required",
        roles=("simulator",),
        option_names=("turns", "runs", "personas", "history", "simulator_temperature"),
        in_protocol=False,
        cost=multiturn_safety.cost_note(),
        notes="BEYOND the paper: conversations of `turns` messages (default 10; VERA-MH uses 30) "
        "between a simulated user (--simulator) playing a VERA-MH persona and the model; the judge "
        "walks VERA-MH's rubric flow. Not in `all`, pillar scores or ranks. Replay the 105 "
        "recorded conversations with --model replay:vera-mh/<chatbot> (no simulator needed).",
    ),
]
