"""aiohttp, imported without loading the system's CA store until a TLS connection needs it.

When it is imported, aiohttp builds its two default TLS contexts (verified and not), and each
loads the system's CA store: about 20 ms apiece on the machines we measure, some 0.04 s of the
0.3 s before a run's first request (bench/throughput.py --whole), spent even when every request
goes to a plain-http server (vLLM, SGLang, llama.cpp or Ollama on the local network).

`import_aiohttp` imports it with that loading held back, and has it done, by the same call
aiohttp would have made, just before any aiohttp connector in the process chooses a TLS context
(`TCPConnector._get_ssl_context`, the one place where aiohttp's TLS connections, proxies included,
take these contexts). Should aiohttp's insides not look as expected, the store is loaded at once:
never less safe, only as slow as before. Only the importing thread's loads are held: a context
another thread makes meanwhile loads its store as usual.
"""

from __future__ import annotations

import ssl
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

_load_store: Callable[[ssl.SSLContext], None] = ssl.SSLContext.set_default_verify_paths
_held: list[ssl.SSLContext] = []  # aiohttp's default contexts, still without their CA store
_held_lock = threading.Lock()
_DEFAULT_CONTEXTS = ("_SSL_CONTEXT_VERIFIED", "_SSL_CONTEXT_UNVERIFIED")  # in aiohttp.connector


def import_aiohttp() -> ModuleType:
    """The aiohttp module; when this call is the one that imports it, its default TLS contexts
    load the CA store on the first TLS connection instead of at import."""
    if "aiohttp" in sys.modules:
        return sys.modules["aiohttp"]
    own = vars(ssl.SSLContext).get("set_default_verify_paths")  # none: inherited from _ssl
    importer = threading.get_ident()

    def hold(context: ssl.SSLContext) -> None:
        if threading.get_ident() == importer:
            _held.append(context)
        else:
            _load_store(context)

    ssl.SSLContext.set_default_verify_paths = hold  # type: ignore[method-assign]
    try:
        import aiohttp
    finally:
        if own is None:
            del ssl.SSLContext.set_default_verify_paths
        else:
            ssl.SSLContext.set_default_verify_paths = own  # type: ignore[method-assign]
    if _held:
        _load_held_before_tls(aiohttp)
    return aiohttp


def release_held() -> None:
    """Load the CA store into the contexts that are still waiting for it (idempotent)."""
    with _held_lock:
        while _held:
            _load_store(_held.pop())


def _load_held_before_tls(aiohttp: Any) -> None:
    """Make aiohttp's connectors load the held stores before choosing a TLS context; load them
    now if the method that chooses it is not where aiohttp 3.x keeps it, or if anything other
    than aiohttp's two default contexts was held."""
    module = getattr(aiohttp, "connector", None)
    connector = getattr(module, "TCPConnector", None)
    choose = getattr(connector, "_get_ssl_context", None)
    defaults = [getattr(module, name, None) for name in _DEFAULT_CONTEXTS]
    if not callable(choose) or any(all(c is not d for d in defaults) for c in _held):
        release_held()
        return

    def _get_ssl_context(self: Any, *args: Any, **kwargs: Any) -> Any:
        # asked for every connection: plain-http ones (`is_ssl()` false) need no store
        request = args[0] if args else kwargs.get("req")
        if _held and not (callable(getattr(request, "is_ssl", None)) and not request.is_ssl()):
            release_held()
        return choose(self, *args, **kwargs)

    connector._get_ssl_context = _get_ssl_context
