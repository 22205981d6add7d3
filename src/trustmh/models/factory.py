"""Build a backend from a model spec string (after resolving its key from the environment)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustmh.errors import UserError
from trustmh.models.base import ModelBackend
from trustmh.models.profiles import Profile
from trustmh.models.spec import parse_model_spec, resolve_api_key

if TYPE_CHECKING:
    from trustmh.data.sources import DataContext


def build_backend(
    text: str,
    *,
    api_key_env: str | None,
    timeout: float,
    concurrency: int,
    data: DataContext,
    flag: str = "--model",
    profiles: tuple[Profile, ...] | None = None,
    reasoning_effort: str | None = None,
) -> ModelBackend:
    """The backend named by `text`; UserError on a bad spec, a missing key or a reasoning effort
    the model does not take. `profiles` are the parameter profiles (protocol 1.7) of the live
    backends (default: the built-in table)."""
    spec = parse_model_spec(text, flag)
    key_flag = f"{flag}-api-key-env" if flag in ("--judge", "--simulator") else "--api-key-env"
    key = resolve_api_key(spec, api_key_env, key_flag)
    if reasoning_effort is not None and spec.provider in ("baseline", "replay"):
        effort_flag = "--judge-reasoning-effort" if flag == "--judge" else "--reasoning-effort"
        raise UserError(
            f"{effort_flag}: {spec.canonical} is not a live model; the option applies to openai: and anthropic: models"
        )
    if spec.provider == "baseline":
        from trustmh.models.baseline import BaselineBackend

        return BaselineBackend()
    if spec.provider == "null":
        from trustmh.models.null import NullBackend

        return NullBackend.from_spec(spec.model, flag)
    if spec.provider == "replay":
        from trustmh.models.replay_conversations import (
            ConversationReplayBackend,
            is_conversation_set,
        )

        if is_conversation_set(spec.model):
            return ConversationReplayBackend(spec.model, data)
        from trustmh.models.replay import ReplayBackend

        return ReplayBackend(spec.model, data)
    rules = {"profiles": profiles, "reasoning_effort": reasoning_effort,
             "effort_flag": "--judge-reasoning-effort" if flag == "--judge" else "--reasoning-effort"}  # fmt: skip
    if spec.provider == "anthropic":
        from trustmh.models.anthropic import AnthropicBackend

        return AnthropicBackend(spec, key, timeout, concurrency, **rules)
    if spec.provider == "local":
        from trustmh.models.local import LocalBackend

        return LocalBackend(spec, timeout, concurrency, flag, **rules)
    from trustmh.models.openai_compat import OpenAICompatBackend

    if len(spec.urls) > 1:
        from dataclasses import replace

        from trustmh.models.replicas import ReplicaSetBackend

        members = [OpenAICompatBackend(replace(spec, url=url), key, timeout, concurrency, **rules)
                   for url in spec.urls]  # fmt: skip
        return ReplicaSetBackend(spec, members, concurrency)  # type: ignore[arg-type]
    return OpenAICompatBackend(spec, key, timeout, concurrency, **rules)
