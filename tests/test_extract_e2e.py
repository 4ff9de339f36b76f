"""The extract stage end to end: the real extractor against the simulator over real HTTP.

Every test reads back what the extractor archived and compares it with the simulator's
ground truth (``sim.world``) and request log (``sim.counters.log``); databases are real
(SQLite and MariaDB through ``db_url`` where the database matters).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update

from extract.config import ApiConfig, AsOfPolicy, DayOffset, ExtractConfig, RateLimit, RouteChoice
from extract.events.sync import sync_events
from extract.run.candles import run_candles
from extract.run.outcome import CandlesSummary
from schemas.archive import LocalArchive, Manifest
from schemas.checkpoints import get_checkpoint, set_status
from schemas.core import CheckpointStatus, WindowPolicy
from schemas.db import make_engine
from schemas.errors import InputError
from schemas.tables import kalshi_event, kalshi_market
from tests.kalshi_sim import DEFAULT_SERIES, FAULT_KINDS, FaultConfig, SimConfig, SimServer

NOW = datetime(2025, 11, 20, 15, 0, tzinfo=UTC)  # KXHIGHNY-25NOV20 is trading
NY = DEFAULT_SERIES[0]
SERIES = "KXHIGHNY"
OPEN_EVENT = "KXHIGHNY-25NOV20"
SETTLED = "KXHIGHNY-25NOV17"
PATH_PREFIX = "/trade-api/v2/series/KXHIGHNY/events/"
#: Faults that break the contract: refused, not retried (tests/test_open_points_e2e.py).
CONTRACT_FAULTS = ("bad_price", "number_value")


def sim_config(**over: Any) -> SimConfig:
    """A small world: one series, a week of events, two markets each, small pages."""
    base = SimConfig(
        seed=11,
        series=(NY,),
        now=NOW,
        first_date=date(2025, 11, 15),
        last_date=date(2025, 11, 21),
        markets_per_event=2,
        candle_cap=1500,
        historical_cutoff_days=3650,
    )
    return replace(base, **over)


def extract_config(
    sim: SimServer, db_url: str, archive: Path, *, rps: float = 500, **over: Any
) -> ExtractConfig:
    api = ApiConfig(
        base_url=sim.base_url,
        rate=RateLimit(rps, 1.0),
        timeout_s=10,
        max_retries=8,
        backoff_base_s=0.005,
        backoff_max_s=0.05,
    )
    return ExtractConfig(
        series=SERIES,
        db_url=db_url,
        archive_dir=archive,
        api=api,
        now=sim.world.now,
        **{"route": RouteChoice.EVENT, **over},
    )


def page_files(archive: Path) -> list[Path]:
    return sorted(archive.rglob("*.json.gz"))


def manifests(archive: Path) -> dict[str, Manifest]:
    store = LocalArchive(archive)
    return {m.key.event_ticker: m for m in map(store.read_manifest, store.iter_manifests())}


def pages_of(archive: Path, m: Manifest) -> list[Any]:
    store = LocalArchive(archive)
    return [store.read_page(f"{m.key.dir}/{p}") for p in m.pages]


def archived_candles(archive: Path, m: Manifest) -> dict[str, dict[int, Any]]:
    """market → end_period_ts → candle, later pages winning (as load does)."""
    out: dict[str, dict[int, Any]] = {}
    for env in pages_of(archive, m):
        for t, cs in zip(env.body["market_tickers"], env.body["market_candlesticks"], strict=True):
            out.setdefault(t, {}).update({c["end_period_ts"]: c for c in cs})
    return out


def truth(sim: SimServer, event: str, start: int, end: int, period: int = 1) -> dict[str, Any]:
    """Ground truth candles of the event's markets in [start, end], JSON round-tripped."""
    out: dict[str, Any] = {}
    for info in sim.world.market_infos(event):
        cs = orjson.loads(orjson.dumps(sim.world.candles(info.ticker, period, start, end)))
        out[info.ticker] = {c["end_period_ts"]: c for c in cs}
    return out


def candle_requests(sim: SimServer) -> list[tuple[str, int]]:
    """(event, start_ts) of every candlestick request the simulator saw."""
    return [
        (r.path.split("/")[-2], int(r.params["start_ts"]))
        for r in sim.counters.log
        if r.route == "event_candlesticks"
    ]


