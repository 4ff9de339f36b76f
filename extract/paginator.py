"""Paging through a window by ``adjusted_end_ts``: a pure state machine, no I/O.

The server cuts a request at its aggregate cap and says where it stopped in
``adjusted_end_ts``; the next request starts there (inclusive, so the boundary candle
may come twice: load's key makes that harmless). The window is done once a page reaches
the window's end. A page whose ``adjusted_end_ts`` does not move past its ``start_ts``
would loop forever: :meth:`Paginator.advance` refuses it.

Resuming is the same machine fed with the pages already archived (their
``start_ts → adjusted_end_ts``), so a rerun continues exactly where the chain stops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from extract.errors import NoProgressError


@dataclass(frozen=True)
class PageRequest:
    """The next request of a window: ``start_ts``..``end_ts`` inclusive, unix seconds."""

    start_ts: int
    end_ts: int


@dataclass
class Paginator:
    """Where a window's paging stands; ``chain`` is the (start_ts, adjusted_end_ts) so far."""

    window_start: int
    window_end: int
    chain: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.window_end < self.window_start:
            raise ValueError(f"window ends ({self.window_end}) before it starts")

    @property
    def cursor(self) -> int:
        """The start_ts of the next request (the window start until a page is accepted)."""
        return self.chain[-1][1] if self.chain else self.window_start

    @property
    def finished(self) -> bool:
        return bool(self.chain) and self.chain[-1][1] >= self.window_end

    def next_request(self) -> PageRequest | None:
        """The next page to fetch, or None when the chain reaches the window end."""
        if self.finished:
            return None
        return PageRequest(self.cursor, self.window_end)

    def check(self, start_ts: int, adjusted_end_ts: int) -> None:
        """Raise NoProgressError unless a page at ``start_ts`` may be accepted."""
        if start_ts != self.cursor:
            raise ValueError(f"page starts at {start_ts}, expected {self.cursor}")
        if adjusted_end_ts >= self.window_end:
            return
        if adjusted_end_ts <= start_ts:
            raise NoProgressError(
                f"adjusted_end_ts {adjusted_end_ts} does not advance past start_ts {start_ts} "
                f"(window ends {self.window_end})"
            )

    def advance(self, start_ts: int, adjusted_end_ts: int) -> None:
        """Accept the page requested at ``start_ts`` (see :meth:`check`)."""
        self.check(start_ts, adjusted_end_ts)
        self.chain.append((start_ts, adjusted_end_ts))

    @classmethod
    def resume(cls, window_start: int, window_end: int, archived: Mapping[int, int]) -> Paginator:
        """The state after the archived pages that chain from the window start.

        ``archived`` maps each archived page's start_ts to its adjusted_end_ts. The walk
        stops at the first missing page, at a page that would not advance, or at the
        window end; pages off the chain are ignored (they will not be in the manifest).
        """
        p = cls(window_start, window_end)
        while not p.finished and p.cursor in archived:
            try:
                p.advance(p.cursor, archived[p.cursor])
            except NoProgressError:
                break
        return p
