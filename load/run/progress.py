"""Progress of ``load run``: windows done of those found, rows written, rows/s, ETA.

The loader calls :meth:`LoadProgress.update` with its running summary after each batch;
this module only renders it, through :class:`schemas.progress.ProgressDisplay` (a bar on
a terminal, a ``progress: [###---] ...`` log line every ``log_every_s`` s otherwise).
With ``--follow`` each pass over the archive brings a new summary: the bar restarts for
the pass, and :attr:`LoadProgress.summary` adds the passes up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console

from schemas.progress import ProgressDisplay, duration, eta

if TYPE_CHECKING:
    from load.run.outcome import LoadSummary

log = logging.getLogger("load.run.progress")


def describe(done: int, total: int, rows: int, elapsed_s: float) -> str:
    """``12/40 windows  1,234,567 rows  85,000 rows/s  ETA 1m05s``."""
    rate = int(rows / elapsed_s) if elapsed_s > 0 else 0
    left = eta(done, total, elapsed_s)
    return (
        f"{done}/{total} windows  {rows:,} rows  {rate:,} rows/s"
        f"  ETA {'?' if left is None else duration(left)}"
    )


class LoadProgress:
    """Shows a pass's :class:`~load.run.loader.LoadSummary` against the windows it found."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        log_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._created = self._started = clock()
        self._passes: list[LoadSummary] = []
        self._display = ProgressDisplay(log, console=console, log_every_s=log_every_s, clock=clock)

    def update(self, summary: LoadSummary, total: int, *, force: bool = False) -> None:
        """``total``: windows found to load this pass; done counts loaded, failed, held."""
        if not self._passes or summary is not self._passes[-1]:
            self._passes.append(summary)  # a new pass (the loader updates it in place)
            self._started = self._clock()
        done = summary.windows_loaded + summary.windows_failed + summary.windows_held
        elapsed = self._clock() - self._started
        text = describe(done, total, summary.rows, elapsed)
        self._display.update(done, total, text, force=force)

    @property
    def summary(self) -> LoadSummary | None:
        """Every pass shown so far, added up (None before the first): what ``--format
        json`` prints when the run ends by raising, so it never returns its summary."""
        if not self._passes:
            return None
        total = type(self._passes[-1])()
        for one in self._passes:
            total.add(one)
        total.elapsed_s = self._clock() - self._created
        total.writers = max(one.writers for one in self._passes)
        return total

    def close(self) -> None:
        self._display.close()
