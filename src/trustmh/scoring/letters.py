"""Letter-answer extraction for multiple-choice replies; kept for existing callers, the rules
live in `trustmh.scoring.parsers.parse_option`."""

from __future__ import annotations

from trustmh.scoring.parsers import parse_option


def parse_letter(text: str, letters: str) -> str | None:
    """The chosen letter among `letters` (e.g. "ABCD"): a JSON "answer"/"choice" field, else a
    cue ("answer is B"), else the first standalone valid letter; None when nothing valid is found."""
    return parse_option(text, list(letters))
