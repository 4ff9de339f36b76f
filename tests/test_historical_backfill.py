"""Backfills across Kalshi's historical cutoff, end to end over real HTTP.

sync → extract → archive → load against the simulator, which serves the live and the
historical tier from one ground truth. Every test compares what the database finally
holds with ``sim.world``: every candle of every market, old and new, value for value.
The historical route sends no ``price`` min/max (its schema has none), so a market
fetched from it has NULL there; everything else is identical to the live candle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, update

from extract.api.client import ApiResponse, KalshiClient, Params
from extract.cli import main as extract_main
from extract.config import ApiConfig, ExtractConfig, RateLimit, RouteChoice
from extract.events.sync import sync_events
from extract.run.candles import run_candles
from extract.run.outcome import CandlesSummary
from load.config import LoadConfig
from load.run.loader import load_windows
from schemas.archive import LocalArchive, Manifest
from schemas.checkpoints import get_checkpoint, list_checkpoints
from schemas.core import CheckpointStatus
from schemas.db import make_engine
from schemas.tables import CANDLE_COUNT_COLUMNS, CANDLE_PRICE_COLUMNS, kalshi_market
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, SimServer, World, run_sim_in_thread
from tests.test_load_support import Truth, stored, truth_row

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
SERIES = "KXHIGHNY"
NY = DEFAULT_SERIES[0]


def sim_config(**over: Any) -> SimConfig:
    """Twelve days around the default 90-day cutoff (2025-10-22 12:00 UTC), small pages.

    Two markets an event keep the tests fast: routing is per market either way.
    """
    base = SimConfig(
        seed=23,
        series=(NY,),
        now=NOW,
        first_date=date(2025, 10, 14),
        last_date=date(2025, 10, 25),
        markets_per_event=2,
        candle_cap=2000,
    )
    return replace(base, **over)


def extract_config(sim: SimServer, db_url: str, archive: Path, **over: Any) -> ExtractConfig:
    api = ApiConfig(
        base_url=sim.base_url,
        rate=RateLimit(1000, 1.0),
        timeout_s=20,
        max_retries=3,
        backoff_base_s=0.001,
        backoff_max_s=0.01,
    )
    base: dict[str, Any] = {"concurrency": 2}
    base.update(over)
    return ExtractConfig(
        series=SERIES,
        db_url=db_url,
        archive_dir=archive,
        api=api,
        now=sim.world.now,
        **{"route": RouteChoice.EVENT, **base},
    )


def load(db_url: str, archive: Path) -> int:
    cfg = LoadConfig(db_url=db_url, archive_dir=archive, retry_backoff_s=0, batch_windows=20)
    return load_windows(cfg).rows


def manifests(archive: Path) -> dict[str, Manifest]:
    store = LocalArchive(archive)
    return {m.key.event_ticker: m for m in map(store.read_manifest, store.iter_manifests())}


def routes(archive: Path) -> dict[str, str]:
    """market → the route its window's manifest says it came from."""
    return {x.market_ticker: x.route for m in manifests(archive).values() for x in m.markets}


def truth(world: World, historical: Iterable[str]) -> Truth:
    """Every candle the simulator holds for every market of the world, as stored values.

    Markets in ``historical`` came from the historical route: price min/max are NULL.
    """
    hist = set(historical)
    out: Truth = {}
    for event in world.event_tickers(SERIES):
        for m in world.market_infos(event):
            for c in world.candles(m.ticker, 1):
                row = truth_row(c)
                if m.ticker in hist:
                    row = (*row[:14], None, None, *row[16:])
                out[(m.ticker, c["end_period_ts"])] = row
    return out


def requests_by_route(sim: SimServer, route: str) -> list[dict[str, str]]:
    return [r.params | {"path": r.path} for r in sim.counters.log if r.route == route]


def flags(engine: Engine) -> dict[str, bool]:
    m = kalshi_market.c
    with engine.connect() as conn:
        return {r[0]: bool(r[1]) for r in conn.execute(select(m.market_ticker, m.is_historical))}


