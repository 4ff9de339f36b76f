"""Progress of a candles run: a one-line bar on a terminal, periodic log lines otherwise.

The numbers come from the run's counters; this module only renders them, at most a few
times a second on a TTY and every ``log_every_s`` seconds in a log (CI, cron, files).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

log = logging.getLogger("extract.progress")


@dataclass(frozen=True)
class Snapshot:
    """The counters shown."""

    windows_done: int
    windows_total: int
    pages: int
    requests: int
    throttled: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if self.windows_done == 0 or self.elapsed_s <= 0:
            return None
        per_window = self.elapsed_s / self.windows_done
        return per_window * (self.windows_total - self.windows_done)


def render(s: Snapshot, width: int = 24) -> str:
    """``[#####-----] 12/40 events  310 pages  9.8 req/s  3 429s  ETA 1m05s``."""
    frac = s.windows_done / s.windows_total if s.windows_total else 1.0
    filled = round(frac * width)
    eta = "?" if s.eta_s is None else _duration(s.eta_s)
    return (
        f"[{'#' * filled}{'-' * (width - filled)}] {s.windows_done}/{s.windows_total} events"
        f"  {s.pages} pages  {s.rate:.1f} req/s  {s.throttled} 429s  ETA {eta}"
    )


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """Call :meth:`update` as often as you like; it decides when to draw."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        log_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._every = 0.2 if self._tty else log_every_s
        self._clock = clock
        self._last = -float("inf")
        self._drawn = False

    def update(self, s: Snapshot, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last < self._every:
            return
        self._last = now
        if self._tty:
            self._stream.write("\r\x1b[2K" + render(s))
            self._stream.flush()
            self._drawn = True
        else:
            log.info("progress: %s", render(s))

    def close(self) -> None:
        """End the bar's line so the summary starts on a fresh one."""
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
