"""Reading dataset files into validated pydantic records, with one-line errors.

Every loader goes through these helpers, so a malformed file always fails the same way: a
`DataError` naming the file, the row (1-based line or record number) and the field, plus how to fix
it (usually `trustmh data verify` / `trustmh data fetch`).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from trustmh.errors import DataError

R = TypeVar("R", bound=BaseModel)
FIX_HINT = "check it with `trustmh data verify` or restore it with `trustmh data fetch`"


def open_text(path: Path, encodings: tuple[str, ...] = ("utf-8",)) -> str:
    """The file's text, trying each encoding in turn; `.gz` files (or a `.gz` twin of a missing
    file) are decompressed transparently."""
    path = existing(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: not a valid gzip file ({exc}); {FIX_HINT}") from None
    for encoding in encodings:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as exc:
            last = exc
    raise DataError(
        f"{path}: byte {last.start} cannot be decoded as {' or '.join(encodings)}; {FIX_HINT}"
    )


def existing(path: Path) -> Path:
    """`path`, or its `.gz` twin; DataError when neither exists."""
    if path.is_file():
        return path
    gz = path.with_name(path.name + ".gz")
    if gz.is_file():
        return gz
    raise DataError(f"{path}: file not found; {FIX_HINT}")


def _validate(model: type[R], data: Any, where: str) -> R:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(record)"
        raise DataError(f"{where}: field {field!r}: {err['msg']}; {FIX_HINT}") from None


def read_jsonl(path: Path, model: type[R], encodings: tuple[str, ...] = ("utf-8",)) -> list[R]:
    """Validated records of a JSON-lines file (blank lines skipped)."""
    text = open_text(path, encodings)
    out: list[R] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}: line {lineno}: invalid JSON ({exc.msg}); {FIX_HINT}"
            ) from None
        out.append(_validate(model, data, f"{path}: line {lineno}"))
    return out


def read_json(path: Path, encodings: tuple[str, ...] = ("utf-8",)) -> Any:
    """The parsed JSON document of a file."""
    text = open_text(path, encodings)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); {FIX_HINT}"
        ) from None


def read_json_records(
    path: Path, model: type[R], encodings: tuple[str, ...] = ("utf-8",)
) -> list[R]:
    """Validated records of a JSON file holding a list of objects."""
    data = read_json(path, encodings)
    if not isinstance(data, list):
        raise DataError(
            f"{path}: expected a JSON list of records, found {type(data).__name__}; {FIX_HINT}"
        )
    return [_validate(model, item, f"{path}: record {i}") for i, item in enumerate(data)]


def read_csv(
    path: Path,
    model: type[R],
    encodings: tuple[str, ...] = ("utf-8",),
    rename: Callable[[str], str] | None = None,
    delimiter: str = ",",
) -> list[R]:
    """Validated rows of a CSV file; `rename` maps header names to field names. Row numbers in
    errors count the header as row 1, like a spreadsheet."""
    text = open_text(path, encodings)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = reader.fieldnames or []
    required = {n for n, f in model.model_fields.items() if f.is_required()}
    present = {rename(h) if rename else h for h in header}
    missing = sorted(required - present)
    if missing:
        raise DataError(f"{path}: missing column {missing[0]!r} (header has {header}); {FIX_HINT}")
    out: list[R] = []
    for rowno, row in enumerate(_rows(reader, rename), 2):
        out.append(_validate(model, row, f"{path}: row {rowno}"))
    return out


def _rows(reader: csv.DictReader, rename: Callable[[str], str] | None) -> Iterator[dict[str, Any]]:
    for row in reader:
        yield {rename(k) if rename else k: v for k, v in row.items() if k is not None}


def read_lines(path: Path, encodings: tuple[str, ...] = ("utf-8",)) -> list[str]:
    """The lines of a text file without their line endings (a trailing empty line dropped)."""
    lines = open_text(path, encodings).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]
