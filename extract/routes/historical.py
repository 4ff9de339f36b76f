"""The historical per-market route: ``GET /historical/markets/{ticker}/candlesticks``.

It has no cap field and no ``adjusted_end_ts``: a request over 5,000 REQUESTED candles
is a 400, so the window is cut up front into chunks under that bound
(:func:`extract.plan.tiers.historical_chunks`), each a page of its own under
``markets/{ticker}/{start_ts}.json.gz``, kind ``historical_market_candlesticks``. The
chunks depend only on the window, so a rerun reuses every page it already has.
A 404 means the market is not on the historical tier (the orchestration decides what
next).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from extract.errors import BadPageError, PagingContractError, WrongEventError
from extract.plan.paginator import PageRequest, Step
from extract.plan.tiers import historical_chunks, historical_requests
from extract.plan.windows import Window
from extract.routes.base import Page, RouteRequest, Shape
from schemas.archive import (
    KIND_HISTORICAL_MARKET_CANDLES,
    PAGE_SUFFIX,
    PageEnvelope,
    WindowKey,
)
from schemas.candle_pages import read_candle_page
from schemas.errors import FatalApiError


@dataclass
class ChunkPager:
    """Fixed requests planned up front (one market's chunks), each accepted as it comes."""

    requests: list[RouteRequest]
    done: int = 0

    @property
    def cursor(self) -> int:
        if self.done < len(self.requests):
            return self.requests[self.done].start_ts
        return self.requests[-1].end_ts if self.requests else 0

    def next_request(self) -> RouteRequest | None:
        return self.requests[self.done] if self.done < len(self.requests) else None

    def decide(self, req: RouteRequest, page: Page) -> Step:
        span = page.span()
        if span is not None and (span[0] < req.start_ts or span[1] > req.end_ts):
            raise PagingContractError(
                f"paging semantics differ from the contract: the {req.path} page for "
                f"[{req.start_ts}, {req.end_ts}] holds candles from {span[0]} to {span[1]}"
            )
        return Step(None, req.end_ts)

    def advance(self, req: RouteRequest, step: Step) -> None:
        self.done += 1


class HistoricalRoute:
    """``GET /historical/markets/{ticker}/candlesticks`` for the markets of one window."""

    name = "historical"
    kind = KIND_HISTORICAL_MARKET_CANDLES
    shape: Shape = "historical"
    lists_markets = False
    chained = False
    shared = False

    def __init__(self, key: WindowKey) -> None:
        self.key = key

    def request(self, ticker: str, chunk: PageRequest, period: int) -> RouteRequest:
        params: dict[str, int | str] = {
            "start_ts": chunk.start_ts,
            "end_ts": chunk.end_ts,
            "period_interval": period,
        }
        path = f"/historical/markets/{ticker}/candlesticks"
        return RouteRequest(path, params, chunk.start_ts, chunk.end_ts, ticker, (ticker,))

    def pager(self, window: Window, tickers: Sequence[str], period: int) -> ChunkPager:
        chunks = historical_chunks(window.start_ts, window.end_ts, period)
        return ChunkPager([self.request(t, c, period) for t in tickers for c in chunks])

    def estimate(self, window: Window, tickers: Sequence[str], period: int) -> int:
        """Exact: the chunks are planned up front."""
        return historical_requests([(window.start_ts, window.end_ts)] * len(tickers), period)

    def check(self, raw: bytes, req: RouteRequest) -> Page:
        try:
            page = read_candle_page(raw, "historical", req.path)
        except FatalApiError as e:
            raise BadPageError(str(e)) from e
        ticker = page.markets[0][0]
        if ticker != req.market_ticker:
            raise WrongEventError(f"historical page for {req.market_ticker} is for {ticker}")
        return Page(page.markets, None, page.problem)

    def file(self, req: RouteRequest) -> str:
        return f"markets/{req.market_ticker}/{req.start_ts}{PAGE_SUFFIX}"

    def matches(self, env: PageEnvelope, req: RouteRequest) -> bool:
        """The same market and exactly the same range (an open window since grown is not)."""
        key = self.key
        want = (
            KIND_HISTORICAL_MARKET_CANDLES,
            key.event_ticker,
            req.market_ticker,
            key.period_interval,
            req.start_ts,
            req.end_ts,
        )
        got = (
            env.kind,
            env.event_ticker,
            env.market_ticker,
            env.period_interval,
            env.start_ts,
            env.end_ts,
        )
        return got == want