# --- one split event, both databases ------------------------------------------------------


async def test_split_event_is_routed_market_by_market_and_loads_the_ground_truth(
    db_url: str, archive_dir: Path
) -> None:
    async with SimServer(sim_config()) as sim:
        world = sim.world
        split = "KXHIGHNY-25OCT19"
        infos = sorted(world.market_infos(split), key=lambda i: i.settlement_ts)
        # The cutoff falls between the first and the second market's settlement.
        sim.set_cutoff(datetime.fromtimestamp(infos[1].settlement_ts, UTC))
        cfg = extract_config(sim, db_url, archive_dir)
        synced = await sync_events(cfg)
        all_markets = {
            m.ticker: m for e in world.event_tickers(SERIES) for m in world.market_infos(e)
        }
        historical = {t for t, m in all_markets.items() if world.is_historical(m)}
        assert infos[0].ticker in historical and infos[1].ticker not in historical
        assert synced.markets == len(all_markets) and synced.historical_markets == len(historical)

        engine = make_engine(db_url)
        assert flags(engine) == {t: t in historical for t in all_markets}
        # One listing for the whole series found the old markets, split event included.
        listings = requests_by_route(sim, "historical_markets")
        assert [(r["series_ticker"], r["limit"]) for r in listings] == [(SERIES, "1000")]
        assert all("event_ticker" not in r for r in listings)

        sim.reset()
        summary = await run_candles(cfg)
        assert (summary.done, summary.failed, summary.rerouted) == (12, 0, 0)
        assert summary.cutoff_reads == 1 and summary.cutoff == datetime.fromtimestamp(
            infos[1].settlement_ts, UTC
        ).strftime("%Y-%m-%dT%H:%M:%SZ")
        hist_requests = requests_by_route(sim, "historical_candlesticks")
        assert summary.historical_pages == len(hist_requests) == len(historical)
        assert summary.live_pages == sim.counters.by_route["event_candlesticks"]
        assert summary.requests == summary.live_pages + summary.historical_pages

        # The wholly historical events never touch the event route.
        live_events = {
            r["path"].split("/")[-2] for r in requests_by_route(sim, "event_candlesticks")
        }
        assert live_events == {f"{SERIES}-25OCT{d}" for d in range(19, 26)}
        assert routes(archive_dir) == {
            t: ("historical" if t in historical else "live") for t in all_markets
        }
        m = manifests(archive_dir)[split]
        market_pages = [p for p in m.pages if p.startswith("markets/")]
        assert market_pages == [f"markets/{infos[0].ticker}/{m.window_start_ts}.json.gz"]
        for env in (LocalArchive(archive_dir).read_page(f"{m.key.dir}/{p}") for p in market_pages):
            assert env.kind == "historical_market_candlesticks"
            assert env.market_ticker == infos[0].ticker
            assert env.params == {
                "start_ts": m.window_start_ts,
                "end_ts": m.window_end_ts,
                "period_interval": 1,
            }
            assert env.body["candlesticks"] == world.historical_candles(
                infos[0].ticker, 1, m.window_start_ts, m.window_end_ts
            )

        want = truth(world, historical)
        assert load(db_url, archive_dir) == len(want)
        assert stored(engine) == want
        with engine.connect() as conn:
            cp = get_checkpoint(conn, m.key)
        assert cp is not None and cp.status is CheckpointStatus.SUCCESS
        assert cp.pages_archived == len(m.pages)
        engine.dispose()


# --- the cutoff moves ------------------------------------------------------------------


class CutoffMover(KalshiClient):
    """A client whose n-th request to ``trigger`` first moves the simulator's cutoff."""

    def __init__(
        self, api: ApiConfig, sim: SimServer, trigger: str, nth: int, to: datetime
    ) -> None:
        super().__init__(api, concurrency=1)
        self.sim, self.trigger, self.nth, self.to = sim, trigger, nth, to
        self.seen = 0

    async def get_json(self, path: str, params: Params | None = None, **kw: Any) -> ApiResponse:
        if path == self.trigger:
            self.seen += 1
            if self.seen == self.nth:
                self.sim.set_cutoff(self.to)
        return await super().get_json(path, params, **kw)


