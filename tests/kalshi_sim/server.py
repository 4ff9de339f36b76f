"""The aiohttp app serving a ``World`` under ``/trade-api/v2``, with throttle and faults.

Decisions where the spec leaves room (documented here because clients depend on them):
- Event candlesticks leave historical markets out (the spec lists no 404 for the
  route; ``with_nested_markets`` does the same). An event whose markets are all
  historical answers 200 with empty ``market_tickers``/``market_candlesticks`` and
  ``adjusted_end_ts == end_ts``. Unknown event or series/event mismatch: 404.
- The per-market live route answers 404 for unknown and historical markets; the
  historical routes answer 404 for unknown and still-live markets. A market hidden
  with ``hide_market`` is on neither tier: left out of every listing and of event
  candlesticks, 404 on every per-market route.
- Per-market live and historical candlesticks are not capped and not paginated (the
  spec's responses carry no cursor nor adjusted_end_ts).
- Batch candlesticks leave unknown and historical tickers out of ``markets`` and cut
  at whole timestamps to ``batch_candle_cap`` (no field says where: a client resumes
  after the largest ``end_period_ts`` it got).
- ``start_ts > end_ts`` answers 400; so do missing/non-integer parameters and a
  ``period_interval`` outside {1, 60, 1440} on every candle route.
- Every error body is ``{"error": "<message>"}``; 429 is exactly
  ``{"error": "too many requests"}`` with no Retry-After and no rate headers.
- ``/events`` lists newest first; cursors are opaque offsets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from .config import FaultKind, SimConfig
from .faults import Counters, FaultPlan, RequestRecord
from .model import PERIODS, World, cut_by_cap, event_ticker_for, iso
from .throttle import TokenBucket

PREFIX = "/trade-api/v2"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: The fault drawn for a request, for the handlers that shape it (wrong_event, stuck_end).
FAULT = web.RequestKey("kalshi_sim_fault", str)
#: Set by a handler that actually applied FAULT (else the request is served normally).
APPLIED = web.RequestKey("kalshi_sim_fault_applied", bool)


class BadRequest(Exception):
    """A 400 answer; raised by the parameter parsers."""


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _int_param(request: web.Request, name: str) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        raise BadRequest(f"missing required parameter {name}")
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None


def _bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name} must be a boolean")
    return raw in ("true", "1")


def _range_params(request: web.Request) -> tuple[int, int, int]:
    start = _int_param(request, "start_ts")
    end = _int_param(request, "end_ts")
    period = _int_param(request, "period_interval")
    if period not in PERIODS:
        raise BadRequest("period_interval must be one of 1, 60, 1440")
    if start > end:
        raise BadRequest("start_ts must be <= end_ts")
    return start, end, period


def _page_params(request: web.Request, default: int, maximum: int) -> tuple[int, int]:
    """(offset, limit) from ``cursor``/``limit``; a cursor is base64 of the offset."""
    raw_limit = request.query.get("limit")
    limit = default
    if raw_limit not in (None, ""):
        try:
            limit = int(raw_limit)
        except ValueError:
            raise BadRequest("limit must be an integer") from None
        if limit == 0:
            limit = default
        if not 1 <= limit <= maximum:
            raise BadRequest(f"limit must be between 1 and {maximum}")
    cursor = request.query.get("cursor", "")
    if not cursor:
        return 0, limit
    try:
        offset = int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("o:"))
    except ValueError:
        raise BadRequest("invalid cursor") from None
    return offset, limit


def _cursor(offset: int, limit: int, total: int) -> str:
    nxt = offset + limit
    return base64.urlsafe_b64encode(f"o:{nxt}".encode()).decode() if nxt < total else ""


class SimServer:
    """The simulator over real HTTP on 127.0.0.1.

    ``async with SimServer(SimConfig(...)) as sim:`` then point a client at
    ``sim.base_url``; ``sim.world`` is the ground truth, ``sim.counters`` the
    request accounting. The control methods (``set_now``, ``set_cutoff``,
    ``hide_market``, ``fail_next``, ``set_rate_limit``, ``reset``) are safe to call from another
    thread (see ``run_sim_in_thread``).
    """

    def __init__(
        self, config: SimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config if config is not None else SimConfig()
        self.world = World(self.config)
        self.counters = Counters()
        self.faults = FaultPlan(self.config.faults, self.config.seed)
        self.bucket: TokenBucket | None = None
        self.set_rate_limit(self.config.rate_limit_rps, self.config.burst_seconds)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._count_lock = threading.Lock()
        self.port: int | None = None

    # --- control ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/trade-api/v2`` (only once started)."""
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://{self._host}:{self.port}{PREFIX}"

    def set_now(self, now: datetime) -> None:
        self.world.set_now(now)

    def set_cutoff(self, cutoff: datetime | None) -> None:
        self.world.set_cutoff(cutoff)

    def hide_market(self, ticker: str, hidden: bool = True) -> None:
        """Make a market unknown to both tiers (``hidden=False`` restores it)."""
        self.world.hide_market(ticker, hidden)

    def fail_next(self, route_substring: str, kind: FaultKind, times: int = 1) -> None:
        """The next ``times`` requests whose path contains the substring fail with ``kind``."""
        self.faults.fail_next(route_substring, kind, times)

    def set_rate_limit(self, rps: float | None, burst_seconds: float = 2.0) -> None:
        """Change (or remove, with None) the token bucket; it starts full."""
        self.bucket = None if rps is None else TokenBucket(rps, burst_seconds)

    def set_faults(self, **probabilities: Any) -> None:
        """Replace random fault knobs mid-run, e.g. ``set_faults(p_500=0.2)``."""
        self.faults.config = replace(self.faults.config, **probabilities)

    def reset(self) -> None:
        """Zero the counters, drop pending scripts and refill the bucket."""
        with self._count_lock:
            self.counters.reset()
        self.faults.clear()
        if self.bucket is not None:
            self.bucket.reset()

    # --- lifecycle ----------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        add = r.add_get
        add(PREFIX + "/series/{series_ticker}", self._series, name="series")
        add(
            PREFIX + "/series/{series_ticker}/events/{event_ticker}/candlesticks",
            self._event_candles,
            name="event_candlesticks",
        )
        add(
            PREFIX + "/series/{series_ticker}/markets/{ticker}/candlesticks",
            self._market_candles,
            name="market_candlesticks",
        )
        add(PREFIX + "/events", self._events, name="events")
        add(PREFIX + "/events/{event_ticker}", self._event, name="event")
        add(PREFIX + "/markets/candlesticks", self._batch_candles, name="batch_candlesticks")
        add(PREFIX + "/markets", self._markets, name="markets")
        add(PREFIX + "/markets/{ticker}", self._market, name="market")
        add(PREFIX + "/historical/cutoff", self._cutoff, name="historical_cutoff")
        add(PREFIX + "/historical/markets", self._hist_markets, name="historical_markets")
        add(PREFIX + "/historical/markets/{ticker}", self._hist_market, name="historical_market")
        add(
            PREFIX + "/historical/markets/{ticker}/candlesticks",
            self._hist_candles,
            name="historical_candlesticks",
        )
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- middleware: throttle, faults, accounting -------------------------------------

    def _record(self, request: web.Request, status: int, fault: FaultKind | None) -> None:
        route = request.match_info.route.name or "unknown"
        rec = RequestRecord(request.path, route, dict(request.query), status, fault)
        with self._count_lock:
            self.counters.record(rec)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.bucket is not None and not self.bucket.try_acquire():
            self._record(request, 429, None)
            return _error(429, "too many requests")
        known = request.match_info.route.name is not None
        fault = self.faults.decide(request.path) if known else None
        if fault in ("500", "502", "503", "429"):
            assert fault is not None
            status = int(fault)
            message = "too many requests" if status == 429 else "internal error (injected)"
            self._record(request, status, fault)
            return _error(status, message)
        if fault == "reset":
            self._record(request, 0, fault)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing more is written on a dead socket
        if fault == "slow":
            await asyncio.sleep(self.faults.config.slow_seconds)
        if fault is not None:
            request[FAULT] = fault
        try:
            response = await handler(request)
        except BadRequest as e:
            response = _error(400, str(e))
        except web.HTTPNotFound:
            response = _error(404, "not found")
        if fault in ("wrong_event", "stuck_end") and not request.get(APPLIED):
            fault = None  # drawn for a route where it has no meaning: served normally
        if isinstance(response, web.Response) and response.status == 200:
            if fault == "truncated" and response.body is not None:
                body = bytes(response.body)  # type: ignore[arg-type]
                response = web.Response(
                    body=body[: max(1, len(body) // 2)],
                    content_type="application/json",
                )
            elif fault == "invalid_json":
                response = web.Response(
                    body=b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                    content_type="application/json",
                )
        elif fault in ("truncated", "invalid_json"):
            fault = None
        self._record(request, response.status, fault)
        return response

    # --- handlers -----------------------------------------------------------------

    async def _series(self, request: web.Request) -> web.Response:
        series = self.world.series(request.match_info["series_ticker"])
        if series is None:
            return _error(404, "series not found")
        return _json({"series": series})

    async def _events(self, request: web.Request) -> web.Response:
        offset, limit = _page_params(request, 200, 200)
        nested = _bool_param(request, "with_nested_markets")
        status = request.query.get("status", "")
        if status not in ("", "unopened", "open", "closed", "settled"):
            raise BadRequest("invalid status")
        series = request.query.get("series_ticker") or None
        world = self.world
        if series is not None and world.series_spec(series) is None:
            return _json({"events": [], "cursor": ""})
        tickers = world.event_tickers(series)
        if status:
            infos = (world.event_info(t) for t in tickers)
            tickers = [i.event_ticker for i in infos if i and world.event_status(i) == status]
        page = []
        for t in tickers[offset : offset + limit]:
            event = world.event(t)
            assert event is not None
            if nested:
                event["markets"] = world.markets(t, include_historical=False)
            page.append(event)
        return _json({"events": page, "cursor": _cursor(offset, limit, len(tickers))})

    async def _event(self, request: web.Request) -> web.Response:
        ticker = request.match_info["event_ticker"]
        event = self.world.event(ticker)
        if event is None:
            return _error(404, "event not found")
        markets = self.world.markets(ticker, include_historical=False)
        if _bool_param(request, "with_nested_markets"):
            event["markets"] = markets
        return _json({"event": event, "markets": markets})

    async def _event_candles(self, request: web.Request) -> web.Response:
        series = request.match_info["series_ticker"]
        ticker = request.match_info["event_ticker"]
        info = self.world.event_info(ticker)
        if info is None or info.series.ticker != series:
            return _error(404, "event not found")
        start, end, period = _range_params(request)
        fault = request.get(FAULT)
        if fault == "wrong_event":
            _, last = self.config.dates
            other_day = info.day + timedelta(days=1 if info.day < last else -1)
            ticker = event_ticker_for(series, other_day)
            request[APPLIED] = True
        page = self.world.event_candles(ticker, start, end, period).as_json()
        if fault == "stuck_end":
            page["adjusted_end_ts"] = start
            request[APPLIED] = True
        return _json(page)

    def _live_market(self, ticker: str, series: str | None = None) -> bool:
        m = self.world.market_info(ticker)
        if m is None or (series is not None and m.series_ticker != series):
            return False
        return self.world.is_live(m)

    async def _market_candles(self, request: web.Request) -> web.Response:
        ticker = request.match_info["ticker"]
        if not self._live_market(ticker, request.match_info["series_ticker"]):
            return _error(404, "market not found")
        start, end, period = _range_params(request)
        if request.get(FAULT) == "wrong_event":
            others = [m.ticker for m in self.world.live_markets(ticker.rsplit("-", 1)[0])]
            others = [t for t in others if t != ticker]
            if others:
                ticker = others[0]
                request[APPLIED] = True
        candles = list(self.world.candles_in(ticker, period, start, end))
        if _bool_param(request, "include_latest_before_start"):
            synthetic = self.world.latest_before(ticker, period, start)
            if synthetic is not None:
                candles.insert(0, synthetic)
        return _json({"ticker": ticker, "candlesticks": candles})

    async def _batch_candles(self, request: web.Request) -> web.Response:
        raw = request.query.get("market_tickers", "")
        tickers = list(dict.fromkeys(t for t in raw.split(",") if t))
        if not tickers:
            raise BadRequest("market_tickers is required")
        if len(tickers) > self.config.batch_max_tickers:
            raise BadRequest(f"at most {self.config.batch_max_tickers} market_tickers")
        start, end, period = _range_params(request)
        include_before = _bool_param(request, "include_latest_before_start")
        live = [t for t in tickers if self._live_market(t)]
        lists = [list(self.world.candles_in(t, period, start, end)) for t in live]
        kept, _ = cut_by_cap(lists, self.config.batch_candle_cap)
        markets = []
        for t, candles in zip(live, kept, strict=True):
            if include_before:
                synthetic = self.world.latest_before(t, period, start)
                if synthetic is not None:
                    candles = [synthetic, *candles]
            markets.append({"market_ticker": t, "candlesticks": candles})
        return _json({"markets": markets})

    async def _markets(self, request: web.Request) -> web.Response:
        offset, limit = _page_params(request, 100, 1000)
        world = self.world
        event = request.query.get("event_ticker") or None
        series = request.query.get("series_ticker") or None
        if event is not None:
            events = [event]
        elif series is not None and world.series_spec(series) is not None:
            events = world.event_tickers(series)
        elif series is None:
            events = world.event_tickers()
        else:
            events = []
        tickers = [m.ticker for e in events for m in world.live_markets(e)]
        page = [world.market(t) for t in tickers[offset : offset + limit]]
        return _json({"markets": page, "cursor": _cursor(offset, limit, len(tickers))})

    async def _market(self, request: web.Request) -> web.Response:
        ticker = request.match_info["ticker"]
        if not self._live_market(ticker):
            return _error(404, "market not found")
        return _json({"market": self.world.market(ticker)})

    async def _cutoff(self, request: web.Request) -> web.Response:
        cut = iso(self.world.cutoff_ts)
        return _json(
            {
                "market_settled_ts": cut,
                "trades_created_ts": cut,
                "orders_updated_ts": cut,
                "market_positions_last_updated_ts": cut,
            }
        )

    async def _hist_markets(self, request: web.Request) -> web.Response:
        offset, limit = _page_params(request, 100, 1000)
        world = self.world
        event = request.query.get("event_ticker") or None
        series = request.query.get("series_ticker") or None
        infos = world.historical_market_infos(event, series)
        wanted = request.query.get("tickers")
        if wanted:
            keep = set(wanted.split(","))
            infos = [m for m in infos if m.ticker in keep]
        page = [world.market(m.ticker) for m in infos[offset : offset + limit]]
        return _json({"markets": page, "cursor": _cursor(offset, limit, len(infos))})

    def _historical(self, ticker: str) -> bool:
        m = self.world.market_info(ticker)
        return m is not None and self.world.is_historical(m)

    async def _hist_market(self, request: web.Request) -> web.Response:
        ticker = request.match_info["ticker"]
        if not self._historical(ticker):
            return _error(404, "market not found")
        return _json({"market": self.world.market(ticker)})

    async def _hist_candles(self, request: web.Request) -> web.Response:
        ticker = request.match_info["ticker"]
        if not self._historical(ticker):
            return _error(404, "market not found")
        start, end, period = _range_params(request)
        candles = self.world.historical_candles(ticker, period, start, end)
        return _json({"ticker": ticker, "candlesticks": candles})


@contextlib.contextmanager
def run_sim_in_thread(
    config: SimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[SimServer]:
    """Serve from a daemon thread with its own event loop; yields the started server.

    For synchronous tests and for tests that run a client as a subprocess while the
    main thread blocks. The server is stopped and the loop closed on exit.
    """
    server = SimServer(config, host=host, port=port)
    ready = threading.Event()
    failure: list[BaseException] = []
    holder: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        try:
            stop = asyncio.Event()
            holder["loop"], holder["stop"] = loop, stop
            try:
                loop.run_until_complete(server.start())
            except BaseException as e:
                failure.append(e)
                return
            finally:
                ready.set()
            loop.run_until_complete(stop.wait())
            loop.run_until_complete(server.stop())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name="kalshi-sim", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        thread.join()
        raise RuntimeError("simulator failed to start") from failure[0]
    try:
        yield server
    finally:
        loop: asyncio.AbstractEventLoop = holder["loop"]
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(timeout=10)
