"""Download the public originals of the data sources into the user cache, resumably and verified.

Each file comes from its URL in the catalogue (GitHub raw at a pinned commit) or from a member of
an upstream zip archive (the authors' privacy.zip / Ethics.zip), or, with a base URL
(`--base-url` / `$TRUSTMH_FETCH_BASE_URL`), from `<base>/<source>/<relative path>` of a mirror
laid out like the data folder. A download goes to `<file>.part`; an interrupted transfer is resumed
with an HTTP Range request; the finished file must match its SHA-256, or it is deleted and reported,
never installed.

HTTP is done with the standard library's urllib: downloads are sequential and simple, Range
requests need only a header, and no extra dependency is pulled in.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from trustmh.data.sources import (
    FETCH_BASE_URL_ENV,
    SOURCES,
    Archive,
    FileEntry,
    Source,
    user_data_cache,
)
from trustmh.data.verify import sha256_file
from trustmh.errors import DataError

FetchStatus = Literal[
    "present", "downloaded", "corrupt", "failed", "not downloadable", "on request"
]
BASE_URL_ENV = FETCH_BASE_URL_ENV
CHUNK = 1 << 16
USER_AGENT = "trustmh-data-fetch"
CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class FetchResult:
    """The outcome for one file (or, for a source on request, for the whole source)."""

    source_id: str
    relpath: str
    status: FetchStatus
    detail: str = ""


class _Corrupt(Exception):
    pass


class Fetcher:
    """Downloads files into `dest` (the user cache), reporting progress on a rich bar."""

    def __init__(
        self,
        dest: Path | None = None,
        base_url: str | None = None,
        retries: int = 3,
        timeout: float = 60.0,
        progress: Progress | None = None,
    ) -> None:
        self.dest = dest or user_data_cache()
        base = base_url if base_url is not None else os.environ.get(BASE_URL_ENV)
        self.base_url = base.rstrip("/") if base else None
        self.retries = max(1, retries)
        self.timeout = timeout
        self.progress = progress

    # -- public -----------------------------------------------------------------------------

    def fetch_source(self, source: Source) -> list[FetchResult]:
        """Fetch every file of one source; per-file results."""
        if not source.public:
            return [FetchResult(source.id, "", "on request", source.request)]
        return [self.fetch_file(source, entry) for entry in source.files.values()]

    def fetch_file(self, source: Source, entry: FileEntry) -> FetchResult:
        """Fetch one file unless a verified copy is already in the cache."""
        target = self.dest / source.id / entry.relpath
        if target.is_file() and sha256_file(target) == entry.sha256:
            return FetchResult(source.id, entry.relpath, "present")
        try:
            if self.base_url is not None:
                url = f"{self.base_url}/{quote(source.id)}/{quote(entry.relpath)}"
                self._download(
                    url, target, entry.sha256, entry.size, f"{source.id}/{entry.relpath}"
                )
            elif entry.origin is None:
                return FetchResult(source.id, entry.relpath, "not downloadable", entry.derived_note)
            elif entry.origin.archive is not None:
                self._from_archive(
                    entry.origin.archive, entry.origin.member or "", target, entry.sha256
                )
            else:
                self._download(
                    entry.origin.url or "",
                    target,
                    entry.sha256,
                    entry.size,
                    f"{source.id}/{entry.relpath}",
                )
        except _Corrupt as exc:
            return FetchResult(source.id, entry.relpath, "corrupt", str(exc))
        except DataError as exc:
            return FetchResult(source.id, entry.relpath, "failed", str(exc))
        return FetchResult(source.id, entry.relpath, "downloaded")

    # -- internals --------------------------------------------------------------------------

    def _from_archive(self, archive: Archive, member: str, target: Path, sha256: str) -> None:
        archive_path = self.dest / ".archives" / archive.name
        if not (archive_path.is_file() and sha256_file(archive_path) == archive.sha256):
            self._download(archive.url, archive_path, archive.sha256, archive.size, archive.name)
        try:
            with zipfile.ZipFile(archive_path) as zf:
                data = zf.read(member)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise DataError(f"{archive.name}: cannot read member {member} ({exc})") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise _Corrupt(f"{archive.name} member {member}: SHA-256 mismatch; not installed")
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        part.write_bytes(data)
        os.replace(part, target)

    def _download(self, url: str, target: Path, sha256: str, size: int | None, label: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        task = self.progress.add_task(label, total=size) if self.progress else None
        last_error: Exception | None = None
        for _attempt in range(self.retries):
            try:
                self._transfer(url, part, size, task)
                last_error = None
                break
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                last_error = exc
        if last_error is not None:
            have = part.stat().st_size if part.is_file() else 0
            raise DataError(
                f"{label}: download from {url} failed after {self.retries} attempt(s) ({_reason(last_error)}); "
                f"{have} bytes kept in {part.name}, run the fetch again to resume"
            )
        if sha256_file(part) != sha256:
            part.unlink(missing_ok=True)
            raise _Corrupt(
                f"{label}: downloaded file does not match its SHA-256 (from {url}); deleted, not installed"
            )
        os.replace(part, target)

    def _transfer(self, url: str, part: Path, size: int | None, task: TaskID | None) -> None:
        offset = part.stat().st_size if part.is_file() else 0
        if size is not None and offset > size:
            part.unlink()
            offset = 0
        if size is not None and offset == size:
            return  # complete from an earlier attempt; the checksum decides
        headers = {"User-Agent": USER_AGENT}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:
                return  # nothing left to send: the .part is complete (or wrong; the checksum decides)
            raise
        with response:
            if offset and not _resumes_at(response, offset):
                offset = 0  # server ignored the range: start over
            if self.progress is not None and task is not None:
                self.progress.update(task, completed=offset)
            announced = response.headers.get("Content-Length")
            received = 0
            with open(part, "ab" if offset else "wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    if self.progress is not None and task is not None:
                        self.progress.advance(task, len(chunk))
            # http.client does not raise when a server closes early, so compare with what was announced
            if announced is not None and received < int(announced):
                raise http.client.IncompleteRead(b"", int(announced) - received)


def _resumes_at(response: http.client.HTTPResponse, offset: int) -> bool:
    if response.status != 206:
        return False
    match = CONTENT_RANGE_RE.match(response.headers.get("Content-Range", ""))
    return match is not None and int(match.group(1)) == offset


def _reason(exc: Exception) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed with {exc.expected} bytes still to come"
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}"


def new_progress(enabled: bool = True) -> Progress:
    """The rich progress bar used by `trustmh data fetch`."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        disable=not enabled,
        transient=False,
    )


def fetch_sources(
    source_ids: Iterable[str] | None = None,
    dest: Path | None = None,
    base_url: str | None = None,
    retries: int = 3,
    show_progress: bool = True,
) -> list[FetchResult]:
    """Fetch the named sources (default: every catalogued source) into `dest` (the user cache)."""
    ids = list(source_ids) if source_ids else list(SOURCES)
    unknown = [s for s in ids if s not in SOURCES]
    if unknown:
        raise DataError(f"unknown data source {unknown[0]!r}; known: {', '.join(SOURCES)}")
    results: list[FetchResult] = []
    with new_progress(show_progress) as progress:
        fetcher = Fetcher(dest, base_url, retries, progress=progress)
        for source_id in ids:
            results.extend(fetcher.fetch_source(SOURCES[source_id]))
    return results