async def test_a_cutoff_that_moves_mid_run_loses_nothing(
    sqlite_url: str, archive_dir: Path
) -> None:
    async with SimServer(sim_config(candle_cap=1500)) as sim:
        world = sim.world
        cfg = extract_config(sim, sqlite_url, archive_dir, concurrency=1)
        await sync_events(cfg)
        before = {
            m.ticker
            for e in world.event_tickers(SERIES)
            for m in world.market_infos(e)
            if world.is_historical(m)
        }
        # While the extractor pages KXHIGHNY-25OCT22 (live, several pages), the cutoff
        # jumps past that event and the next one: its second page lacks its markets.
        moving = "KXHIGHNY-25OCT22"
        jump = world.event_info("KXHIGHNY-25OCT23")
        assert jump is not None and not before & {m.ticker for m in jump.markets}
        to = datetime.fromtimestamp(jump.settlement_ts + 60, UTC)
        path = f"/series/{SERIES}/events/{moving}/candlesticks"
        sim.reset()
        async with CutoffMover(cfg.api, sim, path, 2, to) as client:
            summary = await run_candles(cfg, client=client)
        assert (summary.done, summary.failed) == (12, 0)

        moved = {m.ticker for m in world.market_infos(moving)}
        after = {
            m.ticker
            for e in world.event_tickers(SERIES)
            for m in world.market_infos(e)
            if world.is_historical(m)
        }
        assert moved <= after and {m.ticker for m in jump.markets} <= after
        # The moving event's markets were rerouted mid-window and the cutoff re-read; the
        # next event was routed by the new cutoff from the start (no event page at all).
        assert summary.rerouted == len(moved)
        assert summary.cutoff_reads == 2 and summary.cutoff == to.strftime("%Y-%m-%dT%H:%M:%SZ")
        m = manifests(archive_dir)[moving]
        assert {x.route for x in m.markets} == {"historical"}
        assert sum(not p.startswith("markets/") for p in m.pages) >= 2  # the live pages stay
        assert {p.split("/")[1] for p in m.pages if p.startswith("markets/")} == moved
        live_events = {
            r["path"].split("/")[-2] for r in requests_by_route(sim, "event_candlesticks")
        }
        assert jump.event_ticker not in live_events
        got = routes(archive_dir)
        assert {t for t, r in got.items() if r == "historical"} == before | moved | {
            m.ticker for m in jump.markets
        }

        # Every candle is there, once, equal to the ground truth: the minutes the moving
        # event got from both routes are the same values (load keeps the later retrieval).
        want = truth(world, {t for t, r in got.items() if r == "historical"})
        assert load(sqlite_url, archive_dir) == len(want)
        engine = make_engine(sqlite_url)
        assert stored(engine) == want
        engine.dispose()


async def test_a_cutoff_moved_since_the_sync_routes_by_the_runs_own_read(
    sqlite_url: str, archive_dir: Path
) -> None:
    async with SimServer(sim_config(first_date=date(2025, 10, 21))) as sim:
        world = sim.world
        cfg = extract_config(sim, sqlite_url, archive_dir)
        await sync_events(cfg)
        engine = make_engine(sqlite_url)
        assert not any(flags(engine).values())  # everything was live at the sync
        sim.set_cutoff(world.now - timedelta(days=86))  # four days became historical
        sim.reset()
        summary = await run_candles(cfg)
        assert (summary.failed, summary.rerouted) == (0, 0)
        historical = {t for t, r in routes(archive_dir).items() if r == "historical"}
        assert historical == {
            m.ticker
            for e in world.event_tickers(SERIES)
            for m in world.market_infos(e)
            if world.is_historical(m)
        }
        assert len(historical) == 2 * 4
        assert not [r for r in sim.counters.log if r.status != 200]
        want = truth(world, historical)
        assert load(sqlite_url, archive_dir) == len(want)
        assert stored(engine) == want
        engine.dispose()


