"""A digest of trustmh's own code, for what is cached across runs only while the code that made it
is unchanged (the reference scores, the null responders' floors): any edit to any module changes
it, and so does the version."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from trustmh import __version__

PACKAGE = Path(__file__).resolve().parent


def tree_fingerprint(package: Path, salt: str = "") -> str:
    """sha256 over `salt`, then the relative path and bytes of every module below `package`."""
    digest = hashlib.sha256(salt.encode())
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """The digest of the installed trustmh package and its version (computed once per process:
    reading its sources takes about 10 ms)."""
    return tree_fingerprint(PACKAGE, __version__)
