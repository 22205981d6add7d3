"""Saved judge-check results, so every judge-scored number can show how far its judge is trusted.

Every `trustmh judge-check` run saves its rows under `<cache root>/judge_checks/` (the cache root
is `$TRUSTMH_CACHE_DIR` or the user cache dir), one JSON file per judge key holding the latest
result of each rating set (`mentalalign`, `crisis`). Judge keys are model specs as given to
`--judge` (e.g. `openai:gpt-4.1`), and `mentalalign:<name>` for MentalAlign's four recorded
judges (`mentalalign:gpt-4o`, ...).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from functools import cache
from pathlib import Path

from trustmh.judge_check.mentalalign import GROUPS, JUDGE_PREFIX, RECORDED_JUDGES
from trustmh.judge_check.results import INSUFFICIENT, NOT_TRUSTED, JudgeAgreement, Unit

FOLDER = "judge_checks"
# other names an attribute may be asked for by (lower case) -> the stored attribute name
ALIASES = {
    "cognitive": "CSS",
    "cognitive support": "CSS",
    "cognitive support score": "CSS",
    "affective": "ARS",
    "affective resonance": "ARS",
    "affective resonance score": "ARS",
}


def results_dir() -> Path:
    """Where judge-check results are kept (`$TRUSTMH_CACHE_DIR/judge_checks` or the user cache)."""
    from trustmh.cache_root import user_cache_root

    return user_cache_root() / FOLDER


def _path(judge: str, root: Path | None = None) -> Path:
    digest = hashlib.sha256(judge.encode()).hexdigest()[:16]
    return (root or results_dir()) / f"{digest}.json"


def save_results(rows: list[JudgeAgreement], source: str, root: Path | None = None) -> list[Path]:
    """Save rows (grouped by judge) as the latest `source` result of each judge; return the files.
    Ceiling rows (expert vs expert) are saved with every judge of the call."""
    ceilings = [r for r in rows if r.kind == "ceiling"]
    by_judge: dict[str, list[JudgeAgreement]] = {}
    for row in rows:
        if row.kind != "ceiling":
            by_judge.setdefault(row.judge, []).append(row)
    for judge_rows in by_judge.values():
        judge_rows.extend(ceilings)
    written = []
    for judge, judge_rows in by_judge.items():
        path = _path(judge, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = _read(path) or {"judge": judge, "checks": {}}
        document["checks"][source] = [r.flat() for r in judge_rows]
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8"
        ) as handle:
            json.dump(document, handle, indent=1)
        os.replace(handle.name, path)  # readers never see a half-written file
        written.append(path)
    return written


def _read(path: Path) -> dict | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and "checks" in document else None


def saved_results(judge: str, root: Path | None = None) -> list[JudgeAgreement]:
    """Every saved row of one judge key (all rating sets), or [] when it was never checked."""
    document = _read(_path(judge, root))
    if document is None or document.get("judge") != judge:
        return []
    rows = []
    for flat_rows in document["checks"].values():
        for flat in flat_rows:
            try:
                rows.append(JudgeAgreement.from_flat(flat))
            except (KeyError, TypeError, ValueError):
                continue  # a file from another version: skip the row rather than fail a report
    return rows


def canonical_attribute(attribute: str) -> str:
    """The stored name of an attribute (case-insensitive; `cognitive` -> `CSS`, ...)."""
    key = attribute.strip().lower()
    if key in ALIASES:
        return ALIASES[key]
    for name in (*GROUPS, *_mentalalign_attributes()):
        if name.lower() == key:
            return name
    return attribute.strip()


def _mentalalign_attributes() -> tuple[str, ...]:
    from trustmh.data.loaders.mentalalign import ATTRIBUTES

    return ATTRIBUTES


def recorded_equivalent(judge_spec: str) -> str | None:
    """`mentalalign:<name>` when the spec names the same model as a recorded MentalAlign judge,
    else None: `openai:gpt-4o`, `openai:gpt-4o@URL` -> `mentalalign:gpt-4o`; a provider's dated
    or routed id names it too (`openai:o4-mini-2025-04-16`,
    `anthropic:claude-3-7-sonnet-20250219`, `openai:google/gemini-2.5-flash@URL`), while another
    model of the family does not (`gpt-4o-mini` is not `gpt-4o`)."""
    if judge_spec.startswith(JUDGE_PREFIX):
        return None
    model = judge_spec.split(":", 1)[-1].split("@", 1)[0].strip().lower().rsplit("/", 1)[-1]
    model = _DATED.sub("", model).replace("claude-3-7-sonnet", "claude-3.7-sonnet")
    return JUDGE_PREFIX + model if model in RECORDED_JUDGES else None


# a release date or channel a provider appends to a model id
_DATED = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest|preview(-[\w.-]+)?)$")


def lookup(
    judge_spec: str, attribute: str, root: Path | None = None, unit: Unit = "item"
) -> JudgeAgreement | None:
    """The saved agreement of a judge on an attribute, or None when no judge-check covers it.

    This is the API reports and summaries use to show, beside a judge-scored number, how far its
    judge can be trusted:

        agreement = lookup("openai:gpt-4.1", task.judge_attribute)
        if agreement: print(agreement.verdict, agreement.summary())

    - `judge_spec`: the judge's model spec as the run recorded it, or `mentalalign:<name>` for
      a recorded MentalAlign judge.
    - `attribute`: a MentalAlign attribute (`Guidance`, ..., `Understanding`), a group (`CSS`,
      `ARS`, or `cognitive` / `affective`), or `appropriateness` (the crisis rubric); any case.
    - `unit` (protocol 11.2): the claim the number beside it makes. `item` for a score of
      replies (does the judge rate each reply like the experts), `model` for a ranking of models
      (does it rank models like the experts).

    A result saved for the spec itself wins. Otherwise, when the spec names the same model as one
    of MentalAlign's recorded judges (e.g. `openai:gpt-4o`), that judge's published-ratings
    agreement is returned with `matched_by` saying so (a different prompt, so only indicative);
    at model level it is computed from the MentalAlign ratings (or their bundled sums) when no
    `judge-check --unit model` result was saved. When several human references were checked
    (crisis: experts H1 and H2), the most conservative row (lowest ICC lower bound) is returned.
    Ceiling rows (expert vs expert) are never returned. Reading never raises for a missing or
    unreadable results folder.
    """
    wanted = canonical_attribute(attribute)
    candidates = [(judge_spec, None)]
    equivalent = recorded_equivalent(judge_spec)
    if equivalent:
        candidates.append(
            (equivalent, f"same model as the recorded MentalAlign judge {equivalent}")
        )
    for key, note in candidates:
        rows = [
            r
            for r in saved_results(key, root)
            if r.kind == "judge" and r.unit == unit and r.attribute.lower() == wanted.lower()
        ]
        if not rows and unit == "model" and key.startswith(JUDGE_PREFIX):
            rows = _recorded_model_level(key.removeprefix(JUDGE_PREFIX), wanted)
        if rows:
            best = min(rows, key=_conservative_order)
            return best.with_match(note) if note else best
    return None


def _recorded_model_level(name: str, attribute: str) -> list[JudgeAgreement]:
    """A recorded judge's model-level row computed from the ratings ([] when unavailable)."""
    from trustmh.judge_check.model_level import ATTRIBUTES

    if name not in RECORDED_JUDGES or attribute not in ATTRIBUTES:
        return []
    rows = _recorded_model_rows()
    return [r for r in rows if r.judge == JUDGE_PREFIX + name and r.attribute == attribute]


