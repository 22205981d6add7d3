"""A loopback OpenAI-compatible chat server with deterministic replies and fault injection.

Used by the tests (in-process, in a background thread) and by `bench/throughput.py` (as a
subprocess, so its CPU is not counted against the client).

In-process::

    with serve(latency=0, faults={"rules": [{"kind": "429", "first": 1, "retry_after": 0}]}) as server:
        ...  # point the client at server.base_url
        server.set_faults([{"kind": "drop", "fraction": 0.2}])
        entries = server.log()

As a subprocess (prints ``READY <base_url>`` once listening)::

    python tests/openai_server.py --port 0 --latency 1.0 [--faults JSON] [--log-file F] [--seed S]

Replies are a pure function of the request messages (see `default_reply`), so a run with faults
ends with the same results as a run without. Usage is counted as the real API counts it for
OpenAI model names (`gpt-4o-mini`, `gpt-4.1`...: tiktoken's vocabulary through toktok, plus the
chat format's tokens per message, and answers cut at max_tokens tokens), so that estimates can be
checked against it; for other names (`test-model`) tokens are whitespace-separated words.

Faults: a plan is a list of rules (first match wins), each a fault `kind` plus selection
conditions that must all hold (a rule without conditions matches every request):
- `first: K`        the first K requests of each distinct prompt (since the plan was set);
- `every: N`        every Nth request (the Nth, 2Nth, ... since the plan was set);
- `fraction: p`     a seeded coin per (prompt, attempt): order-independent under concurrency;
- `prompts: p`      a seeded subset of the distinct prompts (every attempt of a chosen prompt);
- `contains: s`     the prompt text contains s;
- `after: M`        only after the first M requests since the plan was set;
- `limit: L`        the rule fires at most L times (with `after`, a burst of L requests).
Kinds: 429 (with `retry_after` seconds, default 0), 500, 502, 503 (optional `retry_after`), 401,
`timeout` (answer after `delay` seconds, default 30), `hang` (never answer: the request is held
until the client gives up), `trickle` (status 200 and a Content-Length at once, then the reply body
one byte every `delay` seconds, so a client whose timeout restarts with each byte never gives up),
`malformed` (status 200 with `body`: truncated | garbage | no_choices), `drop` (close the
connection without a response), `400` (a request error: `message`, optional `param`, as a
provider's 400 that adaptation cannot fix).
Faults apply to chat completions; `api_key` makes every /v1 request without that key a 401.
GET /v1/models (a client's reachability check) is counted in `models_requests`, not logged, and
`hang_models=True` makes it hang too (a server that answers nothing at all).

Provider rules (`provider_rules.py`, on unless `rules=False`): model ids of OpenAI's reasoning
families (o1/o3/o4-mini, gpt-5, gpt-5.1+) and Claude models get the providers' 400s with their
real error bodies, hidden reasoning tokens and thinking blocks. `reasoning_style` ("think" or
"reasoning_content") makes every other model reason first, inside the content or apart; a reply
function may also return its own `<think>...</think>` reasoning before the answer.

Control endpoints: `POST /_control` {"faults": plan, "latency": s, "seed": n, "reset": bool},
`GET /_log`, `POST /_reset`. The log records each /v1 request: number, time (and, for a
successful chat reply, `replied`: when it was sent), path, model, sha256 of
the messages, the sampling seed if any, attempt number of that prompt, whether an Authorization
header came and the sha256 of its value (never the value), the generation parameters received
(`params`) and the outcome ("ok", the fault kind, or "400" with the provider's `error` message).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from aiohttp import web
from provider_rules import (
    REASONING_STYLES,
    anthropic_error_body,
    anthropic_rejection,
    default_reasoning,
    hidden_reasoning_scale,
    openai_rejection,
    split_think,
)

ReplyFn = Callable[[list[dict[str, Any]], str], str]  # (messages, model) -> reply text

FAULT_KINDS = ("429", "500", "502", "503", "401", "400", "timeout", "malformed", "drop", "hang",
               "trickle")  # fmt: skip
# generation parameters recorded in the request log
PARAM_KEYS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "reasoning_effort",
              "thinking")  # fmt: skip
MALFORMED_BODIES = ("truncated", "garbage", "no_choices")
DEFAULT_MODELS = ("test-model", "bench-model")
STATE: web.AppKey[ServerState] = web.AppKey("state")

_LETTER_OPTION = re.compile(r"^[ \t]*\(?([A-Z])[.)]", re.M)
_SCALE_POINT = re.compile(r"(?<![\w-])(-?\d+)\)\s")
_YES_NO = re.compile(r"\byes\s*(?:or|/)\s*no\b", re.I)


# replies -------------------------------------------------------------------------------------
def messages_hash(messages: list[dict[str, Any]]) -> str:
    """sha256 of the messages (role and content only), in a canonical JSON form."""
    canonical = [{"role": m.get("role"), "content": m.get("content")} for m in messages]
    blob = json.dumps(canonical, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


# OpenAI model-name prefixes and their vocabulary (as tiktoken's model table has them)
_VOCABULARIES = (
    (("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4"), "o200k_base"),
    (("gpt-4", "gpt-3.5"), "cl100k_base"),
)


def vocabulary(model: str) -> str | None:
    """The tiktoken vocabulary of an OpenAI model name (when toktok is installed), else None."""
    try:
        import toktok  # noqa: F401
    except ImportError:
        return None
    return next((v for prefixes, v in _VOCABULARIES if model.startswith(prefixes)), None)


def count_tokens(text: str, model: str = "") -> int:
    """Tokens of a text as this server counts them: the model's vocabulary for OpenAI names,
    else whitespace-separated words."""
    name = vocabulary(model)
    if name is None:
        return len(text.split())
    import toktok

    return toktok.batch_count([text], name, threads=1)[0]


def prompt_tokens(messages: list[dict[str, Any]], model: str = "") -> int:
    """A chat request's input tokens: for OpenAI names as OpenAI documents them (each message's
    content plus 3 tokens, plus 3 priming the reply), else the words of the contents."""
    counts = [count_tokens(_text(m.get("content")), model) for m in messages]
    return sum(counts) + (3 * len(counts) + 3 if vocabulary(model) else 0)


def cut_to_tokens(text: str, max_tokens: int, model: str) -> str:
    """The text cut to its first `max_tokens` tokens of an OpenAI model's vocabulary."""
    import toktok

    return toktok.truncate(text, max(max_tokens, 0), vocabulary(model) or "o200k_base")[0]


