"""The aiohttp app serving a ``World`` under ``/trade-api/v2``, with throttle and faults.

Decisions where the spec leaves room. Each open point is a ``SimConfig`` switch
(``SWITCHES``; ``SimServer.describe()`` reads them back), default first:
- ``uncapped_adjusted_end``: ``adjusted_end_ts`` of an event page the cap did not cut:
  ``end_ts`` (the request's) | ``last_candle`` (largest end_period_ts served, start_ts
  if none) | ``zero`` | ``absent`` (no key).
- ``market_tickers_scope``: event pages list ``all_markets`` (every live market) |
  ``with_candles`` (only markets with a candle in the page).
- ``event_cap_counts``: the event cap (``candle_cap``) counts candles ``returned``
  (cut at whole timestamps) | candidates ``requested`` (live markets x periods in the
  range; over the cap the range is cut at whole periods, adjusted_end_ts = the cut).
- ``paging_direction``: a capped page holds the first candles and adjusted_end_ts is
  the last of them (``forward``) | the candles nearest end_ts and adjusted_end_ts is
  the earliest of them, so they lie outside [start_ts, adjusted_end_ts] (``backward``).
- ``publication_delay_s`` (0): a candle ending at t is served from now >= t + delay.
- ``schedule``: ``legacy`` (10:00 local the day before to 23:59 local) | ``weather``
  (14:00Z the day before to 23:59 local standard time, e.g. 04:59Z in New York, as the
  recorded 2026 answers show). Hourly and monthly series: see ``World._times``.
- ``sparse_market_rate`` (0.0): share of illiquid markets with candles in rare bursts.
- ``historical_over_cap``: per-market live and historical candle routes asked for more
  than ``market_candle_cap`` candles ((end_ts - start_ts) / period): the real ``400``
  | ``truncated`` (the first cap periods) | ``served`` (everything).
- ``batch_over_cap``: the batch route asked for more than ``batch_candle_cap``
  (tickers x periods in the range): ``400`` | ``truncated`` (cut at whole timestamps;
  no field says where: a client resumes after the largest end_period_ts) | ``served``.
- ``batch_serves_historical`` (False): the batch route also answers historical markets.
- ``historical_series_filter`` (True): False = ``/historical/markets?series_ticker=``
  answers 400 (``event_ticker=`` still works).
- ``events_list_drops_historical`` (False): True = ``/events`` leaves out events whose
  markets are all historical (``/events/{event_ticker}`` still answers them).
- ``nested_markets_of_historical_event``: with ``with_nested_markets``, an event whose
  markets are all historical has no ``markets`` key (``absent``) | ``"markets": []``
  (``empty``) | its historical markets (``listed``).
- ``series_list_filter``: ``GET /series`` applies ``category`` (exact) and ``tags``
  (comma-separated; a series with any of them) (``applied``) | ignores both and lists
  every series (``ignored``).

Fixed decisions:
- Event candlesticks leave historical markets out (the spec lists no 404 for the
  route; ``with_nested_markets`` does the same). An event whose markets are all
  historical answers 200 with empty ``market_tickers``/``market_candlesticks``.
  Unknown event or series/event mismatch: 404.
- The per-market live route answers 404 for unknown and historical markets; the
  historical routes answer 404 for unknown and still-live markets. A market hidden
  with ``hide_market`` is on neither tier: left out of every listing and of event
  candlesticks, 404 on every per-market route.
- Per-market live and historical candlesticks are not paginated (the spec's
  responses carry no cursor nor adjusted_end_ts). Batch candlesticks leave unknown
  (and, by default, historical) tickers out of ``markets``.
- ``start_ts > end_ts`` and missing/non-integer parameters answer 400.
- Error bodies: ``{"error": {"code": "bad_request"|"not_found"|..., "message": ...,
  "details": ...}}``, except 429, exactly ``{"error": "too many requests"}`` with no
  Retry-After and no rate headers, and a ``period_interval`` outside {1, 60, 1440},
  400 ``{"msg": "Parameter validation failed ..."}``.
- Every request is recorded (``counters.log``) with its route, params, status, fault
  and, for candle routes, the candidates asked for (markets x periods).
- ``/events`` lists newest first; cursors are opaque offsets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from .config import FaultKind, SimConfig
from .faults import Counters, FaultPlan, RequestRecord
from .model import PERIODS, World, cut_by_cap, iso, period_ends
from .throttle import TokenBucket

PREFIX = "/trade-api/v2"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: The fault drawn for a request, for the handlers that shape it (wrong_event, stuck_end).
FAULT = web.RequestKey("kalshi_sim_fault", str)
#: Set by a handler that actually applied FAULT (else the request is served normally).
APPLIED = web.RequestKey("kalshi_sim_fault_applied", bool)
#: Candidates a candle request asked for (markets x periods), for the request record.
CANDIDATES = web.RequestKey("kalshi_sim_candidates", int)

_CODES = {
    400: ("bad_request", "bad request"),
    404: ("not_found", "not found"),
    500: ("internal_server_error", "internal server error"),
    502: ("bad_gateway", "bad gateway"),
    503: ("service_unavailable", "service unavailable"),
}
#: The rate limiter's body, exactly (the one error not in the ``{code, ...}`` shape).
TOO_MANY_REQUESTS = {"error": "too many requests"}


class BadRequest(Exception):
    """A 400 answer in the usual error shape; raised by the parameter parsers."""


class ParameterValidation(BadRequest):
    """A 400 answered as ``{"msg": "Parameter validation failed ..."}`` (bad period_interval)."""


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def _error(status: int, details: str) -> web.Response:
    """The spec's error body, ``{"error": {"code", "message", "details"}}``; 429 is bare."""
    if status == 429:
        return _json(TOO_MANY_REQUESTS, status)
    code, message = _CODES.get(status, ("internal_server_error", "internal server error"))
    return _json({"error": {"code": code, "message": message, "details": details}}, status)


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
    raw = request.query.get("period_interval", "")
    if raw not in {str(p) for p in PERIODS}:
        raise ParameterValidation(
            f"Parameter validation failed: period_interval={raw!r} must be one of 1, 60, 1440"
        )
    period = int(raw)
    start = _int_param(request, "start_ts")
    end = _int_param(request, "end_ts")
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


