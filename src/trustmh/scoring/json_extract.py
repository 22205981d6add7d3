"""JSON objects in model and judge replies (protocol 1.4, EXACT for the ethics judge).

Rule: take the first ``` fenced part whose body, after an optional `json` tag, starts with `{`, ends
with `}` and parses; else parse the whole reply as JSON; else nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FIRST_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?)")


def fenced_json_object(text: str | None) -> dict[str, Any] | None:
    """The first JSON object found by the protocol 1.4 rule, or None."""
    if not text:
        return None
    stripped = text.strip()
    if "```" in stripped:
        for part in stripped.split("```"):
            part = part.strip()
            if not part:
                continue
            if part.lower().startswith("json"):
                part = part[4:].strip()
            if part.startswith("{") and part.endswith("}"):
                try:
                    value = json.loads(part)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    return value
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def judge_verdict(content: str | None) -> dict[str, Any]:
    """The authors' `_parse_json_content` (EXACT): the 1.4 object; else a bare or first number as
    {"overall": x} (never one of sc1-sc5); else {"unparsed": text}; {} for an empty reply."""
    if not content:
        return {}
    found = fenced_json_object(content)
    if found is not None:
        return found
    stripped = content.strip()
    try:
        return {"overall": float(stripped)}
    except ValueError:
        match = _FIRST_NUMBER.search(stripped)
        if match:
            return {"overall": float(match.group(1))}
    return {"unparsed": content}