@cache
def _recorded_model_rows() -> tuple[JudgeAgreement, ...]:
    """Every recorded judge's model-level rows at the default thresholds, once per process, from
    the bundled sums (the same numbers as from ratings.csv, without reading 13 MB), else from the
    data folder."""
    from trustmh.data.sources import BUNDLED_DIR, DataContext, resolve_data_context
    from trustmh.errors import DataError
    from trustmh.judge_check.model_level import check_model_level
    from trustmh.judge_check.rating_sums import load_sums

    for ctx in (DataContext((BUNDLED_DIR,)), None):
        try:
            sums = load_sums(ctx or resolve_data_context()).sums
        except DataError:
            continue
        return tuple(check_model_level(sums, list(RECORDED_JUDGES)))
    return ()


def _conservative_order(row: JudgeAgreement) -> float:
    low = row.stats["icc_c1" if row.unit == "model" else "icc_a1"].ci_low
    return float("inf") if low is None else low


CRISIS_ATTRIBUTE = "appropriateness"  # what `judge-check --ratings crisis` measures


def how_to_measure(judge_spec: str, attribute: str) -> str:
    """How a judge's agreement on an attribute can be measured, as a clause: a command that works,
    or why no command can (expert ratings of a new judge exist for appropriateness only)."""
    if canonical_attribute(attribute).lower() == CRISIS_ATTRIBUTE:
        return f"measure it: trustmh judge-check --ratings crisis --judge {judge_spec}"
    if judge_spec.startswith(JUDGE_PREFIX) or recorded_equivalent(judge_spec):
        return "measure it: trustmh judge-check --ratings mentalalign"
    return (
        "not measurable for this judge: of these attributes, only MentalAlign's four recorded "
        "judges have ratings to compare with experts'"
    )


