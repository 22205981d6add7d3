"""`--max-cost`: the run stops sending before its spend would pass a cap.

The spend is priced from the usage the APIs report (each stored reply's prompt and completion
tokens), over every invocation of the run directory: what earlier invocations paid is read back
from the run store, so a resumed run keeps counting where the last one stopped. Before a request is
sent, its worst case (its input tokens and max_tokens of output) is reserved; it is sent only if
the spend, the reservations of the requests in flight and its own worst case stay within the cap.
When its reply arrives, the reservation gives way to what the usage says it cost.

A request that would not fit is not sent: its sample is left without a score (the next run asks
it), the runner starts no new sample, and the ones in flight finish and are stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from trustmh.errors import UserError
from trustmh.models.spec import parse_model_spec
from trustmh.plan import reply_ceiling
from trustmh.prices import Price, PriceTable, describe, needs_price
from trustmh.tokens import TokenCounter, counter_for
from trustmh.types import GenRequest, Usage


class CostCapReached(Exception):
    """The next request could pass the run's cost cap: it is not sent."""


@dataclass
class CostGuard:
    """The cap, what the run has spent and what its requests in flight may still cost."""

    cap: float
    spent_before: float  # by earlier invocations of this run directory
    prices: dict[str, Price | None]  # by model spec
    counters: dict[str, TokenCounter] = field(default_factory=dict)
    spent: float = 0.0  # by this invocation
    reserved: float = 0.0
    refused: int = 0  # requests not sent because of the cap

    @property
    def stopped(self) -> bool:
        """True once a request was refused."""
        return self.refused > 0

    @property
    def total(self) -> float:
        """The run directory's spend so far."""
        return self.spent_before + self.spent

    def reserve(self, spec: str, request: GenRequest) -> float:
        """Reserve the worst case of a request (0 for a free model); CostCapReached when it
        could pass the cap."""
        price = self.prices.get(spec)
        if price is None or (price.input == 0 and price.output == 0):
            return 0.0
        counter = self.counters.get(spec)
        if counter is None:
            counter = self.counters[spec] = counter_for(spec)
        if counter.encoding is not None:
            inputs = counter.messages(request.messages)
        else:  # no tokenizer: a token is at least one byte of UTF-8, so bytes bound it
            inputs = sum(len(str(m.get("content", "")).encode()) for m in request.messages) + 64
        worst = price.cost(inputs, reply_ceiling(request.params))
        if self.total + self.reserved + worst > self.cap:
            self.refused += 1
            raise CostCapReached(f"the next request could pass --max-cost {self.cap:g}")
        self.reserved += worst
        return worst

    def settle(self, spec: str, reservation: float, usage: Usage | None) -> None:
        """Replace a reservation by what the reply cost (by its usage; the reservation itself
        when the reply reported none). `usage` None: the request failed and cost nothing."""
        self.reserved -= reservation
        if usage is None:
            return
        price = self.prices.get(spec)
        if price is None:
            return
        if usage.prompt_tokens or usage.completion_tokens:
            self.spent += price.cost(usage.prompt_tokens, usage.completion_tokens)
        else:
            self.spent += reservation

    def describe(self) -> str:
        """Where the run stands against its cap, in one line."""
        earlier = f" (${self.spent_before:.4f} by earlier invocations)" if self.spent_before else ""
        return (
            f"spent ${self.total:.4f} of --max-cost ${self.cap:g}{earlier}; "
            f"{self.refused} request(s) not sent because they could have passed it"
        )


def spend_so_far(usage_by_model: Iterable[tuple[str, str, int, int]], prices: PriceTable) -> float:
    """Dollars of the replies a run directory holds that were paid for: rows of (model spec,
    source, prompt tokens, completion tokens); replies from the cache or a replay cost nothing,
    batch replies the batch share."""
    total = 0.0
    for spec, source, prompt, completion in usage_by_model:
        if source not in ("api", "batch"):
            continue
        price = prices.lookup(spec)
        if price is not None:
            total += price.cost(prompt, completion, batch=source == "batch")
    return total


def cost_guard(
    cap: float, specs: Iterable[str], prices: PriceTable, spent_before: float
) -> CostGuard:
    """The guard of a run whose models are `specs`; UserError when a model billed per token has
    no price (the cap could not be kept)."""
    table: dict[str, Price | None] = {}
    for spec in dict.fromkeys(specs):
        price = prices.lookup(spec)
        if price is None and needs_price(spec):
            raise UserError(
                f"--max-cost: {describe(None, spec)}; e.g. a file with [models] "
                f'"{_key(spec)}" = {{ input = 0.15, output = 0.60 }} passed with --prices FILE'
            )
        table[spec] = price
    return CostGuard(cap, spent_before, table)


def _key(spec: str) -> str:
    parsed = parse_model_spec(spec)
    return f"{parsed.provider}:{parsed.model}"
