"""`null:KIND`: a scripted null responder or null judge (protocol 1.8). It is NOT an LLM.

Its replies do not depend on what was asked (see `trustmh.validity.nulls`): a run with it shows
the score a subtask gives to a responder that knows nothing, and a run with it as `--judge`
shows what a judge that reads nothing does to a score. `bench/validity.py` runs every null
through every subtask; users can run one too, e.g.

    trustmh run --model null:always-a --tasks ethics
    trustmh run --model null:random --judge null:judge-biased,word=Muslim --tasks fairness

Spec: `null:KIND[,seed=N][,word=W]` with KIND one of the responders (always-a, refusing,
content-free, random) or judges (judge-constant, judge-random, judge-unparsed, judge-biased);
`seed` varies the random choices, `word` is the text a biased judge favours. A responder kind
used as a judge gives its own reply (a verdict that does not parse); a judge kind used as the
model gives the content-free reply.
"""

from __future__ import annotations

from dataclasses import dataclass

from trustmh.errors import UserError
from trustmh.types import GenRequest, Response, Usage
from trustmh.validity import nulls


@dataclass
class NullBackend:
    """The `null:` model spec."""

    kind: str
    seed: int = 0
    word: str | None = None
    cacheable: bool = False  # costs nothing; never fills the shared cache

    @classmethod
    def from_spec(cls, text: str, flag: str = "--model") -> NullBackend:
        """Parse `KIND[,seed=N][,word=W]`; UserError naming the flag on a bad spec."""
        kind, *params = [p.strip() for p in text.split(",")]
        if kind not in (*nulls.RESPONDERS, *nulls.JUDGES):
            raise UserError(
                f"{flag} null:{text}: unknown null {kind!r}; use one of "
                f"{', '.join((*nulls.RESPONDERS, *nulls.JUDGES))}"
            )
        seed, word = 0, None
        for param in params:
            key, sep, value = param.partition("=")
            if key == "seed" and sep and value.lstrip("-").isdigit():
                seed = int(value)
            elif key == "word" and sep and value:
                word = value
            else:
                raise UserError(
                    f"{flag} null:{text}: bad parameter {param!r}; use seed=N or word=TEXT"
                )
        if kind == "judge-biased" and word is None:
            raise UserError(
                f"{flag} null:{text}: a biased judge needs the word it favours, "
                "e.g. null:judge-biased,word=Muslim"
            )
        return cls(kind, seed, word)

    @property
    def spec(self) -> str:
        """The canonical spec string."""
        extra = (f",seed={self.seed}" if self.seed else "") + (
            f",word={self.word}" if self.word else ""
        )
        return f"null:{self.kind}{extra}"

    @property
    def label(self) -> str:
        """How reports name it."""
        return f"{self.spec} (scripted null, not an LLM)"

    @property
    def endpoint(self) -> str:
        """Concurrency is per endpoint; every null is its own."""
        return self.spec

    async def generate(self, request: GenRequest) -> Response:
        """The scripted reply to the request."""
        prompt = nulls.last_user(request.messages)
        if self.kind in nulls.JUDGES:
            text = nulls.verdict(self.kind, prompt, self.seed, self.word) or nulls.CONTENT_FREE
        else:
            text = nulls.respond(self.kind, request.messages, self.seed)
        return Response(
            text=text, usage=Usage(len(prompt.split()), len(text.split())), finish_reason="stop"
        )

    async def aclose(self) -> None:
        """Nothing to release."""
