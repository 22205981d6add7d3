"""Where each data source lives. (Minimal placeholder; the data layer issue replaces it.)

Search order for every source: `--data-dir`, `$TRUSTMH_DATA_DIR`, the user cache filled by
`trustmh data fetch`, then the subset bundled in the package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_cache_dir

from trustmh.errors import DataError

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "bundled" / "data"


def user_data_cache() -> Path:
    """The user cache that `trustmh data fetch` fills."""
    return Path(os.environ.get("TRUSTMH_CACHE_DIR") or user_cache_dir("trustmh")) / "data"


@dataclass(frozen=True)
class DataContext:
    """The ordered list of data roots a run reads from."""

    roots: tuple[Path, ...]

    def locate(self, source: str) -> Path:
        """The folder of `source` in the first root that has it."""
        for root in self.roots:
            if (root / source).is_dir():
                return root / source
        raise DataError(
            f"data source {source!r} not found in {', '.join(map(str, self.roots)) or 'any data root'}; "
            "pass --data-dir, set TRUSTMH_DATA_DIR, or run `trustmh data fetch " + source + "`"
        )

    def file(self, source: str, relpath: str) -> Path:
        """A file of a source."""
        return self.locate(source) / relpath


def default_shared_data() -> Path | None:
    """`../shared/data` relative to the working directory, when it exists (the development layout)."""
    candidate = Path.cwd().parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def resolve_data_context(data_dir: Path | None = None) -> DataContext:
    """Data roots in search order."""
    roots: list[Path] = []
    if data_dir is not None:
        if not data_dir.is_dir():
            raise DataError(f"--data-dir {data_dir}: no such directory")
        roots.append(data_dir)
    env = os.environ.get("TRUSTMH_DATA_DIR")
    if env:
        if not Path(env).is_dir():
            raise DataError(
                f"TRUSTMH_DATA_DIR={env}: no such directory; unset it or point it at the data folder"
            )
        roots.append(Path(env))
    roots.append(user_data_cache())
    roots.append(BUNDLED_DIR)
    return DataContext(tuple(roots))
