"""Backend for OpenAI and every OpenAI-compatible server.

Two transports, one behaviour. An OpenAI-compatible server named by URL (`openai:MODEL@URL`: vLLM,
SGLang, llama.cpp, Ollama, DeepSeek...) is asked through a lean chat-completions POST built
directly on aiohttp (`LeanChat`): one JSON body out, the reply JSON in, nothing else. The official
client costs a process half a second of imports and about 0.5 ms of CPU per request (its request
options, headers, transport layers), which at hundreds of requests in flight decides how far the
whole run is from the network's limit (bench/throughput.py --whole). api.openai.com
(`openai:MODEL` without a URL) keeps the official async client, with its auth (organisation and
project headers from the environment) and its batch endpoints; `TRUSTMH_OPENAI_SDK=1` puts every
OpenAI-compatible server on it too. Both transports classify failures the same way
(`status_failure`, `connection_failure`).

The client's own retries are off (max_retries=0): the runner retries, so that backoff, Retry-After,
progress and error counts are handled in one place. On the official client, requests go through
its low-level request path with a raw HTTP response (`cast_to` the HTTP library's Response), and
the reply JSON is read here: the client still builds the request
(base URL, auth and its other headers, timeouts) and turns error statuses into its exception
classes, but skips its per-request body transform and its reply model construction, about 40% of
the client's CPU per request at hundreds in flight (bench/throughput.py). `chat_poster` says how
the request options are built.

What is sent follows the model's parameter profile (`profiles.py`, protocol 1.7): `chat_body`
builds the body from a request and its plan, for this transport or any other. A 400 naming a
parameter is adapted once (the parameter dropped or renamed, the request sent again) and the
adaptation is kept for the following requests; any other 400 fails the request with the provider's
message. Reasoning written apart from the answer (`reasoning_content`, `<think>` blocks) is kept in
`Response.reasoning`, never in the text that is parsed.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from trustmh.errors import FatalBackendError
from trustmh.models.adapt import (
    adapted_suffix,
    openai_adaptation,
    provider_message,
    send_adapting,
    with_sent,
)
from trustmh.models.base import SampleError, TransientError
from trustmh.models.connect import EndpointUnreachable, connection_failure
from trustmh.models.profiles import Adaptation, ParameterRules, Profile, RequestPlan
from trustmh.models.reasoning import split_reasoning
from trustmh.models.spec import ModelSpec
from trustmh.types import GenParams, GenRequest, Message, Response, Usage

OPENAI_URL = "https://api.openai.com/v1"
# the reachability check waits at least this long (or --request-timeout if longer): a listing of
# models is instant on a live server, so a silent one is stuck, not busy
CHECK_TIMEOUT = 10.0
# set (to anything but 0/false/no) to send OpenAI-compatible servers' requests through the
# official client too
SDK_ENV = "TRUSTMH_OPENAI_SDK"


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from a Retry-After (or retry-after-ms) header; None when absent or unparseable."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime
            from time import time

            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time())
            except (TypeError, ValueError):
                return None
    return None


def use_sdk(url: str | None) -> bool:
    """Whether requests to this endpoint go through the official client: api.openai.com (no URL)
    always, any other server when $TRUSTMH_OPENAI_SDK is set."""
    import os

    forced = os.environ.get(SDK_ENV, "").strip().lower() not in ("", "0", "false", "no")
    return url is None or forced


class StatusError(Exception):
    """A reply with an error status on the lean path, shaped as the official client's status
    errors are (`status_code`, `body`: the error object, `response.headers`), so that both
    transports' failures are read by the same code."""

    def __init__(self, status_code: int, body: Any, text: str, headers: Any):
        super().__init__(status_code, body, text)
        self.status_code = status_code
        self.body = body
        self.text = text
        self.headers = headers

    @property
    def response(self) -> StatusError:
        """Itself: the headers are read as `exc.response.headers`, as on the official client."""
        return self

    def __str__(self) -> str:
        shown = self.body if self.body is not None else self.text[:300]
        return f"Error code: {self.status_code} - {shown}"


class BadRequest(StatusError):
    """A 400 on the lean path (the provider rejected the request; maybe a parameter to adapt)."""