async def test_a_historical_404_sends_the_market_back_to_the_live_route(
    sqlite_url: str, archive_dir: Path
) -> None:
    async with SimServer(sim_config(first_date=date(2025, 10, 24))) as sim:
        world = sim.world
        cfg = extract_config(sim, sqlite_url, archive_dir)
        await sync_events(cfg)
        stale = world.market_infos("KXHIGHNY-25OCT24")[0].ticker
        engine = make_engine(sqlite_url)
        with engine.begin() as conn:  # a wrong flag: the market is still live
            conn.execute(
                update(kalshi_market)
                .where(kalshi_market.c.market_ticker == stale)
                .values(is_historical=True)
            )
        sim.reset()
        summary = await run_candles(cfg)
        assert (summary.done, summary.failed, summary.rerouted) == (2, 0, 1)
        assert [
            (r.path.split("/")[-2], r.status)
            for r in sim.counters.log
            if "historical/markets/" in r.path
        ] == [(stale, 404)]
        assert routes(archive_dir)[stale] == "live"
        want = truth(world, ())
        assert load(sqlite_url, archive_dir) == len(want)
        assert stored(engine) == want
        engine.dispose()


@pytest.mark.parametrize(
    ("event", "tier"), [("KXHIGHNY-25OCT23", "live"), ("KXHIGHNY-25OCT20", "historical")]
)
def test_a_market_on_neither_tier_fails_its_window_and_only_it(
    sqlite_url: str, archive_dir: Path, event: str, tier: str
) -> None:
    """Neither the event pages nor the historical route know the market any more: the
    window is FAILED with a line naming it, the others are extracted, the command exits 1."""
    config = sim_config(first_date=date(2025, 10, 20), last_date=date(2025, 10, 24))
    with run_sim_in_thread(config) as sim:
        common = ["--series", SERIES, "--db", sqlite_url, "--api-base", sim.base_url]
        synced = CliRunner().invoke(extract_main, ["events", *common])
        assert synced.exit_code == 0, synced.output
        lost = sim.world.market_infos(event)[0]
        assert sim.world.is_historical(lost) == (tier == "historical")
        sim.hide_market(lost.ticker)
        sim.reset()
        r = CliRunner().invoke(
            extract_main, ["candles", *common, "--archive", str(archive_dir), "--max-retries", "1"]
        )
        hist_404s = [
            x.status for x in sim.counters.requests_to(f"/historical/markets/{lost.ticker}/")
        ]
    assert r.exit_code == 1, r.output
    reason = (
        f"{lost.ticker} is on neither tier (absent from the live event pages, 404 on the "
        "historical route): the window would be incomplete"
    )
    assert f"ERROR extract.run.candles: {event} p1 FULL_MARKET_WINDOW: FAILED: {reason}" in r.output
    assert f"FAILED {event} p1 FULL_MARKET_WINDOW: {reason}" in r.output
    assert "error: 1 event windows FAILED" in r.output
    assert "windows: 4 done, 0 skipped (already archived), 1 failed" in r.output
    assert hist_404s == [404]  # asked once, then no tier is left to try
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        status = {c.key.event_ticker: (c.status, c.last_error) for c in list_checkpoints(conn)}
    engine.dispose()
    assert status.pop(event) == (CheckpointStatus.FAILED, reason)
    assert set(status) == {f"{SERIES}-25OCT{d}" for d in (20, 21, 22, 23, 24)} - {event}
    assert {s for s, _ in status.values()} == {CheckpointStatus.EXTRACTED}
    assert set(manifests(archive_dir)) == set(status)  # no manifest for the failed window


# --- resume and dry run ------------------------------------------------------------------


def _window_start(world: World, event: str) -> int:
    return min(m.open_ts for m in world.market_infos(event))