def assert_chain_complete(m: Manifest) -> None:
    starts = [int(p.removesuffix(".json.gz")) for p in m.pages]
    assert starts[0] == m.window_start_ts
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


# --- events -------------------------------------------------------------------------------


async def test_events_sync_equals_the_simulator(db_url: str) -> None:
    async with SimServer(sim_config()) as sim:
        cfg = extract_config(sim, db_url, Path("unused"))
        summary = await sync_events(cfg)
        world = sim.world
        tickers = world.event_tickers(SERIES)
        assert (summary.events, summary.markets) == (len(tickers), 2 * len(tickers))

        engine = make_engine(db_url)
        with engine.connect() as conn:
            events = {r.event_ticker: r for r in conn.execute(select(kalshi_event))}
            markets = {r.market_ticker: r for r in conn.execute(select(kalshi_market))}
        assert set(events) == set(tickers)
        want_markets = {m["ticker"]: m for t in tickers for m in world.markets(t)}
        assert set(markets) == set(want_markets)
        for ticker, m in want_markets.items():
            row = markets[ticker]
            assert row.open_time_utc.isoformat() == m["open_time"].replace("Z", "+00:00")
            assert row.close_time_utc.isoformat() == m["close_time"].replace("Z", "+00:00")
            for k in ("floor_strike", "cap_strike"):
                want = None if k not in m else Decimal(repr(m[k]))
                assert getattr(row, k) == want
            assert row.status == m["status"] and row.strike_type == m["strike_type"]
        ev = events[OPEN_EVENT]
        assert ev.event_date == date(2025, 11, 20)
        assert ev.title == world.event(OPEN_EVENT)["title"]  # type: ignore[index]
        # as-of defaults: 10:00 EST the day before .. 16:00 EST on the day
        assert ev.trade_start_utc == datetime(2025, 11, 19, 15, tzinfo=UTC)
        assert ev.trade_end_utc == datetime(2025, 11, 20, 21, tzinfo=UTC)

        # A second sync with another as-of policy never rewrites a stored trade window.
        other = replace(
            cfg, as_of=AsOfPolicy(DayOffset.parse("0d08:00"), DayOffset.parse("0d09:00"))
        )
        await sync_events(other)
        with engine.connect() as conn:
            again = conn.execute(
                select(kalshi_event).where(kalshi_event.c.event_ticker == OPEN_EVENT)
            ).one()
        assert (again.trade_start_utc, again.trade_end_utc) == (
            ev.trade_start_utc,
            ev.trade_end_utc,
        )
        engine.dispose()


async def test_unknown_series_is_an_input_error(sqlite_url: str) -> None:
    async with SimServer(sim_config()) as sim:
        cfg = replace(extract_config(sim, sqlite_url, Path("unused")), series="KXFOO")
        with pytest.raises(InputError, match="unknown series KXFOO"):
            await sync_events(cfg)


# --- candles: one event, byte for byte -----------------------------------------------------


async def test_one_event_archive_equals_what_the_simulator_served(
    db_url: str, archive_dir: Path
) -> None:
    async with SimServer(sim_config()) as sim:
        cfg = extract_config(sim, db_url, archive_dir, event=SETTLED)
        await sync_events(cfg)
        sim.reset()
        summary = await run_candles(cfg)
        assert (summary.done, summary.failed, summary.skipped) == (1, 0, 0)

        m = manifests(archive_dir)[SETTLED]
        infos = sim.world.market_infos(SETTLED)
        start, end = min(i.open_ts for i in infos), max(i.close_ts for i in infos)
        assert (m.window_start_ts, m.window_end_ts, m.is_final) == (start, end, True)
        assert {(x.market_ticker, x.open_ts, x.close_ts) for x in m.markets} == {
            (i.ticker, i.open_ts, i.close_ts) for i in infos
        }
        assert len(m.pages) >= 3  # 2 markets x ~2280 minutes at a 1500-candle cap
        assert_chain_complete(m)
        for env in pages_of(archive_dir, m):
            assert env.path == f"{PATH_PREFIX}{SETTLED}/candlesticks"
            assert env.params == {"start_ts": env.start_ts, "end_ts": end, "period_interval": 1}
            assert env.status == 200
            served = sim.world.event_candles(SETTLED, env.start_ts, end, 1).as_json()
            assert env.body == orjson.loads(orjson.dumps(served))
        assert archived_candles(archive_dir, m) == truth(sim, SETTLED, start, end)
        # exactly one request per page, in chain order
        assert candle_requests(sim) == [(SETTLED, int(p[:-8])) for p in m.pages]

        engine = make_engine(db_url)
        with engine.connect() as conn:
            cp = get_checkpoint(conn, cfg.window_key(SETTLED))
        engine.dispose()
        assert cp is not None and cp.status is CheckpointStatus.EXTRACTED
        assert (cp.pages_archived, cp.requests, cp.retries) == (len(m.pages), len(m.pages), 0)
        n_candles = sum(len(v) for v in truth(sim, SETTLED, start, end).values())
        assert cp.candles_archived == n_candles
        assert cp.resume_cursor_ts is not None and cp.resume_cursor_ts >= end

        # Rerun: already archived, nothing requested, checkpoint untouched.
        sim.reset()
        again = await run_candles(cfg)
        assert (again.done, again.skipped, again.requests) == (0, 1, 0)
        assert candle_requests(sim) == []