def status_error(status: int, raw: bytes, headers: Any) -> StatusError:
    """The exception for an error reply: its error object when the body is JSON (the inner
    `error` of `{"error": {...}}`, as the official client keeps it), else its text."""
    text = raw.decode("utf-8", "replace")
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    return (BadRequest if status == 400 else StatusError)(status, body, text, headers)


_encode_body = json.JSONEncoder(separators=(",", ":")).encode  # built once, not per request


class LeanChat:
    """Chat completions on an OpenAI-compatible server over one aiohttp session: the request is
    the JSON body with the bearer key, the reply its JSON. Built at the first request."""

    def __init__(self, endpoint: str, api_key: str | None, concurrency: int):
        from trustmh import __version__
        from trustmh.models.aiohttp_import import import_aiohttp

        aiohttp = import_aiohttp()  # the CA store is loaded only if a TLS connection is made
        from yarl import URL  # aiohttp's URL type

        self._aiohttp = aiohttp
        base = endpoint.rstrip("/")
        self.url = f"{base}/chat/completions"
        self.models_url = f"{base}/models"
        # the official client sends a placeholder key when there is none; so does this path
        self._headers = {
            "Authorization": f"Bearer {api_key or 'no-key'}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"trustmh/{__version__}",
        }
        # the proxy the environment names for this URL (HTTPS_PROXY, NO_PROXY...), as the official
        # client honours them: looked up once, not on every request (an aiohttp without that
        # helper looks it up itself, per request)
        self._proxy: Any = None
        trust_env = False
        try:
            self._proxy = aiohttp.helpers.get_env_proxy_for_url(URL(self.url))[0]
        except LookupError:
            pass
        except AttributeError:
            trust_env = True
        connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
        # no timeout of aiohttp's own: the backend's asyncio.timeout bounds each whole attempt
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), trust_env=trust_env
        )

    async def post(self, body: dict[str, Any]) -> Any:
        """POST a chat-completions body; the reply JSON (ValueError when it is not JSON),
        StatusError on an error status, aiohttp's errors on a failed connection."""
        data = _encode_body(body).encode()
        async with self._session.post(
            self.url, data=data, headers=self._headers, allow_redirects=False, proxy=self._proxy
        ) as reply:
            raw = await reply.read()
            if reply.status >= 300:
                raise status_error(reply.status, raw, reply.headers)
        return json.loads(raw)

    async def get_models(self) -> None:
        """GET the models list (the reachability check): returns on any HTTP answer."""
        async with self._session.get(
            self.models_url, headers=self._headers, allow_redirects=False, proxy=self._proxy
        ) as reply:
            await reply.read()

    @property
    def connection_errors(self) -> tuple[type[BaseException], ...]:
        """What a failed connection raises on this transport."""
        return (self._aiohttp.ClientError, OSError)

    async def close(self) -> None:
        """Close the session and its connections."""
        await self._session.close()


