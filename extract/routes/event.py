"""The event route: ``GET /series/{s}/events/{e}/candlesticks``, paged by ``adjusted_end_ts``.

One request covers every live market of the event; the server cuts it at its aggregate
cap and says where in ``adjusted_end_ts``. The decisions (what an uncapped page's
``adjusted_end_ts`` means, when a page does not advance, when its candles lie outside the
range it claims) are :func:`extract.plan.paginator.page_step`'s.

Pages are ``{start_ts}.json.gz`` in the window folder, kind ``event_candlesticks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from extract.errors import BadPageError, WrongEventError
from extract.plan.caps import event_requests
from extract.plan.paginator import Paginator, Step, usable_adjusted_end
from extract.plan.windows import Window
from extract.routes.base import Page, RouteRequest, Shape
from schemas.archive import KIND_EVENT_CANDLES, PAGE_SUFFIX, PageEnvelope, WindowKey
from schemas.candle_pages import read_candle_page
from schemas.errors import FatalApiError


@dataclass
class EventPager:
    """The event route's pager over one window (the :class:`Paginator` and the path)."""

    route: EventRoute
    paginator: Paginator
    period: int

    @property
    def cursor(self) -> int:
        return self.paginator.cursor

    def next_request(self) -> RouteRequest | None:
        req = self.paginator.next_request()
        if req is None:
            return None
        return self.route.request(req.start_ts, req.end_ts, self.period)

    def decide(self, req: RouteRequest, page: Page) -> Step:
        return self.paginator.step(req.start_ts, page.adjusted_end_ts, page.span(), req.end_ts)

    def advance(self, req: RouteRequest, step: Step) -> None:
        self.paginator.accept(req.start_ts, step)


class EventRoute:
    """``GET /series/{s}/events/{e}/candlesticks`` for one window key."""

    name = "event"
    kind = KIND_EVENT_CANDLES
    shape: Shape = "live"
    lists_markets = True
    chained = True
    shared = False

    def __init__(self, key: WindowKey) -> None:
        self.key = key
        self.path = f"/series/{key.series_ticker}/events/{key.event_ticker}/candlesticks"

    def request(self, start_ts: int, end_ts: int, period: int) -> RouteRequest:
        params: dict[str, int | str] = {
            "start_ts": start_ts,
            "end_ts": end_ts,
            "period_interval": period,
        }
        return RouteRequest(self.path, params, start_ts, end_ts)

    def pager(self, window: Window, tickers: Sequence[str], period: int) -> EventPager:
        return EventPager(self, Paginator(window.start_ts, window.end_ts), period)

    def estimate(self, window: Window, tickers: Sequence[str], period: int) -> int:
        return event_requests(len(tickers), window.start_ts, window.end_ts, period)

    def check(self, raw: bytes, req: RouteRequest) -> Page:
        try:
            page = read_candle_page(raw, "event", req.path)
        except FatalApiError as e:
            raise BadPageError(str(e)) from e
        prefix = self.key.event_ticker + "-"
        strangers = [t for t, _ in page.markets if not t.startswith(prefix)]
        if strangers:
            raise WrongEventError(
                f"page for {self.key.event_ticker} names markets of another event: {strangers[:3]}"
            )
        return Page(page.markets, usable_adjusted_end(page.adjusted_end_ts), page.problem)

    def file(self, req: RouteRequest) -> str:
        return f"{req.start_ts}{PAGE_SUFFIX}"

    def matches(self, env: PageEnvelope, req: RouteRequest) -> bool:
        """The page asked at the same start (its end may be an earlier, shorter window's)."""
        key = self.key
        want = (KIND_EVENT_CANDLES, key.event_ticker, req.start_ts, key.period_interval)
        return (env.kind, env.event_ticker, env.start_ts, env.period_interval) == want
