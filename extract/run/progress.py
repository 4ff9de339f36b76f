"""Progress of a candles run, rendered from the run's counters.

:class:`Progress` draws through :class:`schemas.progress.ProgressDisplay`: a rich bar on
a terminal (log lines print above it), a ``progress: [###---] ...`` log line every
``log_every_s`` seconds otherwise (CI, cron, files).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

from schemas.progress import ProgressDisplay, duration, eta, text_bar

log = logging.getLogger("extract.run.progress")


@dataclass(frozen=True)
class Snapshot:
    """The counters shown."""

    windows_done: int
    windows_total: int
    pages: int
    requests: int
    throttled: int
    elapsed_s: float
    series_done: int = 0
    series_total: int = 1

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        return eta(self.windows_done, self.windows_total, self.elapsed_s)


def describe(s: Snapshot) -> str:
    """``12/40 events  310 pages  9.8 req/s  3 429s  ETA 1m05s``: the text after the bar
    (``12/40 events  1/5 series  ...`` in a run of several series)."""
    left = "?" if s.eta_s is None else duration(s.eta_s)
    series = f"  {s.series_done}/{s.series_total} series" if s.series_total > 1 else ""
    return (
        f"{s.windows_done}/{s.windows_total} events{series}  {s.pages} pages"
        f"  {s.rate:.1f} req/s  {s.throttled} 429s  ETA {left}"
    )


def render(s: Snapshot, width: int = 24) -> str:
    """``[#####-----] 12/40 events  310 pages  9.8 req/s  3 429s  ETA 1m05s``."""
    return f"{text_bar(s.windows_done, s.windows_total, width)} {describe(s)}"


class Progress:
    """Call :meth:`update` as often as you like; it decides when to draw."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        log_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._display = ProgressDisplay(log, console=console, log_every_s=log_every_s, clock=clock)

    def update(self, s: Snapshot, *, force: bool = False) -> None:
        self._display.update(s.windows_done, s.windows_total, describe(s), force=force)

    def close(self) -> None:
        """Stop the bar so the summary starts below it."""
        self._display.close()
