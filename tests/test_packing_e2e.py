"""Packed runs end to end: batch requests that carry several events' markets, archived
once, loaded window by window, equal to the simulator's own candles.

``extract events`` → ``extract candles --route auto`` at 60 and 1,440 minutes (where
every final window shares its requests) → ``load run``, under both answers of whether
the batch route serves historical markets and under the open points that touch the
batch route. The truth is the simulator's candles, market by market; the archive is
checked for what packing promises: each packed page kept once and named by every
manifest whose markets it holds, no request made twice, and a rerun that fetches and
changes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from extract.config import ApiConfig, ExtractConfig, RateLimit, RouteChoice
from extract.events.sync import sync_events
from extract.run.candles import run_candles
from load.config import LoadConfig
from load.report.inspect import inspect_event
from load.report.verify import verify_event
from load.run.loader import load_windows
from schemas.archive import KIND_PACKED_CANDLES, PACKED_DIR, LocalArchive, Manifest
from schemas.checkpoints import list_checkpoints
from schemas.core import CheckpointStatus
from schemas.db import make_engine
from tests.kalshi_sim import CATEGORY_SERIES, DEFAULT_SERIES, SimConfig, SimServer, World
from tests.test_load_support import Truth, full_rows, stored, truth_row

SERIES = "KXHIGHNY"
NOW = datetime(2025, 11, 22, 12, 0, tzinfo=UTC)  # every window final at 1,440 minutes too
FIRST, LAST = date(2025, 11, 1), date(2025, 11, 20)
N_EVENTS = 20


def world(**over: Any) -> SimConfig:
    """Twenty closed weather events, four markets each, half of them sparse; the eight
    newest live, the older ones on the historical tier."""
    base = SimConfig(
        seed=31,
        series=(DEFAULT_SERIES[0],),
        now=NOW,
        first_date=FIRST,
        last_date=LAST,
        markets_per_event=4,
        schedule="weather",
        sparse_market_rate=0.5,
        historical_cutoff_days=8.0,
    )
    return replace(base, **over)


def config(sim: SimServer, db_url: str, archive: Path, period: int, **over: Any) -> ExtractConfig:
    api = ApiConfig(
        base_url=sim.base_url,
        rate=RateLimit(1000, 1.0),
        max_retries=2,
        backoff_base_s=0.001,
        backoff_max_s=0.01,
    )
    return ExtractConfig(
        series=SERIES,
        db_url=db_url,
        archive_dir=archive,
        api=api,
        now=NOW,
        period=period,
        route=RouteChoice.AUTO,
        **over,
    )


def manifests(archive: Path) -> list[Manifest]:
    store = LocalArchive(archive)
    return [store.read_manifest(rel) for rel in store.iter_manifests()]


def truth(w: World, archive: Path, period: int, series: tuple[str, ...] = (SERIES,)) -> Truth:
    """Every candle the simulator holds for every market, at ``period``; a market whose
    archive has per-market historical pages has NULL price min/max (that route's shape)."""
    by_route = {
        m.key.dir.split("/")[1] + "/" + p.split("/")[1]
        for m in manifests(archive)
        for p in m.pages
        if p.startswith("markets/")
    }
    out: Truth = {}
    for event in (e for one in series for e in w.event_tickers(one)):
        for m in w.market_infos(event):
            for c in w.candles(m.ticker, period):
                row = truth_row(c)
                if f"{event}/{m.ticker}" in by_route:
                    row = (*row[:14], None, None, *row[16:])
                out[(m.ticker, c["end_period_ts"])] = row
    return out


def load(db_url: str, archive: Path) -> int:
    cfg = LoadConfig(db_url=db_url, archive_dir=archive, retry_backoff_s=0, batch_windows=7)
    return load_windows(cfg).rows


def check_archive(sim: SimServer, archive: Path, twice: int = 0) -> int:
    """Every packed page is kept once and named by the manifests of all the windows it
    serves (two at least); no request was made twice (but ``twice``). Returns the packed
    pages."""
    found = {p.relative_to(archive).as_posix() for p in (archive / PACKED_DIR).rglob("*.json.gz")}
    named: dict[str, int] = {}
    for m in manifests(archive):
        for p in m.packed_pages:
            named[p] = named.get(p, 0) + 1
    assert set(named) == found, "a packed page no manifest names, or a name without a page"
    assert all(n >= 2 for n in named.values()), "a packed page serving a single window"
    own_batch = sum(1 for m in manifests(archive) for p in m.pages if p.startswith("batch/"))
    asked = [r for r in sim.counters.log if r.route == "batch_candlesticks"]
    assert all(r.status == 200 for r in asked), "a batch request over the caps"
    assert len(found) + own_batch <= len(asked) <= len(found) + own_batch + twice, (
        "a batch request made twice"
    )
    return len(found)


async def backfill(sim: SimServer, db_url: str, archive: Path, period: int) -> None:
    """sync → extract → load; the table equals the simulator; a rerun changes nothing."""
    cfg = config(sim, db_url, archive, period)
    await sync_events(cfg)
    sim.reset()
    summary = await run_candles(cfg)
    assert (summary.done, summary.failed) == (N_EVENTS, 0), summary.failures
    assert check_archive(sim, archive) > 0
    want = truth(sim.world, archive, period)
    assert load(db_url, archive) == len(want)
    engine = make_engine(db_url)
    try:
        got = stored(engine)
        assert set(want) - set(got) == set(), "missing candles"
        assert set(got) - set(want) == set(), "extra candles"
        assert got == want, "wrong values"
        with engine.connect() as conn:
            cps = list_checkpoints(conn, SERIES)
        assert len(cps) == N_EVENTS and all(cp.status is CheckpointStatus.SUCCESS for cp in cps)
        assert sum(cp.rows_loaded or 0 for cp in cps) == len(want), "a window loaded twice"

        before = full_rows(engine)
        sim.reset()
        again = await run_candles(cfg)
        assert (again.done, again.skipped, again.requests) == (0, N_EVENTS, 0)
        assert sim.counters.total == 0
        load(db_url, archive)
        assert full_rows(engine) == before
    finally:
        engine.dispose()


@pytest.mark.mariadb
@pytest.mark.parametrize("period", [60, 1440])
@pytest.mark.parametrize("serves", [False, True], ids=["batch-no-historical", "batch-historical"])
async def test_a_packed_backfill_equals_the_simulator(
    mariadb_url: str, archive_dir: Path, period: int, serves: bool
) -> None:
    async with SimServer(world(batch_serves_historical=serves)) as sim:
        await backfill(sim, mariadb_url, archive_dir, period)
        requests = {r.route for r in sim.counters.log}
    assert "event_candlesticks" not in requests  # every window's batch share beats a page


@pytest.mark.parametrize(
    "switch",
    [
        {"market_tickers_scope": "with_candles"},
        {"event_cap_counts": "requested"},
        {"uncapped_adjusted_end": "absent"},
        {"sparse_market_rate": 1.0},
        {"sparse_market_rate": 0.0, "batch_over_cap": "truncated"},
        {"historical_cutoff_days": 3650.0},
        {"historical_cutoff_days": 0.5, "batch_serves_historical": True},
        {"publication_delay_s": 600},
    ],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
async def test_packed_runs_under_each_open_point(
    sqlite_url: str, archive_dir: Path, switch: dict[str, Any]
) -> None:
    async with SimServer(world(**switch)) as sim:
        await backfill(sim, sqlite_url, archive_dir, 60)


async def test_inspect_and_verify_read_a_packed_window(sqlite_url: str, archive_dir: Path) -> None:
    async with SimServer(world(batch_serves_historical=True)) as sim:
        cfg = config(sim, sqlite_url, archive_dir, 60)
        await sync_events(cfg)
        assert (await run_candles(cfg)).ok
        load(sqlite_url, archive_dir)
        event = sim.world.event_tickers(SERIES)[3]
        markets = {m.ticker for m in sim.world.market_infos(event)}
    store = LocalArchive(archive_dir)
    [window] = inspect_event(store, event)
    packed = [p for p in window.pages if p.kind == KIND_PACKED_CANDLES]
    assert packed and all(p.in_manifest and set(p.candles) <= markets for p in packed)
    # the page itself holds other events' markets too; inspect counts this window's
    body = store.read_page(packed[0].file).body
    assert {e["market_ticker"] for e in body["markets"]} > set(packed[0].candles)
    engine = make_engine(sqlite_url)
    try:
        report = verify_event(engine, store, event)
    finally:
        engine.dispose()
    assert report.ok and report.archive_rows == report.db_rows > 0


@pytest.mark.mariadb
async def test_two_extractors_share_a_packed_backfill(mariadb_url: str, archive_dir: Path) -> None:
    """Each window is extracted by one of them; a group of windows started by one is left
    to it by the other (deferred), so a shared page is fetched once, but for a rare race."""
    async with SimServer(world(batch_serves_historical=True)) as sim:
        cfg = config(sim, mariadb_url, archive_dir, 60, concurrency=2)
        await sync_events(cfg)
        sim.reset()
        runs = await asyncio.gather(
            run_candles(replace(cfg, worker_id="ext-a")),
            run_candles(replace(cfg, worker_id="ext-b")),
        )
        assert [r.failed for r in runs] == [0, 0]
        assert sum(r.done for r in runs) == N_EVENTS  # no window extracted twice
        assert all(r.done for r in runs)  # both did some of it
        check_archive(sim, archive_dir, twice=2)
        want = truth(sim.world, archive_dir, 60)
        assert load(mariadb_url, archive_dir) == len(want)
        engine = make_engine(mariadb_url)
        try:
            assert stored(engine) == want
        finally:
            engine.dispose()


#: Several series in one run: daily highs in two zones, an hourly series (two-hour
#: events, four a day), a monthly series; the two oldest days historical.
BY_TICKER = {s.ticker: s for s in CATEGORY_SERIES}
MIXED = (
    BY_TICKER["KXHIGHNY"],
    BY_TICKER["KXHIGHCHI"],
    replace(BY_TICKER["KXTEMPNYCH"], hours=(9, 11, 13, 15)),
    BY_TICKER["KXRAINNYCM"],
)


@pytest.mark.parametrize("period", [1, 60])
async def test_one_run_packs_the_windows_of_several_series(
    sqlite_url: str, archive_dir: Path, period: int
) -> None:
    """At 60 minutes every final window shares; at 1 minute the short hourly windows do
    (several events' markets on one page, several series' too), and the table equals the
    simulator's candles for every series."""
    tickers = tuple(s.ticker for s in MIXED)
    sim_config = world(
        series=MIXED,
        first_date=date(2025, 11, 14),
        last_date=date(2025, 11, 18),
        markets_per_event=3,
        historical_cutoff_days=6.0,
        batch_serves_historical=True,
    )
    async with SimServer(sim_config) as sim:
        cfg = replace(config(sim, sqlite_url, archive_dir, period), series=tickers)
        await sync_events(cfg)
        sim.reset()
        summary = await run_candles(cfg)
        assert summary.failed == 0, summary.failures
        assert check_archive(sim, archive_dir) > 0
        want = truth(sim.world, archive_dir, period, tickers)
        assert load(sqlite_url, archive_dir) == len(want)
        engine = make_engine(sqlite_url)
        try:
            assert stored(engine) == want
        finally:
            engine.dispose()
    store = LocalArchive(archive_dir)
    packed = {p for m in manifests(archive_dir) for p in m.packed_pages}
    series_on = [
        {e["market_ticker"].split("-")[0] for e in store.read_page(p).body["markets"]}
        for p in packed
    ]
    if period == 60:
        assert any(len(on) > 1 for on in series_on)  # a page carries several series
    hourly = [m for m in manifests(archive_dir) if m.key.series_ticker == "KXTEMPNYCH"]
    assert hourly and all(m.packed_pages for m in hourly if m.is_final)
