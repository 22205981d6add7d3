"""The progress bar (trustmh.progress): held back for the run's first moments so that the first
requests leave before rich.progress is imported, then shown even if nothing else happens, and
always shown for a run that ends sooner."""

from __future__ import annotations

import asyncio
import io
import time

from rich.console import Console

from trustmh.progress import REFRESH_SECONDS, ProgressDisplay
from trustmh.runner import RunStats


def _display() -> tuple[ProgressDisplay, io.StringIO]:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    return ProgressDisplay(console, enabled=True, label="model"), screen


def test_the_bar_waits_for_the_first_moments_then_shows_without_further_updates() -> None:
    async def scenario() -> tuple[bool, bool, str]:
        display, screen = _display()
        stats = RunStats(total=5)
        with display:
            await asyncio.sleep(REFRESH_SECONDS / 4)  # the bar is made before the first item
            display.update(stats)  # the first item taken: too early
            early = display._shown
            await asyncio.sleep(REFRESH_SECONDS * 3)  # no reply comes meanwhile
            later = display._shown
        return early, later, screen.getvalue()

    early, later, screen = asyncio.run(scenario())
    assert not early
    assert later
    assert "0/5" in screen


def test_the_bar_is_held_back_from_the_first_item_not_from_when_it_was_made() -> None:
    """A subtask whose data takes a while to load: the bar is made, the data loads, then the
    first items are taken; the bar still waits REFRESH_SECONDS from then, so that rich.progress
    is not imported between the first items and the first requests."""

    async def scenario() -> tuple[bool, bool]:
        display, _ = _display()
        stats = RunStats(total=4)
        with display:
            time.sleep(REFRESH_SECONDS * 2)  # loading the data, the event loop blocked
            display.update(stats)  # the first item taken
            early = display._shown
            await asyncio.sleep(REFRESH_SECONDS * 2)
            return early, display._shown

    early, later = asyncio.run(scenario())
    assert not early
    assert later


def test_a_run_that_ends_in_its_first_moments_still_shows_its_bar() -> None:
    async def scenario() -> tuple[bool, str]:
        display, screen = _display()
        stats = RunStats(total=3)
        with display:
            display.update(stats)
            stats.done = 3
            display.update(stats)  # finished: shown at once
            shown = display._shown
        return shown, screen.getvalue()

    shown, screen = asyncio.run(scenario())
    assert shown
    assert "3/3" in screen


def test_nothing_to_ask_shows_no_bar_and_leaves_no_timer() -> None:
    async def scenario() -> tuple[bool, object]:
        display, _ = _display()
        with display:
            display.update(RunStats(total=0))
            await asyncio.sleep(REFRESH_SECONDS * 2)
            return display._shown, display._show_later

    shown, timer = asyncio.run(scenario())
    assert not shown and timer is None
