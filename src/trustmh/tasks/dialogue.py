"""Dialogue histories as chat messages, and back as a transcript for a judge.

A history is a sequence of `(speaker, text)` turns. The person seeking help becomes the `user`,
everyone else the `assistant` (the model continues as the helper). Consecutive turns of one side
are merged into one message (blank line between them), so user and assistant alternate; blank
turns are skipped; turns before the first user turn are dropped, because chat APIs (Anthropic's
among them) require the first message to come from the user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from trustmh.types import Message

Turn = tuple[str, str]  # (speaker, text)
TURN_JOINER = "\n\n"  # between consecutive turns of one side merged into one message


def alternating_messages(
    history: Sequence[Turn], user_speaker: str, system: str | None = None
) -> tuple[Message, ...]:
    """The history as alternating `user` / `assistant` messages, after an optional system message."""
    return messages_and_user_spans(history, user_speaker, system)[0]


def messages_and_user_spans(
    history: Sequence[Turn], user_speaker: str, system: str | None = None
) -> tuple[tuple[Message, ...], list[list[int]]]:
    """`alternating_messages`, plus where each user turn's text sits in them:
    `[message_index, start, end]` per turn (the `meta["user_spans"]` a robustness wrapper perturbs;
    the blank line joining two merged turns is not user text)."""
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    spans: list[list[int]] = []
    for speaker, text in history:
        text = text.strip()
        if not text:
            continue
        role = "user" if speaker == user_speaker else "assistant"
        if len(messages) == bool(system) and role == "assistant":
            continue
        start = 0
        if len(messages) > bool(system) and messages[-1]["role"] == role:
            previous = messages[-1]["content"]
            start = len(previous) + len(TURN_JOINER)
            messages[-1] = {"role": role, "content": f"{previous}{TURN_JOINER}{text}"}
        else:
            messages.append({"role": role, "content": text})
        if role == "user":
            spans.append([len(messages) - 1, start, start + len(text)])
    return tuple(messages), spans


def transcript(messages: Sequence[Message], names: Mapping[str, str], separator: str = ": ") -> str:
    """The non-system messages as `Name: text` lines (one per message), for a judge prompt."""
    return "\n".join(
        f"{names[m['role']]}{separator}{m['content']}" for m in messages if m["role"] != "system"
    )
