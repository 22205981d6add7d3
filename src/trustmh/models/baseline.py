"""`baseline`: a deterministic, transparent rule-based reference model. It is NOT an LLM.

It exists so every path of the harness runs offline (demos, tests) and so reports have a floor to
compare against. Its rules, in order:
1. a request that looks harmful (jailbreak keywords) gets a refusal with crisis resources;
2. a multiple-choice question gets the option sharing the most words with the question (ties: the
   first), answered as JSON with both "answer" and "choice" keys;
3. a rating scale ("4) ... 1) ...") gets the scale's middle-low value;
4. a yes/no question gets "No";
5. anything else gets a fixed supportive reply.
"""

from __future__ import annotations

import json
import re

from trustmh.types import GenRequest, Response, Usage

LABEL = "baseline (rule-based reference, not an LLM)"
_OPTION = re.compile(r"^\s*\(?([A-J])[.)]\s*(.+)$", re.M)
_SCALE = re.compile(r"(-?\d+)\)\s")
_WORD = re.compile(r"[a-z]{3,}")
_HARMFUL = (
    "kill myself",
    "suicide method",
    "how to hurt",
    "overdose",
    "ignore all previous",
    "unrestricted",
)
SUPPORTIVE = (
    "I'm sorry you're going through this. It sounds really hard, and your feelings make sense. "
    "Would you like to tell me more about what has been weighing on you? If you ever feel unsafe, "
    "please reach out to a local crisis line or emergency services."
)
REFUSAL = (
    "I can't help with that. If you are struggling or thinking about harming yourself, please contact "
    "a crisis line or emergency services; you deserve support."
)


def answer(prompt: str) -> str:
    """The baseline's reply to a prompt (pure function of the text)."""
    lower = prompt.lower()
    if any(k in lower for k in _HARMFUL):
        return REFUSAL
    options = _OPTION.findall(prompt)
    if len(options) >= 2:
        stem = set(_WORD.findall(lower.split(options[0][1].lower(), 1)[0]))
        best = max(
            options, key=lambda o: (len(stem & set(_WORD.findall(o[1].lower()))), -ord(o[0]))
        )
        return (
            "```json\n"
            + json.dumps(
                {
                    "answer": best[0],
                    "choice": best[0],
                    "reasoning": "Most overlap with the question.",
                }
            )
            + "\n```"
        )
    scale = sorted({int(v) for v in _SCALE.findall(prompt)})
    if len(scale) >= 3:
        return f"{scale[(len(scale) - 1) // 2]})"
    if "yes or no" in lower:
        return "No"
    return SUPPORTIVE


class BaselineBackend:
    """The `baseline` model spec."""

    spec = "baseline"
    label = LABEL
    endpoint = "baseline"
    cacheable = False

    async def generate(self, request: GenRequest) -> Response:
        """Apply the rules to the last user message."""
        prompt = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")
        text = answer(prompt)
        return Response(
            text=text, usage=Usage(len(prompt.split()), len(text.split())), finish_reason="stop"
        )

    async def aclose(self) -> None:
        """Nothing to release."""