def _text(content: Any) -> str:
    """The text of a message content (a string, or a list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def lettered_options(text: str) -> list[str]:
    """Option letters of a multiple-choice prompt (lines like `A. x` or `B) y`), in order, when
    they run A, B, C... with at least two options; else []."""
    letters: list[str] = []
    for letter in _LETTER_OPTION.findall(text):
        if letter == chr(ord("A") + len(letters)):
            letters.append(letter)
    return letters if len(letters) >= 2 else []


def rating_scale(text: str) -> list[str]:
    """Points of a rating scale (`4) very ..., 3) ...`) in an `Answer:` prompt; else []."""
    if "Answer:" not in text:
        return []
    points = list(dict.fromkeys(_SCALE_POINT.findall(text)))
    return points if len(points) >= 2 else []


def default_reply(messages: list[dict[str, Any]], draw: int = 0) -> str:
    """The server's reply: a letter for lettered options, a scale point for a rating prompt, "No"
    to a yes/no question, else a short supportive sentence; choices come from a sha256 of the
    messages (and of `draw` when it is not 0: a model sampling at its default temperature 1 answers
    each repeat of a prompt afresh)."""
    digest = messages_hash(messages)
    pick = int(digest[:16], 16) if not draw else int(_sha256(f"{digest}|{draw}")[:16], 16)
    last_user = next(
        (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    letters = lettered_options(last_user)
    if letters:
        letter = letters[pick % len(letters)]
        return f'```json\n{{"answer": "{letter}", "choice": "{letter}"}}\n```'
    scale = rating_scale(last_user)
    if scale:
        return scale[pick % len(scale)]
    if _YES_NO.search(last_user):
        return "No"
    return f"Thank you for telling me this; it sounds hard, and you deserve support. (ref {digest[:8]})"


# faults --------------------------------------------------------------------------------------
def _unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from the parts (sha256, not Python's salted hash)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:16], 16) / 2**64


@dataclass
class FaultRule:
    """One fault and the requests it hits (all given conditions must hold)."""

    kind: str
    first: int | None = None
    every: int | None = None
    fraction: float | None = None
    prompts: float | None = None
    contains: str | None = None
    after: int = 0
    limit: int | None = None
    retry_after: float | None = None
    delay: float = 30.0
    body: str = "truncated"
    message: str = "Invalid request."  # kind 400: the provider's message
    param: str | None = None  # kind 400: the parameter it names (None: none)

    def __post_init__(self) -> None:
        self.kind = str(self.kind)
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind {self.kind!r}: expected one of {', '.join(FAULT_KINDS)}")
        if self.body not in MALFORMED_BODIES:
            raise ValueError(
                f"malformed body {self.body!r}: expected one of {', '.join(MALFORMED_BODIES)}"
            )
        if self.kind == "429" and self.retry_after is None:
            self.retry_after = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        """A rule from its JSON form; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault rule keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