async def test_dry_run_plans_without_calling_the_candle_endpoint(
    sqlite_url: str, archive_dir: Path
) -> None:
    async with SimServer(sim_config()) as sim:
        cfg = extract_config(sim, sqlite_url, archive_dir, rps=10)
        await sync_events(cfg)
        sim.reset()
        summary = await run_candles(replace(cfg, dry_run=True))
        assert candle_requests(sim) == [] and not page_files(archive_dir)
        assert any(line.startswith(f"{SETTLED}: ") for line in summary.plan)
        assert "KXHIGHNY-25NOV21: skip (window has not started yet)" in summary.plan
        total = summary.plan[-1]
        # 5 settled events x 1 page (2 x 2280 < 5000) + the open one (1 page)
        assert total.startswith("plan: 7 events, ~6 candle requests at 10 req/s ≈ 0.6s")


# --- 120 days at 20 requests/s ----------------------------------------------------------------


async def test_120_days_at_20_requests_per_second(sqlite_url: str, archive_dir: Path) -> None:
    last = NOW.date() - timedelta(days=1)
    first = last - timedelta(days=119)
    config = sim_config(
        first_date=first, last_date=last, rate_limit_rps=20, burst_seconds=2.0, candle_cap=60
    )
    async with SimServer(config) as sim:
        cfg = extract_config(sim, sqlite_url, archive_dir, rps=20, period=60, concurrency=4)
        cfg = replace(cfg, api=replace(cfg.api, rate=RateLimit(20, 2.0)))
        await sync_events(cfg)
        sim.reset()
        summary = await run_candles(cfg)
        assert (summary.done, summary.failed) == (120, 0)

        found = manifests(archive_dir)
        assert set(found) == set(sim.world.event_tickers(SERIES))  # exactly the windows asked
        dirs = {p.relative_to(archive_dir).parts[:4] for p in page_files(archive_dir)}
        assert dirs == {(SERIES, e, "p60", "full") for e in found}
        pages = 0
        for event, m in found.items():
            assert m.is_final and m.key.period_interval == 60
            assert_chain_complete(m)
            assert len(m.pages) == 2  # 2 markets x 39 hourly candles at a 60-candle cap
            pages += len(m.pages)
            got = archived_candles(archive_dir, m)
            assert got == truth(sim, event, m.window_start_ts, m.window_end_ts, 60)
        assert summary.pages == pages == 240
        # every 429 the simulator sent was retried and counted
        assert summary.throttled == sim.counters.throttled
        assert summary.requests == sim.counters.by_route["event_candlesticks"]
        assert summary.requests == pages + summary.retries


# --- window policies -------------------------------------------------------------------------


