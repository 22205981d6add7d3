"""Text units the perturbation operators act on: words with the separators between them, and
sentence boundaries.

Words are runs of non-space characters that hold a letter or digit (punctuation attached to a word
travels with it; a run of punctuation alone is part of a separator). Runs of CJK ideographs are
split further (protocol 8.2): by jieba when it is installed (the `zh` extra), else into single
characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from trustmh.errors import UserError

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_RUN = re.compile(f"[{_CJK}]+|[^\\s{_CJK}]+")
# A sentence ends at . ! ? … followed by closing quotes/brackets and whitespace, or at a CJK
# terminator (no space needed); the boundary is where the next sentence starts.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+|[。！？]+[”’」』）)]*\s*")
SEGMENTERS = ("auto", "jieba", "chars")
_WORD_RUN = re.compile(r"(\S*[^\W_]\S*)")  # a run of non-space characters holding a letter or digit


def is_cjk(char: str) -> bool:
    """True for a CJK ideograph."""
    return bool(_CJK_CHAR.match(char))


def has_cjk(text: str) -> bool:
    """True when the text holds a CJK ideograph."""
    return _CJK_CHAR.search(text) is not None


def is_chinese(text: str) -> bool:
    """True when the text has more CJK ideographs than ASCII letters."""
    cjk = len(_CJK_CHAR.findall(text))
    return cjk > 0 and cjk >= sum(c.isascii() and c.isalpha() for c in text)


@dataclass(frozen=True, slots=True)
class Words:
    """A text as words and separators: `seps[0] + words[0] + seps[1] + ... + words[-1] + seps[-1]`."""

    words: tuple[str, ...]
    seps: tuple[str, ...]


@cache
def _jieba() -> Callable[[str], list[str]] | None:
    try:
        import logging

        import jieba
    except ImportError:
        return None
    jieba.setLogLevel(
        logging.WARNING
    )  # its dictionary-loading chatter would reach the CLI's stderr
    return jieba.lcut


def segmenter_name(choice: str = "auto") -> str:
    """The segmenter a choice resolves to: `jieba` or `chars` (UserError for `jieba` when it is
    not installed, or an unknown choice)."""
    if choice not in SEGMENTERS:
        raise UserError(f"segmenter {choice!r}: use one of {', '.join(SEGMENTERS)}")
    if choice == "chars":
        return "chars"
    if _jieba() is not None:
        return "jieba"
    if choice == "jieba":
        raise UserError("segmenter jieba: jieba is not installed; pip install 'trustmh[zh]'")
    return "chars"


def split_cjk(run: str, segmenter: str) -> list[str]:
    """A run of CJK ideographs as words: jieba's, or one word per character."""
    if segmenter == "jieba":
        cut = _jieba()
        assert cut is not None, "segmenter_name() resolves jieba only when it is installed"
        words = [w for w in cut(run, HMM=False) if w]
        if "".join(words) == run:  # jieba keeps every character; never trust offsets blindly
            return words
    return list(run)


def split_words(text: str, segmenter: str = "chars") -> Words:
    """The words of a text and the separators around them (see `Words`)."""
    if not has_cjk(text):  # the common case, in one C-level split: sep, word, sep, ..., word, sep
        tokens = _WORD_RUN.split(text)
        return Words(tuple(tokens[1::2]), tuple(tokens[0::2]))
    words: list[str] = []
    seps: list[str] = []
    pending_sep_start = 0
    for match in _RUN.finditer(text):
        run = match.group()
        if is_cjk(run[0]):
            pieces = split_cjk(run, segmenter)
        elif any(c.isalnum() for c in run):
            pieces = [run]
        else:
            continue  # punctuation only: stays in the separator
        offset = match.start()
        for piece in pieces:
            if any(c.isalnum() for c in piece):  # (an unassigned code point is no word)
                seps.append(text[pending_sep_start:offset])
                words.append(piece)
                pending_sep_start = offset + len(piece)
            offset += len(piece)
    seps.append(text[pending_sep_start:])
    return Words(tuple(words), tuple(seps))


def sentence_boundaries(text: str) -> list[int]:
    """Offsets where an inserted sentence may go: the start, after each sentence end, and the end."""
    bounds = {0, len(text)}
    bounds.update(m.end() for m in _SENTENCE_END.finditer(text))
    return sorted(bounds)
