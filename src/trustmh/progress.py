"""The live progress bar: done/total, rate, ETA, errors, cache hits, tokens."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from trustmh.runner import RunStats

if TYPE_CHECKING:
    from rich.console import Console

REFRESH_SECONDS = 0.2
# Redraws per second. A redraw takes a millisecond or more of CPU in rich's refresh thread, which
# takes the GIL from the event loop each time: at rich's default 10 per second that showed in the
# throughput benchmark with hundreds of requests in flight.
REDRAWS_PER_SECOND = 2


class ProgressDisplay:
    """A rich progress bar fed by the runner's counters (updates throttled to a few per second)."""

    def __init__(self, console: Console | None, enabled: bool, label: str):
        self.enabled = enabled
        self._shown = False
        self._last = 0.0
        self._started = time.monotonic()
        # when the run took its first work item (the first update): the bar is held back from
        # then, not from here, since loading a subtask's data may come in between
        self._first_update: float | None = None
        self._console = console
        self._label = label
        # built when first shown (REFRESH_SECONDS after the first item, or when the run ends
        # sooner; see `update`): rich.progress is a few tens of milliseconds of imports that
        # would otherwise come before the first request
        self._progress: Any = None
        self._task: Any = None
        self._show_later: asyncio.TimerHandle | None = None  # the bar held back at the start

    def _build(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}/s"),
            TimeRemainingColumn(),
            TextColumn(
                "err {task.fields[errors]} · cache {task.fields[cache]} · tok {task.fields[tokens]}"
            ),
            console=self._console or Console(stderr=True),
            refresh_per_second=REDRAWS_PER_SECOND,
            transient=False,
        )
        self._task = self._progress.add_task(
            self._label[:40], total=None, rate="0.0", errors=0, cache=0, tokens=0
        )

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._show_later is not None:
            self._show_later.cancel()
        if self._shown:
            self._progress.stop()

    def update(self, stats: RunStats, force: bool = False) -> None:
        """Show the current counters (at most every REFRESH_SECONDS unless forced or finished)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and stats.done < stats.total and now - self._last < REFRESH_SECONDS:
            return
        self._last = now
        if not self._shown:
            # shown once there is work (a run with nothing to ask shows no bar), and not in the
            # first REFRESH_SECONDS after the run took its first item unless it ends sooner: its
            # first requests leave before rich.progress is imported (some 40 ms), not after
            if self._first_update is None:
                self._first_update = now
            held = now - self._first_update < REFRESH_SECONDS
            early = not force and stats.done < stats.total and held
            if early and self._show_later is None:  # shown then even if nothing else happens
                self._show_later = _call_later(self._first_update + REFRESH_SECONDS - now,
                                               self.update, stats, True)  # fmt: skip
            if not stats.total or early:
                return
            self._build()
            self._progress.start()
            self._shown = True
        elapsed = max(now - self._started, 1e-6)
        self._progress.update(
            self._task,
            total=stats.total,
            completed=stats.done,
            rate=f"{stats.done / elapsed:.1f}",
            errors=stats.errors,
            cache=stats.cache_hits + stats.reused,
            tokens=stats.prompt_tokens + stats.completion_tokens,
        )


def _call_later(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle | None:
    """`callback(*args)` after `delay` seconds on the running event loop (None without one)."""
    try:
        return asyncio.get_running_loop().call_later(delay, callback, *args)
    except RuntimeError:
        return None
