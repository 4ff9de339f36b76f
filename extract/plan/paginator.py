"""Paging through a window by ``adjusted_end_ts``: a pure state machine, no I/O.

The server cuts a request at its aggregate cap and says where it stopped in
``adjusted_end_ts``; the next request starts there (inclusive, so the boundary candle
may come twice: load's key makes that harmless). The window is done once a page reaches
the window's end.

What an UNCAPPED page says in ``adjusted_end_ts`` is open (``kalshi-api.md``, "What the
spec leaves open"): the requested ``end_ts``, the last candle's end, 0, or no key at all.
:func:`page_step` is right under each answer, from the page alone:

====================================  ==================================================
the page says                          verdict
====================================  ==================================================
``adjusted_end_ts`` >= requested end   done: the page covers ``[start, end]``
0 or absent (no usable claim)          done: only an uncapped page may omit it
``start`` < adjusted < end             next page at adjusted (capped; or uncapped naming
                                       its last candle: the next page then holds only the
                                       boundary candle and ends the window, one request)
adjusted <= ``start``, no candle       done: an uncapped page naming its last candle, the
after ``start``                        boundary one (or none)
adjusted <= ``start`` with candles     NoProgressError: a capped page that does not
after ``start``                        advance (a stalled server); retried, then fails
====================================  ==================================================

The cap itself is not an input: the server decides it (the documented 5,000 is a
changelog figure, and a page may be cut well below it), so a claim inside the range is
always followed, never second-guessed from the page's size.

Every candle must lie in the range the page claims, ``[start, adjusted]`` when it was
cut there: a capped page holding candles after its claimed end (a server paging backward,
or counting another way) would make the next page skip or repeat candles, so it raises
:class:`~extract.errors.PagingContractError` and the window fails with the reason.

Resuming is the same machine fed with the pages already archived, so a rerun continues
exactly where the chain stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from extract.errors import NoProgressError, PagingContractError


@dataclass(frozen=True)
class PageRequest:
    """The next request of a window: ``start_ts``..``end_ts`` inclusive, unix seconds."""

    start_ts: int
    end_ts: int


@dataclass(frozen=True)
class Step:
    """A verdict on a page: where the next request starts (None: done), what it covers.

    ``covered_end`` is the end of the range the page is taken to cover: the next start,
    or the requested end when the page ends the window.
    """

    next_start: int | None
    covered_end: int


def usable_adjusted_end(value: object) -> int | None:
    """``adjusted_end_ts`` as a claim: a positive integer, else None (0, absent, junk)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def page_step(
    start_ts: int, end_ts: int, adjusted_end_ts: int | None, span: tuple[int, int] | None
) -> Step:
    """The verdict on an event page requested for ``[start_ts, end_ts]``; see the table.

    ``span`` is the (first, last) ``end_period_ts`` of the page's candles, None when it
    has none; ``adjusted_end_ts`` is :func:`usable_adjusted_end` of what it said.
    """
    a = adjusted_end_ts
    if a is not None and a <= start_ts and end_ts > start_ts:
        if span is not None and span[0] < start_ts:
            raise PagingContractError(
                f"paging semantics differ from the contract: the page requested for "
                f"[{start_ts}, {end_ts}] holds a candle at {span[0]}, before its start"
            )
        if span is not None and span[1] > start_ts:
            raise NoProgressError(
                f"adjusted_end_ts {a} does not advance past start_ts {start_ts} although the "
                f"page holds candles up to {span[1]} (window ends {end_ts})"
            )
        return Step(None, end_ts)
    claimed_end = end_ts if a is None or a >= end_ts else a
    if span is not None and (span[0] < start_ts or span[1] > claimed_end):
        raise PagingContractError(
            f"paging semantics differ from the contract: the page requested for "
            f"[{start_ts}, {end_ts}] with adjusted_end_ts {a} holds candles from {span[0]} "
            f"to {span[1]}, outside [{start_ts}, {claimed_end}]"
        )
    if claimed_end >= end_ts:
        return Step(None, end_ts)
    return Step(claimed_end, claimed_end)


@dataclass
class Paginator:
    """Where a window's paging stands; ``chain`` is the (start_ts, covered_end) so far."""

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

    def step(
        self,
        start_ts: int,
        adjusted_end_ts: int | None,
        span: tuple[int, int] | None = None,
        end_ts: int | None = None,
    ) -> Step:
        """The verdict on the page requested at ``start_ts`` (up to ``end_ts``, by default
        the window end; an archived page may have been asked for a shorter window)."""
        if start_ts != self.cursor:
            raise ValueError(f"page starts at {start_ts}, expected {self.cursor}")
        end = self.window_end if end_ts is None else end_ts
        return page_step(start_ts, end, usable_adjusted_end(adjusted_end_ts), span)

    def accept(self, start_ts: int, step: Step) -> None:
        """Record the page requested at ``start_ts`` with its verdict."""
        if start_ts != self.cursor:
            raise ValueError(f"page starts at {start_ts}, expected {self.cursor}")
        self.chain.append((start_ts, step.covered_end))

    def advance(
        self,
        start_ts: int,
        adjusted_end_ts: int | None,
        span: tuple[int, int] | None = None,
        end_ts: int | None = None,
    ) -> Step:
        """:meth:`step` then :meth:`accept`: one call for a page taken as it is."""
        step = self.step(start_ts, adjusted_end_ts, span, end_ts)
        self.accept(start_ts, step)
        return step
