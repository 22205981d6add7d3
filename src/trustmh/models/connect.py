"""Telling "the server cannot be reached" apart from "the server is slow", and checking once.

HTTP clients report a refused connection, a failed DNS lookup or a TLS error in their own classes
(the openai client's aiohttp transport even reports all three as a connect *timeout*); the root
cause is at the bottom of the exception chain. `connection_failure` finds it, so the user reads
"connection refused" rather than "request timed out", and `EndpointCheck` turns it into one line
before the first request of a run instead of a minute of retries on every sample.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable

from trustmh.errors import FatalBackendError


class EndpointUnreachable(FatalBackendError):
    """No connection to the server can be made (refused, DNS, TLS): nothing can succeed."""


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def connection_failure(exc: BaseException) -> str | None:
    """Why no connection could be made ("connection refused", "DNS lookup failed: ...", "TLS
    error: ..."), read from the bottom of the exception chain; None when a connection was made
    (or the cause is something else, such as a slow server)."""
    for link in reversed(_chain(exc)):
        if isinstance(link, ConnectionRefusedError):
            return "connection refused (is the server running, and on this port?)"
        if isinstance(link, socket.gaierror):
            return f"DNS lookup failed ({link.strerror or link}); check the host name"
        if isinstance(link, ssl.SSLCertVerificationError):
            return f"TLS certificate not accepted ({link.verify_message or link})"
        if isinstance(link, ssl.SSLError):
            reason = getattr(link, "reason", None) or str(link)
            return f"TLS error ({reason}); is the URL's scheme (http/https) right?"
        if (
            isinstance(link, OSError)
            and link.errno is not None
            and not isinstance(link, TimeoutError)
        ):
            return f"cannot connect ({link.strerror or link})"
    return None


class EndpointCheck:
    """One reachability check of an endpoint, made before its first request and shared by every
    request that starts meanwhile: an unreachable server stops the run at once with one line,
    before any sample is spent. `probe` raises `EndpointUnreachable` or returns."""

    def __init__(self, probe: Callable[[], Awaitable[None]]):
        self._probe = probe
        self._done: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        """Run the check on the first call; later calls wait for its outcome (or return)."""
        if self._done is None:
            self._done = asyncio.ensure_future(self._probe())
        if not self._done.done():
            await asyncio.shield(self._done)
        elif self._done.exception() is not None:
            raise self._done.exception()  # type: ignore[misc]