@dataclass
class FaultPlan:
    """Fault rules (first match wins) and the seed of their coins."""

    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 0

    @classmethod
    def parse(cls, spec: Any, seed: int = 0) -> FaultPlan:
        """A plan from None, a rule dict, a list of rule dicts, or {"rules": [...], "seed": n}."""
        if spec is None:
            return cls([], seed)
        if isinstance(spec, FaultPlan):
            return spec
        if isinstance(spec, str):
            spec = json.loads(spec)
        if isinstance(spec, dict) and "kind" in spec:
            spec = [spec]
        if isinstance(spec, dict):
            seed = int(spec.get("seed", seed))
            spec = spec.get("rules", [])
        rules = [r if isinstance(r, FaultRule) else FaultRule.from_dict(r) for r in spec]
        return cls(rules, seed)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of the plan."""
        return {"seed": self.seed, "rules": [asdict(r) for r in self.rules]}


class FaultSchedule:
    """A plan plus the counters its conditions need (reset whenever the plan is set)."""

    def __init__(self, plan: FaultPlan):
        self.plan = plan
        self.requests = 0
        self.attempts: dict[str, int] = {}
        self.fired = [0] * len(plan.rules)

    def decide(self, prompt_hash: str, text: str) -> tuple[FaultRule | None, int]:
        """The rule hitting this request (or None) and the prompt's attempt number (0-based)."""
        self.requests += 1
        attempt = self.attempts.get(prompt_hash, 0)
        self.attempts[prompt_hash] = attempt + 1
        for index, rule in enumerate(self.plan.rules):
            if self._matches(index, rule, prompt_hash, text, attempt):
                self.fired[index] += 1
                return rule, attempt
        return None, attempt

    def _matches(
        self, index: int, rule: FaultRule, prompt_hash: str, text: str, attempt: int
    ) -> bool:
        seed = self.plan.seed
        return not (
            (rule.limit is not None and self.fired[index] >= rule.limit)
            or self.requests <= rule.after
            or (rule.first is not None and attempt >= rule.first)
            or (rule.every is not None and self.requests % rule.every != 0)
            or (rule.contains is not None and rule.contains not in text)
            or (
                rule.prompts is not None
                and _unit(seed, index, "prompt", prompt_hash) >= rule.prompts
            )
            or (
                rule.fraction is not None
                and _unit(seed, index, "try", prompt_hash, attempt) >= rule.fraction
            )
        )