class OpenAICompatBackend:
    """`openai:MODEL` and `openai:MODEL@URL`."""

    cacheable = True

    def __init__(
        self,
        spec: ModelSpec,
        api_key: str | None,
        timeout: float,
        concurrency: int,
        *,
        profiles: tuple[Profile, ...] | None = None,
        reasoning_effort: str | None = None,
        effort_flag: str = "--reasoning-effort",
        sdk: bool | None = None,
    ):
        self.spec = spec.canonical
        self.label = spec.canonical
        self.model = spec.model
        self.endpoint = spec.url or OPENAI_URL
        self.rules = ParameterRules("openai", spec.model, spec.canonical, profiles=profiles,
                                    effort=reasoning_effort, effort_flag=effort_flag)  # fmt: skip
        self._api_key = api_key
        self._timeout = timeout
        self._concurrency = concurrency
        # the official client (api.openai.com, or forced), else the lean path
        self.sdk = use_sdk(spec.url) if sdk is None else sdk
        # Built at the first request: a run with nothing left to ask (a resumed or cached rerun)
        # never pays for the HTTP pool and its TLS context (a tenth of a second).
        self._client: Any = None  # openai.AsyncOpenAI, on the official client's path
        self._lean: LeanChat | None = None
        self._post: Callable[[dict[str, Any]], Awaitable[Any]] | None = None  # set with either

    def _connect(self) -> Callable[[dict[str, Any]], Awaitable[Any]]:
        """The request function (a chat-completions POST returning the reply JSON), built on
        first use."""
        if self._post is None:
            if self.sdk:
                self._client = self._sdk_client()
                post = chat_poster(self._client)

                async def post_json(body: dict[str, Any]) -> Any:
                    return json.loads((await post(body)).content)

                self._post = post_json
            else:
                self._lean = LeanChat(self.endpoint, self._api_key, self._concurrency)
                self._post = self._lean.post
        return self._post

    def _sdk_client(self) -> Any:
        """The official async client for this endpoint."""
        import openai

        client = openai.AsyncOpenAI(
            api_key=self._api_key or "no-key",
            base_url=self.endpoint,
            max_retries=0,
            timeout=self._timeout,
            http_client=_http_client(self._concurrency, self._timeout),
        )
        detect_platform_once(client)
        return client

    async def check(self) -> None:
        """Before the first request: one GET of the API's `models` list, so that a server that
        cannot be reached (connection refused, DNS, TLS) or does not answer at all stops the run
        with one line naming the URL and the cause, before any sample is spent. Any HTTP answer,
        even 401 or 404, means the server is there: the chat requests classify those."""
        self._connect()
        deadline = max(self._timeout, CHECK_TIMEOUT)
        if self._lean is not None:
            url = self._lean.models_url
            get = self._lean.get_models
            answered: tuple[type[BaseException], ...] = ()
            unreachable = self._lean.connection_errors
        else:
            import openai

            client = self._client
            url = f"{client.base_url}models"

            async def get() -> None:
                await client.get(url, cast_to=_http_library().Response)

            answered, unreachable = (openai.APIStatusError,), (openai.APIConnectionError,)
        try:
            async with asyncio.timeout(deadline):
                await get()
        except answered:
            return
        except (*unreachable, TimeoutError) as exc:
            cause = connection_failure(exc)
            if cause is None and _is_timeout(exc):
                cause = (
                    f"the server accepted the connection but sent no reply to GET {url} within "
                    f"{deadline:g} s"
                )
            raise EndpointUnreachable(
                f"{self.spec}: cannot reach {self.endpoint}: {cause or _short(exc, self._api_key)}"
            ) from None

    def plan(self, params: GenParams) -> RequestPlan:
        """What is sent for these parameters (profile, reasoning effort, learned adaptations)."""
        return self.rules.plan(params)

    async def generate(self, request: GenRequest) -> Response:
        """One chat completion; errors classified for the runner (a 400 naming a parameter is
        adapted, see `send_adapting`)."""
        if self.sdk:
            import openai

            rejected: type[Exception] = openai.BadRequestError
        else:
            rejected = BadRequest
        completion, plan, adapted = await send_adapting(
            self.rules,
            request.params,
            lambda plan: self._send(chat_body(self.model, request.messages, plan)),
            rejected,
            lambda exc, wire: openai_adaptation(getattr(exc, "body", None), wire),
            lambda exc, adapted: rejection(exc, self._api_key, adapted),
        )
        return with_sent(_to_response(completion), request.params, plan, adapted)

    async def _send(self, body: dict[str, Any]) -> Any:
        """One POST of a built body: the reply JSON, failures classified for the runner (a 400 is
        left to `generate`, which may adapt the request). `--request-timeout` bounds the whole
        attempt, a reply body that trickles in included (an HTTP client's own read timeout
        restarts with every byte read)."""
        post = self._connect()
        try:
            async with asyncio.timeout(self._timeout):
                return await post(body)
        except (BadRequest, TransientError):
            raise
        except TimeoutError:
            raise TransientError(self._timed_out(), unreachable=True) from None
        except StatusError as exc:
            raise self._status_failure(exc) from None
        except (ValueError, TypeError) as exc:  # a reply that is not JSON
            raise TransientError(f"malformed reply: {type(exc).__name__}") from None
        except Exception as exc:
            failure = self._failure(exc)
            if failure is exc:
                raise
            raise failure from None

    def _failure(self, exc: Exception) -> Exception:
        """The runner's error for a failure of either transport not classified in `_send` (the
        exception itself when it is none of the known kinds, or the official client's 400)."""
        if self._lean is not None:
            if isinstance(exc, self._lean.connection_errors):
                return self._connection_failure(exc, _is_timeout(exc), type(exc).__name__)
            return exc
        import openai

        if isinstance(exc, openai.BadRequestError):
            return exc
        if isinstance(exc, openai.APIStatusError):
            return self._status_failure(exc)
        if isinstance(exc, openai.APIConnectionError):  # APITimeoutError included
            cause = exc.__cause__
            shown = type(cause).__name__ if cause else str(exc)
            return self._connection_failure(exc, isinstance(exc, openai.APITimeoutError), shown)
        if isinstance(exc, openai.APIResponseValidationError):
            return TransientError(f"malformed reply: {type(exc).__name__}")
        return exc

    def _status_failure(self, exc: Any) -> Exception:
        """The runner's error for an error status other than 400 (either transport)."""
        status = exc.status_code
        if status == 429:
            return TransientError("429 rate limited", retry_after_seconds(exc.response.headers))
        if status == 401:
            return FatalBackendError(
                f"{self.spec}: the server rejected the API key ({status}); check the variable named by --api-key-env"
            )
        if status == 403:
            return FatalBackendError(
                f"{self.spec}: permission denied ({status}): {_short(exc, self._api_key)}"
            )
        if status == 404:
            return FatalBackendError(
                f"{self.spec}: not found ({status}): is the model name right and the URL the API root (…/v1)? {_short(exc, self._api_key)}"
            )
        if status >= 500 or status in (408, 409):
            return TransientError(f"HTTP {status}", retry_after_seconds(exc.response.headers))
        return SampleError(f"HTTP {status}: {_short(exc, self._api_key)}")

    def _connection_failure(
        self, exc: BaseException, timed_out: bool, shown: str
    ) -> TransientError:
        """The runner's error for a request that got no reply (either transport); `shown` names
        the failure when no cause of a refused connection is found."""
        found = connection_failure(exc)
        if found is not None:
            return TransientError(f"cannot reach {self.endpoint}: {found}", unreachable=True)
        if timed_out:
            return TransientError(self._timed_out(), unreachable=True)
        return TransientError(f"connection error: {shown}", unreachable=True)

    def _timed_out(self) -> str:
        return f"no complete reply within {self._timeout:g} s (--request-timeout)"

    def batch_api(self) -> Any:
        """This server's Files + Batches API (`--batch`), always through the official client."""
        from trustmh.models.batch_api import OpenAIBatches

        if self._client is None:
            self._client = self._sdk_client()
        return OpenAIBatches(self._client, self.model, self.spec, self.plan)

    async def aclose(self) -> None:
        """Close the HTTP connection pool (if a request opened one)."""
        if self._client is not None:
            await self._client.close()
        if self._lean is not None:
            await self._lean.close()
        self._client = self._lean = self._post = None


