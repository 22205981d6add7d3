"""Headless Chromium for report tests: the system's Chromium (a distribution package) driven by
Playwright, never a browser downloaded by `playwright install`.

Without Playwright or Chromium the tests skip with the reason, unless TRUSTMH_REQUIRE_BROWSER=1
(set by CI, which installs Chromium): then they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def _unavailable(reason: str) -> None:
    if os.environ.get("TRUSTMH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (TRUSTMH_REQUIRE_BROWSER=1 requires the browser tests to run)")
    pytest.skip(reason)


def chromium_path() -> str | None:
    """The system Chromium executable, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium() -> Iterator:
    """A launched headless Chromium (Playwright `Browser`); skips or fails when unavailable."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    exe = chromium_path()
    if exe is None:
        _unavailable("no system Chromium found (Debian/Ubuntu: apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