# the server ----------------------------------------------------------------------------------
def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class ServerState:
    """Configuration, fault counters and the request log, shared by the handlers.

    A lock guards it because tests read the log from another thread."""

    def __init__(
        self,
        latency: float = 0.0,
        faults: Any = None,
        seed: int = 0,
        log_file: Path | None = None,
        reply_fn: ReplyFn | None = None,
        api_key: str | None = None,
        models: tuple[str, ...] = DEFAULT_MODELS,
        reasoning_style: str | None = None,
        rules: bool = True,
        hang_models: bool = False,
    ):
        self.latency = latency
        self.reply_fn = reply_fn
        self.models_requests = 0  # GET /v1/models received
        self.hang_models = hang_models
        self.models = models
        if reasoning_style not in (None, *REASONING_STYLES):
            raise ValueError(
                f"reasoning_style {reasoning_style!r}: expected one of {REASONING_STYLES}"
            )
        self.reasoning_style = reasoning_style
        self.rules = rules
        # Only the hash of the expected Authorization header is kept, never the key itself.
        self.key_sha256 = _sha256(f"Bearer {api_key}") if api_key else None
        self.lock = threading.Lock()
        self.entries: list[dict[str, Any]] = []
        self.schedule = FaultSchedule(FaultPlan.parse(faults, seed))
        self._log_stream: IO[str] | None = None
        if log_file:
            self._log_stream = open(log_file, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def set_faults(self, faults: Any, seed: int | None = None) -> None:
        """Install a fault plan (counters start afresh)."""
        plan = FaultPlan.parse(faults, self.schedule.plan.seed)
        if seed is not None:
            plan = FaultPlan(plan.rules, seed)
        with self.lock:
            self.schedule = FaultSchedule(plan)

    def reset(self) -> None:
        """Clear the log and the fault counters (the plan is kept; numbering restarts at 1)."""
        with self.lock:
            self.entries.clear()
            self.schedule = FaultSchedule(self.schedule.plan)

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Number, store and (optionally) append an entry to the JSONL log file."""
        with self.lock:
            entry = {"n": len(self.entries) + 1, "time": time.time(), **entry}
            self.entries.append(entry)
            if self._log_stream:
                self._log_stream.write(json.dumps(entry) + "\n")
                self._log_stream.flush()
        return entry

    def log(self) -> list[dict[str, Any]]:
        """A copy of the request log."""
        with self.lock:
            return [dict(e) for e in self.entries]

    def close(self) -> None:
        """Close the log file."""
        if self._log_stream:
            self._log_stream.close()
            self._log_stream = None


def _auth_fields(request: web.Request) -> dict[str, Any]:
    header = request.headers.get("Authorization")
    return {
        "auth": header is not None,
        "auth_sha256": _sha256(header) if header is not None else None,
    }


def _auth_rejected(state: ServerState, auth: dict[str, Any]) -> bool:
    return state.key_sha256 is not None and auth["auth_sha256"] != state.key_sha256


def _unauthorized() -> web.Response:
    return web.json_response(
        _error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
        status=401,
    )


def _params(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in PARAM_KEYS if k in body}


def _last_user(messages: list[dict[str, Any]]) -> str:
    return next(
        (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )


def anthropic_message(
    state: ServerState, body: dict[str, Any]
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """(HTTP status, reply object, log fields) of a Messages API request body: the same
    deterministic replies (system text goes first, as a system message would), Anthropic's
    parameter rules and extended thinking. Also each request of a message batch."""
    messages = list(body["messages"])
    if body.get("system"):
        messages.insert(0, {"role": "system", "content": body["system"]})
    prompt_hash = messages_hash(messages)
    model = str(body.get("model", ""))
    entry = {"model": model, "prompt_hash": prompt_hash, "attempt": None,
             "temperature": body.get("temperature"), "params": _params(body)}  # fmt: skip
    rejected = anthropic_rejection(model, body) if state.rules else None
    if rejected is not None:
        entry.update(outcome="400", error=rejected)
        return 400, anthropic_error_body(rejected, f"req_{prompt_hash[:24]}"), entry
    reply = state.reply_fn(messages, model) if state.reply_fn else default_reply(messages)
    answer, thought = split_think(reply)
    thinking = body.get("thinking")
    content: list[dict[str, Any]] = []
    budget = body["max_tokens"] if isinstance(body.get("max_tokens"), int) else None
    stop_reason = "end_turn"
    used = 0
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        words = (thought or default_reasoning(_last_user(messages), answer)).split()
        if budget is not None and len(words) >= budget:
            words, stop_reason = words[:budget], "max_tokens"
        used = len(words)
        content.append(
            {
                "type": "thinking",
                "thinking": " ".join(words),
                "signature": "sig-" + prompt_hash[:16],
            }
        )
    elif thought is not None:
        answer = reply  # a model without extended thinking writes its <think> block as text
    words = answer.split()
    if stop_reason == "end_turn" and budget is not None and used + len(words) > budget:
        answer, stop_reason = " ".join(words[: budget - used]), "max_tokens"
    if answer or not content:
        content.append({"type": "text", "text": answer})
    input_tokens = prompt_tokens(messages, model)
    output_tokens = used + count_tokens(answer, model)
    entry.update(outcome="ok", prompt_tokens=input_tokens, completion_tokens=output_tokens)
    return (
        200,
        {
            "id": f"msg_{prompt_hash[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        },
        entry,
    )


async def anthropic_messages(request: web.Request) -> web.Response:
    """POST /v1/messages (see `anthropic_message`); logged like chat completions, without
    faults."""
    state: ServerState = request.app[STATE]
    status, reply, entry = anthropic_message(state, await request.json())
    state.record({"path": request.path, **entry, **_auth_fields(request)})
    return web.json_response(reply, status=status)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions."""
    state = request.app[STATE]
    auth = _auth_fields(request)
    try:
        body = await request.json()
        messages = body["messages"]
        model = str(body.get("model", ""))
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise TypeError("messages must be a list of objects")
    except (ValueError, KeyError, TypeError):
        state.record(
            {
                "path": request.path,
                "model": None,
                "prompt_hash": None,
                "attempt": None,
                **auth,
                "outcome": "bad_request",
            }
        )
        return web.json_response(
            _error_body("expected a JSON body with messages", "invalid_request_error"), status=400
        )
    prompt_hash = messages_hash(messages)
    text = "\n".join(_text(m.get("content")) for m in messages)
    base = {"path": request.path, "model": model, "prompt_hash": prompt_hash,
            "seed": body.get("seed"), "params": _params(body), **auth}  # fmt: skip
    if _auth_rejected(state, auth):
        state.record({**base, "attempt": None, "outcome": "401"})
        return _unauthorized()
    rejected = openai_rejection(model, body) if state.rules else None
    if rejected is not None:
        state.record({**base, "attempt": None, "outcome": "400", "error": rejected["message"]})
        return web.json_response({"error": rejected}, status=400)
    with state.lock:
        rule, attempt = state.schedule.decide(prompt_hash, text)
        latency, reply_fn, style = state.latency, state.reply_fn, state.reasoning_style
    if rule is not None:
        state.record({**base, "attempt": attempt, "outcome": rule.kind})
        return await _fault_response(request, rule, model, messages, max_tokens, reply_fn)
    scale = hidden_reasoning_scale(model, body) if state.rules else 0
    # a reasoning model samples at temperature 1: each attempt at a prompt is a fresh draw
    draw = attempt if scale and "temperature" not in body else 0
    reply = reply_fn(messages, model) if reply_fn else default_reply(messages, draw)
    answer, thought = split_think(reply)
    if scale:
        thought = " ".join([default_reasoning(_last_user(messages), answer)] * scale)
        style = "hidden"
    elif style or thought is not None:
        thought = thought or default_reasoning(_last_user(messages), answer)
        style = style or "think"
    completion = _completion(model, messages, answer, max_tokens, prompt_hash, thought, style)
    usage = completion["usage"]
    entry = state.record({**base, "attempt": attempt, "outcome": "ok",
                          "prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"]})  # fmt: skip
    if latency > 0:
        await asyncio.sleep(latency)
    entry["replied"] = time.time()  # when the reply leaves (bench/throughput.py: the exit after it)
    return web.json_response(completion)


