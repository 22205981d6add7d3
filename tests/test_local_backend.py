"""The `local:` backend: spec options, the message without the extra, and the managed llama.cpp
server's life (started on first use, shared by model and judge, never left behind however its
parent ends). Tests that need the server skip without the extra, naming the install command."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ctrl_c_default, run_cli, trustmh_exe
from local_model import alive, needs_local, wait_for_server, wait_gone

from trustmh.errors import FatalBackendError, UserError
from trustmh.models.spec import parse_model_spec, resolve_api_key
from trustmh.types import GenParams, GenRequest

INSTALL = "pip install 'trustmh[local]'"


def test_spec_keeps_the_model_and_splits_the_options() -> None:
    spec = parse_model_spec("local:smollm2?ctx=4096&threads=1")
    assert (spec.provider, spec.model) == ("local", "smollm2")
    assert dict(spec.options) == {"ctx": "4096", "threads": "1"}
    assert spec.canonical == "local:smollm2"  # options do not change a reply: not in the key
    assert resolve_api_key(spec, None) is None  # a local model needs no key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("local:", "not a model spec; use .*local:smollm2, local:PATH.gguf"),
        ("local:?ctx=1", "name a model after local:"),
        ("local:smollm2?ctx", "malformed option 'ctx'"),
        ("local:smollm2?=3", "malformed option '=3'"),
    ],
)
def test_malformed_local_spec_is_one_clear_error(text: str, expected: str) -> None:
    with pytest.raises(UserError, match=expected) as info:
        parse_model_spec(text, "--judge")
    assert str(info.value).startswith(f"--judge {text!r}")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"gpu": "1"}, "unknown option 'gpu'; local models take ctx"),
        ({"ctx": "big"}, "option ctx='big' must be a whole number, at least 64"),
        ({"threads": "0"}, "option threads='0' must be a whole number, at least 1"),
        ({"port": "70000"}, "option port='70000' must be a whole number, 1-65535"),
    ],
)
def test_bad_server_option_names_it(options: dict[str, str], expected: str) -> None:
    from trustmh.models.local_server import server_settings

    with pytest.raises(UserError, match=expected):
        server_settings(Path("m.gguf"), "m", options, "--model local:m.gguf")


def test_server_options_and_defaults() -> None:
    from trustmh.models.local_server import DEFAULT_CTX, server_settings

    default = server_settings(Path("m.gguf"), "m", {}, "--model local:m.gguf")
    assert (default.ctx, default.threads, default.port) == (DEFAULT_CTX, os.cpu_count(), None)
    chosen = server_settings(
        Path("m.gguf"), "m", {"ctx": "2048", "threads": "1", "port": "8123"}, "x"
    )
    assert (chosen.ctx, chosen.threads, chosen.port) == (2048, 1, 8123)


def test_without_the_extra_one_line_with_the_install_command(tmp_path: Path) -> None:
    # hide llama.cpp from the trustmh process, as on a machine without the extra
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['llama_cpp'] = None\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")]))}
    for flag in ("--model", "--judge"):
        args = (
            ["--model", "baseline", "--judge", "local:smollm2"]
            if flag == "--judge"
            else ["--model", "local:smollm2"]
        )
        result = run_cli("run", *args, "--tasks", "ethics", "--limit", "1", "--run-dir", str(tmp_path / flag),
                         "--no-progress", env=env)  # fmt: skip
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {flag} local:smollm2:"), lines
        assert INSTALL in lines[0]


@needs_local
def test_a_missing_model_file_is_a_user_error(tmp_path: Path) -> None:
    result = run_cli("run", "--model", f"local:{tmp_path / 'absent.gguf'}", "--tasks", "ethics",
                     "--run-dir", str(tmp_path / "run"), "--no-progress")  # fmt: skip
    assert result.returncode == 2
    assert "no model file at" in result.stderr and "local:smollm2" in result.stderr
    assert "Traceback" not in result.stderr


def _request(text: str = "Reply with one word: hello.") -> GenRequest:
    return GenRequest(
        ({"role": "user", "content": text},), GenParams(temperature=0.0, max_tokens=8)
    )


@needs_local
def test_server_starts_on_first_request_is_shared_and_stops_when_released() -> None:
    from trustmh.models.local import LocalBackend

    async def scenario() -> None:
        spec = parse_model_spec("local:smollm2?ctx=2048&threads=1")
        model = LocalBackend(spec, timeout=120, concurrency=4)
        judge = LocalBackend(spec, timeout=120, concurrency=4, flag="--judge")
        server = model.server
        assert server is judge.server and server.pid is None  # nothing started before a request
        reply = await model.generate(_request())
        assert reply.text.strip() and reply.usage.completion_tokens > 0
        pid, log = server.pid, server.log_path
        assert pid and alive(pid) and server.url.startswith("http://127.0.0.1:")
        assert (await judge.generate(_request("Say yes."))).text.strip()
        assert server.pid == pid  # the judge used the same server
        await model.aclose()
        assert alive(pid)  # the judge still holds it
        await judge.aclose()
        assert not alive(pid) and not log.exists()  # stopped, its log removed
        assert model.spec == "local:smollm2" and "SmolLM2-135M-Instruct" in model.label

    asyncio.run(scenario())


PARENT = textwrap.dedent(
    """
    import asyncio, sys, time
    from trustmh.models import local_server as ls
    server = ls.acquire(ls.ServerSettings(ls.embedded_model_file(), "smollm2", 2048, 1, None))
    asyncio.run(server.ensure_started())
    print(server.pid, flush=True)
    if sys.argv[1] == "exit":
        sys.stdin.readline()  # once the test has seen the server running
        sys.exit(0)  # without stopping it: the atexit hook must
    time.sleep(600)
    """
)


@needs_local
@pytest.mark.parametrize("end", ["SIGKILL", "SIGTERM", "exit"])
def test_no_server_outlives_its_parent(end: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, end],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pid = int(parent.stdout.readline())
        assert alive(pid)
        if end == "exit":
            parent.stdin.write("\n")
            parent.stdin.flush()
        else:
            parent.send_signal(getattr(signal, end))
        parent.wait(timeout=60)
        assert wait_gone([pid]) == [], f"the server {pid} outlived its parent ({end})"
    finally:
        if parent.poll() is None:
            parent.kill()


@needs_local
def test_a_taken_port_is_a_clear_fatal_error() -> None:
    from trustmh.models import local_server as ls

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ls.ManagedServer(
            ls.ServerSettings(ls.embedded_model_file(), "smollm2", 2048, 1, port)
        )
        with pytest.raises(FatalBackendError, match=f"port {port} is in use; choose another with"):
            asyncio.run(server.ensure_started())
    assert server.pid is None
    server.log_path.unlink()


@needs_local
def test_a_server_that_cannot_load_the_file_names_its_log(tmp_path: Path) -> None:
    from trustmh.models import local_server as ls

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file" * 100)
    server = ls.ManagedServer(ls.ServerSettings(broken, "broken", 2048, 1, None))
    with pytest.raises(FatalBackendError, match="the llama.cpp server exited with code") as info:
        asyncio.run(server.ensure_started())
    assert str(server.log_path) in str(info.value) and server.log_path.exists()
    server.log_path.unlink()


@needs_local
def test_ctrl_c_stops_the_server_and_keeps_the_work(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # ethics reads the bundled subset: no data folder needed
    cmd = [*trustmh_exe(), "run", "--model", "local:smollm2?threads=1", "--tasks", "ethics", "--limit", "30",
           "--run-dir", str(run_dir), "--no-cache", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_default)  # fmt: skip
    try:
        pid = wait_for_server(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Resume with: " in stderr and "Traceback" not in stderr
    assert wait_gone([pid], timeout=5) == []


def test_engine_caps_in_flight_requests_at_the_servers_parallel_slots() -> None:
    from trustmh.engine import in_flight
    from trustmh.models.local import LocalBackend

    class Unbounded:
        pass

    assert LocalBackend.parallel == 1  # llama_cpp.server serves one request at a time
    assert in_flight(LocalBackend, 32) == 1
    assert in_flight(Unbounded(), 32) == 32
