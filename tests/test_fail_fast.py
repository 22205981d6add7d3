"""Failing loud and fast, driven through the `trustmh` command as a user would meet it: a server
that is not running, one that speaks no TLS, one that answers nothing at all, one that hangs on
every request, one that trickles its reply, and a run that ends with failed samples (exit 3, the
count, and a resume command that works)."""

from __future__ import annotations

import asyncio
import shlex
import socket
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import run_cli
from openai_server import FakeOpenAIServer

from trustmh.models.connect import EndpointUnreachable, connection_failure


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smoke(url: str, run_dir: Path, *extra: str, n: int = 3):
    """`trustmh run` on the built-in smoke task against `url`; (process, seconds)."""
    started = time.monotonic()
    proc = run_cli(
        "run", "--model", f"openai:test-model@{url}", "--tasks", "smoke", "--limit", str(n),
        "--run-dir", str(run_dir), "--no-progress", "--no-cache", *extra, timeout=120,
    )  # fmt: skip
    return proc, time.monotonic() - started


def stored_scores(run_dir: Path) -> dict[str, int]:
    """Sample status -> count in the run's database ({} when none was stored)."""
    db = run_dir / "trustmh.sqlite"
    if not db.is_file():
        return {}
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT status, COUNT(*) FROM scores GROUP BY status").fetchall())


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_refused_connection_is_one_line_and_exit_2_before_any_sample(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    proc, seconds = smoke(url, tmp_path / "run")
    assert proc.returncode == 2, proc.stderr
    [line] = error_lines(proc.stderr)
    assert line.startswith("error: ") and url in line and "connection refused" in line
    assert "timed out" not in line
    # no minute of retries (it was about 70 s); the bound leaves room for a loaded machine,
    # where starting the process alone can take seconds
    assert seconds < 60
    assert stored_scores(tmp_path / "run") == {}  # no sample spent, none recorded as failed


def test_unreachable_judge_after_paid_replies_prints_the_resume_command(
    fake_openai, tmp_path: Path
) -> None:
    """The model answers, the judge's server is down: the replies already paid for are kept and
    the error says how to resume without paying again."""
    judge = f"openai:test-model@http://127.0.0.1:{free_port()}/v1"
    proc = run_cli("run", "--model", f"openai:test-model@{fake_openai.base_url}", "--judge", judge,
                   "--tasks", "ethics", "--limit", "2", "--run-dir", str(tmp_path / "run"),
                   "--no-progress", "--no-cache")  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    first, second = error_lines(proc.stderr)
    assert first.startswith("error: ") and "connection refused" in first
    assert "resume with: trustmh run" in second and "--run-dir" in second
    assert fake_openai.log()  # the model was asked; its replies are stored


def test_tls_error_is_named(fake_openai, tmp_path: Path) -> None:
    """https:// to a server that speaks plain HTTP: a TLS error, not a timeout."""
    url = fake_openai.base_url.replace("http://", "https://")
    proc, _ = smoke(url, tmp_path / "run", "--api-key-env", "none")
    assert proc.returncode == 2, proc.stderr
    [line] = error_lines(proc.stderr)
    assert url in line and "TLS" in line
    assert fake_openai.log() == []


def test_dns_failure_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host name that does not resolve. The lookup is made to fail here (a test sends nothing
    to a real resolver); everything after it is the real client and check."""
    from trustmh.models.openai_compat import OpenAICompatBackend
    from trustmh.models.spec import parse_model_spec

    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    spec = parse_model_spec("openai:m@http://no-such-host.invalid:8000/v1", "--model")
    backend = OpenAICompatBackend(spec, None, timeout=5, concurrency=1)

    async def check() -> None:
        try:
            await backend.check()
        finally:
            await backend.aclose()

    with pytest.raises(EndpointUnreachable, match=r"no-such-host\.invalid.*DNS lookup failed"):
        asyncio.run(check())


def test_connection_failure_reads_the_root_cause() -> None:
    def chained(*excs: BaseException) -> BaseException:
        for outer, inner in zip(excs, excs[1:], strict=False):
            outer.__cause__ = inner
        return excs[0]

    refused = chained(TimeoutError("connect timeout"), ConnectionRefusedError(111, "refused"))
    assert "connection refused" in connection_failure(refused)
    assert connection_failure(TimeoutError("read timeout")) is None  # a slow server is not this


def test_server_that_answers_nothing_stops_the_run_at_once(tmp_path: Path) -> None:
    """Accepts connections, answers no request at all: exit 2 after the check's 10 s."""
    with FakeOpenAIServer(hang_models=True) as server:
        proc, seconds = smoke(server.base_url, tmp_path / "run", "--request-timeout", "1")
        assert server.log() == []  # no chat request was sent
    assert proc.returncode == 2, proc.stderr
    [line] = error_lines(proc.stderr)
    assert server.base_url in line and "no reply" in line and "within 10 s" in line
    assert seconds < 60


def test_hanging_server_bounds_each_sample_and_the_run_exits_3(tmp_path: Path) -> None:
    """Every chat request hangs: each attempt ends at --request-timeout, each sample after its
    retries; the run says how many failed, exits 3 and prints a resume command that works."""
    with FakeOpenAIServer(faults=[{"kind": "hang"}]) as server:
        proc, seconds = smoke(server.base_url, tmp_path / "run", "--request-timeout", "1",
                              "--max-retries", "1", "--retry-base-delay", "0")  # fmt: skip
        attempts = len(server.log())
        assert proc.returncode == 3, proc.stderr
        assert attempts == 3 * 2  # 3 samples x (1 attempt + 1 retry)
        assert server.state.models_requests == 1  # one reachability check, before the first wave
        assert seconds < 60  # 2 attempts of 1 s per sample, in parallel (was 2 x 120 s each)
        assert "incomplete: 3 of 3 samples failed" in proc.stderr
        assert "no complete reply within 1 s (--request-timeout)" in proc.stderr
        assert stored_scores(tmp_path / "run") == {"error": 3}

        # the printed command resumes the run: only the failed samples are asked again
        resume = proc.stderr.split("Rerun to retry only them: ", 1)[1].strip()
        args = shlex.split(resume)
        assert args[0] == "trustmh" and "--run-dir" in args
        server.set_faults([])
        server.reset()
        again = run_cli(*args[1:])
        assert again.returncode == 0, again.stderr
        assert len(server.log()) == 3
        assert stored_scores(tmp_path / "run") == {"ok": 3}


def test_trickling_reply_is_cut_at_the_request_timeout(tmp_path: Path) -> None:
    """A reply body sent one byte every 0.5 s would take minutes; the timeout is a deadline for the
    whole attempt, so each attempt ends after 2 s."""
    with FakeOpenAIServer(faults=[{"kind": "trickle", "delay": 0.5}]) as server:
        proc, seconds = smoke(server.base_url, tmp_path / "run", "--request-timeout", "2",
                              "--max-retries", "0", n=2)  # fmt: skip
        assert [e["outcome"] for e in server.log()] == ["trickle", "trickle"]
    assert proc.returncode == 3, proc.stderr
    assert "no complete reply within 2 s" in proc.stderr
    assert seconds < 60  # the trickle alone takes minutes per reply


def test_run_help_documents_the_defaults() -> None:
    text = " ".join(run_cli("run", "--help").stdout.split())
    assert "Default: 60" in text and "trickles in" in text
    assert "Default: 3" in text and "about 4 minutes" in text
