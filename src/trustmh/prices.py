"""Model prices: the table shipped with the package (`bundled/prices/prices.toml`), overridden by
a user file of the same shape (`--prices FILE`). Prices are US dollars per million tokens."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from trustmh.errors import UserError
from trustmh.models.spec import parse_model_spec

FREE_PROVIDERS = ("replay", "baseline")  # answered on this machine, from recordings or rules


@dataclass(frozen=True)
class Price:
    """What one model's tokens cost."""

    key: str  # the table entry that priced it ("openai:gpt-4o-mini", or "free")
    input: float  # USD per million input tokens
    output: float  # USD per million output tokens
    source: str  # where the entry comes from (the bundled table, a user file)
    batch: float = 1.0  # share of the price the provider's batch API charges

    def cost(self, input_tokens: int, output_tokens: int, batch: bool = False) -> float:
        """US dollars for these tokens (at the batch price when `batch`)."""
        usd = (input_tokens * self.input + output_tokens * self.output) / 1e6
        return usd * self.batch if batch else usd


@dataclass(frozen=True)
class PriceTable:
    """Entries by key (`provider:model` or a full spec with `@URL`), and batch shares by provider."""

    entries: dict[str, tuple[float, float, str]]
    batch: dict[str, float]

    def lookup(self, spec: str) -> Price | None:
        """The price of a model spec, or None when no entry covers it. Replay and the baseline
        are free; `openai:MODEL@URL` takes an entry for that exact spec, else the model's."""
        parsed = parse_model_spec(spec)
        share = self.batch.get(parsed.provider, 1.0)
        if parsed.provider in FREE_PROVIDERS:
            return Price("free", 0.0, 0.0, "answered on this machine", share)
        if parsed.canonical in self.entries:
            return self._price(parsed.canonical, share)
        name = f"{parsed.provider}:{parsed.model}"
        if name in self.entries:
            return self._price(name, share)
        # a dated snapshot (gpt-4o-mini-2024-07-18) takes the longest entry it extends
        stems = [k for k in self.entries if "@" not in k and name.startswith(k + "-")]
        return self._price(max(stems, key=len), share) if stems else None

    def _price(self, key: str, share: float) -> Price:
        inp, out, source = self.entries[key]
        return Price(key, inp, out, source, share)


BUNDLED = "bundled table"


def _read(
    text: str, source: str
) -> tuple[dict[str, tuple[float, float, str]], dict[str, float], str]:
    """Entries, batch shares and a description of one price file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{source}: invalid TOML: {exc}") from None
    as_of = data.get("as_of")
    label = f"{source} (as of {as_of})" if as_of else source
    entries: dict[str, tuple[float, float, str]] = {}
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise UserError(
            f"{source}: [models] must be a table of 'provider:model' = {{input, output}}"
        )
    for key, value in models.items():
        try:
            parse_model_spec(key, flag=f"{source}: models key")
            inp, out = float(value["input"]), float(value["output"])
            if inp < 0 or out < 0:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise UserError(
                f'{source}: models."{key}" needs input and output prices in USD per million '
                "tokens, e.g. { input = 0.15, output = 0.60 }"
            ) from None
        entries[key] = (inp, out, label)
    batch = data.get("batch", {})
    if not isinstance(batch, dict) or not all(
        isinstance(v, int | float) and 0 < v <= 1 for v in batch.values()
    ):
        raise UserError(f"{source}: [batch] holds shares between 0 and 1, e.g. openai = 0.5")
    return entries, {k: float(v) for k, v in batch.items()}, label


def load_prices(user_file: Path | None = None) -> PriceTable:
    """The bundled table with the user's file (if any) laid over it."""
    text = resources.files("trustmh").joinpath("bundled/prices/prices.toml").read_text("utf-8")
    entries, batch, _ = _read(text, BUNDLED)
    if user_file is not None:
        try:
            own = user_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(
                f"--prices {user_file}: cannot read the file ({exc.strerror})"
            ) from None
        more, more_batch, _ = _read(own, f"--prices {user_file}")
        entries.update(more)
        batch.update(more_batch)
    return PriceTable(entries, batch)


def describe(price: Price | None, spec: str) -> str:
    """One line saying how a model is priced."""
    if price is None:
        return (
            f"{spec}: no price (add one with --prices FILE); its tokens are shown without dollars"
        )
    if price.key == "free":
        return f"{spec}: free ({price.source})"
    return (
        f"{spec}: ${price.input:g} / ${price.output:g} per million input/output tokens "
        f"({price.key}, {price.source})"
    )


def needs_price(spec: str) -> bool:
    """True for models billed per token by a provider: not replayed, not the baseline, not a
    server on this machine or a private network."""
    parsed = parse_model_spec(spec)
    return parsed.provider not in FREE_PROVIDERS and not parsed.is_local
