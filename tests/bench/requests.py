"""Requests of a 12-month backfill of several weather series against the floor, at 1 and
60 minutes, under both answers of whether the batch route serves historical markets.

The world holds the weather series of a category backfill (daily highs and lows in two
zones, an hourly series with 24 two-hour events a day, a monthly series), 12 months of
events, the last ~60 days live and the rest historical. The real ``extract candles
--route auto`` runs in-process against the simulator, once per period and per answer;
the simulator's own request record gives the requests per route. No load runs.

The floor is computed from the simulator's TRUTH (each market's life, which tier it is
on, the candles it holds), over every window of every series at once, with
:func:`extract.plan.runplan.run_floor`: per window the cheapest route mix at the caps,
the batch part at the best share of requests packed with any other windows'. Target:
requests / floor <= 1.05 at both periods under both answers. Also reported: the
requests the same windows would take event by event (what ``auto`` planned before
packing), which says what packing saved.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from extract.config import ApiConfig, ExtractConfig, RateLimit, RouteChoice
from extract.events.sync import sync_events
from extract.plan.auto import Answer, Evidence, WindowShape, choose_routes
from extract.plan.runplan import run_floor
from extract.plan.windows import EventTimes, MarketTimes, Window, plan_window
from extract.run.candles import run_candles
from schemas.core import WindowPolicy
from tests.bench.config import LAST_EVENT_DAY, SEED, SIM_NOW, BenchError
from tests.bench.report import Results
from tests.kalshi_sim import SimConfig, SimServer, run_sim_in_thread
from tests.kalshi_sim.config import CATEGORY_SERIES

#: Five weather series: two daily highs (Eastern, Central), a daily low, an hourly and a
#: monthly series.
REQUESTS_SERIES = tuple(
    s
    for s in CATEGORY_SERIES
    if s.ticker in ("KXHIGHNY", "KXHIGHCHI", "KXLOWTNYC", "KXTEMPNYCH", "KXRAINNYCM")
)
#: Markets settled in the last 60 days are live, the older ones historical.
LIVE_DAYS = 60.0
PERIODS = (1, 60)


def requests_world(days: int, batch_serves_historical: bool) -> SimConfig:
    """The 12-month world (``days`` days of events) under one answer of the batch question."""
    return SimConfig(
        seed=SEED + 3,
        series=REQUESTS_SERIES,
        now=SIM_NOW,
        first_date=LAST_EVENT_DAY - timedelta(days=days - 1),
        last_date=LAST_EVENT_DAY,
        historical_cutoff_days=LIVE_DAYS,
        schedule="weather",
        batch_serves_historical=batch_serves_historical,
    )


def truth_windows(sim: SimServer, period: int) -> tuple[list[WindowShape], list[int]]:
    """Every event's FULL_MARKET_WINDOW as of the simulator's now, its markets by the
    tier the simulator puts them on, and the candles its live markets hold in it (what a
    cap counting returned candles counts)."""
    world = sim.world
    now_ts = int(SIM_NOW.timestamp())
    shapes: list[WindowShape] = []
    candles: list[int] = []
    for spec in REQUESTS_SERIES:
        for event in world.event_tickers(spec.ticker):
            markets = world.market_infos(event)
            times = EventTimes(
                event,
                None,
                None,
                tuple(MarketTimes(m.ticker, m.open_ts, m.close_ts) for m in markets),
            )
            w = plan_window(times, WindowPolicy.FULL_MARKET_WINDOW, period, now_ts, 3600)
            if not isinstance(w, Window):
                continue
            inside = {m.market_ticker for m in w.markets}
            live = tuple(m.ticker for m in markets if m.ticker in inside and world.is_live(m))
            hist = tuple(m.ticker for m in markets if m.ticker in inside and world.is_historical(m))
            shapes.append(WindowShape(live, hist, w.start_ts, w.end_ts, period))
            candles.append(
                sum(len(world.candles_in(t, period, w.start_ts, w.end_ts)) for t in live)
            )
    return shapes, candles


def event_by_event(shapes: Sequence[WindowShape], serves: bool) -> int:
    """Requests ``auto`` takes window by window, every window alone (no packing)."""
    answer = Answer.YES if serves else Answer.NO
    evidence = Evidence(batch_serves_historical=answer)
    return sum(
        int(choose_routes(s, RouteChoice.AUTO, evidence, may_probe=False).total) for s in shapes
    )


def run_backfill(sim: SimServer, work: Path, period: int) -> None:
    """``extract events`` then ONE ``extract candles --route auto`` over every series (one
    plan, one token bucket: the packing runs across events and series)."""
    db_url = f"sqlite:///{work / 'kalshi.db'}"
    series = tuple(s.ticker for s in REQUESTS_SERIES)
    api = ApiConfig(base_url=sim.base_url, rate=RateLimit(1000, 1.0))
    asyncio.run(sync_events(ExtractConfig(series=series, db_url=db_url, api=api)))
    sim.reset()
    config = ExtractConfig(
        series=series,
        db_url=db_url,
        archive_dir=work / "raw",
        api=api,
        now=SIM_NOW,
        period=period,
        route=RouteChoice.AUTO,
    )
    summary = asyncio.run(run_candles(config))
    if not summary.ok:
        raise BenchError(f"the 12-month backfill failed: {summary.failures[:3]}")


def bench_requests(days: int, results: Results, say: Callable[[str], None]) -> None:
    """Adds the requests.* metrics for both periods and both answers of the batch question."""
    for serves in (False, True):
        answer = "yes" if serves else "no"
        world = requests_world(days, serves)
        with run_sim_in_thread(world) as sim:
            for period in PERIODS:
                with tempfile.TemporaryDirectory(prefix="kalshi-bench-requests-") as tmp:
                    shapes, candles = truth_windows(sim, period)
                    say(
                        f"{days}-day backfill of {len(REQUESTS_SERIES)} series at {period} "
                        f"min, batch serves historical: {answer} ..."
                    )
                    run_backfill(sim, Path(tmp), period)
                    over = [r for r in sim.counters.log if r.status == 400]
                    routes = {
                        r: n
                        for r, n in sim.counters.by_route.items()
                        if r.endswith("candlesticks") and n
                    }
                if over:
                    raise BenchError(f"{len(over)} requests answered 400, e.g. {over[0]}")
                _report(results, period, answer, shapes, candles, routes, serves)


def _report(
    results: Results,
    period: int,
    answer: str,
    shapes: Sequence[WindowShape],
    candles: Sequence[int],
    routes: dict[str, int],
    serves: bool,
) -> None:
    total = sum(routes.values())
    floor = run_floor(shapes, serves, candles)
    alone = event_by_event(shapes, serves)
    key = f"requests.p{period}.{answer}"
    n_live = sum(1 for s in shapes if s.live)
    note = f"{len(shapes)} windows of {len(REQUESTS_SERIES)} series ({n_live} with live markets)"
    results.add(
        f"{key}.requests",
        "requests",
        f"requests at {period} min, batch serves historical: {answer}",
        total,
        "",
        note,
    )
    results.add(f"{key}.floor", "requests", f"floor at {period} min ({answer})", floor, "")
    results.add(
        f"{key}.vs_floor",
        "requests",
        f"requests ÷ floor at {period} min ({answer})",
        total / floor,
        "×",
    )
    results.add(
        f"{key}.event_by_event",
        "requests",
        f"requests event by event, no packing, at {period} min ({answer})",
        alone,
        "",
        f"packing saves {1 - total / alone:.0%}" if alone else "",
    )
    for route in ("event", "batch", "historical"):
        results.add(
            f"{key}.{route}",
            "requests",
            f"{route} route requests at {period} min ({answer})",
            routes.get(f"{route}_candlesticks", 0),
            "",
        )
