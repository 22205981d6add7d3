"""Model spec strings: one string names a model everywhere (CLI, config, judge).

openai:MODEL            api.openai.com, key from $OPENAI_API_KEY (or --api-key-env)
openai:MODEL@URL        any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp, DeepSeek...)
openai:MODEL@URL1,URL2  replicas of one deployment: requests spread over them
anthropic:MODEL         Anthropic API (extra: pip install 'trustmh[anthropic]')
replay:NAME             the authors' recorded responses of model NAME
baseline                deterministic rule-based reference (not an LLM)
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from trustmh.errors import UserError

Provider = Literal["openai", "anthropic", "replay", "baseline"]
PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic", "replay", "baseline")
SPEC_HELP = "openai:MODEL, openai:MODEL@URL, anthropic:MODEL, replay:NAME or baseline"
NO_KEY = "none"  # --api-key-env none: send no key (a remote server without authentication)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec."""

    provider: Provider
    model: str
    url: str | None = None

    @property
    def canonical(self) -> str:
        """The spec string in canonical form (cache keys, reports)."""
        if self.provider == "baseline":
            return "baseline"
        return f"{self.provider}:{self.model}" + (f"@{self.url}" if self.url else "")

    @property
    def urls(self) -> tuple[str, ...]:
        """The server URLs: several for the replicas of one deployment (`@URL1,URL2`)."""
        return tuple(self.url.split(",")) if self.url else ()

    @property
    def is_local(self) -> bool:
        """True when every URL points at this machine or a private network (no key needed)."""
        return bool(self.urls) and all(_is_local(url) for url in self.urls)


def _is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host in ("localhost",) or host.endswith(".local"):
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return addr.is_loopback or addr.is_private or addr.is_unspecified


def parse_model_spec(text: str, flag: str = "--model") -> ModelSpec:
    """Parse a model spec, raising a UserError that names the flag and the accepted forms."""
    raw = text.strip()
    if raw == "baseline":
        return ModelSpec("baseline", "baseline")
    provider, sep, rest = raw.partition(":")
    if not sep or not rest:
        raise UserError(f"{flag} {text!r}: not a model spec; use {SPEC_HELP}")
    if provider not in PROVIDERS or provider == "baseline":
        hint = (
            " (local transformers models: serve them with vLLM and use openai:MODEL@URL)"
            if provider == "hf"
            else ""
        )
        raise UserError(f"{flag} {text!r}: unknown backend {provider!r}{hint}; use {SPEC_HELP}")
    if provider == "openai" and "@" in rest:
        model, _, url = rest.partition("@")
        if not model:
            raise UserError(
                f"{flag} {text!r}: the model name before '@' is empty; e.g. openai:llama3@http://127.0.0.1:8000/v1"
            )
        urls = [_check_url(u.strip(), text, flag) for u in url.split(",")]
        if len(set(urls)) != len(urls):
            raise UserError(f"{flag} {text!r}: a replica URL is listed twice")
        return ModelSpec("openai", model, ",".join(urls))
    if "@" in rest and provider != "replay":
        raise UserError(f"{flag} {text!r}: only openai: specs take an @URL; use {SPEC_HELP}")
    return ModelSpec(provider, rest)  # type: ignore[arg-type]


def _check_url(url: str, text: str, flag: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        # the URL is stored with the run and printed in resume commands: no secrets in it
        # (and none echoed in this message either)
        raise UserError(
            f"{flag}: the URL carries credentials (user:password@host); remove them and pass the key "
            "through an environment variable named by --api-key-env"
        )
    bad = parts.scheme not in ("http", "https") or not parts.hostname
    try:
        parts.port  # noqa: B018 - raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        bad = True
    if bad:
        raise UserError(
            f"{flag} {text!r}: malformed URL {url!r}; expected http(s)://HOST[:PORT]/PATH, "
            "e.g. openai:llama3@http://127.0.0.1:8000/v1"
        )
    return url.rstrip("/")


def resolve_api_key(
    spec: ModelSpec, api_key_env: str | None, flag: str = "--api-key-env"
) -> str | None:
    """The API key for a spec, read from the environment only. Returns None when no key is needed.

    A remote OpenAI-compatible URL never receives $OPENAI_API_KEY implicitly: the user names the
    variable (so an OpenAI key is not sent to a third-party server by accident).
    """
    if spec.provider in ("replay", "baseline"):
        return None
    if api_key_env and api_key_env.lower() == NO_KEY:
        return None
    if api_key_env is None:
        if spec.provider == "openai" and spec.url:
            if spec.is_local:
                return None
            raise UserError(
                f"{spec.canonical}: a remote server needs an API key; pass {flag} NAME "
                f"(the environment variable holding it, e.g. DEEPSEEK_API_KEY) or {flag} none"
            )
        api_key_env = "ANTHROPIC_API_KEY" if spec.provider == "anthropic" else "OPENAI_API_KEY"
    if not api_key_env.isidentifier():
        raise UserError(f"{flag} {api_key_env!r}: not an environment variable name")
    key = os.environ.get(api_key_env)
    if not key:
        raise UserError(
            f"{spec.canonical}: the API key variable {api_key_env} is not set; "
            f"export {api_key_env}=... or name another variable with {flag}"
        )
    return key