# joins "what was not checked" to the finding elsewhere in `assess`'s inferred verdicts (the
# one-screen summary folds the subtasks that share a finding on this separator)
INFERRED_FROM = "; judge-check found "


def assess(
    judge_spec: str, attribute: str | None, root: Path | None = None, unit: Unit = "item"
) -> tuple[str | None, str]:
    """(verdict, one line) on how far a judge can be trusted for the numbers of a subtask whose
    verdicts rate `attribute` (None: a subtask whose judge gives labels or 0/1 answers), at the
    unit of the subtask's claim:
    - the saved result on that attribute (`lookup`): its verdict and summary;
    - else, when judge-check measured the judge at that unit on other attributes and trusted it
      on none of them: `not trusted` (or `insufficient data` when no check could decide), naming
      what was not checked and the most conservative result that was. A judge that fails where
      it was measured is not believed where it was not;
    - else no verdict, and a line saying what was not measured.
    """
    if attribute:
        found = lookup(judge_spec, attribute, root, unit=unit)
        if found is not None:
            return found.verdict, found.summary()
    checked = [r for r in saved_results(judge_spec, root) if r.kind == "judge" and r.unit == unit]
    if checked and not any(r.trusted for r in checked):
        verdict = NOT_TRUSTED if any(r.verdict == NOT_TRUSTED for r in checked) else INSUFFICIENT
        worst = min(checked, key=_conservative_order)
        unchecked = f"not checked on {attribute}" if attribute else "these verdicts not checked"
        return verdict, f"{verdict}: {unchecked}{INFERRED_FROM}{worst.summary()}"
    if not attribute:
        return None, "not measured against humans"
    if unit == "model":
        return None, (
            f"no model-level judge-check result on {attribute} "
            "(see `trustmh judge-check --unit model`)"
        )
    return None, (f"no judge-check result on {attribute} ({how_to_measure(judge_spec, attribute)})")


def describe(judge_spec: str | None, attribute: str | None, unit: Unit = "item") -> str | None:
    """One line naming a task's judge and how far judge-check says it can be trusted there, at
    the unit of the task's claim (`assess`); None when there is no judge."""
    if not judge_spec:
        return None
    return f"judge {judge_spec}: {assess(judge_spec, attribute, unit=unit)[1]}"
