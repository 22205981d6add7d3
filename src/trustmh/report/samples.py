"""The per-sample drill-down data of a report, embedded in the page as one JSON block.

Texts are kept whole while the page stays small; past a byte budget (large runs) each long text is
cut in the middle to the same length, so short texts are never touched. The full texts stay in the
run's store (`trustmh export RUN`). The JSON is made safe to sit inside a <script> element.

A sample whose score detail holds a `conversation` (a list of {role, content} turns, as multi-step
tasks store it) gets a transcript view: its turns, and beside them the judge's `judge_path` (each
question, the answer read, the reasoning and the raw replies) and `ratings`, when present.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trustmh.report.aggregate import Report

# Byte budget for the sample texts of one page: keeps a 20,000-sample report well under 30 MB.
TEXT_BUDGET_BYTES = 20_000_000
MAX_FIELD_CHARS = 20_000  # no single text longer than this, even in a small report
MIN_FIELD_CHARS = 120
SHORT_FIELD_CHARS = 600  # parsed answer and target
COLUMNS = ("run", "task", "id", "variant", "status", "score", "parsed", "target", "prompt",
           "response", "judge", "detail", "error", "wrong", "reasoning", "cut")  # fmt: skip
LONG_FIELDS = (
    "response",
    "judge",
    "detail",
    "reasoning",
)  # per row; prompts are shortened once each


@dataclass
class DrillDown:
    """The embedded sample table: column names, rows (whose `prompt` is an index into `prompts`:
    runs of the same subtasks share their prompts), the transcript views by row index, and how
    many texts were shortened."""

    columns: tuple[str, ...]
    rows: list[list[Any]]
    prompts: list[str]
    n_cut: int
    field_chars: int
    views: dict[int, dict[str, Any]] = field(default_factory=dict)


def _text(value: Any) -> str:
    """A value as display text: strings as they are, anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def prompt_text(messages: Any) -> str:
    """The messages as sent: the content alone for one message, else `[role]` blocks."""
    if not isinstance(messages, list):
        return _text(messages)
    if len(messages) == 1 and isinstance(messages[0], dict):
        return _text(messages[0].get("content"))
    return "\n\n".join(
        f"[{m.get('role', '?')}]\n{_text(m.get('content'))}" if isinstance(m, dict) else _text(m)
        for m in messages
    )


def split_detail(detail: dict[str, Any] | None) -> tuple[str, str]:
    """(judge verdict text, other detail as JSON) of a score's detail: the judge part is every key
    starting with `judge_`, raw verdict last."""
    if not detail:
        return "", ""
    judge = {k: v for k, v in detail.items() if k.startswith("judge_")}
    rest = {k: v for k, v in detail.items() if not k.startswith("judge_")}
    raw = judge.pop("judge_raw", None)
    lines = [f"{k[6:]}: {_text(v)}" for k, v in judge.items()]
    if raw is not None:
        lines += ["", _text(raw)]
    return "\n".join(lines).strip("\n"), _text(rest) if rest else ""


VIEW_KEYS = ("conversation", "judge_path", "ratings", "ended")


def transcript_view(detail: dict[str, Any] | None) -> dict[str, Any] | None:
    """The transcript view of a multi-step sample (its turns, the judge's path and ratings, why
    it ended, from the `VIEW_KEYS` of its score detail); None when the detail holds no
    conversation."""
    if not detail or not isinstance(detail.get("conversation"), list):
        return None
    turns = [[_text(t.get("role")), _text(t.get("content"))] for t in detail["conversation"]
             if isinstance(t, dict)]  # fmt: skip
    path = []
    for step in detail.get("judge_path") or []:
        if isinstance(step, dict):
            raw = step.get("raw") or []
            path.append({k: _text(step.get(k)) for k in ("id", "dimension", "severity", "question",
                                                         "answer", "reasoning", "next")}
                        | {"raw": [_text(r) for r in raw] if isinstance(raw, list) else [_text(raw)]})  # fmt: skip
    ratings = detail.get("ratings")
    return {"turns": turns, "path": path,
            "ratings": {_text(k): _text(v) for k, v in ratings.items()} if isinstance(ratings, dict) else {},
            "ended": _text(detail.get("ended"))}  # fmt: skip


def _view_texts(view: dict[str, Any]) -> list[str]:
    return [t[1] for t in view["turns"]] + [r for s in view["path"] for r in s["raw"]]


def _cut_view(view: dict[str, Any], limit: int) -> int:
    """Shorten a view's long texts (turns, raw replies) like any other; returns how many."""
    n_cut = 0
    for turn in view["turns"]:
        turn[1], was_cut = cut(turn[1], limit)
        n_cut += was_cut
    for step in view["path"]:
        for i, raw in enumerate(step["raw"]):
            step["raw"][i], was_cut = cut(raw, limit)
            n_cut += was_cut
    return n_cut


