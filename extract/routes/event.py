"""The event route: ``GET /series/{s}/events/{e}/candlesticks``, paged by ``adjusted_end_ts``.

One request covers every live market of the event; the server cuts it at its aggregate
cap and says where in ``adjusted_end_ts``. The decisions (what an uncapped page's
``adjusted_end_ts`` means, when a page does not advance, when its candles lie outside the
range it claims) are :func:`extract.paginator.page_step`'s.

Pages are ``{start_ts}.json.gz`` in the window folder, kind ``event_candlesticks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from extract.caps import EVENT_CANDLE_CAP
from extract.errors import BadPageError, WrongEventError
from extract.paginator import Paginator, Step, usable_adjusted_end
from extract.routes.base import Page, RouteRequest, Shape
from extract.windows import Window
from schemas.api import check_event_candles_page
from schemas.archive import KIND_EVENT_CANDLES, PAGE_SUFFIX, PageEnvelope, WindowKey
from schemas.errors import FatalApiError


def event_requests(
    n_markets: int, start_ts: int, end_ts: int, period: int, cap: int = EVENT_CANDLE_CAP
) -> int:
    """Pages the event route takes over ``[start_ts, end_ts]`` for ``n_markets``; pure.

    The bound for a cap that counts REQUESTED candidates (markets x period ends, the
    range cut at whole periods, the next page starting at the cut, inclusive): each page
    holds ``k = cap // n_markets`` period ends and the next one starts on the last of
    them. A cap counting RETURNED candles cuts no sooner (a page holds at least as many
    period ends, fewer when minutes are missing), so this is an upper bound either way,
    give or take the one confirming request of an uncapped page whose
    ``adjusted_end_ts`` names its last candle before the window end.
    """
    if n_markets <= 0:
        return 0
    step = period * 60
    first = -(-start_ts // step) * step
    ends = max(0, (end_ts // step * step - first) // step + 1)
    k = max(2, cap // n_markets)
    if n_markets * ends <= cap or ends <= k:
        return 1
    return 1 + -(-(ends - k) // (k - 1))


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

    def check(self, body: Any, req: RouteRequest) -> Page:
        try:
            page = check_event_candles_page(body)
        except FatalApiError as e:
            raise BadPageError(str(e)) from e
        prefix = self.key.event_ticker + "-"
        strangers = [t for t in page["market_tickers"] if not t.startswith(prefix)]
        if strangers:
            raise WrongEventError(
                f"page for {self.key.event_ticker} names markets of another event: {strangers[:3]}"
            )
        return Page(
            tuple(zip(page["market_tickers"], page["market_candlesticks"], strict=True)),
            usable_adjusted_end(page.get("adjusted_end_ts")),
        )

    def file(self, req: RouteRequest) -> str:
        return f"{req.start_ts}{PAGE_SUFFIX}"

    def matches(self, env: PageEnvelope, req: RouteRequest) -> bool:
        """The page asked at the same start (its end may be an earlier, shorter window's)."""
        key = self.key
        want = (KIND_EVENT_CANDLES, key.event_ticker, req.start_ts, key.period_interval)
        return (env.kind, env.event_ticker, env.start_ts, env.period_interval) == want
