"""Where trustmh keeps what it caches for the user: `$TRUSTMH_CACHE_DIR`, else the platform's user
cache directory. Responses, fetched data, reference scores and compiled templates each have a
folder below it."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def user_cache_root() -> Path:
    """`$TRUSTMH_CACHE_DIR` when set, else the user cache directory for trustmh."""
    return Path(os.environ.get("TRUSTMH_CACHE_DIR") or user_cache_dir("trustmh"))