def _first_candle(body: Any) -> dict[str, Any] | None:
    """The first candle of a candle page (event, per-market, batch or historical)."""
    if not isinstance(body, dict):
        return None
    lists: list[Any] = [body.get("candlesticks") or []]
    lists += body.get("market_candlesticks") or []
    lists += [m.get("candlesticks") or [] for m in body.get("markets") or [] if isinstance(m, dict)]
    for candles in lists:
        for c in candles:
            if isinstance(c, dict) and "end_period_ts" in c:
                return c
    return None


def _break_value(response: web.StreamResponse, kind: str) -> tuple[web.StreamResponse, bool]:
    """Serve one contract-breaking value in a 200 candle page; (response, applied).

    The page is re-parsed, so the world's shared candle objects are never mutated.
    ``bad_price``: the first candle's ask close is ``"1.2500"`` (above one dollar).
    ``number_value``: its volume is a JSON number instead of a count string.
    """
    if not isinstance(response, web.Response) or response.status != 200:
        return response, False
    body = orjson.loads(bytes(response.body))  # type: ignore[arg-type]
    candle = _first_candle(body)
    if candle is None:
        return response, False
    if kind == "bad_price":
        ask = candle["yes_ask"]
        ask["close_dollars" if "close_dollars" in ask else "close"] = "1.2500"
    else:
        key = "volume_fp" if "volume_fp" in candle else "volume"
        candle[key] = float(candle[key])
    return _json(body), True


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

    def describe(self) -> dict[str, object]:
        """Every open-point switch of the running server and its value."""
        return self.config.switches()

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
        add(PREFIX + "/series", self._series_list, name="series_list")
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
        rec = RequestRecord(
            request.path, route, dict(request.query), status, fault, request.get(CANDIDATES)
        )
        with self._count_lock:
            self.counters.record(rec)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.bucket is not None and not self.bucket.try_acquire():
            self._record(request, 429, None)
            return _json(TOO_MANY_REQUESTS, 429)
        known = request.match_info.route.name is not None
        fault = self.faults.decide(request.path) if known else None
        if fault in ("500", "502", "503", "429"):
            assert fault is not None
            status = int(fault)
            self._record(request, status, fault)
            return _error(status, "injected fault")
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
        except ParameterValidation as e:
            response = _json({"msg": str(e)}, 400)
        except BadRequest as e:
            response = _error(400, str(e))
        except web.HTTPNotFound:
            response = _error(404, "not found")
        if fault in ("bad_price", "number_value"):
            response, applied = _break_value(response, fault)
            request[APPLIED] = applied
        if fault in ("wrong_event", "stuck_end", "bad_price", "number_value") and not request.get(
            APPLIED
        ):
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

    async def _series_list(self, request: web.Request) -> web.Response:
        """``GET /series``: ``category`` (exact), ``tags`` (comma-separated, any of them),
        ``min_updated_ts``; with ``series_list_filter="ignored"`` every series."""
        _bool_param(request, "include_product_metadata")
        volume = _bool_param(request, "include_volume")
        raw_min = request.query.get("min_updated_ts")
        min_updated = None if raw_min in (None, "") else _int_param(request, "min_updated_ts")
        category = request.query.get("category") or None
        tags = [t for t in request.query.get("tags", "").split(",") if t]
        if self.config.series_list_filter == "ignored":
            category, tags = None, []
        series = self.world.series_list(category, tags, min_updated)
        if volume:
            series = [{**s, "volume_fp": "0.00"} for s in series]
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
        if self.config.events_list_drops_historical:
            tickers = [t for t in tickers if not self._all_historical(t)]
        page = []
        for t in tickers[offset : offset + limit]:
            event = world.event(t)
            assert event is not None
            if nested:
                self._nest_markets(event, t)
            page.append(event)
        return _json({"events": page, "cursor": _cursor(offset, limit, len(tickers))})

    def _all_historical(self, event_ticker: str) -> bool:
        info = self.world.event_info(event_ticker)
        return info is not None and all(self.world.is_historical(m) for m in info.markets)

    def _nest_markets(self, event: dict[str, Any], event_ticker: str) -> None:
        """``with_nested_markets``: live markets; an all-historical event per the switch."""
        if self._all_historical(event_ticker):
            how = self.config.nested_markets_of_historical_event
            if how == "listed":
                event["markets"] = self.world.markets(event_ticker, include_historical=True)
            elif how == "empty":
                event["markets"] = []
            return
        event["markets"] = self.world.markets(event_ticker, include_historical=False)

    async def _event(self, request: web.Request) -> web.Response:
        ticker = request.match_info["event_ticker"]
        event = self.world.event(ticker)
        if event is None:
            return _error(404, "event not found")
        markets = self.world.markets(ticker, include_historical=False)
        if _bool_param(request, "with_nested_markets"):
            self._nest_markets(event, ticker)
        return _json({"event": event, "markets": markets})

    async def _event_candles(self, request: web.Request) -> web.Response:
        series = request.match_info["series_ticker"]
        ticker = request.match_info["event_ticker"]
        info = self.world.event_info(ticker)
        if info is None or info.series.ticker != series:
            return _error(404, "event not found")
        start, end, period = _range_params(request)
        live = len(self.world.live_markets(ticker))
        request[CANDIDATES] = live * period_ends(start, end, period)[1]
        fault = request.get(FAULT)
        if fault == "wrong_event":
            ticker = self.world.neighbour(ticker)
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

    def _market_cap(self, request: web.Request, start: int, end: int, period: int) -> int:
        """The per-market (live and historical) cap on the REQUESTED range; the end served.

        Counts ``(end_ts - start_ts) / period`` like the real server's message does.
        Over ``market_candle_cap``: the real 400, or (``truncated``) the end of the
        first ``market_candle_cap`` periods, or (``served``) the whole range.
        """
        cap = self.config.market_candle_cap
        requested = (end - start) / (period * 60)
        request[CANDIDATES] = math.ceil(requested)
        if requested <= cap or self.config.historical_over_cap == "served":
            return end
        if self.config.historical_over_cap == "truncated":
            return start + cap * period * 60
        raise BadRequest(
            f"requested time range with candlesticks: {requested:f}, max candlesticks: {cap}"
        )

    async def _market_candles(self, request: web.Request) -> web.Response:
        ticker = request.match_info["ticker"]
        if not self._live_market(ticker, request.match_info["series_ticker"]):
            return _error(404, "market not found")
        start, end, period = _range_params(request)
        end = self._market_cap(request, start, end, period)
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
        cap = self.config.batch_candle_cap
        requested = len(tickers) * period_ends(start, end, period)[1]
        request[CANDIDATES] = requested
        if requested > cap and self.config.batch_over_cap == "400":
            raise BadRequest(
                f"requested candlesticks across all markets: {requested}, max candlesticks: {cap}"
            )
        hist = self.config.batch_serves_historical
        answered = [t for t in tickers if self._live_market(t) or (hist and self._historical(t))]
        lists = [list(self.world.candles_in(t, period, start, end)) for t in answered]
        if self.config.batch_over_cap == "truncated":
            lists, _ = cut_by_cap(lists, cap)
        markets = []
        for t, candles in zip(answered, lists, strict=True):
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
        if series is not None and not self.config.historical_series_filter:
            raise BadRequest("unknown query parameter: series_ticker")
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
        end = self._market_cap(request, start, end, period)
        candles = self.world.historical_candles(ticker, period, start, end)
        return _json({"ticker": ticker, "candlesticks": candles})


@contextlib.contextmanager
def run_sim_in_thread(
    config: SimConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    server_class: type[SimServer] = SimServer,
) -> Iterator[SimServer]:
    """Serve from a daemon thread with its own event loop; yields the started server.

    For synchronous tests and for tests that run a client as a subprocess while the
    main thread blocks. The server is stopped and the loop closed on exit.
    ``server_class`` may be a subclass (the bench's caching one).
    """
    server = server_class(config, host=host, port=port)
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
