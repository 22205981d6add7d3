"""`trustmh data fetch` against a real HTTP file server on 127.0.0.1 serving ../shared/data:
verified installs, resume after an interrupted transfer, rejection of corrupted bytes."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
from typer.testing import CliRunner

from trustmh.cli_data import data_app
from trustmh.data.fetch import Fetcher, fetch_sources
from trustmh.data.sources import SOURCES, Archive, FileEntry, Origin, Source
from trustmh.data.verify import sha256_file
from trustmh.errors import DataError, UserError

USMLE = "usmle_mental/USMLE-mental.jsonl"
CSSRS = "c_ssrs/500_Reddit_users_posts_labels.csv"


@dataclass
class FileServer:
    """Serves a folder (plus in-memory extras) with Range support and fault injection."""

    root: Path
    extras: dict[str, bytes] = field(default_factory=dict)
    cut_once: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before dropping
    corrupt: set[str] = field(default_factory=set)
    ignore_range: bool = False
    log: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""

    def body(self, path: str) -> bytes | None:
        if path in self.extras:
            return self.extras[path]
        target = (self.root / path).resolve()
        if self.root.resolve() not in target.parents or not target.is_file():
            return None
        data = target.read_bytes()
        if path in self.corrupt:
            data = data[:-10] + b"corrupted!"
        return data


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            path = unquote(self.path.lstrip("/"))
            range_header = self.headers.get("Range")
            server.log.append((path, range_header))
            data = server.body(path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            if range_header and not server.ignore_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            payload = data[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            cut = server.cut_once.pop(path, None)
            if cut is not None:
                self.wfile.write(payload[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def file_server(real_data: Path) -> Iterator[FileServer]:
    state = FileServer(real_data)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def expected_sha(relpath: str) -> str:
    source, inner = relpath.split("/", 1)
    return SOURCES[source].files[inner].sha256


def test_fetch_installs_verified_files_and_skips_present_ones(
    file_server: FileServer, isolated_cache: Path
) -> None:
    results = fetch_sources(
        ["usmle_mental", "cpsycoune"], base_url=file_server.url, show_progress=False
    )
    assert {r.status for r in results} == {"downloaded"}
    assert len(results) == len(SOURCES["usmle_mental"].files) + len(SOURCES["cpsycoune"].files)
    # folder names with spaces and '&' survive URL quoting
    target = isolated_cache / "data" / "cpsycoune" / "Family Relationship" / "1.json"
    assert sha256_file(target) == expected_sha("cpsycoune/Family Relationship/1.json")
    file_server.log.clear()
    again = fetch_sources(["usmle_mental"], base_url=file_server.url, show_progress=False)
    assert {r.status for r in again} == {"present"} and file_server.log == []


def test_interrupted_download_resumes_on_next_fetch(
    file_server: FileServer, isolated_cache: Path
) -> None:
    cut = 1_000_000
    file_server.cut_once[CSSRS] = cut
    first = fetch_sources(["c_ssrs"], base_url=file_server.url, retries=1, show_progress=False)
    assert first[0].status == "failed" and "resume" in first[0].detail
    part = isolated_cache / "data" / "c_ssrs" / "500_Reddit_users_posts_labels.csv.part"
    assert part.stat().st_size == cut
    assert not part.with_suffix("").exists()
    second = fetch_sources(["c_ssrs"], base_url=file_server.url, retries=1, show_progress=False)
    assert second[0].status == "downloaded"
    assert file_server.log[-1] == (CSSRS, f"bytes={cut}-")
    assert sha256_file(part.with_suffix("")) == expected_sha(CSSRS) and not part.exists()


def test_interrupted_download_resumes_within_one_fetch(
    file_server: FileServer, isolated_cache: Path
) -> None:
    file_server.cut_once[USMLE] = 300_000
    results = fetch_sources(
        ["usmle_mental"], base_url=file_server.url, retries=3, show_progress=False
    )
    assert {r.status for r in results} == {"downloaded"}
    assert [rng for path, rng in file_server.log if path == USMLE] == [None, "bytes=300000-"]


def test_server_ignoring_range_restarts_cleanly(
    file_server: FileServer, isolated_cache: Path
) -> None:
    file_server.cut_once[USMLE] = 300_000
    file_server.ignore_range = True
    results = fetch_sources(
        ["usmle_mental"], base_url=file_server.url, retries=2, show_progress=False
    )
    assert {r.status for r in results} == {"downloaded"}
    assert sha256_file(isolated_cache / "data" / USMLE) == expected_sha(USMLE)


def test_corrupted_download_is_rejected_and_deleted(
    file_server: FileServer, isolated_cache: Path
) -> None:
    file_server.corrupt.add(USMLE)
    results = {
        r.relpath: r
        for r in fetch_sources(["usmle_mental"], base_url=file_server.url, show_progress=False)
    }
    bad = results["USMLE-mental.jsonl"]
    assert bad.status == "corrupt" and "SHA-256" in bad.detail
    target = isolated_cache / "data" / USMLE
    assert not target.exists() and not target.with_name(target.name + ".part").exists()
    assert results["Crisis_Response_QA.jsonl"].status == "downloaded"


def test_archive_member_is_extracted_and_verified(
    file_server: FileServer, isolated_cache: Path
) -> None:
    member = b"tier 1 line\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("privacy/task1/benchmark/tier_1.txt", member)
    blob = buffer.getvalue()
    file_server.extras["archives/privacy.zip"] = blob
    archive = Archive(
        "privacy.zip",
        f"{file_server.url}/archives/privacy.zip",
        hashlib.sha256(blob).hexdigest(),
        len(blob),
    )
    good = FileEntry(
        "task1/tier_1.txt",
        hashlib.sha256(member).hexdigest(),
        len(member),
        Origin(archive=archive, member="privacy/task1/benchmark/tier_1.txt"),
    )
    wrong = FileEntry(
        "task1/other.txt",
        "0" * 64,
        3,
        Origin(archive=archive, member="privacy/task1/benchmark/tier_1.txt"),
    )
    source = Source(
        "demo_archive", "demo", "MIT", "x/y", files={good.relpath: good, wrong.relpath: wrong}
    )
    fetcher = Fetcher(isolated_cache / "data", base_url="")
    fetcher.base_url = None  # use the origins, not a mirror
    assert fetcher.fetch_file(source, good).status == "downloaded"
    assert (
        isolated_cache / "data" / "demo_archive" / "task1" / "tier_1.txt"
    ).read_bytes() == member
    result = fetcher.fetch_file(source, wrong)
    assert (
        result.status == "corrupt"
        and not (isolated_cache / "data" / "demo_archive" / "task1" / "other.txt").exists()
    )
    assert [p for p, _ in file_server.log].count("archives/privacy.zip") == 1  # archive reused


def test_cli_fetch_then_verify_and_on_request_sources(
    file_server: FileServer, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRUSTMH_DATA_DIR", raising=False)
    runner = CliRunner()
    result = runner.invoke(
        data_app, ["fetch", "emobench", "d4", "--base-url", file_server.url, "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "x-lance.github.io/D4" in result.output
    verify = runner.invoke(data_app, ["verify", "emobench"])
    assert verify.exit_code == 0 and "present" in verify.output and "user cache" in verify.output
    file_server.corrupt.add("emobench/EA.jsonl")
    (isolated_cache / "data" / "emobench" / "EA.jsonl").unlink()
    failed = runner.invoke(
        data_app, ["fetch", "emobench", "--base-url", file_server.url, "--no-progress"]
    )
    assert isinstance(failed.exception, DataError) and failed.exception.exit_code == 2
    assert "emobench/EA.jsonl" in str(failed.exception) and "\n" not in str(failed.exception)


def test_unknown_source_is_a_user_error() -> None:
    result = CliRunner().invoke(data_app, ["fetch", "nope", "--no-progress"])
    assert isinstance(result.exception, UserError) and result.exception.exit_code == 2
    assert "unknown data source 'nope'" in str(result.exception)
