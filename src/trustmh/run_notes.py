"""What every table of a run must say about how its requests were sent (protocol 1.7).

The notes go into the primary metric's note of each subtask, so the terminal table, the report's
subtask table and its CSV all carry them: a temperature that could not be set (the model answered
at the provider's default, not deterministically), a tiny protocol cap given room for hidden
reasoning, and replies cut short by their cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from trustmh.models.profiles import RequestPlan, unsettable_note
from trustmh.models.reasoning import CUT_EMPTY
from trustmh.types import MetricValue, ScoredSample

TINY_CAP = 16  # a max_tokens this small was sized for a one-word answer (ELEPHANT's judge: 2)
EPOCHS_HINT = " (--epochs N repeats each item and reports the spread)"


def _tiny_cap(plan: RequestPlan, who: str) -> str | None:
    if not plan.headroom or plan.asked_cap is None or plan.asked_cap > TINY_CAP:
        return None
    sent = plan.asked_cap + plan.headroom
    return (f"{who}max_tokens {plan.asked_cap} sent as {sent}: the cap also covers the model's "
            f"reasoning, and {plan.asked_cap} tokens would leave no answer")  # fmt: skip


def request_notes(model: RequestPlan, judges: Iterable[RequestPlan], epochs: int) -> list[str]:
    """The notes a subtask's tables carry for its model's plan and its judge requests' plans."""
    notes: list[str] = []
    replies = unsettable_note(model.unsettable, "replies")
    if replies:
        notes.append(replies + ("" if epochs > 1 else EPOCHS_HINT))
    tiny = _tiny_cap(model, "")
    if tiny:
        notes.append(tiny)
    for plan in judges:
        verdicts = unsettable_note(plan.unsettable, "verdicts")
        for note in (f"judge {verdicts}" if verdicts else None, _tiny_cap(plan, "judge ")):
            if note and note not in notes:
                notes.append(note)
    return notes


def cut_short_note(scored: Sequence[ScoredSample]) -> str | None:
    """How many replies were cut short by their token cap (protocol 1.7), or None."""
    cuts = [s.score.detail.get("cut_short") for s in scored]
    n_cut = sum(c is not None for c in cuts)
    if not n_cut:
        return None
    empty = sum(c == CUT_EMPTY for c in cuts)
    note = f"{n_cut} replies cut short by their token cap"
    if empty:
        note += f" ({empty} with no answer after reasoning: counted unparsed, not scored)"
    return note


def with_notes(metrics: list[MetricValue], notes: Sequence[str]) -> list[MetricValue]:
    """`metrics` with `notes` added to the primary metric's note (the first metric's when none is
    primary)."""
    if not notes or not metrics:
        return metrics
    target = next((m for m in metrics if m.primary), metrics[0])
    target.note = "; ".join(p for p in (target.note, *notes) if p)
    return metrics


def plans_record(model: RequestPlan, judges: Iterable[RequestPlan]) -> dict[str, Any]:
    """The JSON stored with the run for one subtask: what was sent to its model and judge."""
    return {"model": model.record(), "judge": [p.record() for p in judges]}
