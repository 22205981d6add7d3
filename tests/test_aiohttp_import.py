"""aiohttp imported with its CA store held back (`trustmh.models.aiohttp_import`): a plain-http run
never loads the store, the first TLS connection loads it as aiohttp would have (so certificates
are verified exactly as before: a server the store trusts is reached, any other is refused), and an
aiohttp whose insides differ, or a held context that is not one of aiohttp's two, gets the store
at once."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from trustmh.models import aiohttp_import


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b'{"data": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own authority, and its key (openssl's command)."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _serve(tls: tuple[Path, Path] | None) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}/v1"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate (apt install openssl)")
    folder = tmp_path_factory.mktemp("tls")
    trusted = _self_signed(folder, "trusted")
    other, _ = _self_signed(folder, "other")
    plain, plain_url = _serve(None)
    secure, secure_url = _serve(trusted)
    yield SimpleNamespace(plain=plain_url, secure=secure_url, ca=trusted[0], other_ca=other)
    plain.shutdown()
    secure.shutdown()


# Run in a fresh interpreter: the test process may have imported aiohttp already. Prints the
# CA count of aiohttp's verified context after the import, after a plain-http request through
# LeanChat (the run's request path) and after an https one, and how the https request ended.
PROBE = """
import asyncio, json, sys
from trustmh.models.openai_compat import LeanChat

plain, secure = sys.argv[1], sys.argv[2]
out = {}

async def main():
    chat = LeanChat(plain, None, 4)
    import aiohttp
    verified = aiohttp.connector._SSL_CONTEXT_VERIFIED
    out["after_import"] = verified.cert_store_stats()["x509_ca"]
    await chat.get_models()
    out["after_http"] = verified.cert_store_stats()["x509_ca"]
    await chat.close()
    chat = LeanChat(secure, None, 4)
    try:
        await chat.get_models()
        out["https"] = "ok"
    except aiohttp.ClientConnectorCertificateError:
        out["https"] = "certificate refused"
    out["after_https"] = verified.cert_store_stats()["x509_ca"]
    await chat.close()

asyncio.run(main())
print(json.dumps(out))
"""


def _probe(servers: SimpleNamespace, ca_file: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["SSL_CERT_FILE"] = str(ca_file)  # what set_default_verify_paths loads: the store
    done = subprocess.run(
        [sys.executable, "-c", PROBE, servers.plain, servers.secure],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_plain_http_never_loads_the_store_and_tls_loads_it_first(servers) -> None:
    seen = _probe(servers, servers.ca)
    assert seen["after_import"] == 0
    assert seen["after_http"] == 0
    assert seen["https"] == "ok"  # the server's certificate came from the store, loaded in time
    assert seen["after_https"] >= 1


def test_a_certificate_the_store_does_not_hold_is_still_refused(servers) -> None:
    seen = _probe(servers, servers.other_ca)
    assert seen["https"] == "certificate refused"
    assert seen["after_https"] >= 1


def test_an_aiohttp_without_the_expected_method_gets_the_store_at_once(
    servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(servers.ca))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    monkeypatch.setattr(aiohttp_import, "_held", [context])
    aiohttp_import._load_held_before_tls(SimpleNamespace())  # no connector module at all
    assert aiohttp_import._held == []
    assert context.cert_store_stats()["x509_ca"] == 1


def test_a_held_context_that_is_not_one_of_aiohttps_gets_the_store_at_once(
    servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(servers.ca))
    theirs, other = (ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) for _ in range(2))

    class Connector:
        def _get_ssl_context(self, req):  # noqa: ANN001 - as aiohttp's
            return None

    module = SimpleNamespace(TCPConnector=Connector, _SSL_CONTEXT_VERIFIED=theirs,
                             _SSL_CONTEXT_UNVERIFIED=theirs)  # fmt: skip
    monkeypatch.setattr(aiohttp_import, "_held", [theirs, other])
    aiohttp_import._load_held_before_tls(SimpleNamespace(connector=module))
    assert aiohttp_import._held == []
    assert other.cert_store_stats()["x509_ca"] == 1
    assert Connector._get_ssl_context.__qualname__.startswith("test_")  # left unwrapped
