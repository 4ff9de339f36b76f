"""Five weather series in ONE extract against a rate budget: the budget kept across series,
and the memory of five series against one.

The world is the requests step's five series (two daily highs, a daily low, an hourly
and a monthly series; :data:`tests.bench.requests.REQUESTS_SERIES`), with Kalshi's weather
schedule and the last third of the events live (batch pages, packed across events and
series), the rest historical (one market a page). The real ``extract candles --series
A,B,C,D,E --route auto --rps 20`` runs as a child process against the throttled
simulator; the rate figures come from the simulator's counters, split after the fact as
in the extract step (:mod:`tests.bench.extractbench`).

As in the extract step, the simulator first serves every page unthrottled while keeping
it (:class:`~tests.bench.extractbench.CachingSim`), so the measured run gets its pages as
bytes and the simulator's own page building does not take the extractor's cores. That
unthrottled run of the five series, and one of a single series (``KXHIGHNY``) over the
same days, give the peak RSS of each (the same settings, only the series differ): a run
across series must not hold more than one series' worth of memory per window in flight.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from tests.bench.config import (
    BULK_RPS,
    RATE_BUDGET_RPS,
    SEED,
    BenchConfig,
    BenchError,
    days_back,
    throttled_weather_world,
)
from tests.bench.extractbench import CachingSim, Sampler, archived_candles, split_run
from tests.bench.procs import ChildRun, extract_candles_args, run_child, stage_env, sync_series
from tests.bench.report import Results
from tests.bench.requests import REQUESTS_SERIES
from tests.kalshi_sim import SimConfig, run_sim_in_thread

#: The series the one-series memory run takes.
ONE_SERIES = "KXHIGHNY"


def series_world(days: int) -> SimConfig:
    """``days`` days of the five series' events, the last third live, throttled like
    Kalshi's Basic tier."""
    return throttled_weather_world(
        SEED + 4, days, live_share=Fraction(1, 3), series=REQUESTS_SERIES
    )


def bench_series(config: BenchConfig, results: Results, say: Callable[[str], None]) -> None:
    """Adds the series.* metrics."""
    sizes = config.sizes
    days = sizes.series_days
    first, last = days_back(days)
    world = series_world(days)
    tickers = ",".join(s.ticker for s in REQUESTS_SERIES)
    logs = config.out_dir / "logs"
    with (
        tempfile.TemporaryDirectory(prefix="kalshi-bench-series-") as tmp,
        run_sim_in_thread(world, server_class=CachingSim) as sim,
    ):
        work = Path(tmp)
        sim.set_rate_limit(None)

        def unthrottled(series: str, label: str) -> ChildRun:
            db_url = f"sqlite:///{work / f'{label}.db'}"
            sync_series(series, api_base=sim.base_url, db_url=db_url)
            return run_child(
                extract_candles_args(series, first, last, BULK_RPS, "auto"),
                env=stage_env(api_base=sim.base_url, db_url=db_url, archive=work / label),
                log=logs / f"series-{label}.log",
            )

        say(f"series: {len(REQUESTS_SERIES)} series, {days} days, unthrottled (pages kept) ...")
        five = unthrottled(tickers, "five")
        say(f"series: {ONE_SERIES} alone, {days} days, unthrottled ...")
        one = unthrottled(ONE_SERIES, "one")

        db_url = f"sqlite:///{work / 'rate.db'}"
        sync_series(tickers, api_base=sim.base_url, db_url=db_url)
        sim.set_rate_limit(world.rate_limit_rps, world.burst_seconds)
        sim.reset()  # zero the counters, refill the bucket: an idle key from here on
        say(
            f"series: {len(REQUESTS_SERIES)} series in one extract at {RATE_BUDGET_RPS:g} req/s ..."
        )
        log = logs / "series-rate.log"
        env = stage_env(api_base=sim.base_url, db_url=db_url, archive=work / "rate")
        with Sampler(sim) as sampler:
            rated = run_child(
                extract_candles_args(tickers, first, last, RATE_BUDGET_RPS, "auto"),
                env=env,
                log=log,
            )
        routes = dict(sim.counters.by_route)
    figures = split_run(sampler.samples, sizes.rate_warmup_s)
    candles = archived_candles(log.read_text(errors="replace"))
    unthrottled_candles = archived_candles(five.log.read_text(errors="replace"))
    if candles != unthrottled_candles:
        raise BenchError(
            f"the throttled run archived {candles:,} candles, the unthrottled one "
            f"{unthrottled_candles:,}: see {log}"
        )
    steady = figures.steady_ok / figures.steady_s if figures.steady_s > 0 else 0.0
    by_route = ", ".join(f"{n} {r}" for r, n in sorted(routes.items()) if n)
    note = f"{len(REQUESTS_SERIES)} series, {days} days; {by_route}"
    results.add(
        "series.requests",
        "series",
        "requests, five series in one extract",
        figures.requests,
        "",
        note,
    )
    results.add(
        "series.candles", "series", "candles archived", candles, "", f"{rated.cpu_s:.1f} CPU-s"
    )
    results.add(
        "series.steady_rps",
        "series",
        "answered 200, steady",
        steady,
        "req/s",
        f"after the first {sizes.rate_warmup_s:g} s of {figures.elapsed_s:.1f} s",
    )
    results.add(
        "series.steady_fraction_of_budget",
        "series",
        "steady rate ÷ budget, five series in one extract",
        steady / RATE_BUDGET_RPS,
        "×",
    )
    results.add(
        "series.throttled_steady",
        "series",
        "429s once steady",
        figures.steady_throttled,
        "",
        f"{figures.throttled} in the whole run",
    )
    results.add(
        "series.five_mb",
        "series",
        "peak RSS, five series",
        five.max_rss_mb,
        "MB",
        f"{five.elapsed_s:.0f} s",
    )
    results.add(
        "series.one_mb",
        "series",
        f"peak RSS, {ONE_SERIES} alone",
        one.max_rss_mb,
        "MB",
        f"{one.elapsed_s:.0f} s",
    )
    results.add(
        "series.five_vs_one",
        "series",
        "peak RSS, five series ÷ one",
        five.max_rss_mb / one.max_rss_mb,
        "×",
    )