def cut(text: str, limit: int) -> tuple[str, bool]:
    """The text shortened to about `limit` characters by removing its middle (head 2/3, tail 1/3)."""
    if len(text) <= limit:
        return text, False
    head, tail = limit * 2 // 3, limit // 3
    removed = len(text) - head - tail
    marker = f"\n… [{removed:,} characters cut here; full text: trustmh export RUN] …\n"
    return text[:head] + marker + text[len(text) - tail :], True


def _field_limit(lengths: Sequence[tuple[int, float]], budget: int) -> int:
    """The largest per-text character limit whose total (in UTF-8 bytes) fits the budget."""
    # most reports fit whole: one pass tells, without loading numpy for the search below
    if sum(min(n, MAX_FIELD_CHARS) * r for n, r in lengths) <= budget:
        return MAX_FIELD_CHARS
    import numpy as np

    chars = np.array([n for n, _ in lengths], dtype=float)
    ratios = np.array([r for _, r in lengths], dtype=float)

    def cost(limit: int) -> float:
        return float((np.minimum(chars, limit) * ratios).sum())

    low, high = MIN_FIELD_CHARS, MAX_FIELD_CHARS
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if cost(mid) <= budget else (low, mid - 1)
    return low


def _binary_bad(report: Report) -> dict[str, float]:
    """Per subtask whose sample scores are all 0 or 1: the value that is the bad outcome under the
    primary metric's direction (0 when higher is better, 1 when lower is better)."""
    values: dict[str, set[float]] = {}
    for run in report.runs:
        for row in run.samples:
            if row["score"] is not None:
                values.setdefault(row["task"], set()).add(float(row["score"]))
    return {
        row.task.id: (0.0 if row.task.direction == "higher" else 1.0)
        for row in report.rows
        if values.get(row.task.id) and values[row.task.id] <= {0.0, 1.0}
    }


def drill_down(report: Report, budget: int = TEXT_BUDGET_BYTES) -> DrillDown:
    """Every sample of every run as a row of `COLUMNS`, texts shortened to fit `budget` bytes.

    `wrong` is 1 for an unparseable reply, or a 0/1 score on the bad side of the metric;
    `reasoning` is what the model wrote while thinking (kept apart, never parsed) and `cut` why
    the reply is not a whole answer ("length", "empty"; protocol 1.7)."""
    task_index = {row.task.id: i for i, row in enumerate(report.rows)}
    bad = _binary_bad(report)
    prompt_ids: dict[str, int] = {}
    rows: list[list[Any]] = []
    views: dict[int, dict[str, Any]] = {}
    for run in report.runs:
        for s in run.samples:
            view = transcript_view(s["detail"])
            raw_detail = s["detail"]
            if view is not None:
                views[len(rows)] = view
                raw_detail = {k: v for k, v in s["detail"].items() if k not in VIEW_KEYS}
            judge, detail = split_detail(raw_detail)
            score = s["score"]
            status = s["status"] or "pending"
            wrong = status == "unparsed" or (score is not None and bad.get(s["task"]) == score)
            rows.append([
                run.index, task_index.get(s["task"], -1), s["sample_id"], s["variant"], status,
                None if score is None or not math.isfinite(score) else round(score, 6),
                _text(s["parsed"]), _text(s["target"]),
                prompt_ids.setdefault(prompt_text(s["messages"]), len(prompt_ids)),
                s["response"] or "", judge, detail, s["error"] or "", int(wrong),
                s.get("reasoning") or "", (s["detail"] or {}).get("cut_short") or "",
            ])  # fmt: skip
    long_at = [COLUMNS.index(f) for f in LONG_FIELDS]
    prompts = list(prompt_ids)
    texts = [*prompts, *(row[i] for row in rows for i in long_at),
             *(t for view in views.values() for t in _view_texts(view))]  # fmt: skip
    lengths = [(len(t), len(t.encode("utf-8", "replace")) / len(t)) for t in texts if t]
    limit = _field_limit(lengths, budget)
    n_cut = 0
    for i, text in enumerate(prompts):
        prompts[i], was_cut = cut(text, limit)
        n_cut += was_cut
    short_at = [COLUMNS.index("parsed"), COLUMNS.index("target")]
    for row in rows:
        for i in long_at:
            row[i], was_cut = cut(row[i], limit)
            n_cut += was_cut
        for i in short_at:
            row[i], was_cut = cut(row[i], SHORT_FIELD_CHARS)
            n_cut += was_cut
    for view in views.values():
        n_cut += _cut_view(view, limit)
    return DrillDown(COLUMNS, rows, prompts, n_cut, limit, views)


def script_json(value: Any) -> str:
    """JSON that can sit inside a <script type="application/json"> element: `<`, `>` and `&` are
    written as \\u escapes, so no `</script>` or `<!--` can end or alter the element, and the
    line separators U+2028/2029 are escaped too. JSON.parse reads it back unchanged."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