async def test_a_failed_historical_page_is_the_only_one_fetched_again(
    sqlite_url: str, archive_dir: Path
) -> None:
    async with SimServer(
        sim_config(first_date=date(2025, 10, 18), last_date=date(2025, 10, 20), markets_per_event=3)
    ) as sim:
        world = sim.world
        split = "KXHIGHNY-25OCT19"
        infos = sorted(world.market_infos(split), key=lambda i: i.settlement_ts)
        sim.set_cutoff(datetime.fromtimestamp(infos[2].settlement_ts, UTC))  # 2 of 3 historical
        cfg = extract_config(sim, sqlite_url, archive_dir, concurrency=1)
        await sync_events(cfg)
        # Historical markets are fetched in ticker order: the second one fails.
        ok, broken = sorted(i.ticker for i in infos[:2])
        sim.fail_next(f"/historical/markets/{broken}/candlesticks", "503", times=4)
        first = await run_candles(cfg)
        assert (first.done, first.failed) == (2, 1)
        assert first.failures[0][0].startswith(split) and "503" in first.failures[0][1]
        store = LocalArchive(archive_dir)
        assert split not in manifests(archive_dir)
        key = cfg.window_key(split)
        # historical markets come first: the first one's page is archived, nothing else
        assert store.glob(f"{key.dir}/**/*.json.gz") == [
            f"{key.dir}/markets/{ok}/{_window_start(world, split)}.json.gz"
        ]

        sim.reset()
        again = await run_candles(cfg)
        assert (again.done, again.skipped, again.failed) == (1, 2, 0)
        # The archived page is not fetched again: the failed market, then the live chain.
        asked = [r.path.split("/")[-2] for r in sim.counters.log if "candlesticks" in r.path]
        assert asked[0] == broken and set(asked[1:]) == {split}
        assert again.historical_pages == 1 and again.live_pages == len(asked) - 1
        m = manifests(archive_dir)[split]
        assert {x.market_ticker: x.route for x in m.markets} == {
            infos[0].ticker: "historical",
            infos[1].ticker: "historical",
            infos[2].ticker: "live",
        }
        want = truth(
            world,
            {infos[0].ticker, infos[1].ticker}
            | {m.ticker for m in world.market_infos("KXHIGHNY-25OCT18")},
        )
        assert load(sqlite_url, archive_dir) == len(want)
        engine = make_engine(sqlite_url)
        assert stored(engine) == want
        engine.dispose()


async def test_dry_run_counts_what_the_run_then_requests(
    sqlite_url: str, archive_dir: Path
) -> None:
    async with SimServer(sim_config(candle_cap=5000, markets_per_event=4)) as sim:
        cfg = extract_config(sim, sqlite_url, archive_dir)
        await sync_events(cfg)
        sim.reset()
        plan = (await run_candles(replace(cfg, dry_run=True))).plan
        assert sim.counters.total == 0
        assert not LocalArchive(archive_dir).glob("**/*.json.gz")
        old = next(line for line in plan if line.startswith("KXHIGHNY-25OCT14:"))
        assert old.endswith("4 markets  ~4 requests (0 live, 4 historical)")
        new = next(line for line in plan if line.startswith("KXHIGHNY-25OCT25:"))
        assert new.endswith("4 markets  ~2 requests")
        summary: CandlesSummary = await run_candles(cfg)
        assert plan[-1].endswith(
            f"{summary.live_pages} live, {summary.historical_pages} historical)"
        )
        assert summary.historical_pages == sim.counters.by_route["historical_candlesticks"] == 28


# --- twelve months ------------------------------------------------------------------------


