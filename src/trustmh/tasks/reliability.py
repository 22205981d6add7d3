"""Reliability subtasks (protocol section 3): the declarations; the samplers, scorers and
aggregates live in `reliability_mc`, `diagnosis`, `support` and `intervention`."""

from __future__ import annotations

from trustmh.tasks import diagnosis, intervention, reliability_mc, support
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
        samples=reliability_mc.knowledge_samples,
        score=reliability_mc.knowledge_score,
        aggregate=reliability_mc.knowledge_aggregate,
        notes="DEFAULT prompt, parser and metric; unparsed and refused replies count as wrong.",
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
        samples=reliability_mc.emotion_samples,
        score=reliability_mc.emotion_score,
        aggregate=reliability_mc.emotion_aggregate,
        paired=reliability_mc.EMOTION_PAIRED,
        option_names=("primary_metric",),
        notes="UPSTREAM prompt (EmoBench: choices lettered A) B) as its rank_choices, not the "
        "protocol's placeholder a) b)); DEFAULT temperature 0 (EmoBench used 0.6), parser fallbacks "
        "and metric (joint accuracy; primary_metric = mean for the mean of the two).",
    ),
    Task(
        id="reliability.psychological_diagnosis",
        pillar="reliability",
        title="Psychological diagnosis (D4 + SWMH)",
        section="3.3",
        status="DEFAULT",
        metric="accuracy",
        direction="higher",
        # D4 and SWMH are optional (used when present); the stand-in's files are the requirement
        sources=(
            "mh_crisis/llm_label_test_gpt-4o-mini_merged.json",
            "mh_crisis/extra/llm_prompting.py",
        ),
        n_items="see 3.3 (stand-in: 2,044)",
        gen=CLASSIFY,
        samples=diagnosis.diagnosis_samples,
        score=diagnosis.diagnosis_score,
        aggregate=diagnosis.diagnosis_aggregate,
        paired=diagnosis.DIAGNOSIS_PAIRED,
        stand_in=diagnosis.diagnosis_stand_in,
        option_names=("diagnosis_sets", "max_items_per_set"),
        notes="D4 and SWMH are released on request and used when present (diagnosis_sets = auto | paper | "
        "standin); otherwise a STAND-IN on the mh_crisis test labels, not comparable with the paper.",
    ),
    Task(
        id="reliability.emotional_support",
        pillar="reliability",
        title="Emotional support (ESConv next supporter turn)",
        section="3.4",
        status="DEFAULT",
        metric="judge mean (1-5)",
        scale=(1.0, 5.0),
        direction="higher",
        sources=("esconv/testWithStrategy_short.tsv",),
        n_items="200 contexts",
        gen=GENERATE,
        samples=support.support_samples,
        score=support.support_score,
        plan=support.support_plan,
        aggregate=support.support_aggregate,
        paired=support.SUPPORT_PAIRED,
        needs_judge="required",
        option_names=("n_contexts",),
        # the overall mean of the seven attributes has no single MentalAlign counterpart; Empathy
        # is the attribute closest to what emotional support is about (and a hard one for judges)
        judge_attribute="Empathy",
        notes="DEFAULT items, prompt and judge (MentalAlign's seven attributes, rubric esconv_support).",
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
        n_items="all counsellor turns (296 in 45 dialogues)",
        gen=GENERATE,
        samples=intervention.intervention_samples,
        score=intervention.intervention_score,
        plan=intervention.intervention_plan,
        aggregate=intervention.intervention_aggregate,
        paired=intervention.INTERVENTION_PAIRED,
        needs_judge="required",
        judge_attribute="Guidance",  # professional counselling skill: the nearest attribute
        notes="UPSTREAM items and criteria (CPsyCoun), DEFAULT prompt (Chinese) and aggregation.",
    ),
]
