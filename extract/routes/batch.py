"""The batch route: ``GET /markets/candlesticks?market_tickers=a,b,...``.

Up to 100 tickers and 10,000 REQUESTED candles (tickers x periods of the range) a
request; over that the server answers 400 (the recorded sample), so every request is
planned under both limits up front (:func:`extract.plan.caps.batch_plan`) and none is ever
sent over them. The answer is ``{"markets": [{"market_ticker", "candlesticks"}]}`` with
the live ``MarketCandlestick`` shape; it carries no cursor and no ``adjusted_end_ts``.

Layout: one event per request (a request never mixes events: measured, packing several
events' markets saves under 20% of requests on the 12-month benchmark, see
``tests/bench/requests.py``). Pages are ``batch/g{group}/{start_ts}.json.gz`` in the
event's window folder, kind ``batch_candlesticks``; ``group`` numbers the window's
groups of at most 100 tickers (a weather event has one). A market the answer leaves
out is the orchestration's business: the same fallbacks as on the event route.
"""

from __future__ import annotations

from collections.abc import Sequence

from extract.errors import BadPageError, WrongEventError
from extract.plan.caps import BatchRequest, batch_plan, ticker_groups
from extract.plan.windows import Window
from extract.routes.base import Page, RouteRequest, Shape
from extract.routes.historical import ChunkPager
from schemas.archive import BATCH_DIR, KIND_BATCH_CANDLES, PAGE_SUFFIX, PageEnvelope, WindowKey
from schemas.candle_pages import read_candle_page
from schemas.errors import FatalApiError

BATCH_PATH = "/markets/candlesticks"


def check_batch_page(raw: bytes, asked: Sequence[str], where: str = BATCH_PATH) -> Page:
    """The page of a batch answer, or BadPageError (retried).

    The shape and the values are :func:`schemas.candle_pages.read_candle_page`'s; here,
    each entry must name a market the request asked for, once.
    """
    try:
        page = read_candle_page(raw, "batch", where)
    except FatalApiError as e:
        raise BadPageError(str(e)) from e
    wanted = set(asked)
    seen: set[str] = set()
    for ticker, _ in page.markets:
        if ticker not in wanted:
            raise WrongEventError(f"batch page names {ticker}, which the request did not ask for")
        if ticker in seen:
            raise BadPageError(f"batch page lists {ticker} twice")
        seen.add(ticker)
    return Page(page.markets, None, page.problem)


class BatchRoute:
    """``GET /markets/candlesticks`` for the markets of one window."""

    name = "batch"
    kind = KIND_BATCH_CANDLES
    shape: Shape = "live"
    lists_markets = True
    chained = False

    def __init__(self, key: WindowKey) -> None:
        self.key = key
        self._groups: dict[tuple[str, ...], int] = {}

    def request(self, planned: BatchRequest, period: int) -> RouteRequest:
        params = planned.params(period)
        return RouteRequest(
            BATCH_PATH, params, planned.start_ts, planned.end_ts, None, planned.tickers
        )

    def pager(self, window: Window, tickers: Sequence[str], period: int) -> ChunkPager:
        """The planned requests, group after group (each under the caps)."""
        self._groups = {g: i for i, g in enumerate(ticker_groups(tickers))}
        plan = batch_plan(tickers, window.start_ts, window.end_ts, period)
        return ChunkPager([self.request(r, period) for r in plan])

    def estimate(self, window: Window, tickers: Sequence[str], period: int) -> int:
        """Exact: the requests are planned up front."""
        return len(batch_plan(tickers, window.start_ts, window.end_ts, period)) if tickers else 0

    def check(self, raw: bytes, req: RouteRequest) -> Page:
        return check_batch_page(raw, req.tickers, req.path)

    def file(self, req: RouteRequest) -> str:
        group = self._groups.get(req.tickers, 0)
        return f"{BATCH_DIR}/g{group}/{req.start_ts}{PAGE_SUFFIX}"

    def matches(self, env: PageEnvelope, req: RouteRequest) -> bool:
        """Exactly the same request: tickers, range and period (else it is fetched again)."""
        key = self.key
        want = (KIND_BATCH_CANDLES, key.event_ticker, key.period_interval)
        if (env.kind, env.event_ticker, env.period_interval) != want:
            return False
        return env.params.get("market_tickers") == req.params["market_tickers"] and (
            env.start_ts,
            env.end_ts,
        ) == (req.start_ts, req.end_ts)
