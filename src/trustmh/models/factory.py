"""Build a backend from a model spec string (after resolving its key from the environment)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustmh.models.base import ModelBackend
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
) -> ModelBackend:
    """The backend named by `text`; UserError on a bad spec or a missing key."""
    spec = parse_model_spec(text, flag)
    key_flag = f"{flag}-api-key-env" if flag in ("--judge", "--simulator") else "--api-key-env"
    key = resolve_api_key(spec, api_key_env, key_flag)
    if spec.provider == "baseline":
        from trustmh.models.baseline import BaselineBackend

        return BaselineBackend()
    if spec.provider == "replay":
        from trustmh.models.replay_conversations import (
            ConversationReplayBackend,
            is_conversation_set,
        )

        if is_conversation_set(spec.model):
            return ConversationReplayBackend(spec.model, data)
        from trustmh.models.replay import ReplayBackend

        return ReplayBackend(spec.model, data)
    if spec.provider == "anthropic":
        from trustmh.models.anthropic import AnthropicBackend

        return AnthropicBackend(spec, key, timeout, concurrency)
    from trustmh.models.openai_compat import OpenAICompatBackend

    return OpenAICompatBackend(spec, key, timeout, concurrency)