async def test_both_window_policies_archive_side_by_side(
    sqlite_url: str, archive_dir: Path
) -> None:
    async with SimServer(sim_config()) as sim:
        full = extract_config(sim, sqlite_url, archive_dir, event=SETTLED)
        trade = replace(full, window_policy=WindowPolicy.TRADE_WINDOW_ONLY)
        await sync_events(full)
        assert (await run_candles(full)).done == 1
        assert (await run_candles(trade)).done == 1

        store = LocalArchive(archive_dir)
        mf = store.manifest_for(full.window_key(SETTLED))
        mt = store.manifest_for(trade.window_key(SETTLED))
        assert mf is not None and mt is not None
        assert mf.key.dir.endswith("/p1/full") and mt.key.dir.endswith("/p1/trade")
        t_start = int(datetime(2025, 11, 16, 15, tzinfo=UTC).timestamp())  # 10:00 EST
        t_end = int(datetime(2025, 11, 17, 21, tzinfo=UTC).timestamp())  # 16:00 EST
        assert (mt.window_start_ts, mt.window_end_ts) == (t_start, t_end)
        assert all(x.open_ts >= t_start and x.close_ts <= t_end for x in mt.markets)
        assert archived_candles(archive_dir, mt) == truth(sim, SETTLED, t_start, t_end)
        assert mf.window_start_ts <= t_start and mf.window_end_ts > t_end