def _completion(
    model: str,
    messages: list[dict[str, Any]],
    reply: str,
    max_tokens: Any,
    prompt_hash: str,
    reasoning: str | None = None,
    style: str | None = None,
) -> dict[str, Any]:
    """A chat.completion object. Reasoning (`style` "think": a `<think>` block in the content;
    "reasoning_content": its own field; "hidden": only counted) comes first and counts against
    max_tokens with the answer; what does not fit is cut (finish_reason "length")."""
    budget = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None
    thought = reasoning.split() if reasoning and style else []
    words = reply.split()
    finish_reason = "stop"
    if budget is not None and len(thought) >= budget:
        thought, words, finish_reason = thought[:budget], [], "length"
    elif budget is not None and len(thought) + len(words) > budget:
        words, finish_reason = words[: budget - len(thought)], "length"
    cut = finish_reason == "length"
    answer = " ".join(words) if cut else reply
    if budget is not None and vocabulary(model):  # OpenAI names: the budget is in real tokens
        room = budget - len(thought)
        if count_tokens(answer, model) > room:
            answer, words, finish_reason, cut = (
                cut_to_tokens(answer, room, model),
                [],
                "length",
                True,
            )
    thinking = " ".join(thought) if cut else (reasoning or "").strip()
    message: dict[str, Any] = {"role": "assistant", "content": answer}
    if style == "think" and thought:
        closing = "" if cut and not words else "\n</think>\n\n"
        message["content"] = "<think>\n" + thinking + closing + answer
    elif style == "reasoning_content" and thought:
        message["reasoning_content"] = thinking
        message["content"] = answer or None
    input_tokens = prompt_tokens(messages, model)
    completion_tokens = len(thought) + count_tokens(answer, model)
    usage: dict[str, Any] = {
        "prompt_tokens": input_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": input_tokens + completion_tokens,
    }
    if thought:
        usage["completion_tokens_details"] = {"reasoning_tokens": len(thought)}
    return {
        "id": f"chatcmpl-{prompt_hash[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        ],
        "usage": usage,
    }


