"""Letter-answer extraction for multiple-choice replies (JSON first, then plain text)."""

from __future__ import annotations

import json
import re

_FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.S | re.I)
_CUE = re.compile(r"(?:answer is|answer:|option)\s*\(?([A-Za-z])\b", re.I)


def parse_letter(text: str, letters: str) -> str | None:
    """The chosen letter: a JSON "answer"/"choice" field, else a cue ("answer is B"), else the
    first standalone valid letter; None when nothing valid is found."""
    for blob in [*_FENCED.findall(text), text.strip()]:
        try:
            data = json.loads(blob)
        except (json.JSONDecodeError, TypeError):
            continue
        if isinstance(data, dict):
            for key in ("answer", "choice"):
                value = str(data.get(key, "")).strip().strip("\"'").upper()
                if value in letters and len(value) == 1:
                    return value
    match = _CUE.search(text)
    if match and match.group(1).upper() in letters:
        return match.group(1).upper()
    match = re.search(rf"\b([{letters}])\b", text)
    return match.group(1) if match else None
