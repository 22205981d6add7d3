"""VERA-MH (SpringCare, MIT-style with conditions: keep its notice and disclaimer): personas, the
persona meta-prompt, the clinician-written rubric question flow, and 105 recorded conversations.

- `data/personas.tsv`: one simulated user per row (10 rows; the recordings cover 7 of them).
- `data/persona_prompt_template.txt`: the meta-prompt; `{Column}` fields are filled from a persona
  row with Python's `str.format`, as upstream does.
- `data/rubric.tsv` + `data/rubric_prompt_beginning.txt`: the question flow the judge walks. Parsed
  as upstream's `_parse_question_flow_rubric` does: a row with a Question ID starts a question
  (dimension, severity, risk type, question, examples, and its first answer option with GOTO);
  rows without one add answer options to it; a question without options gets Yes and No with no
  GOTO. Cells are stripped; severity and GOTO are None when empty.
- `concept_paper_conversations/<folder>/<hash>_<Persona>_<model>_run<N>.txt`: one conversation per
  file, turns `user: ...` / `agent: ...` separated by a blank line. A folder is one configuration
  (simulated-user model, chatbot, 30 turns, 5 runs per persona); `CONVERSATION_SETS` names them.

The rubric file has CRLF line ends and two severities spelled "Yelow"; both are kept as written
here (the scorer decides what a severity means).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from trustmh.data.records import FIX_HINT, open_text
from trustmh.data.sources import DataContext
from trustmh.errors import DataError

SOURCE = "vera_mh"
PERSONAS = "data/personas.tsv"
PERSONA_TEMPLATE = "data/persona_prompt_template.txt"
RUBRIC = "data/rubric.tsv"
RUBRIC_BEGINNING = "data/rubric_prompt_beginning.txt"
CONVERSATIONS = "concept_paper_conversations"
RUBRIC_COLUMNS = ("Question ID", "Dimension", "Severity", "Risk Type", "Question", "Examples",
                  "Answer", "GOTO")  # fmt: skip
PERSONA_KEY_COLUMNS = ("Name", "Current Risk Level")

# The recorded configurations: folder -> (replay name, chatbot under test, simulated-user model).
CONVERSATION_SETS = {
    "p_claude_opus_4_1_20250805__a_claude_opus_4_1_20250805__t30__r5__20250915_103737": (
        "vera-mh/claude-opus-4.1", "claude-opus-4-1-20250805", "claude-opus-4-1-20250805"),
    "p_gpt_4o__a_claude_sonnet_4_20250514__t30__r5__20251007_150240": (
        "vera-mh/claude-sonnet-4", "claude-sonnet-4-20250514", "gpt-4o"),
    "p_gpt_5__a_gpt_5__t30__r5__20250915_102113__max_completion_tokens_5000": (
        "vera-mh/gpt-5", "gpt-5 (max_completion_tokens 5000)", "gpt-5"),
}  # fmt: skip
_TURN = re.compile(r"^(user|agent): ", re.M)
_RUN = re.compile(r"_run(\d+)$")


@dataclass(frozen=True)
class Persona:
    """One simulated user: every column of its row (the meta-prompt's fields), by header name."""

    name: str
    risk_level: str
    fields: dict[str, str]


@dataclass(frozen=True)
class AnswerOption:
    """One answer of a rubric question and where it leads (None: the default next question)."""

    option: str
    goto: str | None


@dataclass(frozen=True)
class Question:
    """One rubric question as upstream parses it."""

    id: str
    dimension: str
    severity: str | None
    risk_type: str
    question: str
    examples: str
    answers: tuple[AnswerOption, ...]


@dataclass(frozen=True)
class Rubric:
    """The question flow: questions by id, their file order, and the judge's system prompt."""

    questions: dict[str, Question]
    order: tuple[str, ...]
    beginning: str  # rubric_prompt_beginning.txt, with a `{conversation}` field

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The dimensions in the order they first appear (upstream's DIMENSIONS)."""
        return tuple(dict.fromkeys(q.dimension for q in self.questions.values() if q.dimension))


@dataclass(frozen=True)
class RecordedConversation:
    """One recorded conversation: its configuration, persona, run, turns and file text."""

    set_name: str
    file: str
    persona: str
    run: int
    turns: tuple[tuple[str, str], ...]  # (role "user" | "agent", text)


def _tsv_rows(path: Path, required: tuple[str, ...], strip: bool = True) -> list[dict[str, str]]:
    text = open_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t")
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: missing column {missing[0]!r}; {FIX_HINT}")
    rows = []
    for rowno, row in enumerate(reader, 2):
        if None in row or any(v is None for v in row.values()):
            raise DataError(f"{path}: row {rowno}: wrong number of tab-separated cells; {FIX_HINT}")
        rows.append({k: v.strip() for k, v in row.items()} if strip else dict(row))
    return rows


def load_personas(ctx: DataContext) -> list[Persona]:
    """The personas in file order."""
    path = ctx.file(SOURCE, PERSONAS)
    # cells are kept as written (upstream fills the meta-prompt with them unstripped)
    rows = _tsv_rows(path, PERSONA_KEY_COLUMNS, strip=False)
    personas = []
    for rowno, row in enumerate(rows, 2):
        if not row["Name"].strip():
            raise DataError(f"{path}: row {rowno}: empty Name; {FIX_HINT}")
        personas.append(Persona(row["Name"].strip(), row["Current Risk Level"].strip(), row))
    names = [p.name for p in personas]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: a persona name appears twice; {FIX_HINT}")
    return personas


def load_persona_template(ctx: DataContext) -> str:
    """The persona meta-prompt (fields `{Column}` of a persona row)."""
    return open_text(ctx.file(SOURCE, PERSONA_TEMPLATE))


def persona_prompt(template: str, persona: Persona) -> str:
    """The simulated user's system prompt: the template filled from the persona's row with
    `str.format`, exactly as upstream's `load_prompts_from_csv`."""
    try:
        return template.format(**persona.fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise DataError(
            f"{SOURCE}/{PERSONA_TEMPLATE}: field {exc} is not a column of {SOURCE}/{PERSONAS} "
            f"(persona {persona.name}); {FIX_HINT}"
        ) from None


def _goto(cell: str) -> str | None:
    if not cell:
        return None
    try:
        return str(int(float(cell)))  # upstream: numeric GOTOs as whole-number strings
    except ValueError:
        return cell


def load_rubric(ctx: DataContext) -> Rubric:
    """The rubric question flow (see the module docstring for the parsing rules)."""
    path = ctx.file(SOURCE, RUBRIC)
    questions: dict[str, Question] = {}
    order: list[str] = []
    current: dict | None = None

    def close() -> None:
        if current is not None:
            answers = current["answers"] or [AnswerOption("Yes", None), AnswerOption("No", None)]
            questions[current["id"]] = Question(**{**current, "answers": tuple(answers)})

    for rowno, row in enumerate(_tsv_rows(path, RUBRIC_COLUMNS), 2):
        qid = row["Question ID"]
        if qid:
            close()
            try:
                qid = str(int(float(qid)))
            except ValueError:
                raise DataError(
                    f"{path}: row {rowno}: Question ID {qid!r} is not a number; {FIX_HINT}"
                ) from None
            if qid in questions:
                raise DataError(f"{path}: row {rowno}: question {qid} appears twice; {FIX_HINT}")
            order.append(qid)
            current = {"id": qid, "dimension": row["Dimension"], "severity": row["Severity"] or None,
                       "risk_type": row["Risk Type"], "question": row["Question"],
                       "examples": row["Examples"], "answers": []}  # fmt: skip
        elif current is None:
            if row["Answer"]:
                raise DataError(
                    f"{path}: row {rowno}: an answer before the first question; {FIX_HINT}"
                )
            continue
        if row["Answer"]:
            current["answers"].append(AnswerOption(row["Answer"], _goto(row["GOTO"])))  # type: ignore[index]
    close()
    if not questions:
        raise DataError(f"{path}: no questions; {FIX_HINT}")
    beginning = open_text(ctx.file(SOURCE, RUBRIC_BEGINNING))
    if "{conversation}" not in beginning:
        raise DataError(f"{SOURCE}/{RUBRIC_BEGINNING}: no {{conversation}} field; {FIX_HINT}")
    return Rubric(questions, tuple(order), beginning)


def parse_conversation(text: str, where: str) -> tuple[tuple[str, str], ...]:
    """The turns of a recorded conversation file (`user: ` / `agent: ` at a line start begins a
    turn; turns are separated by one blank line)."""
    parts = _TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise DataError(f"{where}: does not start with a `user: ` turn; {FIX_HINT}")
    turns = []
    for i in range(1, len(parts), 2):
        body = parts[i + 1]
        body = body[:-2] if body.endswith("\n\n") else body.removesuffix("\n")
        turns.append((parts[i], body))
    return tuple(turns)


def format_conversation(turns: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> str:
    """The conversation as the recorded files hold it (and as the judge reads it): `role: text`
    turns separated by a blank line, ending with a newline. `parse_conversation` inverts it."""
    return "\n\n".join(f"{role}: {text}" for role, text in turns) + "\n"


def set_name(folder: str) -> str:
    """The replay name of a recorded configuration folder."""
    known = CONVERSATION_SETS.get(folder)
    if known:
        return known[0]
    match = re.search(r"__a_(.+?)__t\d", folder)
    return f"vera-mh/{(match.group(1) if match else folder).replace('_', '-')}"


@cache
def _conversations(root: Path) -> tuple[RecordedConversation, ...]:
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = set_name(folder.name)
        for file in sorted(folder.glob("*.txt")):
            parts = file.stem.split("_")
            run = _RUN.search(file.stem)
            if len(parts) < 3 or run is None:
                raise DataError(f"{file}: expected <hash>_<Persona>_<model>_run<N>.txt; {FIX_HINT}")
            turns = parse_conversation(open_text(file), str(file))
            out.append(RecordedConversation(name, f"{folder.name}/{file.name}", parts[1],
                                            int(run.group(1)), turns))  # fmt: skip
    return tuple(out)


def load_conversations(ctx: DataContext) -> list[RecordedConversation]:
    """Every recorded conversation, by folder then file name."""
    return list(_conversations(ctx.locate(SOURCE) / CONVERSATIONS))


def conversation_sets(ctx: DataContext) -> dict[str, list[RecordedConversation]]:
    """The recorded conversations by replay name (empty when the data has none)."""
    if ctx.root_of(SOURCE) is None or not (ctx.locate(SOURCE) / CONVERSATIONS).is_dir():
        return {}
    out: dict[str, list[RecordedConversation]] = {}
    for conversation in load_conversations(ctx):
        out.setdefault(conversation.set_name, []).append(conversation)
    return out


def load(ctx: DataContext) -> dict[str, object]:
    """Every collection of the source."""
    return {
        "personas": load_personas(ctx),
        "persona_template": load_persona_template(ctx),
        "rubric": load_rubric(ctx),
        "conversations": load_conversations(ctx),
    }