async def _fault_response(
    request: web.Request,
    rule: FaultRule,
    model: str,
    messages: list[dict[str, Any]],
    max_tokens: Any,
    reply_fn: ReplyFn | None,
) -> web.StreamResponse:
    kind = rule.kind
    headers = {"Retry-After": f"{rule.retry_after:g}"} if rule.retry_after is not None else {}
    if kind == "429":
        body = _error_body(
            "Rate limit reached; try again later.", "requests", "rate_limit_exceeded"
        )
        return web.json_response(body, status=429, headers=headers)
    if kind in ("500", "502", "503"):
        return web.json_response(
            _error_body(f"injected {kind}", "server_error"), status=int(kind), headers=headers
        )
    if kind == "401":
        return _unauthorized()
    if kind == "400":
        body = {"error": {"message": rule.message, "type": "invalid_request_error",
                          "param": rule.param, "code": None}}  # fmt: skip
        return web.json_response(body, status=400)
    if kind == "timeout":
        await asyncio.sleep(
            rule.delay
        )  # the client gives up first; its disconnect cancels this handler
        reply = reply_fn(messages, model) if reply_fn else default_reply(messages)
        return web.json_response(
            _completion(model, messages, reply, max_tokens, messages_hash(messages))
        )
    if kind == "hang":
        await asyncio.Event().wait()  # until the client disconnects (which cancels this handler)
    if kind == "trickle":
        reply = reply_fn(messages, model) if reply_fn else default_reply(messages)
        body = json.dumps(_completion(model, messages, reply, max_tokens, messages_hash(messages)))
        data = body.encode()
        stream = web.StreamResponse(
            status=200,
            headers={"Content-Type": "application/json", "Content-Length": str(len(data))},
        )
        await stream.prepare(request)
        for i in range(len(data)):
            await stream.write(data[i : i + 1])
            await asyncio.sleep(rule.delay)
        await stream.write_eof()
        return stream
    if kind == "malformed":
        return _malformed(rule.body, model)
    # drop: close the socket without any response
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)  # never sent: the transport is closed


