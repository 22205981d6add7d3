"""Whether a subtask's stored numbers still hold, so that a rerun that asked nothing new reuses
them instead of aggregating again.

Aggregating is deterministic: a subtask's metrics and validity (protocol 1.8) are a function of
its scored samples, its options, the run seed and the rules behind them (trustmh's code, the
scorer's, numpy's version, the model's request plan, `--min-coverage`...). After aggregating, a
run records a stamp of all that but the scores (`stamp`); the scores themselves change only when
a sample is asked, re-asked or re-declared. So a later invocation over the same items that had
nothing to ask for a subtask, and finds the same stamp, takes its stored results and validity as
they are: an identical rerun no longer loads numpy, reads every sample back and scores the null
responders (about a fifth of a second for 2,000 samples)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import cache
from importlib import metadata
from typing import Any

from trustmh.code_fingerprint import code_fingerprint
from trustmh.config import RunConfig
from trustmh.tasks.base import Task
from trustmh.validity.floor_memo import module_stamp

META_KEY = "aggregated"  # run meta: {task id: the stamp its stored results were aggregated under}


@cache
def _numpy_version() -> str:
    """The installed numpy's version, read without importing it: its random generator draws the
    bootstrap intervals, so another numpy may give other interval bounds."""
    try:
        return metadata.version("numpy")
    except metadata.PackageNotFoundError:
        return ""


def stamp(task: Task, cfg: RunConfig, options: dict[str, Any],
          covered: Iterable[tuple[str, str]], plan: Any) -> str:  # fmt: skip
    """What a subtask's aggregation depends on besides its scores, as one digest: the code (and a
    plug-in's scorer and aggregate files), the subtask, its options, the items this invocation
    covers, the model's request plan and the run settings that reach the numbers."""
    head = [code_fingerprint(), _numpy_version(), module_stamp(task.score),
            module_stamp(task.aggregate), task.id, options, cfg.seed, cfg.min_coverage, cfg.epochs,
            cfg.judge, cfg.judge_reask, cfg.reask_unparsed, plan]  # fmt: skip
    digest = hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode())
    for sample_id, variant in sorted(covered):
        digest.update(f"{sample_id}\0{variant}\n".encode())
    return digest.hexdigest()