def _is_timeout(exc: BaseException) -> bool:
    """Whether a failure is a timeout (asyncio's, the socket's or an HTTP client's own)."""
    return isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__


def detect_platform_once(client: Any) -> None:
    """Run the client's platform detection (for its X-Stainless-OS header) now, once: 4 ms on
    this thread. The client runs it in a worker thread at its first request, and every request
    started before that thread returns runs it again, so C requests started together queued C
    thread calls and then left as one burst (up to a quarter of a second at 200). The attribute
    is not public: a client version without it is left alone."""
    if getattr(client, "_platform", False) is not None:
        return
    try:
        from openai._base_client import get_platform

        client._platform = get_platform()
    except Exception:  # noqa: BLE001 - the client then detects it itself, as before
        pass


def chat_poster(
    client: Any, *, template: bool = True
) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    """A function that POSTs a chat-completions body through `client` and returns the raw HTTP
    response: `client.post`, or, when this client version allows, `client.request` with options
    copied from a template built once. `post` builds its options with `construct`, which resolves
    every field's default on each call (70 us, about 5% of the client's CPU per request); a copy
    with the body swapped in costs 5 us. The URL is absolute, so it is parsed once per request (a
    relative one is parsed, then merged with the base URL and parsed again)."""
    url = f"{client.base_url}chat/completions"
    raw_response = _http_library().Response
    if template:
        try:
            from openai._models import FinalRequestOptions  # not public: used only if it fits

            options = FinalRequestOptions.construct(method="post", url=url, json_data={})
            options.model_copy(update={"json_data": {}})
            request = client.request
            inspect.signature(request).bind(raw_response, options)  # called as post calls it
        except Exception:  # noqa: BLE001 - any mismatch with this client version: use post
            pass
        else:
            return lambda body: request(
                raw_response, options.model_copy(update={"json_data": body})
            )
    return lambda body: client.post(url, body=body, cast_to=raw_response)


