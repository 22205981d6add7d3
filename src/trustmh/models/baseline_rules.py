"""Two rules of the `baseline` model for classification prompts (see `models/baseline.py`).

- `category_label`: a labelling prompt (categories as `- **name**: definition` blocks, the
  material under a `Conversation:` / `Post:` / `Posts:` line, a JSON `"label"` requested) gets the
  category whose definition shares the most words with the material, scored as shared words over
  the square root of the definition's word count (ties: the first listed), as JSON.
- `grouped_options`: a prompt with several lettered option groups (letters restarting at A, as
  EmoBench's two questions) gets, per group, the option sharing the most words with the text
  before the first group, as JSON `answer_q1`, `answer_q2`, ...

Both are pure functions of the prompt text and return None when the prompt is not of their kind.
"""

from __future__ import annotations

import json
import math
import re

_HEADER = re.compile(r"^\s*- \*\*([^*\n]+)\*\*:", re.M)
_MATERIAL = re.compile(r"^(?:Conversation|Posts?|Dialogue)\s*:\s*$", re.M | re.I)
_AFTER_MATERIAL = re.compile(r"^\s*(?:Return your answer|Reply with|请只返回)", re.M)
_SECTION = re.compile(r"^\s*#", re.M)
_WORD = re.compile(r"[a-z]{3,}")
_OPTION = re.compile(r"^\s*\(?([A-J])[.)]\s*(.+)$", re.M)


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def category_label(prompt: str) -> str | None:
    """The JSON label reply for a labelling prompt, or None when `prompt` is not one."""
    markers = list(_MATERIAL.finditer(prompt))
    headers = list(_HEADER.finditer(prompt))
    if not markers or len(headers) < 3 or '"label"' not in prompt:
        return None
    material_start = markers[-1].end()
    end = _AFTER_MATERIAL.search(prompt, material_start)
    material = _words(prompt[material_start : end.start() if end else len(prompt)])
    definitions = []
    for i, header in enumerate(headers):
        stop = headers[i + 1].start() if i + 1 < len(headers) else len(prompt)
        section = _SECTION.search(prompt, header.end(), stop)
        marker = next((m.start() for m in markers if header.end() < m.start() < stop), stop)
        stop = min(stop, section.start() if section else stop, marker)
        definitions.append((header.group(1).strip(), _words(prompt[header.start() : stop])))
    shared = set.intersection(*(d for _, d in definitions))
    scores = [
        (len((d - shared) & material) / math.sqrt(len(d - shared) or 1), -i, name)
        for i, (name, d) in enumerate(definitions)
    ]
    name = max(scores)[2]
    reply = {"label": name, "explanation": "Most words shared with the category definition."}
    return "```json\n" + json.dumps(reply) + "\n```"


def grouped_options(prompt: str) -> str | None:
    """The JSON `answer_q1`, `answer_q2`, ... reply for a prompt with two or more lettered option
    groups, or None."""
    groups: list[list[tuple[str, str]]] = []
    first_option = None
    for match in _OPTION.finditer(prompt):
        letter, text = match.group(1), match.group(2)
        if letter == "A":
            groups.append([])
            first_option = first_option if first_option is not None else match.start()
        elif not groups:
            continue
        groups[-1].append((letter, text))
    if len(groups) < 2 or first_option is None:
        return None
    stem = _words(prompt[:first_option])
    reply = {
        f"answer_q{n}": max(group, key=lambda o: (len(stem & _words(o[1])), -ord(o[0])))[0]
        for n, group in enumerate(groups, 1)
    }
    return "```json\n" + json.dumps(reply) + "\n```"
