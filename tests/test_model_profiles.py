"""Model parameter profiles (protocol 1.7): the request body each of the paper's 12 models and the
4 MentalAlign judges is sent, checked against its profile and against the providers' rules as the
loopback server applies them; notes, user profile files, reasoning effort and 400 adaptation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import run_cli
from provider_rules import anthropic_rejection, openai_rejection

from trustmh.errors import UserError
from trustmh.models.adapt import anthropic_adaptation, openai_adaptation
from trustmh.models.openai_compat import OpenAICompatBackend, chat_body
from trustmh.models.profiles import (
    Adaptation,
    Profile,
    find_profile,
    load_profiles,
    plan_request,
    unsettable_note,
)
from trustmh.models.spec import parse_model_spec
from trustmh.store import request_key
from trustmh.types import GenParams, GenRequest

CLASSIFY = GenParams(temperature=0.0, max_tokens=512)  # protocol 1.2 classification default
PRIVACY = GenParams(temperature=1.0, max_tokens=365, top_p=1.0)  # privacy tiers 1-2 (EXACT)
ETHICS = GenParams(temperature=0.0, max_tokens=None)  # ethics: the provider's default cap
ELEPHANT_JUDGE = GenParams(temperature=0.0, max_tokens=2)  # ELEPHANT's one-token verdicts
MESSAGES = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "A or B?"})
GATEWAY = "https://gateway.example/v1"
LOCAL = "http://127.0.0.1:8000/v1"
HEADROOM = 25000  # the built-in reasoning headroom

PASS = {  # what an unprofiled model is sent: the subtask's parameters as they are
    "classify": {"temperature": 0.0, "max_tokens": 512},
    "privacy": {"temperature": 1.0, "max_tokens": 365, "top_p": 1.0},
    "ethics": {"temperature": 0.0},
    "judge": {"temperature": 0.0, "max_tokens": 2},
}
OPENAI_REASONING = {  # hidden reasoning: no temperature or top_p, a cap with headroom
    "classify": {"max_completion_tokens": 512 + HEADROOM},
    "privacy": {"max_completion_tokens": 365 + HEADROOM},
    "ethics": {},
    "judge": {"max_completion_tokens": 2 + HEADROOM},
}
GPT_5_1 = {  # reasoning effort none by default: temperature and top_p are settable
    "classify": {"temperature": 0.0, "max_completion_tokens": 512},
    "privacy": {"temperature": 1.0, "top_p": 1.0, "max_completion_tokens": 365},
    "ethics": {"temperature": 0.0},
    "judge": {"temperature": 0.0, "max_completion_tokens": 2},
}
GEMINI = {  # thinks by default, temperature settable; the cap covers the thinking
    "classify": {"temperature": 0.0, "max_tokens": 512 + HEADROOM},
    "privacy": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 365 + HEADROOM},
    "ethics": {"temperature": 0.0},
    "judge": {"temperature": 0.0, "max_tokens": 2 + HEADROOM},
}
CLAUDE_CURRENT = {  # max_tokens required; temperature or top_p, not both
    "classify": {"temperature": 0.0, "max_tokens": 512},
    "privacy": {"temperature": 1.0, "max_tokens": 365},
    "ethics": {"temperature": 0.0, "max_tokens": 4096},
    "judge": {"temperature": 0.0, "max_tokens": 2},
}
CLAUDE_3_7 = {**CLAUDE_CURRENT, "privacy": {"temperature": 1.0, "max_tokens": 365, "top_p": 1.0}}

# (spec as a user would write it, expected profile, expected generation parameters per request)
PAPER_MODELS = [
    ("openai:gpt-5.1", "openai-gpt-5.1+", GPT_5_1),
    ("openai:gpt-4o-mini", "pass-through", PASS),
    ("anthropic:claude-sonnet-4-5-20250929", "anthropic", CLAUDE_CURRENT),
    (f"openai:claude-sonnet-4-5-20250929@{GATEWAY}", "anthropic", {**CLAUDE_CURRENT, "ethics": PASS["ethics"]}),
    (f"openai:gemini-2.5-flash@{GATEWAY}", "gemini-2.5+", GEMINI),
    (f"openai:qwen3-235b-a22b-instruct-2507@{GATEWAY}", "pass-through", PASS),
    ("openai:deepseek-chat@https://api.deepseek.com/v1", "pass-through", PASS),  # DeepSeek-V3.2
    (f"openai:SoulChat2.0@{LOCAL}", "pass-through", PASS),
    (f"openai:Simpsybot@{LOCAL}", "pass-through", PASS),
    (f"openai:PsycoLLM@{LOCAL}", "pass-through", PASS),
    (f"openai:MentalLLaMA-chat-13B@{LOCAL}", "pass-through", PASS),
    (f"openai:Meditron3-8B@{LOCAL}", "pass-through", PASS),
    (f"openai:Meditron3-70B@{LOCAL}", "pass-through", PASS),
]  # fmt: skip
MENTALALIGN_JUDGES = [  # claude-3.7-sonnet, gemini-2.5-flash, gpt-4o, o4-mini
    ("anthropic:claude-3-7-sonnet-20250219", "anthropic-legacy", CLAUDE_3_7),
    ("openai:gemini-2.5-flash@https://generativelanguage.googleapis.com/v1beta/openai", "gemini-2.5+", GEMINI),
    ("openai:gpt-4o", "pass-through", PASS),
    ("openai:o4-mini", "openai-o-series", OPENAI_REASONING),
]  # fmt: skip
REQUESTS = {"classify": CLASSIFY, "privacy": PRIVACY, "ethics": ETHICS, "judge": ELEPHANT_JUDGE}


def backend(spec_text: str, effort: str | None = None, profiles=None):
    """The live backend of a spec (no request is sent: the HTTP client is built on first use)."""
    spec = parse_model_spec(spec_text)
    if spec.provider == "anthropic":
        pytest.importorskip("anthropic")
        from trustmh.models.anthropic import AnthropicBackend

        return AnthropicBackend(
            spec, "sk-ant-test", 5.0, 1, reasoning_effort=effort, profiles=profiles
        )
    return OpenAICompatBackend(spec, None, 5.0, 1, reasoning_effort=effort, profiles=profiles)


def body_of(b, params: GenParams) -> dict:
    """The request body the backend sends for `params` (the same builder its transport calls)."""
    request = GenRequest(MESSAGES, params)
    if b.rules.provider == "anthropic":
        from trustmh.models.anthropic import messages_body

        return messages_body(b.model, request.messages, b.plan(params))
    return chat_body(b.model, request.messages, b.plan(params))


@pytest.mark.parametrize(("spec", "profile", "expected"), PAPER_MODELS + MENTALALIGN_JUDGES,
                         ids=[s for s, _, _ in PAPER_MODELS + MENTALALIGN_JUDGES])  # fmt: skip
def test_paper_models_and_judges_get_their_profiles_body(spec: str, profile: str, expected) -> None:
    b = backend(spec)
    assert b.rules.profile.name == profile
    for kind, params in REQUESTS.items():
        body = body_of(b, params)
        if b.rules.provider == "anthropic":
            assert body["system"] == "Be brief." and body["messages"] == [MESSAGES[1]]
            sent = {k: v for k, v in body.items() if k not in ("model", "messages", "system")}
            assert anthropic_rejection(b.model, body) is None  # the provider's rules accept it
        else:
            assert body["messages"] == list(MESSAGES)
            sent = {k: v for k, v in body.items() if k not in ("model", "messages")}
            assert openai_rejection(b.model, body) is None
        assert body["model"] == parse_model_spec(spec).model
        assert sent == expected[kind], (spec, kind)


def test_the_unsettable_temperature_note_names_the_provider_default() -> None:
    plan = backend("openai:o4-mini").plan(CLASSIFY)
    assert plan.unsettable == {"temperature": 1.0}
    assert unsettable_note(plan.unsettable) == (
        "temperature not settable: provider default 1; replies are not deterministic"
    )
    # privacy asks for temperature 1 and top_p 1: the provider's defaults, nothing lost
    assert backend("openai:o4-mini").plan(PRIVACY).unsettable == {}
    assert backend("openai:gpt-4o-mini").plan(CLASSIFY).unsettable == {}


def test_reasoning_effort_changes_what_gpt_5_1_and_claude_are_sent() -> None:
    gpt = backend("openai:gpt-5.1", effort="low")
    assert body_of(gpt, CLASSIFY) == {"model": "gpt-5.1", "messages": list(MESSAGES),
                                      "reasoning_effort": "low", "max_completion_tokens": 512 + HEADROOM}  # fmt: skip
    assert gpt.plan(CLASSIFY).unsettable == {"temperature": 1.0}
    assert openai_rejection("gpt-5.1", body_of(gpt, CLASSIFY)) is None
    claude = backend("anthropic:claude-sonnet-4-5", effort="medium")
    body = body_of(claude, CLASSIFY)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body["max_tokens"] == 512 + 4096 and "temperature" not in body
    assert anthropic_rejection("claude-sonnet-4-5", body) is None
    assert claude.plan(CLASSIFY).unsettable == {"temperature": 1.0}
    # ethics leaves the cap open: the Messages API default plus the budget
    assert body_of(claude, ETHICS)["max_tokens"] == 4096 + 4096


def test_a_reasoning_effort_the_model_does_not_take_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"--reasoning-effort 'minimal'.*takes low, medium, high"):
        backend("openai:o4-mini", effort="minimal")
    backend("openai:gpt-4o-mini", effort="whatever")  # unprofiled: passed through as asked
    result = run_cli("run", "--model", f"openai:o4-mini@{LOCAL}", "--tasks", "smoke",
                     "--reasoning-effort", "extreme", "--run-dir", str(tmp_path / "r"))  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --reasoning-effort 'extreme'")
    assert "Traceback" not in result.stderr


def test_unchanged_requests_keep_their_cache_keys() -> None:
    b = backend("openai:gpt-4o-mini")
    request = GenRequest(MESSAGES, CLASSIFY)
    historical = json.dumps({"m": "openai:gpt-4o-mini", "p": {"temperature": 0.0, "max_tokens": 512},
                             "msg": MESSAGES}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))  # fmt: skip
    expected = hashlib.sha256(historical.encode()).hexdigest()
    assert request_key(b.spec, request, params=b.plan(CLASSIFY).wire) == expected
    # a profiled model's key covers what it is sent, not what the subtask asked for
    o4 = backend("openai:o4-mini")
    adapted = request_key(o4.spec, request, params=o4.plan(CLASSIFY).wire)
    assert adapted != request_key(o4.spec, request)
    assert adapted == request_key(o4.spec, GenRequest(MESSAGES, GenParams(1.0, 512)),
                                  params=o4.plan(GenParams(1.0, 512)).wire)  # fmt: skip


def test_a_user_profile_file_comes_first(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text(
        '[[profile]]\nname = "local-qwen3"\nmodels = ["qwen3-8b*"]\nreasons = "always"\n'
        "reasoning_headroom = 8192\n"
        '[[profile]]\nname = "my-o4"\nmodels = ["o4-mini"]\n',
        encoding="utf-8",
    )
    profiles = load_profiles(path)
    assert find_profile("openai", "Qwen3-8B-AWQ", profiles).name == "local-qwen3"
    qwen = backend(f"openai:Qwen3-8B-AWQ@{LOCAL}", profiles=profiles)
    assert qwen.plan(CLASSIFY).wire == {"temperature": 0.0, "max_tokens": 512 + 8192}
    assert find_profile("openai", "o4-mini", profiles).name == "my-o4"  # before the built-in
    assert find_profile("openai", "o3", profiles).name == "openai-o-series"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[profile]]\nname = "x"\nmodels = ["a*"]\ncolour = "red"\n', "unknown key(s) colour"),
        ('[[profile]]\nname = "x"\n', "needs a name and a list of model patterns"),
        (
            '[[profile]]\nname = "x"\nmodels = ["a"]\nreasons = "sometimes"\n',
            "reasons = 'sometimes'",
        ),
        ("[[profile]\n", "invalid TOML"),
    ],
)
def test_a_broken_profile_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_profiles(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


# 400 bodies as the providers send them ---------------------------------------------------------
MAX_TOKENS_400 = {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
                            "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}  # fmt: skip
TEMPERATURE_400 = {"error": {"message": "Unsupported value: 'temperature' does not support 0.0 with this model. Only the default (1) value is supported.",
                             "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"}}  # fmt: skip
BOTH_400 = {"type": "error", "error": {"type": "invalid_request_error",
            "message": "`temperature` and `top_p` cannot both be specified for this model. Please use only one."}}  # fmt: skip
THINKING_400 = {"type": "error", "error": {"type": "invalid_request_error",
                "message": "`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation"}}  # fmt: skip


def test_400s_naming_a_parameter_become_adaptations() -> None:
    wire = {"temperature": 0.0, "max_tokens": 512}
    assert openai_adaptation(MAX_TOKENS_400, wire) == Adaptation(
        "max_tokens", "rename", "max_completion_tokens", message=MAX_TOKENS_400["error"]["message"]
    )
    drop = openai_adaptation(TEMPERATURE_400, wire)
    assert (drop.param, drop.action, drop.default) == ("temperature", "drop", 1.0)
    # the client keeps only the inner error object as the exception body: same result
    assert openai_adaptation(TEMPERATURE_400["error"], wire) == drop
    both = anthropic_adaptation(BOTH_400, {"temperature": 1.0, "top_p": 1.0, "max_tokens": 365})
    assert (both.param, both.action) == ("top_p", "drop")  # the protocol's temperature is kept
    thinking = anthropic_adaptation(THINKING_400, {"temperature": 0.0, "max_tokens": 2000})
    assert (thinking.param, thinking.default) == ("temperature", 1.0)


def test_400s_that_cannot_be_adapted() -> None:
    wire = {"temperature": 0.0, "max_tokens": 512}
    no_param = {"error": {"message": "Invalid prompt: flagged.", "type": "invalid_request_error",
                          "param": None, "code": "invalid_prompt"}}  # fmt: skip
    assert openai_adaptation(no_param, wire) is None
    not_sent = {"error": {**TEMPERATURE_400["error"], "param": "top_p"}}
    assert openai_adaptation(not_sent, wire) is None  # names a parameter that was not sent
    context = {"error": {"message": "This model's maximum context length is 8192 tokens.",
                         "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}  # fmt: skip
    assert openai_adaptation(context, {**wire, "messages": []}) is None
    assert (
        anthropic_adaptation({"type": "error", "error": {"message": "prompt is too long"}}, wire)
        is None
    )


def test_learned_adaptations_apply_to_the_plan_and_say_so() -> None:
    profile = Profile(name="unknown", models=("x",))
    learned = (
        Adaptation("max_tokens", "rename", "max_completion_tokens", message="m1"),
        Adaptation("temperature", "drop", default=1.0, message="m2"),
    )
    plan = plan_request(profile, CLASSIFY, provider="openai", learned=learned)
    assert plan.wire == {"max_completion_tokens": 512}
    assert plan.unsettable == {"temperature": 1.0}
    assert any("temperature not sent after the provider rejected it (m2)" in n for n in plan.notes)