def _malformed(variant: str, model: str) -> web.Response:
    if variant == "truncated":
        whole = json.dumps(
            {"id": "chatcmpl-x", "object": "chat.completion", "model": model, "choices": []}
        )
        return web.Response(
            status=200, body=whole[: len(whole) // 2].encode(), content_type="application/json"
        )
    if variant == "garbage":
        return web.Response(
            status=200, body=b"<html>upstream error</html>", content_type="text/html"
        )
    return web.json_response({"id": "chatcmpl-x", "object": "chat.completion", "model": model})


async def list_models(request: web.Request) -> web.Response:
    """GET /v1/models (counted, not logged: the log holds the requests that cost a reply)."""
    state = request.app[STATE]
    auth = _auth_fields(request)
    rejected = _auth_rejected(state, auth)
    with state.lock:
        state.models_requests += 1
    if state.hang_models:
        await asyncio.Event().wait()
    if rejected:
        return _unauthorized()
    data = [
        {"id": m, "object": "model", "created": 0, "owned_by": "trustmh-tests"}
        for m in state.models
    ]
    return web.json_response({"object": "list", "data": data})


async def control(request: web.Request) -> web.Response:
    """POST /_control: change faults, latency or seed at runtime; optionally reset."""
    state = request.app[STATE]
    try:
        body = await request.json()
        if "faults" in body or "seed" in body:
            seed = body.get("seed")
            faults = body.get("faults", state.schedule.plan)
            state.set_faults(faults, None if seed is None else int(seed))
        if "latency" in body:
            state.latency = float(body["latency"])
        if "reasoning_style" in body:
            style = body["reasoning_style"]
            if style not in (None, *REASONING_STYLES):
                raise ValueError(f"reasoning_style {style!r}: expected one of {REASONING_STYLES}")
            state.reasoning_style = style
        if body.get("reset"):
            state.reset()
    except (ValueError, TypeError, KeyError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"latency": state.latency, "faults": state.schedule.plan.as_dict()})


async def get_log(request: web.Request) -> web.Response:
    """GET /_log: every logged request."""
    return web.json_response(request.app[STATE].log())


async def post_reset(request: web.Request) -> web.Response:
    """POST /_reset: clear the log and the fault counters."""
    request.app[STATE].reset()
    return web.json_response({"ok": True})


def build_app(state: ServerState) -> web.Application:
    """The aiohttp application serving `state`."""
    app = web.Application(client_max_size=64 * 1024**2)
    app[STATE] = state
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/messages", anthropic_messages)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/_control", control)
    app.router.add_get("/_log", get_log)
    app.router.add_post("/_reset", post_reset)
    from batch_server import add_batch_routes  # beside this file

    def complete(model: str, messages: list[dict[str, Any]], max_tokens: Any) -> dict[str, Any]:
        reply = state.reply_fn(messages, model) if state.reply_fn else default_reply(messages)
        return _completion(model, messages, reply, max_tokens, messages_hash(messages))

    add_batch_routes(app, state, complete, lambda body: anthropic_message(state, body))
    return app


