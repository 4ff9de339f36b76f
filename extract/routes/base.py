"""The interface every candle route implements, and the page view the orchestration reads.

Pure: no I/O here or in a route's methods. The orchestration's one loop does the I/O::

    pager = route.pager(window, tickers, period)
    while (req := pager.next_request()) is not None:
        page = archived page at route.file(req) if route.matches(envelope, req)
               else route.check(GET req.path ? req.params)
        step = pager.decide(req, page)       # before archiving: a bad page is never kept
        archive the envelope (kind = route.kind) at route.file(req)
        pager.advance(req, step)

A route never fetches, archives or writes a checkpoint: those stay in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from extract.plan.paginator import Step
from extract.plan.windows import Window
from schemas.archive import PageEnvelope

__all__ = ["CandleRoute", "Page", "Pager", "RouteRequest", "Shape", "Step"]

Candle = Mapping[str, Any]
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
    """A checked page as the orchestration reads it: which markets it lists, their candles.

    ``markets`` keeps the server's order; a market listed with no candle is listed (the
    evidence that the server lists markets without candles).
    """

    markets: tuple[tuple[str, Sequence[Candle]], ...]
    adjusted_end_ts: int | None = None
    """What the page says it covers up to (event route; None: no usable value)."""
    listed: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "listed", frozenset(t for t, _ in self.markets))

    @property
    def returned(self) -> int:
        """Candles in the page."""
        return sum(len(cs) for _, cs in self.markets)

    def span(self) -> tuple[int, int] | None:
        """(first, last) ``end_period_ts`` of the page's candles, or None when it has none."""
        ends = [c["end_period_ts"] for _, cs in self.markets for c in cs]
        return (min(ends), max(ends)) if ends else None

    @property
    def lists_a_market_without_candles(self) -> bool:
        """The server listed a market with an empty candle list (it lists every market)."""
        return any(not cs for _, cs in self.markets)


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

    def pager(self, window: Window, tickers: Sequence[str], period: int) -> Pager:
        """The requests for ``tickers`` over ``window`` (all of them or one market)."""
        ...

    def estimate(self, window: Window, tickers: Sequence[str], period: int) -> int:
        """Requests the pager should take (the dry run); an upper bound, say which."""
        ...

    def check(self, body: Any, req: RouteRequest) -> Page:
        """The page, or BadPageError (retried) when the body breaks the page's shape."""
        ...

    def file(self, req: RouteRequest) -> str:
        """The page's file, relative to the window folder."""
        ...

    def matches(self, env: PageEnvelope, req: RouteRequest) -> bool:
        """Whether an archived envelope is the answer to ``req`` (a rerun reuses it)."""
        ...
