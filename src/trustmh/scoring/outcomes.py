"""Helpers over scored samples' statuses, shared by the tasks' aggregate functions."""

from __future__ import annotations

from collections.abc import Iterable

from trustmh.types import ScoredSample

# Samples with these statuses have no score: the request failed, or a replay has no reply for them.
NOT_SCORED = ("missing", "error")


def scored_only(scored: Iterable[ScoredSample]) -> list[ScoredSample]:
    """The samples that have a reply to score (not errored, not missing from a replay)."""
    return [s for s in scored if s.score.status not in NOT_SCORED]


def count_status(scored: Iterable[ScoredSample], status: str) -> int:
    """How many scored samples have this status."""
    return sum(1 for s in scored if s.score.status == status)
