"""The loopback OpenAI-compatible server, exercised with the real `openai.AsyncOpenAI` client.

These tests also pin down how the installed client reports each injected fault, which is what the
harness's backend has to classify."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from openai_server import (
    FakeOpenAIServer,
    FaultPlan,
    FaultSchedule,
    RemoteServer,
    count_tokens,
    default_reply,
    messages_hash,
    serve,
    spawn_server,
)

MC_PROMPT = "Which is calmer?\nA. a storm\nB. a lake\nC. a siren\nD. a drum"
USER = [{"role": "user", "content": MC_PROMPT}]


def ask(base_url: str, messages: list[dict[str, Any]], *, retries: int = 0, timeout: float = 5.0,
        api_key: str = "test-key", **params: Any) -> Any:  # fmt: skip
    """One chat completion through the real async client (its own retries off unless asked)."""

    async def call() -> Any:
        client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=retries, timeout=timeout
        )
        try:
            return await client.chat.completions.create(
                model="test-model", messages=messages, **params
            )
        finally:
            await client.close()

    return asyncio.run(call())


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# replies -------------------------------------------------------------------------------------
def test_reply_shape_and_word_token_usage() -> None:
    messages = [
        {"role": "system", "content": "You are kind."},
        {"role": "user", "content": MC_PROMPT},
    ]
    with serve() as server:
        completion = ask(server.base_url, messages, max_tokens=50)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "test-model"
    assert completion.created > 0
    [choice] = completion.choices
    assert choice.index == 0 and choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == default_reply(messages)
    assert completion.usage.prompt_tokens == 3 + len(MC_PROMPT.split())
    assert completion.usage.completion_tokens == count_tokens(choice.message.content)
    assert (
        completion.usage.total_tokens
        == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_multiple_choice_reply_is_a_hash_chosen_letter_in_json() -> None:
    letters = set()
    for i in range(40):
        reply = default_reply(user(f"Item {i}\nA. x\nB. y\nC. z\nD. w"))
        payload = json.loads(reply.removeprefix("```json\n").removesuffix("\n```"))
        assert payload["answer"] == payload["choice"]
        letters.add(payload["answer"])
    assert letters == set("ABCD")
    assert default_reply(user("Pick one\nA) yes\nB) no")) in (
        '```json\n{"answer": "A", "choice": "A"}\n```',
        '```json\n{"answer": "B", "choice": "B"}\n```',
    )


def test_rating_yes_no_and_free_text_replies() -> None:
    rating = "Rate it: 4) very, 3) somewhat, 2) not too, 1) not at all.\nInformation: X\nAnswer: "
    assert {default_reply(user(rating + str(i))) for i in range(30)} == {"4", "3", "2", "1"}
    assert default_reply(user("Is it ok to share this? Answer yes or no.")) == "No"
    free = default_reply(user("I feel low today."))
    assert free.startswith("Thank you") and messages_hash(user("I feel low today."))[:8] in free
    assert default_reply(user("I feel low today!")) != free


def test_replies_on_real_prompt_formats(real_data: Path) -> None:
    tier1 = (
        (real_data / "trustmh_privacy/task1/tier_1.txt").read_text(encoding="utf-8").splitlines()[0]
    )
    assert default_reply(user(tier1 + "\nAnswer: ")) in {"1", "2", "3", "4"}
    tier2 = (
        (real_data / "trustmh_privacy/task2/tier_2a.txt")
        .read_text(encoding="utf-8")
        .splitlines()[0]
    )
    assert default_reply(user(tier2 + "\n\nAnswer: ")) in {"-100", "-50", "0", "50", "100"}
    control = (real_data / "trustmh_privacy/task3/tier_3_control_psyqa_test.txt").read_text(
        encoding="utf-8"
    )
    assert default_reply(user(control.splitlines()[0] + " Answer yes or no.")) == "No"
    with open(real_data / "ethicmh/EthicMH.csv", encoding="gb18030", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 125
    for row in rows:  # options are "A.text" lines: every item gets one of its letters
        reply = default_reply(user(f"{row['scenario']}\n{row['options']}\n{row['reasoning_task']}"))
        assert json.loads(reply.strip("`").removeprefix("json"))["answer"] in "ABCD", row["index"]


def test_replies_depend_only_on_the_messages() -> None:
    with serve() as first, serve(faults={"kind": "500", "first": 1}) as second:
        plain = ask(first.base_url, USER).choices[0].message.content
        with pytest.raises(openai.InternalServerError):
            ask(second.base_url, USER)
        after_fault = ask(second.base_url, USER).choices[0].message.content
    assert plain == after_fault == default_reply(USER)


def test_max_tokens_cuts_the_reply() -> None:
    with serve() as server:
        completion = ask(server.base_url, user("Tell me something."), max_tokens=3)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3
    assert completion.choices[0].message.content == " ".join(
        default_reply(user("Tell me something.")).split()[:3]
    )


def test_reply_fn_hook_and_models_list() -> None:
    with serve(reply_fn=lambda messages, model: f"{model}:{len(messages)}") as server:
        assert ask(server.base_url, USER).choices[0].message.content == "test-model:1"
        server.set_reply_fn(None)
        assert ask(server.base_url, USER).choices[0].message.content == default_reply(USER)

        async def models() -> list[str]:
            client = openai.AsyncOpenAI(api_key="k", base_url=server.base_url, max_retries=0)
            try:
                return [m.id async for m in client.models.list()]
            finally:
                await client.close()

        assert "test-model" in asyncio.run(models())


# faults as the client sees them ------------------------------------------------------------------
def test_429_is_rate_limit_error_with_readable_retry_after() -> None:
    with serve(faults={"kind": "429", "retry_after": 7}) as server:
        with pytest.raises(openai.RateLimitError) as info:
            ask(server.base_url, USER)
        assert info.value.status_code == 429
        assert info.value.response.headers["retry-after"] == "7"
        server.set_faults({"kind": "429"})  # default Retry-After: 0
        with pytest.raises(openai.RateLimitError) as info:
            ask(server.base_url, USER)
        assert info.value.response.headers["retry-after"] == "0"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_internal_server_error(status: int) -> None:
    with (
        serve(
            faults={"kind": str(status), "retry_after": 1.5 if status == 503 else None}
        ) as server,
        pytest.raises(openai.InternalServerError) as info,
    ):
        ask(server.base_url, USER)
    assert info.value.status_code == status
    assert info.value.response.headers.get("retry-after") == ("1.5" if status == 503 else None)


def test_slow_reply_is_api_timeout_error() -> None:
    with serve(faults={"kind": "timeout", "delay": 30}) as server:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            ask(server.base_url, USER, timeout=0.3)
        assert time.monotonic() - started < 5
        assert [e["outcome"] for e in server.log()] == ["timeout"]


def test_dropped_connection_is_api_connection_error_not_timeout() -> None:
    with serve(faults={"kind": "drop"}) as server, pytest.raises(openai.APIConnectionError) as info:
        ask(server.base_url, USER)
    assert not isinstance(info.value, openai.APITimeoutError)
    assert "disconnected" in str(info.value.__cause__).lower()


def test_malformed_bodies_as_the_installed_client_reports_them() -> None:
    with serve(faults={"kind": "malformed", "body": "truncated"}) as server:
        # A cut JSON body with status 200: the client raises json's own decode error (a ValueError),
        # not an openai exception.
        with pytest.raises(json.JSONDecodeError):
            ask(server.base_url, USER)
        # A non-JSON content type: no exception, the "completion" is the raw text.
        server.set_faults({"kind": "malformed", "body": "garbage"})
        assert ask(server.base_url, USER) == "<html>upstream error</html>"
        # JSON without choices: a ChatCompletion whose choices is None.
        server.set_faults({"kind": "malformed", "body": "no_choices"})
        completion = ask(server.base_url, USER)
        assert (
            isinstance(completion, openai.types.chat.ChatCompletion) and completion.choices is None
        )


def test_401_fault_and_required_key() -> None:
    with serve(faults={"kind": "401"}) as server, pytest.raises(openai.AuthenticationError):
        ask(server.base_url, USER)
    with serve(api_key="right-key") as server:
        with pytest.raises(openai.AuthenticationError):
            ask(server.base_url, USER, api_key="wrong-key")
        assert ask(server.base_url, USER, api_key="right-key").choices
        log = server.log()
    assert [e["outcome"] for e in log] == ["401", "ok"]
    assert log[1]["auth"] is True
    assert log[1]["auth_sha256"] == hashlib.sha256(b"Bearer right-key").hexdigest()
    assert "right-key" not in json.dumps(log) and "wrong-key" not in json.dumps(log)


# the client's own retries (max_retries > 0) ------------------------------------------------------
def outcomes(server: FakeOpenAIServer) -> list[str]:
    return [e["outcome"] for e in server.log()]


def test_client_retries_429_5xx_timeouts_and_drops_itself() -> None:
    faults = (
        {"kind": "429", "retry_after": 0.2},
        {
            "kind": "503",
            "retry_after": 0.05,
        },  # the client honours Retry-After on any status it retries
        {"kind": "drop"},  # no header: the client's own backoff (about 0.4-0.5 s)
        {"kind": "timeout", "delay": 30},
    )
    with serve() as server:
        for fault in faults:
            server.set_faults({**fault, "first": 1})
            server.reset()
            started = time.monotonic()
            completion = ask(server.base_url, USER, retries=1, timeout=0.5)
            assert completion.choices[0].message.content == default_reply(USER)
            assert outcomes(server) == [fault["kind"], "ok"]
            if fault["kind"] == "429":  # a positive Retry-After (up to 120 s) is the client's wait
                assert time.monotonic() - started >= 0.2


def test_client_does_not_retry_malformed_bodies_or_401() -> None:
    with serve() as server:
        for fault, error in (
            ({"kind": "malformed"}, json.JSONDecodeError),
            ({"kind": "401"}, openai.AuthenticationError),
        ):
            server.set_faults({**fault, "first": 1})
            server.reset()
            with pytest.raises(error):
                ask(server.base_url, USER, retries=2)
            assert outcomes(server) == [fault["kind"]]


def test_client_gives_up_at_once_on_a_retry_after_over_two_minutes() -> None:
    with serve(faults={"kind": "429", "retry_after": 500}) as server:
        with pytest.raises(openai.RateLimitError):
            ask(server.base_url, USER, retries=3)
        assert outcomes(server) == ["429"]


AIOHTTP_FAULTS = [
    ({"kind": "429"}, openai.RateLimitError),
    ({"kind": "503"}, openai.InternalServerError),
    ({"kind": "timeout"}, openai.APITimeoutError),
    ({"kind": "drop"}, openai.APITimeoutError),  # not a plain APIConnectionError as with httpx
    ({"kind": "malformed"}, json.JSONDecodeError),
    ({"kind": "401"}, openai.AuthenticationError),
]


@pytest.mark.parametrize(
    ("fault", "error"), AIOHTTP_FAULTS, ids=[f["kind"] for f, _ in AIOHTTP_FAULTS]
)
def test_fault_classes_with_the_aiohttp_transport(
    fault: dict[str, Any], error: type[Exception]
) -> None:
    """The client's optional aiohttp transport (openai.DefaultAioHttpClient) reports faults
    through the same classes, except that a dropped connection surfaces as a timeout."""

    async def call(base_url: str) -> Any:
        http_client = openai.DefaultAioHttpClient(timeout=0.5)
        client = openai.AsyncOpenAI(
            api_key="k", base_url=base_url, max_retries=0, http_client=http_client
        )
        try:
            return await client.chat.completions.create(model="test-model", messages=USER)
        finally:
            await client.close()

    with serve(faults=fault) as server, pytest.raises(error):
        asyncio.run(call(server.base_url))


# fault selection -----------------------------------------------------------------------------
def run_schedule(plan: Any, requests: list[str]) -> list[str | None]:
    schedule = FaultSchedule(FaultPlan.parse(plan))
    return [(rule.kind if rule else None) for rule, _ in (schedule.decide(p, p) for p in requests)]


def test_first_k_requests_of_each_prompt() -> None:
    assert run_schedule({"kind": "429", "first": 2}, ["a", "b", "a", "a", "b", "b", "a"]) == [
        "429", "429", "429", None, "429", None, None,
    ]  # fmt: skip


def test_every_nth_after_and_limit() -> None:
    assert run_schedule({"kind": "500", "every": 3}, list("abcdefg")) == [
        None,
        None,
        "500",
        None,
        None,
        "500",
        None,
    ]
    burst = run_schedule({"kind": "503", "after": 2, "limit": 3}, list("abcdefg"))
    assert burst == [None, None, "503", "503", "503", None, None]


def test_first_matching_rule_wins_and_contains() -> None:
    plan = [
        {"kind": "429", "first": 1},
        {"kind": "500", "first": 2},
        {"kind": "drop", "contains": "x"},
    ]
    assert run_schedule(plan, ["a", "a", "a", "x", "x", "x", "x"]) == [
        "429",
        "500",
        None,
        "429",
        "500",
        "drop",
        "drop",
    ]


def test_fraction_is_seeded_and_independent_of_arrival_order() -> None:
    prompts = [f"p{i}" for i in range(400)]
    plan = {"seed": 3, "rules": [{"kind": "502", "fraction": 0.25}]}
    forward = dict(zip(prompts, run_schedule(plan, prompts), strict=True))
    backward = dict(zip(reversed(prompts), run_schedule(plan, prompts[::-1]), strict=True))
    assert forward == backward
    hit = sum(v is not None for v in forward.values())
    assert 60 <= hit <= 140  # about a quarter
    reseeded = run_schedule({"seed": 4, "rules": [{"kind": "502", "fraction": 0.25}]}, prompts)
    assert reseeded != list(forward.values())


def test_prompt_subset_fails_every_attempt_of_chosen_prompts() -> None:
    prompts = [f"p{i}" for i in range(200)] * 3
    result = run_schedule({"seed": 1, "rules": [{"kind": "503", "prompts": 0.1}]}, prompts)
    by_prompt: dict[str, set[Any]] = {}
    for prompt, outcome in zip(prompts, result, strict=True):
        by_prompt.setdefault(prompt, set()).add(outcome)
    assert all(len(v) == 1 for v in by_prompt.values())  # all attempts agree
    chosen = sum(v == {"503"} for v in by_prompt.values())
    assert 8 <= chosen <= 35


def test_bad_fault_plans_are_rejected() -> None:
    with pytest.raises(ValueError, match="fault kind"):
        FaultPlan.parse({"kind": "418"})
    with pytest.raises(ValueError, match="unknown fault rule keys"):
        FaultPlan.parse({"kind": "429", "frac": 0.5})


# control, log, subprocess ---------------------------------------------------------------------
def test_control_endpoints_switch_faults_and_reset_the_log(tmp_path: Path) -> None:
    log_file = tmp_path / "requests.jsonl"
    with serve(log_file=log_file) as server:
        remote = RemoteServer(server.base_url)
        ask(server.base_url, USER)
        remote.set_faults([{"kind": "503", "every": 2}])
        ask(server.base_url, user("one"))
        with pytest.raises(openai.InternalServerError):
            ask(server.base_url, user("two"))
        entries = remote.log()
        assert [e["n"] for e in entries] == [1, 2, 3]
        assert [e["outcome"] for e in entries] == ["ok", "ok", "503"]
        assert entries[2]["prompt_hash"] == messages_hash(user("two"))
        assert entries[0]["model"] == "test-model" and entries[0]["attempt"] == 0
        assert entries[0]["time"] <= entries[1]["time"] <= entries[2]["time"]
        remote.reset()
        assert remote.log() == []
        remote.set_faults(None)
        ask(server.base_url, user("two"))
        assert [e["outcome"] for e in server.log()] == ["ok"]
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [e["outcome"] for e in lines] == ["ok", "ok", "503", "ok"]


def test_serves_many_concurrent_connections() -> None:
    async def burst(base_url: str, n: int) -> list[str]:
        client = openai.AsyncOpenAI(api_key="k", base_url=base_url, max_retries=0, timeout=10)
        try:
            replies = await asyncio.gather(
                *(
                    client.chat.completions.create(model="test-model", messages=user(f"q{i}"))
                    for i in range(n)
                )
            )
        finally:
            await client.close()
        return [r.choices[0].message.content for r in replies]

    with serve(latency=0.3) as server:
        started = time.monotonic()
        replies = asyncio.run(burst(server.base_url, 150))
        elapsed = time.monotonic() - started
    assert replies == [default_reply(user(f"q{i}")) for i in range(150)]
    # concurrently: 150 x 0.3 s would take 45 s one at a time; the bound leaves room for a loaded
    # 2-core machine (it was 2.5 s, which the README's test command failed on under load)
    assert elapsed < 15


def test_subprocess_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log_file = tmp_path / "server.jsonl"
    monkeypatch.setenv("FAKE_SERVER_KEY", "sub-key")  # the child reads the key from the environment
    faults = {"kind": "429", "first": 1}
    with spawn_server(faults=faults, log_file=log_file, api_key_env="FAKE_SERVER_KEY") as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
        with pytest.raises(openai.AuthenticationError):
            ask(server.base_url, USER, api_key="other-key")
        with pytest.raises(openai.RateLimitError):
            ask(server.base_url, USER, api_key="sub-key")
        assert ask(server.base_url, USER, api_key="sub-key").choices[
            0
        ].message.content == default_reply(USER)
        assert [e["outcome"] for e in server.log()] == ["401", "429", "ok"]
        process = server.process
    assert process.poll() is not None  # stopped on leaving the block
    lines = log_file.read_text().splitlines()
    assert [json.loads(line)["outcome"] for line in lines] == ["401", "429", "ok"]
    assert "sub-key" not in log_file.read_text()
