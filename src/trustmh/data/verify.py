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
import json
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from trustmh.data.checksums import FILES
from trustmh.data.sources import BUNDLED_DIR, SOURCES, DataContext, how_to_get, user_data_cache
from trustmh.errors import DataError, UserError

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


class HashCache:
    """SHA-256 of data files remembered by (size, mtime): a run re-hashes a file only after it
    changed. Kept as JSON under the user cache; a cache that cannot be read or written only
    costs the hashing again."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: dict[str, list] = {}
        self.changed = False
        if path is not None:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self.entries = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self.entries = {}

    def sha256(self, path: Path) -> tuple[str, bool]:
        """(hex digest, whether it came from the cache)."""
        stat = path.stat()
        key = str(path.resolve())
        entry = self.entries.get(key)
        if isinstance(entry, list) and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            return str(entry[2]), True
        digest = sha256_file(path)
        self.entries[key] = [stat.st_size, stat.st_mtime_ns, digest]
        self.changed = True
        return digest, False

    def save(self) -> None:
        """Write the cache back when something was hashed (atomically; failures ignored)."""
        if self.path is None or not self.changed:
            return
        from trustmh.outputs import write_text_atomic

        with suppress(UserError):
            write_text_atomic(self.path, json.dumps(self.entries), "hash cache", make_parents=True)


def default_hash_cache() -> HashCache:
    """The hash cache under the user cache ($TRUSTMH_CACHE_DIR/data-hashes.json)."""
    return HashCache(user_data_cache().parent / "data-hashes.json")


def data_fingerprint(
    ctx: DataContext, entries: Iterable[str], hashes: HashCache | None = None
) -> dict[str, dict[str, str | int]]:
    """What a run reads, for its record (protocol Appendix B: the data files' checksums), each
    file checked before the first request. Per file of each source entry (`source` or
    `source/file`): the data root it was actually read from and its path, size and sha256.

    A file must match the sum its data folder's own `SHA256SUMS` gives for it (the bundle has
    one too), else its catalogued size and sha256; a mismatch raises a DataError naming the file
    and `trustmh data verify`. (A deliberately changed data set is thus run by listing its new
    sums in its folder's SHA256SUMS; a bundled trimmed copy the bundle lists no sum for is never
    refused: the subset is trimmed by design.) Hashes are remembered by size and
    mtime (`HashCache`), so only a changed file is hashed again. A directory where a data file
    should be is an error too, never a reason to read another root's copy."""
    hashes = hashes or HashCache(None)
    out: dict[str, dict[str, str | int]] = {}
    folder_sums: dict[Path, dict[str, str]] = {}  # each data root's own SHA256SUMS
    for entry in entries:
        source_id, _, relpath = entry.partition("/")
        catalogue = FILES.get(source_id, {})
        relpaths = [relpath] if relpath else sorted(catalogue)
        for rel in relpaths:
            try:
                path = ctx.file(source_id, rel)
            except DataError:
                continue  # an optional source that is absent (the task said how it copes)
            _refuse_directory(ctx, source_id, rel)
            if not path.is_file() and path.with_name(path.name + ".gz").is_file():
                path = path.with_name(path.name + ".gz")
            if not path.is_file():
                continue
            root = _root_of(ctx, path, source_id)
            bundled = root is not None and root.resolve() == BUNDLED_DIR.resolve()
            expected = catalogue.get(rel)
            size = path.stat().st_size
            if root is not None and root not in folder_sums:
                folder_sums[root] = read_sha256sums(root / "SHA256SUMS")
            wanted = folder_sums.get(root, {}).get(f"{source_id}/{rel}") if root else None
            if wanted is not None:  # the data folder came with its own checksums: they decide
                digest, cached = hashes.sha256(path)
                if digest != wanted:
                    _mismatch(path, source_id, rel, f"its SHA-256 differs from {root}/SHA256SUMS")
                checked = "sha256 (bundle)" if bundled else "sha256 (the folder's SHA256SUMS)"
            elif bundled:  # a trimmed copy the bundle lists no sum for: not checkable
                digest, cached = hashes.sha256(path)
                matches = expected is not None and digest == expected[0]
                checked = "sha256" if matches else "sha256 (trimmed subset)"
            elif expected is not None:
                if path.suffix != ".gz" and size != expected[1]:
                    _mismatch(path, source_id, rel, f"{size} bytes, expected {expected[1]}")
                digest, cached = hashes.sha256(path)
                if digest != expected[0]:
                    _mismatch(path, source_id, rel, "its SHA-256 differs from the catalogue's")
                checked = "sha256"
            else:  # not in the catalogue (e.g. ELEPHANT's full sets): recorded, not checked
                digest, cached = hashes.sha256(path)
                checked = "not catalogued"
            record: dict[str, str | int] = {
                "root": f"{ctx.label(root)} ({root})" if root is not None else str(path.parent),
                "path": str(path),
                "size": size,
                "sha256": digest,
                "checked": checked + (", cached" if cached else ""),
            }
            first = ctx.root_of(source_id)
            if root is not None and first is not None and root != first:
                # the source's folder is in an earlier root without this file: say so
                record["fallback"] = f"not in {ctx.label(first)} ({first / source_id})"
            out[f"{source_id}/{rel}"] = record
    return out


def _root_of(ctx: DataContext, path: Path, source_id: str) -> Path | None:
    """The data root a resolved file lies in (its source folder's parent)."""
    for root in ctx.roots:
        if path.is_relative_to(root / source_id):
            return root
    return None


def _refuse_directory(ctx: DataContext, source_id: str, rel: str) -> None:
    """A directory where a data file should be (in a root searched before the one read) is a
    broken data folder, not a reason to read another root's copy silently."""
    for root in ctx.roots:
        candidate = root / source_id / rel
        if candidate.is_dir():
            raise DataError(
                f"{candidate}: a directory where the data file {source_id}/{rel} should be; "
                "replace it with the file (see `trustmh data verify`)"
            )
        if candidate.is_file() or candidate.with_name(candidate.name + ".gz").is_file():
            return


def _mismatch(path: Path, source_id: str, rel: str, why: str) -> None:
    raise DataError(
        f"{path}: does not match its checksum ({why}), so results from it would be wrong; "
        f"run `trustmh data verify` to check every file, and replace {source_id}/{rel} "
        f"({how_to_get(source_id)})"
    )
