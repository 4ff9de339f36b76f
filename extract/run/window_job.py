"""One window's extraction: the one request loop every route goes through, and the
decisions about markets a page leaves out.

:class:`WindowJob` is the per-window half of :mod:`extract.run.candles` (which runs the
windows, leases them and keeps the run's summary): it follows the requests of the
window's routes (:mod:`extract.routes`), takes each page from
:class:`~extract.run.window_pages.WindowPages` (reused from the archive or fetched, checked
either way), counts what the pages show, weighs every market a page left out, writes the
manifest last and marks the window EXTRACTED.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace

from extract.api.client import RequestStats
from extract.config import RouteChoice
from extract.plan.auto import WindowRoutes, WindowShape
from extract.plan.packing import Pack
from extract.plan.tiers import (
    Absence,
    Route,
    absent_market_action,
    may_cross_cutoff,
    route_market,
    route_markets,
)
from extract.plan.windows import MarketTimes, Window
from extract.routes.base import CandleRoute, Page, Pager, RouteRequest
from extract.routes.batch import BatchRoute, PackedBatchRoute
from extract.routes.event import EventRoute
from extract.routes.historical import ChunkPager, HistoricalRoute
from extract.run.context import RunContext
from extract.run.packs import WindowPacking
from extract.run.window_pages import WindowPages
from schemas.archive import KIND_HISTORICAL_MARKET_CANDLES, Manifest, WindowKey
from schemas.candle_pages import Ends
from schemas.checkpoints import Checkpoint
from schemas.core import CheckpointStatus
from schemas.crashpoints import (
    EXTRACT_AFTER_EXTRACTED,
    EXTRACT_AFTER_RUNNING,
    EXTRACT_BEFORE_EXTRACTED,
    EXTRACT_BEFORE_MANIFEST,
    EXTRACT_BEFORE_RUNNING,
    EXTRACT_BETWEEN_PAGES,
    crashpoint,
)
from schemas.errors import FatalApiError
from schemas.logs import log_detail

log = logging.getLogger(__name__)


def _count_market(
    ticker: str, ends: Ends, keys: dict[str, set[int]], per_market: dict[str, int]
) -> None:
    """Add a market's candles to the window's distinct ``end_period_ts`` of each market."""
    if not len(ends):
        return
    seen = keys.setdefault(ticker, set())
    seen.update(ends.tolist())
    per_market[ticker] = len(seen)


class WindowJob:
    """One window's extraction: historical markets page by page, then the event chain.

    Every route goes through one loop (:meth:`_follow`): plan, reuse what the archive
    holds, fetch, check, archive, checkpoint. Each market has one tier at a time and may
    switch once: live → historical when the live pages lack it and the cutoff says it
    could have moved, historical → live when the historical route answers 404. A market
    that the live pages leave out is not, by that alone, gone: :func:`absent_market_action`
    decides, from the cutoff and what the pages showed, whether it is merely without
    candles there, must be fetched from the historical tier, or must be looked up
    (``GET /markets/{ticker}``). A market neither tier serves fails the window (FAILED,
    non-zero exit) rather than leaving it silently incomplete.
    """

    def __init__(
        self,
        run: RunContext,
        key: WindowKey,
        window: Window,
        markets: Sequence[MarketTimes],
        stats: RequestStats,
        packing: WindowPacking | None = None,
    ) -> None:
        self.run_ = run
        self.packing = packing
        """The run plan's batch requests for this window (None: it plans its own)."""
        self.key = key
        self.window = window
        self.stats = stats
        self.markets = markets
        self.routes: dict[str, Route] = {}
        self.switched: set[str] = set()
        self.historical_tried: set[str] = set()
        self.event = EventRoute(key)
        self.historical = HistoricalRoute(key)
        self.batch = BatchRoute(key)
        self.event_pager = self.event.pager(window, (), key.period_interval)
        self.pages = WindowPages(run.archive, run.client, key, stats)
        self.candle_keys: dict[str, set[int]] = {}
        """The distinct ``end_period_ts`` archived of each market (a candle on two pages
        counts once)."""
        self.per_market: dict[str, int] = {}
        self.page_listed: list[tuple[frozenset[str], frozenset[str]]] = []
        """(markets asked, markets listed) of each page that lists markets: one lacking a
        market it asked for is evidence to weigh (:meth:`_settle_absent`)."""
        self.lists_every_market = False
        """An event page listed a market without candles: the server lists every market."""
        self.market_pages: list[str] = []
        """Per-market page files, relative to the window folder, in fetch order."""
        self.packed_pages: list[str] = []
        """Packed pages holding some of its markets, relative to the archive root."""
        self.packed = PackedBatchRoute(key.period_interval, key.window_policy)
        self.lookups = 0
        self.previous: Checkpoint | None = None
        """The checkpoint as the previous run left it (read first thing in :meth:`run`)."""
        self.base_requests = 0
        self.base_retries = 0

    # --- progress ----------------------------------------------------------------------

    def _pages(self) -> int:
        return (
            len(self.event_pager.paginator.chain) + len(self.market_pages) + len(self.packed_pages)
        )

    def _progress(self) -> dict[str, object]:
        """The checkpoint's progress columns as of now."""
        return {
            "resume_cursor_ts": self.event_pager.cursor,
            "pages_archived": self._pages(),
            "requests": self.base_requests + self.stats.requests,
            "retries": self.base_retries + self.stats.retries,
            "candles_archived": self.archived_candles(),
        }

    def archived_candles(self) -> int:
        """The window's distinct candles archived so far (a candle on two pages once)."""
        return sum(len(ends) for ends in self.candle_keys.values())

    async def _save(self, status: CheckpointStatus, **fields: object) -> None:
        await self.run_.save(self.key, self.window, status, **self._progress(), **fields)

    async def _page_done(self, historical: bool, fetched: bool = True) -> None:
        """A page taken: counted in the run's summary if this window fetched it, then the
        window's checkpoint saved (a packed page another window fetched: only saved)."""
        summary = self.run_.summary
        if fetched:
            summary.pages += 1
            if historical:
                summary.historical_pages += 1
            else:
                summary.live_pages += 1
        # The checkpoint and the lease renewal in one UPDATE, written only while the
        # window is ours: LeaseLostError if another worker took it.
        await self._save(CheckpointStatus.RUNNING)
        crashpoint(EXTRACT_BETWEEN_PAGES)
        self.run_.tick()

    def _reroute(self, ticker: str, route: Route, why: str) -> bool:
        """Switch ``ticker`` to ``route``; False if it already switched once."""
        if ticker in self.switched:
            log.warning(
                "%s: %s %s, and it already changed tier once",
                self.key,
                ticker,
                why,
            )
            return False
        log.info("%s: %s %s: now fetched from the %s route", self.key, ticker, why, route.value)
        self.switched.add(ticker)
        self.routes[ticker] = route
        self.run_.summary.rerouted += 1
        return True

    def _live(self) -> set[str]:
        return {t for t, r in self.routes.items() if r is Route.LIVE}

    # --- the window --------------------------------------------------------------------

    async def run(self) -> None:
        key, window, run = self.key, self.window, self.run_
        self.previous = await run.checkpoint(key)
        if self.previous is not None:
            self.base_requests = self.previous.requests
            self.base_retries = self.previous.retries
        cutoff = await run.cutoff.ensure()
        routes = route_markets(self.markets, cutoff.market_settled_ts)
        self.routes = {
            m.market_ticker: routes.get(m.market_ticker, Route.LIVE) for m in window.markets
        }
        shape = WindowShape(
            tuple(t for t, r in self.routes.items() if r is Route.LIVE),
            tuple(t for t, r in self.routes.items() if r is Route.HISTORICAL),
            window.start_ts,
            window.end_ts,
            key.period_interval,
        )
        packing = self.packing
        if packing is not None and packing.is_shared:
            # Its batch requests carry other windows' markets: the plan's routes stand.
            await self._extract(packing.routes)
            return
        async with run.chooser.routes(shape) as plan:
            await self._extract(plan)

    async def _extract(self, plan: WindowRoutes) -> None:
        """The window's pages on the routes ``plan`` chose, then its manifest."""
        key, window, run = self.key, self.window, self.run_
        by_event = run.config.route is RouteChoice.EVENT or bool(plan.event)
        removed = run.archive.remove_stray_temp_files(key.dir)
        if removed:
            log.info("%s: removed %d temporary files left by a killed run", key, removed)
        if by_event:
            grace = run.config.final_grace_s
            tentative_from = self.pages.tentative_from(self.previous, grace)
            for req, page in self.pages.reuse_chain(
                self.event, self.event_pager, tentative_from, grace
            ):
                self._took(self.event, req, page)
        crashpoint(EXTRACT_BEFORE_RUNNING)
        await self._save(CheckpointStatus.RUNNING, last_error=None)
        crashpoint(EXTRACT_AFTER_RUNNING)
        resumed = self._pages()

        for ticker in sorted(plan.historical):
            if not await self._market(ticker):
                self._reroute(ticker, Route.LIVE, "is not on the historical tier (404)")
        if plan.asked is not None:  # batch gave it no candle: do its historical pages?
            got = {plan.asked: self.per_market.get(plan.asked, 0)}
            answer = run.chooser.saw_batch_historical({plan.asked: 0}, got)
            log.info("%s: batch serves historical markets: %s", key, answer.value)
        if not by_event:
            await self._batch(plan)
        elif self._live():
            await self._follow(self.event, self.event_pager)
            await self._settle_absent(time.monotonic())

        pages = tuple(self.event.file(r) for r in self._chain_requests())
        manifest = Manifest(
            key=key,
            window_start_ts=window.start_ts,
            window_end_ts=window.end_ts,
            is_final=window.is_final,
            markets=tuple(
                replace(m, route=self.routes[m.market_ticker].value) for m in window.markets
            ),
            pages=pages + tuple(self.market_pages),
            packed_pages=tuple(self.packed_pages),
        )
        crashpoint(EXTRACT_BEFORE_MANIFEST)
        run.archive.write_manifest(manifest)
        crashpoint(EXTRACT_BEFORE_EXTRACTED)
        await self._save(
            CheckpointStatus.EXTRACTED,
            extracted_at_utc=manifest.completed_at_utc,
            last_error=None,
        )
        crashpoint(EXTRACT_AFTER_EXTRACTED)
        run.summary.candles += self.archived_candles()
        n_hist = sum(r is Route.HISTORICAL for r in self.routes.values())
        counts = sorted(self.per_market.values())
        spread = f" ({counts[0]:,}-{counts[-1]:,} a market)" if counts else ""
        log_detail(
            log,
            "%s: %d/%d markets with candles, %s candles%s, %d pages (%d resumed), %d requests%s",
            key,
            len(self.per_market),
            len(self.routes),
            f"{len(self.candle_keys):,}",
            spread,
            self._pages(),
            resumed,
            self.stats.requests,
            "" if window.is_final else " (open: not final)",
            candles_per_market=dict(sorted(self.per_market.items())),
            markets=len(self.routes),
            historical_markets=n_hist,
            pages=self._pages(),
            event_route_pages=len(self.event_pager.paginator.chain),
            packed_pages=len(self.packed_pages),
            resumed_pages=resumed,
            requests=self.stats.requests,
            market_lookups=self.lookups,
            retries=self.stats.retries,
            final=window.is_final,
        )

    async def _batch(self, plan: WindowRoutes) -> None:
        """The batch route for the live markets and the historical ones ``plan`` put there.

        A historical market the batch answers leave without candles goes to its own route;
        what both routes returned for it tells the run whether batch serves the historical
        tier (:meth:`RouteChooser.saw_batch_historical`). A live market they leave out is
        weighed like one an event page leaves out (:meth:`_settle_absent`).
        """
        in_batch = [t for t in plan.batch if self.routes.get(t) is Route.HISTORICAL]
        tickers = sorted(set(plan.batch) | self._live())
        if not tickers:
            return
        period, packing = self.key.period_interval, self.packing
        if packing is not None and tuple(tickers) == packing.offered:
            own = packing.own_requests()
            if own:
                await self._follow(self.batch, self.batch.pager_of(own, tickers, period))
            for pack in packing.shared_packs():
                await self._shared(pack, packing)
        else:  # planned on its own, or its markets moved tier since the run was planned
            await self._follow(self.batch, self.batch.pager(self.window, tickers, period))
        served = {t: self.per_market.get(t) for t in in_batch}
        before = dict(self.per_market)
        unserved = [t for t, n in served.items() if not n]
        for ticker in unserved:
            if not await self._market(ticker):
                self._reroute(ticker, Route.LIVE, "is not on the historical tier (404)")
        if in_batch:
            got = {t: self.per_market.get(t, 0) - before.get(t, 0) for t in unserved}
            answer = self.run_.chooser.saw_batch_historical(served, got)
            log.info("%s: batch serves historical markets: %s", self.key, answer.value)
        if self._live():
            await self._settle_absent(time.monotonic())

    def _chain_requests(self) -> list[RouteRequest]:
        period = self.key.period_interval
        return [self.event.request(s, e, period) for s, e in self.event_pager.paginator.chain]

    # --- the one request loop ----------------------------------------------------------

    async def _follow(self, route: CandleRoute, pager: Pager) -> bool:
        """Fetch every request the pager plans (reusing archived pages of an unchained
        route); False when a per-market route answers 404 (not on that tier)."""
        while (req := pager.next_request()) is not None:
            if not route.chained:
                found = self.pages.archived(route, req)
                if found is not None:
                    asked, page, _ = found
                    pager.advance(asked, pager.decide(asked, page))
                    self._took(route, req, page)
                    self.market_pages.append(route.file(req))
                    continue
            fetched = await self.pages.fetch(route, pager, req)
            if fetched is None:
                return False
            resp, page, step = fetched
            await self.pages.write(route, req, resp)
            pager.advance(req, step)
            self._took(route, req, page)
            if not route.chained:
                self.market_pages.append(route.file(req))
            counts = self.run_.summary.route_requests
            counts[route.name] = counts.get(route.name, 0) + 1
            await self._page_done(historical=route.kind == KIND_HISTORICAL_MARKET_CANDLES)
        return True

    async def _shared(self, pack: Pack, packing: WindowPacking) -> None:
        """Take this window's markets from a packed page (loaded once for the group)."""
        route = self.packed
        req = route.request(pack.request)
        fetched = False

        async def load() -> Page:
            nonlocal fetched
            found = self.pages.archived(route, req)
            if found is not None:
                return found[1]
            got = await self.pages.fetch(route, ChunkPager([req]), req)
            assert got is not None, "a packed request names no single market: never a 404"
            resp, page, _ = got
            await self.pages.write(route, req, resp)
            counts = self.run_.summary.route_requests
            counts[route.name] = counts.get(route.name, 0) + 1
            fetched = True
            return page

        page, _ = await packing.shared.page(pack.request, load)
        mine = frozenset(pack.tickers_of(packing.index))
        view = replace(req, tickers=tuple(sorted(mine)))
        self._took(route, view, page.only(mine))
        self.packed_pages.append(route.file(req))
        await self._page_done(historical=False, fetched=fetched)

    def _took(self, route: CandleRoute, req: RouteRequest, page: Page) -> None:
        """Count an accepted page's candles; keep what it shows about the markets it lists."""
        for ticker, ends in page.markets:
            _count_market(ticker, ends, self.candle_keys, self.per_market)
        if route.lists_markets:
            asked = frozenset(req.tickers) if req.tickers else frozenset(self._live())
            self.page_listed.append((asked, page.listed))
            self.run_.chooser.saw(route.name, req, tuple(asked), page)
            if page.lists_a_market_without_candles:
                self.lists_every_market = True

    # --- markets the live pages leave out -----------------------------------------------

    async def _market(self, ticker: str) -> bool:
        """Archive a market's historical pages over the window; False on a 404 (not there).

        Pages already archived for the same request are kept, so a rerun fetches only
        what is missing.
        """
        self.historical_tried.add(ticker)
        pager = self.historical.pager(self.window, (ticker,), self.key.period_interval)
        return await self._follow(self.historical, pager)

    async def _is_live(self, ticker: str) -> bool:
        """``GET /markets/{ticker}``: True if the live tier knows the market, False on 404."""
        self.lookups += 1
        counts = self.run_.summary.route_requests
        counts["lookup"] = counts.get("lookup", 0) + 1
        return await self.pages.market_is_live(ticker)

    async def _settle_absent(self, seen_at: float) -> None:
        """Decide, for each live market some event page lacked, what that means."""
        live = self._live()
        absent = {t for asked, listed in self.page_listed for t in asked - listed if t in live}
        if not absent:
            return
        run = self.run_
        listed_somewhere = frozenset().union(*(listed for _, listed in self.page_listed))
        by_ticker = {m.market_ticker: m for m in self.markets}
        cutoff = run.cutoff.current
        now_ts = int(run.config.current_time().timestamp())
        if cutoff is None or any(
            may_cross_cutoff(by_ticker[t], cutoff.market_settled_ts, now_ts)
            for t in absent
            if t in by_ticker
        ):
            cutoff = await run.cutoff.refresh(seen_at=seen_at)
        for ticker in sorted(absent):
            market = by_ticker.get(ticker)
            moved = market is not None and (
                route_market(market, cutoff.market_settled_ts) is Route.HISTORICAL
            )
            action = absent_market_action(
                listed_somewhere=ticker in listed_somewhere,
                could_have_moved=moved,
                lists_every_market=self.lists_every_market,
            )
            if action is Absence.SPARSE:
                continue
            if action is Absence.HISTORICAL and ticker not in self.switched:
                self._reroute(ticker, Route.HISTORICAL, "is missing from the live event pages")
                if await self._market(ticker):
                    continue
                self.routes[ticker] = Route.LIVE  # 404: not there; is it still live?
            if await self._is_live(ticker):
                continue  # live, and without candles where the pages left it out
            if ticker not in self.historical_tried and await self._market(ticker):
                log.info("%s: %s is only on the historical tier", self.key, ticker)
                self.routes[ticker] = Route.HISTORICAL
                self.run_.summary.rerouted += 1
                continue
            # Never archive a window that silently lacks a market: fail it loudly.
            raise FatalApiError(
                f"{ticker} is on neither tier (absent from the live event pages, "
                "404 on the historical route): the window would be incomplete"
            )
