"""Regression rules for CI: `trustmh compare BASELINE NEW --gate RULES` (protocol 1.9).

A rules file holds one rule per line (`#` starts a comment):

    crisis.* must not be worse at p < 0.05    # NEW significantly worse than BASELINE breaks it
    reliability must not be worse             # a pillar name = all its subtasks; p < --alpha
    safety.jailbreak_resistance >= 0.9        # NEW's own score must meet the threshold
    privacy.leakage <= 0.25                   # (>=, >, <=, < ; the metric's own scale)

A pattern is a subtask id, a shell-style glob over ids (`crisis.*`, `*`) or a pillar name. "Must
not be worse" is broken when Holm's adjusted p of the subtask's comparison is below the rule's
level and BASELINE is the better run; also when the subtask cannot be checked (not comparable,
too few shared items, or missing from NEW): a gate that cannot look fails closed. A threshold is
checked on NEW's stored primary score. A pattern matching no subtask is broken too (a typo would
otherwise pass silently).
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trustmh.compare import NOT_COMPARABLE, TOO_FEW, Comparison, SubtaskComparison
from trustmh.errors import UserError

_NOT_WORSE = re.compile(
    r"^(?P<pattern>\S+)\s+must\s+not\s+be\s+worse(?:\s+at\s+p\s*<\s*(?P<alpha>\S+))?$", re.I
)
_THRESHOLD = re.compile(r"^(?P<pattern>\S+)\s*(?P<op>>=|<=|≥|≤|>|<)\s*(?P<value>\S+)$")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "≥": operator.ge, ">": operator.gt,
    "<=": operator.le, "≤": operator.le, "<": operator.lt,
}  # fmt: skip


@dataclass(frozen=True)
class Rule:
    """One line of a rules file."""

    where: str  # file:line
    text: str
    pattern: str
    alpha: float | None = None  # "must not be worse" at this level (None: --alpha)
    op: str | None = None  # a threshold rule's operator
    threshold: float | None = None

    def matches(self, task_id: str) -> bool:
        """True when the pattern names this subtask (glob, id, or pillar name)."""
        if fnmatch.fnmatchcase(task_id, self.pattern):
            return True
        return "." not in self.pattern and task_id.startswith(self.pattern + ".")


@dataclass(frozen=True)
class RuleResult:
    """A rule checked: whether it holds, and what was found."""

    rule: Rule
    holds: bool
    detail: str

    def line(self) -> str:
        """One line for the terminal."""
        state = "ok" if self.holds else "BROKEN"
        return f"gate {state}: {self.rule.where}: {self.rule.text}: {self.detail}"


def parse_rules(path: Path) -> list[Rule]:
    """The rules of a file; UserError naming the file and line of the first bad one."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--gate {path}: cannot read the rules file ({exc.strerror})") from None
    rules = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            rules.append(_parse_line(line, f"{path}:{number}"))
    if not rules:
        raise UserError(f"--gate {path}: no rule in the file; see `trustmh compare --help`")
    return rules


def _number(text: str, where: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{where}: {what} {text!r} is not a number") from None


def _parse_line(line: str, where: str) -> Rule:
    match = _NOT_WORSE.match(line)
    if match:
        alpha = match.group("alpha")
        level = None if alpha is None else _number(alpha, where, "the level")
        if level is not None and not 0 < level < 1:
            raise UserError(f"{where}: the level p < {alpha} must lie between 0 and 1")
        return Rule(where, line, match.group("pattern"), alpha=level)
    match = _THRESHOLD.match(line)
    if match:
        value = _number(match.group("value"), where, "the threshold")
        return Rule(where, line, match.group("pattern"), op=match.group("op"), threshold=value)
    raise UserError(
        f"{where}: cannot read rule {line!r}; write `PATTERN must not be worse [at p < 0.05]` "
        "or `PATTERN >= NUMBER` (also >, <=, <)"
    )


def check(rules: list[Rule], comparison: Comparison) -> list[RuleResult]:
    """Check every rule on the comparison of BASELINE (run 0) with NEW (run 1)."""
    rows = comparison.pair(0, 1)
    return [
        _not_worse(rule, rows, comparison) if rule.op is None else _threshold(rule, comparison)
        for rule in rules
    ]


def _not_worse(rule: Rule, rows: list[SubtaskComparison], comparison: Comparison) -> RuleResult:
    base, new = (r.label for r in comparison.runs[:2])
    alpha = rule.alpha if rule.alpha is not None else comparison.alpha
    picked = [r for r in rows if rule.matches(r.task)]
    # a subtask NEW adds has no baseline to regress from; one NEW dropped cannot be checked
    picked = [r for r in picked if r.task in comparison.runs[0].results]
    if not picked:
        return RuleResult(rule, False, f"matches no subtask of {base}")
    broken = []
    for row in picked:
        if row.verdict in (NOT_COMPARABLE, TOO_FEW):
            broken.append(f"{row.task} cannot be checked ({row.verdict_text(base, new)})")
        elif row.p_holm is not None and row.p_holm < alpha and row.winner == 0:
            broken.append(
                f"{row.task}: {new} worse, {row.metric} {row.value_b:.4g} vs {row.value_a:.4g} "
                f"(difference {-(row.diff or 0):+.4g}, 95% CI [{-(row.ci_high or 0):+.4g}, "
                f"{-(row.ci_low or 0):+.4g}]), Holm p = {row.p_holm:.2g} < {alpha:g}"
            )
    if broken:
        return RuleResult(rule, False, "; ".join(broken))
    return RuleResult(rule, True, f"{len(picked)} subtasks, none worse at p < {alpha:g}")


def _threshold(rule: Rule, comparison: Comparison) -> RuleResult:
    new = comparison.runs[1]
    picked = [t for t in new.results if rule.matches(t)]
    if not picked:
        return RuleResult(rule, False, f"matches no subtask of {new.label}")
    check = OPERATORS[rule.op]  # type: ignore[index]
    broken, seen = [], []
    for task_id in picked:
        primary = new.primary(task_id)
        if primary is None or primary.value is None:
            broken.append(f"{task_id}: {new.label} has no score")
        elif not check(primary.value, rule.threshold):  # type: ignore[arg-type]
            broken.append(
                f"{task_id}: {primary.name} {primary.value:.4g}, not {rule.op} {rule.threshold:g}"
            )
        else:
            seen.append(f"{task_id} {primary.value:.4g}")
    if broken:
        return RuleResult(rule, False, "; ".join(broken))
    return RuleResult(rule, True, ", ".join(seen))