async def _start_site(state: ServerState, host: str, port: int) -> tuple[web.AppRunner, int]:
    # handler_cancellation: a client that gives up (timeout fault) cancels its sleeping handler.
    runner = web.AppRunner(
        build_app(state), access_log=None, handler_cancellation=True, shutdown_timeout=0.5
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return runner, runner.addresses[0][1]


# in-process use ------------------------------------------------------------------------------
class FakeOpenAIServer:
    """The server on its own event loop in a background thread (usable from synchronous tests)."""

    def __init__(
        self,
        latency: float = 0.0,
        faults: Any = None,
        *,
        seed: int = 0,
        log_file: Path | str | None = None,
        reply_fn: ReplyFn | None = None,
        api_key: str | None = None,
        models: tuple[str, ...] = DEFAULT_MODELS,
        host: str = "127.0.0.1",
        port: int = 0,
        reasoning_style: str | None = None,
        rules: bool = True,
        hang_models: bool = False,
    ):
        self.state = ServerState(latency, faults, seed, Path(log_file) if log_file else None,
                                 reply_fn, api_key, models, reasoning_style, rules, hang_models)  # fmt: skip
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The server root, e.g. http://127.0.0.1:PORT."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI API root, e.g. http://127.0.0.1:PORT/v1."""
        return f"{self.url}/v1"

    def start(self) -> FakeOpenAIServer:
        """Start listening; returns once the port is bound."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._runner, self.port = loop.run_until_complete(
                    _start_site(self.state, self.host, self.port)
                )
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop listening, end the thread and close the log file."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None
        self.state.close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def log(self) -> list[dict[str, Any]]:
        """The request log (a copy)."""
        return self.state.log()

    def reset(self) -> None:
        """Clear the log and the fault counters."""
        self.state.reset()

    def set_faults(self, faults: Any = None, seed: int | None = None) -> None:
        """Replace the fault plan (None: no faults); counters start afresh."""
        self.state.set_faults(faults, seed)

    def set_latency(self, seconds: float) -> None:
        """Change the reply latency."""
        self.state.latency = seconds

    def set_reply_fn(self, reply_fn: ReplyFn | None) -> None:
        """Replace the reply function (None: `default_reply`)."""
        self.state.reply_fn = reply_fn

    def set_reasoning_style(self, style: str | None) -> None:
        """Make every model without provider rules reason first ("think", "reasoning_content")."""
        if style not in (None, *REASONING_STYLES):
            raise ValueError(f"reasoning_style {style!r}: expected one of {REASONING_STYLES}")
        self.state.reasoning_style = style


@contextmanager
def serve(latency: float = 0.0, faults: Any = None, **options: Any) -> Iterator[FakeOpenAIServer]:
    """A running `FakeOpenAIServer` for the duration of a with-block (options as its constructor's)."""
    server = FakeOpenAIServer(latency, faults, **options).start()
    try:
        yield server
    finally:
        server.stop()


# subprocess use ------------------------------------------------------------------------------
class RemoteServer:
    """Control of a server running in another process, through its HTTP control endpoints."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url.removesuffix("/v1")
        self.port = int(self.url.rsplit(":", 1)[1])
        self.process: Any = None  # the child process, when started by `spawn_server`

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def log(self) -> list[dict[str, Any]]:
        """The request log."""
        return self._call("GET", "/_log")

    def reset(self) -> None:
        """Clear the log and the fault counters."""
        self._call("POST", "/_reset", {})

    def set_faults(self, faults: Any = None, seed: int | None = None) -> None:
        """Replace the fault plan."""
        payload: dict[str, Any] = {
            "faults": FaultPlan.parse(faults).as_dict() if isinstance(faults, FaultPlan) else faults
        }
        if seed is not None:
            payload["seed"] = seed
        self._call("POST", "/_control", payload)

    def set_latency(self, seconds: float) -> None:
        """Change the reply latency."""
        self._call("POST", "/_control", {"latency": seconds})


@contextmanager
def spawn_server(
    latency: float = 0.0,
    faults: Any = None,
    *,
    seed: int = 0,
    log_file: Path | str | None = None,
    api_key_env: str | None = None,
    python: str = sys.executable,
) -> Iterator[RemoteServer]:
    """This module run as a separate process for the duration of a with-block (its CPU is then
    not the caller's); yields a `RemoteServer` whose `.process` is the child."""
    import subprocess

    command = [
        python,
        str(Path(__file__).resolve()),
        "--port",
        "0",
        "--latency",
        str(latency),
        "--seed",
        str(seed),
    ]
    if faults is not None:
        command += ["--faults", json.dumps(FaultPlan.parse(faults, seed).as_dict())]
    if log_file is not None:
        command += ["--log-file", str(log_file)]
    if api_key_env is not None:
        command += ["--api-key-env", api_key_env]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"the server did not start (exit code {process.wait(10)})")
        server = RemoteServer(line.split()[1])
        server.process = process
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of the subprocess mode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument(
        "--faults", default=None, help="fault plan as JSON (see the module docstring)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--log-file", type=Path, default=None, help="append each request to this JSONL file"
    )
    parser.add_argument(
        "--api-key-env", default=None, help="require the key held by this environment variable"
    )
    parser.add_argument(
        "--reasoning-style", default=None, choices=REASONING_STYLES,
        help="models without provider rules reason first: in a <think> block or reasoning_content",
    )  # fmt: skip
    parser.add_argument(
        "--no-rules", action="store_true", help="accept every parameter (no provider 400s)"
    )
    return parser.parse_args(argv)


async def _serve_forever(args: argparse.Namespace) -> None:
    import os
    import signal

    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    state = ServerState(args.latency, args.faults, args.seed, args.log_file, api_key=api_key,
                        reasoning_style=args.reasoning_style, rules=not args.no_rules)  # fmt: skip
    runner, port = await _start_site(state, args.host, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY http://{args.host}:{port}/v1", flush=True)
    await stop.wait()
    await runner.cleanup()
    state.close()


def main(argv: list[str] | None = None) -> None:
    """Run the server until SIGTERM/SIGINT."""
    asyncio.run(_serve_forever(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