def _http_client(concurrency: int, timeout: float) -> Any:
    """The client's HTTP pool sized to the concurrency. The aiohttp transport (openai[aiohttp]) is
    preferred: on the throughput benchmark it spends a fraction of the default transport's CPU per
    request (whose pool scans every connection on each request), which at hundreds of requests in
    flight decides whether the client keeps up."""
    import openai

    limits = _http_library().Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency
    )
    try:
        return openai.DefaultAioHttpClient(limits=limits, timeout=timeout)
    except (AttributeError, RuntimeError):  # an openai without the aiohttp extra
        return openai.DefaultAsyncHttpxClient(limits=limits, timeout=timeout)


def _http_library() -> Any:
    """The HTTP library the installed openai client is built on (httpx, or httpx2 in openai 3.x):
    the pool size and the raw response type must be given in that library's own classes."""
    import openai

    base = openai.DefaultAsyncHttpxClient.__mro__[1]
    return sys.modules[base.__module__.split(".")[0]]


def chat_body(
    model: str, messages: tuple[Message, ...] | list[Message], plan: RequestPlan
) -> dict[str, Any]:
    """The chat-completions request body of a request under its plan: the one place a body is
    built, so that any transport sends what the cache key covers."""
    return {"model": model, "messages": list(messages), **plan.wire}


def rejection(exc: Exception, api_key: str | None, adapted: Sequence[Adaptation] = ()) -> str:
    """The line recorded for a request the provider rejected: its status and its own message
    (the API key masked), and which parameters had been adapted before."""
    status = getattr(exc, "status_code", "?")
    message = provider_message(getattr(exc, "body", None)) or _short(exc, api_key)
    if api_key:
        message = message.replace(api_key, "***")
    return f"HTTP {status}: {' '.join(message.split())[:500]}{adapted_suffix(adapted)}"


def _to_response(completion: Any) -> Response:
    """A chat.completion JSON object as a Response; TransientError when it is not one. Reasoning
    in a separate field (`reasoning_content`, or `reasoning` in newer servers) or in `<think>`
    blocks of the content goes to `Response.reasoning`; only the rest is the answer text."""
    try:
        choice = completion["choices"][0]
        message = choice["message"]
        text = message.get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise TransientError("malformed reply: no choices[0].message") from None
    if text is None:
        text = ""  # a refusal field or a tool call: the text reply is empty
    elif isinstance(text, list):  # content parts (some compatible servers)
        text = "".join(
            part["text"]
            for part in text
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    elif not isinstance(text, str):
        raise TransientError("malformed reply: message content is not text")
    text, thought = split_reasoning(text)
    field = message.get("reasoning_content") or message.get("reasoning")
    separate = field if isinstance(field, str) and field.strip() else None
    reasoning = "\n\n".join(p for p in (separate, thought) if p) or None
    usage = completion.get("usage") or {}
    try:
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        details = usage.get("completion_tokens_details") or {}
        reasoning_tokens = int(details.get("reasoning_tokens") or 0)
    except (AttributeError, TypeError, ValueError, OverflowError):  # OverflowError: Infinity
        prompt_tokens = completion_tokens = reasoning_tokens = 0  # usage is informational
    finish_reason = choice.get("finish_reason")
    return Response(
        text=text,
        usage=Usage(prompt_tokens, completion_tokens, reasoning_tokens),
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        reasoning=reasoning,
    )


def _short(exc: Exception, api_key: str | None) -> str:
    """The error's message on one line, cut short, with the API key masked (a server may echo
    it, and this text is printed and stored with the sample)."""
    text = str(exc)
    if api_key:
        text = text.replace(api_key, "***")
    return text.replace("\n", " ")[:200]
