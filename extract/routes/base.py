"""The interface every candle route implements, and the page view the orchestration reads.

Pure: no I/O here or in a route's methods. The orchestration's one loop does the I/O::

    pager = route.pager(window, tickers, period)
    while (req := pager.next_request()) is not None:
        page = archived page at route.file(req) if route.matches(envelope, req)
               else route.check(bytes of GET req.path ? req.params)
        step = pager.decide(req, page)       # before archiving: a bad page is never kept
        archive the envelope (kind = route.kind) at route.file(req)
        pager.advance(req, step)

A route never fetches, archives or writes a checkpoint: those stay in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from extract.plan.paginator import Step
from extract.plan.windows import Window
from schemas.archive import PageEnvelope
from schemas.candle_pages import Ends

__all__ = ["CandleRoute", "Page", "Pager", "RouteRequest", "Shape", "Step"]

Shape = Literal["live", "historical"]
"""The candle shape of a route's pages: ``*_dollars``/``*_fp`` (live) or plain keys."""


@dataclass(frozen=True)
class RouteRequest:
    """One request of a route: the path (relative to the API base) and its parameters."""

    path: str
    params: dict[str, int | str]
    start_ts: int
    end_ts: int
    market_ticker: str | None = None
    """The market of a per-market route (its pages live under ``markets/{ticker}/``)."""
    tickers: tuple[str, ...] = ()
    """The markets the request asks for (empty: every market of the event)."""


@dataclass(frozen=True)
class Page:
    """A checked page as the orchestration reads it: which markets it lists, and the
    ``end_period_ts`` of each one's candles (one array a market, not an object a candle).

    ``markets`` keeps the server's order; a market listed with no candle is listed (the
    evidence that the server lists markets without candles).
    """

    markets: tuple[tuple[str, Ends], ...]
    adjusted_end_ts: int | None = None
    """What the page says it covers up to (event route; None: no usable value)."""
    problem: str | None = None
    """The first value outside the contract (:mod:`schemas.candle_pages`), worded; None
    when every value holds. The caller refuses such a page."""
    listed: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "listed", frozenset(t for t, _ in self.markets))

    @classmethod
    def of(
        cls, markets: Iterable[tuple[str, Sequence[int]]], adjusted_end_ts: int | None = None
    ) -> Page:
        """A page from plain lists of end times (tests and tools)."""
        return cls(tuple((t, np.asarray(e, dtype=np.int64)) for t, e in markets), adjusted_end_ts)

    @property
    def returned(self) -> int:
        """Candles in the page."""
        return sum(len(ends) for _, ends in self.markets)

    def span(self) -> tuple[int, int] | None:
        """(first, last) ``end_period_ts`` of the page's candles, or None when it has none."""
        filled = [ends for _, ends in self.markets if len(ends)]
        if not filled:
            return None
        return min(int(e.min()) for e in filled), max(int(e.max()) for e in filled)

    def only(self, tickers: frozenset[str]) -> Page:
        """The page as one window sees it: only ``tickers`` (a packed page serves several)."""
        mine = tuple((t, ends) for t, ends in self.markets if t in tickers)
        return Page(mine, self.adjusted_end_ts, self.problem)

    @property
    def lists_a_market_without_candles(self) -> bool:
        """The server listed a market with an empty candle list (it lists every market)."""
        return any(not len(ends) for _, ends in self.markets)


class Pager(Protocol):
    """The requests of one route over one window (or one market), under the route's cap."""

    @property
    def cursor(self) -> int:
        """Where the next request starts (the checkpoint's ``resume_cursor_ts``)."""
        ...

    def next_request(self) -> RouteRequest | None:
        """The next request, or None when the window is covered."""
        ...

    def decide(self, req: RouteRequest, page: Page) -> Step:
        """Accept or refuse a page (raises NoProgressError, PagingContractError); pure."""
        ...

    def advance(self, req: RouteRequest, step: Step) -> None:
        """Record an accepted (and archived) page."""
        ...


class CandleRoute(Protocol):
    """A candle route: how its requests are planned, its pages checked and archived."""

    name: str
    """Short name shown in logs and summaries (``event``, ``historical``, ...)."""
    kind: str
    """The archive page kind (``schemas.archive.PAGE_KINDS``) of its envelopes."""
    shape: Shape
    """The candle shape its pages carry (for the value check)."""
    lists_markets: bool
    """True when a page names the markets it answers for (event, batch): a market it was
    asked for and leaves out is weighed by the orchestration (it may merely have no
    candles there, or have moved to the historical tier). False for per-market routes."""
    chained: bool
    """True when each request depends on the previous answer (a rerun then reuses only
    the archived chain from the window start, and fetches everything after the first
    page it has to fetch); False when requests are planned up front (each archived
    page that matches its request is reused)."""

    shared: bool
    """True when a page serves several windows (a packed batch request): :meth:`file` is
    then relative to the archive root (under ``_packed/``), the envelope names no series
    or event, and each window takes only its own markets from the page."""

    def pager(self, window: Window, tickers: Sequence[str], period: int) -> Pager:
        """The requests for ``tickers`` over ``window`` (all of them or one market)."""
        ...

    def estimate(self, window: Window, tickers: Sequence[str], period: int) -> int:
        """Requests the pager should take (the dry run); an upper bound, say which."""
        ...

    def check(self, raw: bytes, req: RouteRequest) -> Page:
        """The page of the body's bytes (:func:`schemas.candle_pages.read_candle_page`), or
        BadPageError (retried) when it breaks the page's shape. Pure, and safe to run off
        the event loop: a full page takes milliseconds of CPU."""
        ...

    def file(self, req: RouteRequest) -> str:
        """The page's file, relative to the window folder (to the root if :attr:`shared`)."""
        ...

    def matches(self, env: PageEnvelope, req: RouteRequest) -> bool:
        """Whether an archived envelope is the answer to ``req`` (a rerun reuses it)."""
        ...
