"""Requests of a 12-month backfill against the floor, under both batch answers.

One weather series (the real schedule: open 14:00Z the day before, close at midnight
local standard time), 365 events, the last ~60 days live and the rest historical, is
extracted by the real ``extract candles --route auto`` in-process against the
simulator, once with a server whose batch route serves historical markets and once
with one that does not. The simulator's own request record gives the requests per
route; no load runs, so the step stays quick.

The floor is computed from the simulator's TRUTH (each market's life and candles, which
tier it is on, what the batch route serves), window by window, with
:func:`extract.plan.auto.window_floor`: the fewest requests any route mix could take at the
caps. Target: requests / floor <= 1.05 under both answers.

The layout question of issue 14 is measured here too: packing the markets of several
events into one batch request (a request covers a time range and every market open in
it) against one event per request. :func:`packed_requests` is the best such packing (a
greedy sweep, optimal because a sub-range of a feasible request is feasible).
"""

from __future__ import annotations

import asyncio
import bisect
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from extract.config import ApiConfig, ExtractConfig, RateLimit, RouteChoice
from extract.plan.auto import WindowShape, window_floor
from extract.plan.caps import BATCH_CANDLE_CAP, batch_plan, requested_candles
from extract.plan.windows import ceil_period
from extract.run.candles import run_candles
from tests.bench.config import LAST_EVENT_DAY, SEED, SIM_NOW, BenchError
from tests.bench.procs import sync_series
from tests.bench.report import Results
from tests.kalshi_sim import SeriesSpec, SimConfig, SimServer, run_sim_in_thread

REQUESTS_SERIES = SeriesSpec("KXHIGHNY", "America/New_York", "New York City")
#: Markets settled in the last 60 days are live, the older ones historical.
LIVE_DAYS = 60.0
PERIOD = 1


def requests_world(days: int, batch_serves_historical: bool) -> SimConfig:
    """The 12-month world (``days`` events) under one answer of the batch question."""
    return SimConfig(
        seed=SEED + 3,
        series=(REQUESTS_SERIES,),
        now=SIM_NOW,
        first_date=LAST_EVENT_DAY - timedelta(days=days - 1),
        last_date=LAST_EVENT_DAY,
        historical_cutoff_days=LIVE_DAYS,
        schedule="weather",
        batch_serves_historical=batch_serves_historical,
    )


@dataclass(frozen=True)
class TruthWindow:
    """One event's window as the simulator knows it."""

    event_ticker: str
    shape: WindowShape
    live_candles: int
    """Candles the live markets hold in the window (what a returned-counting cap counts)."""
    lives: tuple[tuple[str, int, int], ...]
    """(ticker, open_ts, close_ts) of every market, for the packing measurement."""


def truth_windows(sim: SimServer) -> list[TruthWindow]:
    """Every event's FULL_MARKET_WINDOW with its markets by tier, from the world."""
    world = sim.world
    out: list[TruthWindow] = []
    for event in world.event_tickers(REQUESTS_SERIES.ticker):
        markets = world.market_infos(event)
        start = min(m.open_ts for m in markets)
        end = ceil_period(max(m.close_ts for m in markets), PERIOD)
        live = tuple(m.ticker for m in markets if world.is_live(m))
        hist = tuple(m.ticker for m in markets if world.is_historical(m))
        candles = sum(len(world.candles_in(t, PERIOD, start, end)) for t in live)
        lives = tuple((m.ticker, m.open_ts, m.close_ts) for m in markets)
        out.append(TruthWindow(event, WindowShape(live, hist, start, end, PERIOD), candles, lives))
    return out


def per_event_requests(windows: Sequence[TruthWindow]) -> int:
    """Batch requests with one event per request (every market on batch)."""
    return sum(
        len(batch_plan(w.shape.live + w.shape.historical, w.shape.start_ts, w.shape.end_ts, PERIOD))
        for w in windows
    )


