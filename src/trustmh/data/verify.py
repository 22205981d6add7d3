"""Check every data file against the SHA-256 in the catalogue: present, missing or corrupt.

Each source is checked in the data root it would be read from (the first root holding its
folder). The bundled subset holds trimmed copies of some files, so its files are checked against
`bundled/data/SHA256SUMS` when that file exists (lines `<sha256 of the uncompressed content>
<source>/<relative path without .gz>`), else against the catalogue; a bundled file that matches
neither is reported `unverified` (not `corrupt`), and files the subset leaves out `not bundled`.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from trustmh.data.checksums import FILES
from trustmh.data.sources import BUNDLED_DIR, SOURCES, DataContext
from trustmh.errors import DataError

FileStatus = Literal["ok", "missing", "corrupt", "not bundled", "unverified"]
CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (of the decompressed bytes for a `.gz` file)."""
    digest = hashlib.sha256()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_sha256sums(path: Path) -> dict[str, str]:
    """`relative path -> sha256` from a file in `sha256sum` format (empty when absent)."""
    if not path.is_file():
        return {}
    sums: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, relpath = line.split("  ", 1) if "  " in line else line.split(" ", 1)
            sums[relpath.lstrip("*")] = digest
    return sums


@dataclass(frozen=True)
class FileCheck:
    """The result for one file."""

    relpath: str
    status: FileStatus
    path: Path | None = None


@dataclass
class SourceCheck:
    """The result for one source: where it was found and each file's status."""

    source_id: str
    root: Path | None
    where: str
    files: list[FileCheck] = field(default_factory=list)

    def count(self, status: FileStatus) -> int:
        """How many files have this status."""
        return sum(1 for f in self.files if f.status == status)

    @property
    def status(self) -> str:
        """`present`, `missing`, `corrupt`, `partial` (some files missing) or `subset` (bundled:
        some files left out or trimmed)."""
        if self.root is None:
            return "missing"
        if self.count("corrupt"):
            return "corrupt"
        if self.count("missing"):
            return "partial" if self.count("ok") else "missing"
        if self.count("not bundled") or self.count("unverified"):
            return "subset"
        return "present"


def verify_source(ctx: DataContext, source_id: str) -> SourceCheck:
    """Check every catalogued file of one source in the root it is read from."""
    source = SOURCES[source_id]
    root = ctx.root_of(source_id)
    check = SourceCheck(source_id, root, ctx.where(source_id))
    if root is None:
        check.files = [FileCheck(rel, "missing") for rel in source.files]
        return check
    bundled = root.resolve() == BUNDLED_DIR.resolve()
    expected = {rel: entry.sha256 for rel, entry in source.files.items()}
    overrides: dict[str, str] = {}
    if bundled:
        prefix = f"{source_id}/"
        sums = read_sha256sums(root / "SHA256SUMS")
        overrides = {k[len(prefix) :]: v for k, v in sums.items() if k.startswith(prefix)}
        expected.update(overrides)
    for relpath, digest in expected.items():
        path = root / source_id / relpath
        if not path.is_file() and path.with_name(path.name + ".gz").is_file():
            path = path.with_name(path.name + ".gz")
        if not path.is_file():
            check.files.append(FileCheck(relpath, "not bundled" if bundled else "missing", path))
        elif sha256_file(path) != digest:
            trimmed = bundled and relpath not in overrides
            check.files.append(FileCheck(relpath, "unverified" if trimmed else "corrupt", path))
        else:
            check.files.append(FileCheck(relpath, "ok", path))
    return check


def verify_all(ctx: DataContext, sources: list[str] | None = None) -> list[SourceCheck]:
    """Check the given sources (default: every source that has files in the catalogue)."""
    ids = sources if sources else [s.id for s in SOURCES.values() if s.files]
    return [verify_source(ctx, source_id) for source_id in ids]


def data_fingerprint(ctx: DataContext, entries: Iterable[str]) -> dict[str, dict[str, str | int]]:
    """What a run read, for its record (protocol Appendix B: the data files' checksums): per file
    of each source entry (`source` or `source/file`), where it was read from, its size and its
    sha256. A file whose size matches the catalogue gets the catalogue's sha256 (`checked: size`;
    `trustmh data verify` hashes it); any other file is hashed now (`checked: sha256`)."""
    out: dict[str, dict[str, str | int]] = {}
    for entry in entries:
        source_id, _, relpath = entry.partition("/")
        catalogue = FILES.get(source_id, {})
        relpaths = [relpath] if relpath else sorted(catalogue)
        for rel in relpaths:
            try:
                path = ctx.file(source_id, rel)
            except DataError:
                continue  # an optional source that is absent (the task said how it copes)
            if not path.is_file() and path.with_name(path.name + ".gz").is_file():
                path = path.with_name(path.name + ".gz")
            if not path.is_file():
                continue
            expected = catalogue.get(rel)
            size = path.stat().st_size
            if expected is not None and path.suffix != ".gz" and size == expected[1]:
                digest, checked = expected[0], "size"
            else:
                digest, checked = sha256_file(path), "sha256"
            out[f"{source_id}/{rel}"] = {
                "root": ctx.where(source_id),
                "size": size,
                "sha256": digest,
                "checked": checked,
            }
    return out