async def test_event_without_trade_window_is_reported_and_skipped(
    sqlite_url: str, archive_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with SimServer(sim_config(last_date=date(2025, 11, 18))) as sim:
        cfg = extract_config(
            sim, sqlite_url, archive_dir, window_policy=WindowPolicy.TRADE_WINDOW_ONLY
        )
        await sync_events(cfg)
        engine = make_engine(sqlite_url)
        with engine.begin() as conn:
            conn.execute(
                update(kalshi_event)
                .where(kalshi_event.c.event_ticker == SETTLED)
                .values(trade_start_utc=None, trade_end_utc=None)
            )
        engine.dispose()
        with caplog.at_level(logging.WARNING, logger="extract"):
            summary = await run_candles(cfg)
        assert (summary.done, summary.no_trade_window, summary.failed) == (3, 1, 0)
        assert f"{SETTLED} p1 TRADE_WINDOW_ONLY: skipped: no trade window" in caplog.text
        assert "1 without trade window" in summary.lines()[0]
        assert SETTLED not in manifests(archive_dir)


# --- an event still open ------------------------------------------------------------------------


async def test_open_event_is_extended_by_a_later_run(db_url: str, archive_dir: Path) -> None:
    async with SimServer(sim_config()) as sim:
        cfg = extract_config(sim, db_url, archive_dir, event=OPEN_EVENT)
        await sync_events(cfg)
        key = cfg.window_key(OPEN_EVENT)
        now_ts = int(NOW.timestamp())

        assert (await run_candles(cfg)).done == 1
        first = manifests(archive_dir)[OPEN_EVENT]
        assert (first.is_final, first.window_end_ts) == (False, now_ts)
        assert archived_candles(archive_dir, first) == truth(
            sim, OPEN_EVENT, first.window_start_ts, now_ts
        )
        engine = make_engine(db_url)
        with engine.begin() as conn:  # as if load had loaded it
            set_status(conn, key, CheckpointStatus.SUCCESS)

        # Same minute again: nothing new, the SUCCESS stays.
        sim.reset()
        assert (await run_candles(cfg)).skipped == 1
        assert candle_requests(sim) == []
        with engine.connect() as conn:
            assert get_checkpoint(conn, key).status is CheckpointStatus.SUCCESS  # type: ignore[union-attr]

        # Three hours later: the chain is reused up to the page covering the last hour
        # (the default grace) before the old end, which may lack candles published late;
        # from that page on it is fetched again.
        later = NOW + timedelta(hours=3)
        sim.set_now(later)
        sim.reset()
        assert (await run_candles(replace(cfg, now=later))).done == 1
        second = manifests(archive_dir)[OPEN_EVENT]
        assert (second.is_final, second.window_end_ts) == (False, int(later.timestamp()))
        old_starts = [int(p.removesuffix(".json.gz")) for p in first.pages]
        covered = [*old_starts[1:], now_ts]
        kept = next(i for i, end in enumerate(covered) if end > now_ts - 3600)
        assert kept < len(old_starts) and second.pages[:kept] == first.pages[:kept]
        starts = [s for _, s in candle_requests(sim)]
        assert starts[0] == old_starts[kept] and all(s >= old_starts[kept] for s in starts)
        got = archived_candles(archive_dir, second)
        assert got == truth(sim, OPEN_EVENT, second.window_start_ts, second.window_end_ts)
        with engine.connect() as conn:
            cp = get_checkpoint(conn, key)
        assert cp is not None and cp.status is CheckpointStatus.EXTRACTED
        assert cp.window_end_ts == int(later.timestamp()) and not cp.is_final

        # After the close: final, ending at the markets' close.
        closed = datetime(2025, 11, 21, 6, tzinfo=UTC)
        sim.set_now(closed)
        assert (await run_candles(replace(cfg, now=closed))).done == 1
        final = manifests(archive_dir)[OPEN_EVENT]
        close_ts = max(i.close_ts for i in sim.world.market_infos(OPEN_EVENT))
        assert (final.is_final, final.window_end_ts) == (True, close_ts)
        assert archived_candles(archive_dir, final) == truth(
            sim, OPEN_EVENT, final.window_start_ts, close_ts
        )
        engine.dispose()


# --- faults -------------------------------------------------------------------------------------


async def test_frequent_429s_and_faults_still_complete(sqlite_url: str, archive_dir: Path) -> None:
    faults = FaultConfig(
        p_429=0.2,
        p_500=0.04,
        p_502=0.04,
        p_503=0.04,
        p_reset=0.03,
        p_truncated=0.03,
        p_invalid_json=0.03,
        p_wrong_event=0.03,
        p_stuck_end=0.03,
        slow_seconds=1.0,
    )
    config = sim_config(faults=faults, last_date=date(2025, 11, 18), candle_cap=600)
    async with SimServer(config) as sim:
        cfg = extract_config(sim, sqlite_url, archive_dir)
        cfg = replace(cfg, api=replace(cfg.api, timeout_s=0.5, max_retries=12))
        await sync_events(cfg)
        sim.reset()
        transient = [k for k in FAULT_KINDS if k not in CONTRACT_FAULTS]
        for kind in transient:  # every transient kind at least once, then the random ones
            sim.fail_next("/candlesticks", kind)
        summary = await run_candles(cfg)
        assert (summary.done, summary.failed) == (4, 0)
        # Every 429 the client counted was sent; one the server sent to a request the
        # client had already given up on (0.5 s timeout) reaches no one.
        assert 1 < summary.throttled <= sim.counters.throttled
        assert summary.requests == summary.pages + summary.retries
        assert summary.retries >= len(transient)
        assert f"retries: {summary.retries}, 429s: {summary.throttled}" in summary.lines()[1]
        for event, m in manifests(archive_dir).items():
            assert_chain_complete(m)
            got = archived_candles(archive_dir, m)
            assert got == truth(sim, event, m.window_start_ts, m.window_end_ts)
            for env in pages_of(archive_dir, m):  # no faulty body was archived
                assert all(t.startswith(event + "-") for t in env.body["market_tickers"])


async def test_exhausted_retries_fail_one_window_and_the_others_complete(
    db_url: str, archive_dir: Path
) -> None:
    async with SimServer(sim_config(last_date=date(2025, 11, 18))) as sim:
        cfg = extract_config(sim, db_url, archive_dir)
        cfg = replace(cfg, api=replace(cfg.api, max_retries=2))
        await sync_events(cfg)
        sim.fail_next(f"/events/{SETTLED}/candlesticks", "503", times=100)
        summary: CandlesSummary = await run_candles(cfg)
        assert (summary.done, summary.failed) == (3, 1)
        assert not summary.ok
        assert summary.failures[0][0] == f"{SETTLED} p1 FULL_MARKET_WINDOW"
        assert "gave up after 3 attempts" in summary.failures[0][1]
        assert any(line.startswith(f"FAILED {SETTLED}") for line in summary.lines())

        engine = make_engine(db_url)
        with engine.connect() as conn:
            failed = get_checkpoint(conn, cfg.window_key(SETTLED))
            others = [
                get_checkpoint(conn, cfg.window_key(e))
                for e in ("KXHIGHNY-25NOV15", "KXHIGHNY-25NOV16", "KXHIGHNY-25NOV18")
            ]
        assert failed is not None and failed.status is CheckpointStatus.FAILED
        assert failed.last_error is not None and "HTTP 503" in failed.last_error
        assert all(c is not None and c.status is CheckpointStatus.EXTRACTED for c in others)
        assert SETTLED not in manifests(archive_dir)

        # The failure is transient: a rerun completes just that window.
        sim.faults.clear()
        sim.reset()
        again = await run_candles(cfg)
        assert (again.done, again.skipped, again.failed) == (1, 3, 0)
        with engine.connect() as conn:
            cp = get_checkpoint(conn, cfg.window_key(SETTLED))
        assert cp is not None and cp.status is CheckpointStatus.EXTRACTED and cp.last_error is None
        engine.dispose()


async def test_a_corrupt_archived_page_is_quarantined_and_refetched(
    sqlite_url: str, archive_dir: Path
) -> None:
    async with SimServer(sim_config()) as sim:
        cfg = extract_config(sim, sqlite_url, archive_dir, event=SETTLED)
        await sync_events(cfg)
        await run_candles(cfg)
        m = manifests(archive_dir)[SETTLED]
        store = LocalArchive(archive_dir)
        second = f"{m.key.dir}/{m.pages[1]}"
        (archive_dir / second).write_bytes(b"\x1f\x8b not gzip")
        store.delete(m.key.manifest_path)  # as if killed before the manifest
        (archive_dir / m.key.dir / ".tmp-1234.json.gz.1.ab").write_bytes(b"partial")
        sim.reset()
        assert (await run_candles(cfg)).done == 1
        # only the corrupt page and those after it are fetched again
        assert [s for _, s in candle_requests(sim)] == [int(p[:-8]) for p in m.pages[1:]]
        assert list((archive_dir / "_quarantine").rglob("*.json.gz.*"))
        assert not list((archive_dir / m.key.dir).glob(".tmp-*"))
        again = manifests(archive_dir)[SETTLED]
        assert again.pages == m.pages
        assert archived_candles(archive_dir, again) == truth(
            sim, SETTLED, again.window_start_ts, again.window_end_ts
        )


async def test_markets_moved_to_the_historical_tier_are_fetched_per_market(
    sqlite_url: str, archive_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with SimServer(sim_config()) as sim:
        cfg = extract_config(sim, sqlite_url, archive_dir, event=SETTLED)
        await sync_events(cfg)
        first, second = sorted(sim.world.market_infos(SETTLED), key=lambda i: i.settlement_ts)
        # The cutoff passes the first market's settlement but not the second's.
        sim.set_cutoff(datetime.fromtimestamp(second.settlement_ts, UTC))
        with caplog.at_level(logging.WARNING, logger="extract"):
            await sync_events(cfg)
        # this event's first market and both markets of each earlier event
        assert "5 stored markets are no longer nested" in caplog.text
        engine = make_engine(sqlite_url)
        with engine.connect() as conn:
            flags = dict(
                conn.execute(
                    select(kalshi_market.c.market_ticker, kalshi_market.c.is_historical).where(
                        kalshi_market.c.event_ticker == SETTLED
                    )
                ).all()
            )
        engine.dispose()
        assert flags == {first.ticker: True, second.ticker: False}

        assert (await run_candles(cfg)).done == 1
        m = manifests(archive_dir)[SETTLED]
        routes = {x.market_ticker: x.route for x in m.markets}
        assert routes == {first.ticker: "historical", second.ticker: "live"}
        live = [e for e in pages_of(archive_dir, m) if e.market_ticker is None]
        hist = [e for e in pages_of(archive_dir, m) if e.market_ticker is not None]
        assert {e.market_ticker for e in hist} == {first.ticker}
        got: dict[int, Any] = {}
        for env in live:
            for t, cs in zip(
                env.body["market_tickers"], env.body["market_candlesticks"], strict=True
            ):
                assert t == second.ticker
                got.update({c["end_period_ts"]: c for c in cs})
        want = truth(sim, SETTLED, m.window_start_ts, m.window_end_ts)
        assert got == want[second.ticker]
        hist_got = {c["end_period_ts"]: c for e in hist for c in e.body["candlesticks"]}
        hist_want = orjson.loads(
            orjson.dumps(
                sim.world.historical_candles(first.ticker, 1, m.window_start_ts, m.window_end_ts)
            )
        )
        assert hist_got == {c["end_period_ts"]: c for c in hist_want}
