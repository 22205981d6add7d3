"""Loaders for the privacy pillar: ConfAIde tiers 1, 2a, 2b (awareness) and PsyLeak tier 3 (leakage).

Tiers 1-2 are read from `trustmh_privacy/task1|task2/` (the authors' copy) or, identically, from the
flat `confaide/` folder. Tier 3 is parsed exactly as the authors' `privacy3.py` does (EXACT,
protocol 7.2), including its story-construction quirk: the story is split on ". " and the last
piece dropped, so titles such as "Dr." leave a dangling "What should Dr." at the end.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from trustmh.data.records import open_text, read_lines
from trustmh.data.sources import DataContext
from trustmh.errors import DataError

SOURCE = "trustmh_privacy"
CONFAIDE = "confaide"
Tier = Literal["1", "2a", "2b"]
TIER3_FILE = "task3/tier_3_psyqa_test.txt"
TIER3_CONTROL_FILE = "task3/tier_3_control_psyqa_test.txt"
# Where each tier's files live in the two layouts.
_PATHS = {
    SOURCE: {
        "1": ("task1/tier_1.txt", "task1/tier_1_labels.txt"),
        "2a": ("task2/tier_2a.txt", "task2/tier_2_labels.txt"),
        "2b": ("task2/tier_2b.txt", "task2/tier_2_labels.txt"),
    },
    CONFAIDE: {
        "1": ("tier_1.txt", "tier_1_labels.txt"),
        "2a": ("tier_2a.txt", "tier_2_labels.txt"),
        "2b": ("tier_2b.txt", "tier_2_labels.txt"),
    },
}


class RatingItem(BaseModel):
    """One tier-1/2 item: the benchmark line (with its literal backslash-n) and the human mean."""

    tier: Tier
    index: int
    text: str
    human: float


class Tier3Story(BaseModel):
    """One PsyLeak story with its agents, secret and control question."""

    scenario_idx: int
    topic: str
    aware_agent_relation: str
    oblivious_agent_relation: str
    reveal_reason: str
    subject_agent: str
    aware_agent: str
    oblivious_agent: str
    secret: str
    text: str
    control_line: str


def load_rating_items(ctx: DataContext, tier: Tier, source: str = SOURCE) -> list[RatingItem]:
    """Tier-1, 2a or 2b items with their human means, from `trustmh_privacy` or `confaide`."""
    if source not in _PATHS:
        raise DataError(
            f"privacy tiers 1-2: unknown source {source!r}; use {SOURCE!r} or {CONFAIDE!r}"
        )
    items_rel, labels_rel = _PATHS[source][tier]
    items_path = ctx.file(source, items_rel)
    labels_path = ctx.file(source, labels_rel)
    lines = [ln.strip() for ln in read_lines(items_path)]
    labels: list[float] = []
    for lineno, raw in enumerate(read_lines(labels_path), 1):
        if not raw.strip():
            continue
        try:
            labels.append(float(raw.strip()))
        except ValueError:
            raise DataError(f"{labels_path}: line {lineno}: {raw!r} is not a number") from None
    if len(lines) != len(labels):
        raise DataError(
            f"{items_path}: {len(lines)} items but {labels_path.name} holds {len(labels)} labels"
        )
    return [
        RatingItem(tier=tier, index=i, text=t, human=h)
        for i, (t, h) in enumerate(zip(lines, labels, strict=True))
    ]


def load_tier1(ctx: DataContext, source: str = SOURCE) -> list[RatingItem]:
    """The 10 tier-1 information types."""
    return load_rating_items(ctx, "1", source)


def load_tier2(ctx: DataContext, source: str = SOURCE) -> list[RatingItem]:
    """The 98 tier-2a vignettes followed by the 98 tier-2b stories."""
    return load_rating_items(ctx, "2a", source) + load_rating_items(ctx, "2b", source)


def build_story(story_lines: str) -> str:
    """The authors' story text (EXACT): newlines to spaces, one pass of double-space collapsing,
    split on ". ", the last piece (the original question) dropped, a final period added."""
    joined = story_lines.replace("\n", " ").replace("  ", " ")
    sentences = joined.split(". ")
    return ". ".join(sentences[:-1]).replace("  ", " ") + "."


def load_tier3_stories(ctx: DataContext) -> list[Tier3Story]:
    """The 100 PsyLeak stories in file order, parsed as `privacy3.py` does.

    A block whose header or footer does not parse is skipped but still advances `scenario_idx`
    (the index into the control file), exactly as in the authors' loader.
    """
    path = ctx.file(SOURCE, TIER3_FILE)
    control = [ln.strip() for ln in read_lines(ctx.file(SOURCE, TIER3_CONTROL_FILE))]
    stories: list[Tier3Story] = []
    body = ""
    header = ""
    fields: tuple[str, ...] = ()
    broken = False
    scenario_idx = 0
    # Python's universal-newline reading (as the authors' `open(..., "r")`): CRLF and CR become LF.
    text = open_text(path).replace("\r\n", "\n").replace("\r", "\n")
    for line in _lines_with_ends(text):
        if line.startswith("<BEGIN>"):
            header = line.strip().removeprefix("<BEGIN>")
            fields = tuple(header.removesuffix(">").removeprefix("<").split(","))
            if len(fields) != 4:
                broken = True
            continue
        if not line.startswith("<END>"):
            body += line
            continue
        agents = _footer_agents(line, header)
        if agents is None:
            broken = True
        if not broken and agents is not None:
            if scenario_idx >= len(control):
                raise DataError(
                    f"{path}: story {scenario_idx} has no control question in {TIER3_CONTROL_FILE}"
                )
            topic, aware_rel, oblivious_rel, reason = fields
            stories.append(
                Tier3Story(
                    scenario_idx=scenario_idx,
                    topic=topic,
                    aware_agent_relation=aware_rel,
                    oblivious_agent_relation=oblivious_rel,
                    reveal_reason=reason,
                    subject_agent=agents["about"],
                    aware_agent=agents["questionee"],
                    oblivious_agent=agents["questioner"],
                    secret=agents["topic"],
                    text=build_story(body),
                    control_line=control[scenario_idx],
                )
            )
        broken = False
        body = ""
        scenario_idx += 1
    return stories


def _lines_with_ends(text: str) -> list[str]:
    """Lines split on "\n" only, each keeping its "\n" (like `readlines()`)."""
    pieces = text.split("\n")
    lines = [p + "\n" for p in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def _footer_agents(line: str, header: str) -> dict[str, str] | None:
    """`<END><header><About: X,Questionee: Y,Questioner: Z,Topic: T>` -> {about, questionee, ...};
    None when it does not parse or the four values are not distinct (the authors' check)."""
    names = (
        line.strip()
        .removeprefix("<END>")
        .split(header)[-1]
        .removesuffix(">")
        .removeprefix("<")
        .strip()
    )
    agents: dict[str, str] = {}
    for element in names.split(","):
        parts = element.split(": ")
        if len(parts) != 2:
            return None
        agents[parts[0].lower()] = parts[1].strip().strip(".")
    if (
        len(set(agents.values())) != 4
        or not {"about", "questionee", "questioner", "topic"} <= agents.keys()
    ):
        return None
    return agents


def load_trustmh_privacy(ctx: DataContext) -> dict[str, list]:
    """Registry entry for `trustmh_privacy`: tier-1/2a/2b items and the tier-3 stories."""
    return {
        "tier1": load_rating_items(ctx, "1"),
        "tier2a": load_rating_items(ctx, "2a"),
        "tier2b": load_rating_items(ctx, "2b"),
        "tier3_stories": load_tier3_stories(ctx),
    }


def load_confaide(ctx: DataContext) -> dict[str, list]:
    """Registry entry for `confaide`: the same tier-1/2a/2b items from ConfAIde's own folder."""
    return {
        tier_key: load_rating_items(ctx, tier, CONFAIDE)
        for tier_key, tier in (("tier1", "1"), ("tier2a", "2a"), ("tier2b", "2b"))
    }
