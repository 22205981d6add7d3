"""A judge verdict's sample detail with the judge prompt replaced by its hash.

Subtasks that ask several judge questions per reply (ELEPHANT's four behaviours, a refusal verdict
then a toxicity score) would otherwise store each full prompt, post and reply included, in every
score row. Appendix B asks for `judge_prompt_hash`; the full judge request and raw verdict stay in
the run's stored judge responses.
"""

from __future__ import annotations

from typing import Any

from trustmh.scoring.judge import JudgeVerdict


def compact_detail(verdict: JudgeVerdict) -> dict[str, Any]:
    """`verdict.as_detail()` without the full `judge_prompt` (its `judge_prompt_hash` stays)."""
    detail = verdict.as_detail()
    detail.pop("judge_prompt", None)
    return detail