def _truth_frame(world: World, historical: set[str], period: int) -> pl.DataFrame:
    """Ground truth of every market as a frame of exact decimals (built without load/)."""
    cols: dict[str, list[Any]] = {"market_ticker": [], "ts": []}
    names = [*CANDLE_PRICE_COLUMNS, *CANDLE_COUNT_COLUMNS]
    for n in names:
        cols[n] = []
    parts = [(n, *n.rsplit("_", 1)) for n in CANDLE_PRICE_COLUMNS]
    for event in world.event_tickers(SERIES):
        for m in world.market_infos(event):
            hist = m.ticker in historical
            for c in world.candles_in(m.ticker, period):
                cols["market_ticker"].append(m.ticker)
                cols["ts"].append(c["end_period_ts"])
                for n, struct, field in parts:
                    if hist and field in ("min", "max"):
                        cols[n].append(None)
                    else:
                        cols[n].append(c[struct].get(f"{field}_dollars"))
                cols["volume"].append(c["volume_fp"])
                cols["open_interest"].append(c["open_interest_fp"])
    return _typed(pl.DataFrame(cols, schema={k: pl.String for k in cols} | {"ts": pl.Int64}))


def _db_frame(engine: Engine) -> pl.DataFrame:
    """Every kalshi_candle row, read raw (SQLite keeps exact decimal text) into a frame."""
    names = [*CANDLE_PRICE_COLUMNS, *CANDLE_COUNT_COLUMNS]
    sql = (
        "SELECT market_ticker, CAST(strftime('%s', end_period_ts_utc) AS INTEGER), "
        + ", ".join(names)
        + " FROM kalshi_candle"
    )
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(sql).fetchall()
    schema = {"market_ticker": pl.String, "ts": pl.Int64} | {n: pl.String for n in names}
    return _typed(pl.DataFrame(rows, schema=schema, orient="row"))


def _typed(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        *(pl.col(n).cast(pl.Decimal(10, 6), strict=True) for n in CANDLE_PRICE_COLUMNS),
        *(pl.col(n).cast(pl.Decimal(18, 2), strict=True) for n in CANDLE_COUNT_COLUMNS),
    ).sort("market_ticker", "ts")


@pytest.mark.parametrize(
    "period",
    [
        60,
        # 1.7M candles: ~2 minutes on an idle 2-core machine, so it runs with `make soak`
        pytest.param(1, marks=pytest.mark.slow),
    ],
)
async def test_twelve_month_backfill_stores_every_candle_of_every_event(
    period: int, sqlite_url: str, archive_dir: Path
) -> None:
    """365 events, cutoff at 90 days: every candle of every market, old and new, stored.

    Hourly candles by default (the same routes, pages and code paths as one-minute ones,
    with 60 times fewer candles to serve, load and compare); one-minute under -m slow.
    """
    config = sim_config(
        first_date=NOW.date() - timedelta(days=365),
        last_date=NOW.date() - timedelta(days=1),
        markets_per_event=2,
        candle_cap=5000,
        historical_cutoff_days=90,
    )
    async with SimServer(config) as sim:
        world = sim.world
        cfg = extract_config(sim, sqlite_url, archive_dir, concurrency=4, period=period)
        synced = await sync_events(cfg)
        assert synced.events == 365
        summary = await run_candles(cfg)
        assert (summary.done, summary.failed) == (365, 0)
        markets = [m for e in world.event_tickers(SERIES) for m in world.market_infos(e)]
        historical = {m.ticker for m in markets if world.is_historical(m)}
        # about nine months of the twelve are only on the historical tier
        assert 2 * 270 <= len(historical) <= 2 * 280
        assert summary.historical_pages == len(historical)
        got = routes(archive_dir)
        assert {t for t, r in got.items() if r == "historical"} == historical
        assert set(got) == {m.ticker for m in markets}

    rows = load(sqlite_url, archive_dir)
    engine = make_engine(sqlite_url)
    db = _db_frame(engine)
    engine.dispose()
    want = _truth_frame(world, historical, period)
    assert rows == want.height == db.height
    assert db.equals(want, null_equal=True)
    # the old events really are there, not just the recent ones
    oldest = f"{SERIES}-{(NOW.date() - timedelta(days=365)).strftime('%y%b%d').upper()}-"
    old = db.filter(pl.col("market_ticker").str.starts_with(oldest))
    assert old["market_ticker"].n_unique() == 2 and old.height > 1000 // period