def packed_requests(windows: Sequence[TruthWindow], cap: int = BATCH_CANDLE_CAP) -> int:
    """Batch requests when a request may hold markets of several events.

    A request covers ``[a, b]`` and asks for every market whose life meets it: there are
    ``#(open <= b) - #(close < a)`` of them (a life closing before ``a`` opened before
    ``b`` too). It is feasible while they are at most 100 and tickers x periods <= cap;
    both grow with ``b``, so each request is stretched as far as it stays feasible (a
    binary search) and the next starts a second later, skipping times no market is open.
    """
    opens = sorted(o for w in windows for _, o, _ in w.lives)
    closes = sorted(c for w in windows for _, _, c in w.lives)
    if not opens:
        return 0
    step = PERIOD * 60

    def tickers(a: int, b: int) -> int:
        return bisect.bisect_right(opens, b) - bisect.bisect_left(closes, a)

    def fits(a: int, b: int) -> bool:
        n = tickers(a, b)
        return n <= 100 and n * requested_candles(a, b, PERIOD) <= cap

    t, last, count = opens[0], closes[-1], 0
    while True:
        if tickers(t, t) == 0:
            t = opens[bisect.bisect_right(opens, t)]
            continue
        # k periods beyond t, the end clipped to the last close: k = 0 always fits
        # (one period of at most 100 open markets), k = lo fits, k = hi does not or
        # already reaches past the last close.
        lo, hi = 0, (last - t) // step + 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(t, t + mid * step) else (lo, mid)
        count += 1
        end = t + lo * step
        if hi * step + t > last and fits(t, last):
            return count  # this request reaches the last close
        if end >= last:
            return count
        t = end + 1


def floor_of(windows: Sequence[TruthWindow], batch_serves_historical: bool) -> int:
    """Sum of each window's floor (event cap counting the candles it returns)."""
    return sum(window_floor(w.shape, batch_serves_historical, w.live_candles) for w in windows)


def run_backfill(sim: SimServer, work: Path, first: object, last: object) -> dict[str, int]:
    """``extract events`` + ``extract candles --route auto``; the candle requests by route."""
    db_url = f"sqlite:///{work / 'kalshi.db'}"
    sync_series(REQUESTS_SERIES.ticker, api_base=sim.base_url, db_url=db_url)
    sim.reset()
    config = ExtractConfig(
        series=REQUESTS_SERIES.ticker,
        db_url=db_url,
        archive_dir=work / "raw",
        api=ApiConfig(base_url=sim.base_url, rate=RateLimit(1000, 1.0)),
        date_from=first,  # type: ignore[arg-type]
        date_to=last,  # type: ignore[arg-type]
        now=SIM_NOW,
        route=RouteChoice.AUTO,
    )
    summary = asyncio.run(run_candles(config))
    if not summary.ok:
        raise BenchError(f"the 12-month backfill failed: {summary.failures[:3]}")
    routes = {r: n for r, n in sim.counters.by_route.items() if r.endswith("candlesticks") and n}
    return routes


def bench_requests(days: int, results: Results, say: Callable[[str], None]) -> None:
    """Adds the requests.* metrics for both answers of ``batch_serves_historical``."""
    for serves in (False, True):
        answer = "yes" if serves else "no"
        world = requests_world(days, serves)
        with (
            tempfile.TemporaryDirectory(prefix="kalshi-bench-requests-") as tmp,
            run_sim_in_thread(world) as sim,
        ):
            windows = truth_windows(sim)
            say(f"{days}-day backfill, batch serves historical: {answer} ...")
            first, last = world.dates
            routes = run_backfill(sim, Path(tmp), first, last)
            over = [r for r in sim.counters.log if r.status == 400]
        if over:
            raise BenchError(f"{len(over)} requests answered 400, e.g. {over[0]}")
        total = sum(routes.values())
        floor = floor_of(windows, serves)
        n_live = sum(1 for w in windows if w.shape.live)
        note = f"{len(windows)} events ({n_live} with live markets)"
        key = f"requests.{answer}"
        results.add(
            f"{key}.requests",
            "requests",
            f"requests, batch serves historical: {answer}",
            total,
            "",
            note,
        )
        results.add(
            f"{key}.floor", "requests", f"floor, batch serves historical: {answer}", floor, ""
        )
        results.add(
            f"{key}.vs_floor", "requests", f"requests ÷ floor ({answer})", total / floor, "×"
        )
        for route in ("event", "batch", "historical"):
            n = routes.get(f"{route}_candlesticks", 0)
            results.add(
                f"{key}.per_event.{route}",
                "requests",
                f"{route} route requests per event ({answer})",
                n / len(windows),
                "",
            )
        if serves:
            per_event, packed = per_event_requests(windows), packed_requests(windows)
            results.add(
                "requests.packing_saving",
                "requests",
                "batch requests saved by packing several events",
                1 - packed / per_event,
                "×",
                f"{per_event} one event a request, {packed} packed; packing pays at >= 0.20",
            )
