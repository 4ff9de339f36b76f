"""The batch route: ``GET /markets/candlesticks?market_tickers=a,b,...``.

Up to 100 tickers and 10,000 REQUESTED candles (tickers x periods of the range) a
request; over that the server answers 400 (the recorded sample), so every request is
planned under both limits up front (:func:`extract.plan.caps.batch_plan`) and none is ever
sent over them. The answer is ``{"markets": [{"market_ticker", "candlesticks"}]}`` with
the live ``MarketCandlestick`` shape; it carries no cursor and no ``adjusted_end_ts``.

Two layouts, one endpoint:

- :class:`BatchRoute`, a request for the markets of ONE window: pages are
  ``batch/g{group}/{start_ts}.json.gz`` in the window's folder, kind
  ``batch_candlesticks``; ``group`` numbers the window's groups of at most 100 tickers
  (a weather event has one).
- :class:`PackedBatchRoute`, a request carrying the markets of several windows, of any
  events and series (:mod:`extract.plan.packing` decides which): its page is kept ONCE,
  at ``_packed/p{period}/{policy}/{YYYY-MM}/{start_ts}-{digest}.json.gz`` from the
  archive root (:func:`schemas.archive.packed_page_path`), kind
  ``packed_batch_candlesticks``; every window it serves names it in its manifest and
  takes from it only its own markets.

A market the answer leaves out is the orchestration's business: the same fallbacks as on
the event route.
"""

from __future__ import annotations

from collections.abc import Sequence

from extract.errors import BadPageError, WrongEventError
from extract.plan.caps import BatchRequest, batch_plan, ticker_groups
from extract.plan.windows import Window
from extract.routes.base import Page, RouteRequest, Shape
from extract.routes.historical import ChunkPager
from schemas.archive import (
    BATCH_DIR,
    KIND_BATCH_CANDLES,
    KIND_PACKED_CANDLES,
    PAGE_SUFFIX,
    PageEnvelope,
    WindowKey,
    packed_page_path,
)
from schemas.candle_pages import read_candle_page
from schemas.core import WindowPolicy
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
    shared = False

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
        plan = batch_plan(tickers, window.start_ts, window.end_ts, period)
        return self.pager_of(plan, tickers, period)

    def pager_of(
        self, plan: Sequence[BatchRequest], tickers: Sequence[str], period: int
    ) -> ChunkPager:
        """These requests of the window's batch plan over ``tickers`` (the others are
        packed with other windows' markets: :class:`PackedBatchRoute`)."""
        self._groups = {g: i for i, g in enumerate(ticker_groups(tickers))}
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


class PackedBatchRoute:
    """``GET /markets/candlesticks`` for the markets of several windows (one page, kept once).

    The request is planned for the whole run (:func:`extract.plan.packing.pack_pieces`);
    each window it serves reads the page through this route and takes its own markets
    (:meth:`~extract.routes.base.Page.only`).
    """

    name = "batch"
    kind = KIND_PACKED_CANDLES
    shape: Shape = "live"
    lists_markets = True
    chained = False
    shared = True

    def __init__(self, period: int, policy: WindowPolicy) -> None:
        self.period = period
        self.policy = policy

    def request(self, planned: BatchRequest) -> RouteRequest:
        return RouteRequest(
            BATCH_PATH,
            planned.params(self.period),
            planned.start_ts,
            planned.end_ts,
            None,
            planned.tickers,
        )

    def pager(self, window: Window, tickers: Sequence[str], period: int) -> ChunkPager:
        """Not used: packed requests are planned for the run, not for one window."""
        raise NotImplementedError("packed requests are planned by extract.plan.packing")

    def estimate(self, window: Window, tickers: Sequence[str], period: int) -> int:
        raise NotImplementedError("packed requests are planned by extract.plan.packing")

    def check(self, raw: bytes, req: RouteRequest) -> Page:
        return check_batch_page(raw, req.tickers, req.path)

    def file(self, req: RouteRequest) -> str:
        """From the archive root: named by the request (period, range, tickers)."""
        return packed_page_path(self.period, self.policy, req.tickers, req.start_ts, req.end_ts)

    def matches(self, env: PageEnvelope, req: RouteRequest) -> bool:
        """Exactly the same request: kind, period, tickers and range."""
        if (env.kind, env.period_interval) != (KIND_PACKED_CANDLES, self.period):
            return False
        return env.params.get("market_tickers") == req.params["market_tickers"] and (
            env.start_ts,
            env.end_ts,
        ) == (req.start_ts, req.end_ts)
