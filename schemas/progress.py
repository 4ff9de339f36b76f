"""Progress of a long run: a rich bar on a terminal, a periodic log line otherwise.

Both stages show their progress through :class:`ProgressDisplay`; each renders its own
counters into one line of text (``extract.run.progress``, ``load.run.progress``). On a terminal
the bar lives on :data:`schemas.logs.CONSOLE`, the console the log lines go through, so
rich prints every log line above the bar instead of gluing it to the bar's row. Off a
terminal there is no bar: the same text is logged every ``log_every_s`` seconds, which is
what a CI log, cron mail or file wants.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, TaskID, TextColumn
from rich.progress import Progress as RichProgress

from schemas.logs import CONSOLE, bars_allowed


def duration(seconds: float) -> str:
    """``1m05s``, or ``2h03m`` past an hour."""
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 60}m{whole % 60:02d}s"


def eta(done: int, total: int, elapsed_s: float) -> float | None:
    """Seconds left at the pace so far (None before the first unit is done)."""
    if done <= 0 or elapsed_s <= 0:
        return None
    return elapsed_s / done * max(total - done, 0)


def text_bar(done: int, total: int, width: int = 24) -> str:
    """``[#####-----]``: the bar of the plain log line."""
    filled = round((done / total if total else 1.0) * width)
    return f"[{'#' * filled}{'-' * (width - filled)}]"


class ProgressDisplay:
    """Call :meth:`update` as often as you like; it decides when to draw.

    ``console`` defaults to the shared stderr console; whether it is a terminal (and
    ``--no-bar`` was not given) decides between the bar (redrawn at most every 0.2 s) and
    a log line on ``log`` every ``log_every_s`` seconds. Progress is INFO: nothing is
    shown, bar or line, when ``log`` is quieter than that (``-q``; or a library caller
    that set up no logging at all).
    """

    def __init__(
        self,
        log: logging.Logger,
        *,
        console: Console | None = None,
        log_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._console = console or CONSOLE
        self._tty = self._console.is_terminal and bars_allowed()
        self._every = 0.2 if self._tty else log_every_s
        self._clock = clock
        self._last = -float("inf")
        self._bar: RichProgress | None = None
        self._task = TaskID(0)

    def update(self, done: int, total: int, text: str, *, force: bool = False) -> None:
        """Show ``done`` of ``total`` and ``text`` (the line after the bar)."""
        if not self._log.isEnabledFor(logging.INFO):
            return  # -q: neither a bar nor progress lines
        now = self._clock()
        if not force and now - self._last < self._every:
            return
        self._last = now
        if not self._tty:
            self._log.info("progress: %s %s", text_bar(done, total), text)
            return
        if self._bar is None:
            self._bar = RichProgress(
                BarColumn(),
                TextColumn("{task.description}"),
                console=self._console,
                auto_refresh=False,
                redirect_stdout=False,  # stdout is the command's output, never the bar's
                redirect_stderr=True,  # a stray write to stderr lands above the bar too
            )
            self._task = self._bar.add_task(text, total=total)
            self._bar.start()
        self._bar.update(self._task, completed=done, total=total, description=text)
        self._bar.refresh()

    def close(self) -> None:
        """Stop the bar, leaving its last state on screen, so what follows starts below it."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
