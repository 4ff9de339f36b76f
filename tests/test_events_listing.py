"""``extract events`` lists a series' old markets in one paged historical listing.

Against the simulator, under both answers of the two listing switches: the server
accepts ``series_ticker`` on ``GET /historical/markets`` or refuses it (400, per-event
fallback), and ``GET /events`` keeps or drops wholly historical events. The request
counts come from the simulator's own request log, the stored rows are compared with the
world's markets and events.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from extract.config import ApiConfig, ExtractConfig, RateLimit
from extract.errors import BadPageError
from extract.events.historical import group_by_event
from extract.events.sync import sync_events
from schemas.db import make_engine
from schemas.tables import kalshi_event, kalshi_market
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, SimServer, World

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
SERIES = "KXHIGHNY"
#: 120 days of one series (the last one opens tomorrow), 90-day cutoff: about 30 old events.
BASE = SimConfig(
    seed=5,
    series=(DEFAULT_SERIES[0],),
    now=NOW,
    first_date=NOW.date() - timedelta(days=118),
    last_date=NOW.date() + timedelta(days=1),
)


def _config(sim: SimServer, db_url: str, archive: Path) -> ExtractConfig:
    api = ApiConfig(
        base_url=sim.base_url,
        rate=RateLimit(1000, 1.0),
        timeout_s=20,
        max_retries=2,
        backoff_base_s=0.001,
        backoff_max_s=0.01,
    )
    return ExtractConfig(
        series=SERIES, db_url=db_url, archive_dir=archive, api=api, now=sim.world.now
    )


def _naive(dt: datetime | None) -> datetime | None:
    """Stored times compare as naive UTC (SQLite hands them back without a zone)."""
    if dt is None or dt.tzinfo is None:
        return dt
    return dt.astimezone(UTC).replace(tzinfo=None)


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


def _truth(world: World) -> tuple[dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]]]:
    """(event rows, market rows) the sync must store, from the world model."""
    events: dict[str, tuple[Any, ...]] = {}
    markets: dict[str, tuple[Any, ...]] = {}
    for ticker in world.event_tickers(SERIES):
        info = world.event_info(ticker)
        ev = world.event(ticker)
        assert info is not None and ev is not None
        events[ticker] = (SERIES, ev["title"], _utc(info.close_ts), info.day)
        for m in info.markets:
            body = world.market(m.ticker)
            assert body is not None
            markets[m.ticker] = (
                ticker,
                SERIES,
                world.is_historical(m),
                _utc(m.open_ts),
                _utc(m.close_ts),
                body["status"],
                body["result"],
                m.strike_type,
                None if m.floor_strike is None else Decimal(str(m.floor_strike)),
                None if m.cap_strike is None else Decimal(str(m.cap_strike)),
            )
    return events, markets


def _stored(db_url: str) -> tuple[dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]]]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        events = {
            r.event_ticker: (r.series_ticker, r.title, _naive(r.strike_date), r.event_date)
            for r in conn.execute(select(kalshi_event))
        }
        markets = {
            r.market_ticker: (
                r.event_ticker,
                r.series_ticker,
                bool(r.is_historical),
                _naive(r.open_time_utc),
                _naive(r.close_time_utc),
                r.status,
                r.result,
                r.strike_type,
                None if r.floor_strike is None else Decimal(r.floor_strike).normalize(),
                None if r.cap_strike is None else Decimal(r.cap_strike).normalize(),
            )
            for r in conn.execute(select(kalshi_market))
        }
    engine.dispose()
    return events, markets


def _normalized(markets: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    return {
        t: (*row[:8], *(None if v is None else v.normalize() for v in row[8:]))
        for t, row in markets.items()
    }


def _all_historical(world: World) -> list[str]:
    return [
        t
        for t in world.event_tickers(SERIES)
        if all(world.is_historical(m) for m in world.market_infos(t))
    ]


@pytest.mark.parametrize(
    ("series_filter", "drops"),
    [(True, False), (True, True), (False, False)],
    ids=["series-listing", "series-listing+events-dropped", "per-event-fallback"],
)
async def test_sync_lists_old_markets_once_per_series(
    db_url: str, archive_dir: Path, series_filter: bool, drops: bool
) -> None:
    config = replace(
        BASE, historical_series_filter=series_filter, events_list_drops_historical=drops
    )
    async with SimServer(config) as sim:
        world = sim.world
        summary = await sync_events(_config(sim, db_url, archive_dir))
        by_route = dict(sim.counters.by_route)
        listings = [r for r in sim.counters.log if r.route == "historical_markets"]
        sim.reset()
        again = await sync_events(_config(sim, db_url, archive_dir))
        rerun = dict(sim.counters.by_route)

    want_events, want_markets = _truth(world)
    got_events, got_markets = _stored(db_url)
    assert got_events == want_events
    assert got_markets == _normalized(want_markets)
    old = [t for t, row in want_markets.items() if row[2]]
    assert summary.historical_markets == len(old)
    if series_filter:  # every sync sees every old market (the fallback skips stored ones)
        assert again.historical_markets == len(old)
    assert summary.markets == len(want_markets)

    old_events = _all_historical(world)
    assert 25 <= len(old_events) <= 35  # about 30 of the 120 days are past the cutoff
    n_events = len(want_events)
    fixed = {"series": 1, "events": math.ceil(n_events / 200), "historical_cutoff": 1}
    if series_filter:
        # One listing for the whole series, 1,000 markets a page.
        pages = math.ceil(len(old) / 1000)
        assert [r.params for r in listings][-1]["series_ticker"] == SERIES
        assert all("event_ticker" not in r.params for r in listings)
        if drops:  # the first sync reads each event the listing dropped, once
            fixed["events"] = math.ceil((n_events - len(old_events)) / 200)
        want = {**fixed, "historical_markets": pages}
        if drops:
            want["event"] = len(old_events)
        assert by_route == want
        assert rerun == {**fixed, "historical_markets": pages}  # stored: no event reads
    else:
        # Refused once, then one listing per event whose strike date is before the cutoff.
        cutoff = world.cutoff_ts
        infos = [world.event_info(t) for t in world.event_tickers(SERIES)]
        looked_up = [i.event_ticker for i in infos if i is not None and i.close_ts < cutoff]
        assert listings[0].status == 400 and "series_ticker" in listings[0].params
        assert sorted(r.params["event_ticker"] for r in listings[1:]) == sorted(looked_up)
        assert by_route == {**fixed, "historical_markets": 1 + len(looked_up)}
        # A rerun skips the events already stored as wholly historical.
        assert rerun["historical_markets"] == 1 + len(looked_up) - len(old_events)


def test_group_by_event_refuses_a_market_of_another_series() -> None:
    markets = [
        {"ticker": "KXHIGHNY-25NOV01-T50", "event_ticker": "KXHIGHNY-25NOV01"},
        {"ticker": "KXHIGHNY-25NOV02-T50", "event_ticker": "KXHIGHNY-25NOV02"},
        {"ticker": "KXHIGHNY-25NOV01-T52", "event_ticker": "KXHIGHNY-25NOV01"},
    ]
    grouped = group_by_event(markets, SERIES)
    assert {k: [m["ticker"] for m in v] for k, v in grouped.items()} == {
        "KXHIGHNY-25NOV01": ["KXHIGHNY-25NOV01-T50", "KXHIGHNY-25NOV01-T52"],
        "KXHIGHNY-25NOV02": ["KXHIGHNY-25NOV02-T50"],
    }
    for bad in ("KXHIGHCHI-25NOV01", None, "KXHIGHNYC-25NOV01"):
        with pytest.raises(BadPageError, match="names event"):
            group_by_event([{"ticker": "X", "event_ticker": bad}], SERIES)


async def test_a_year_of_old_markets_pages_the_series_listing_by_cursor(
    sqlite_url: str, archive_dir: Path
) -> None:
    """About 1,650 old markets: two listing pages of at most 1,000, not ~275 requests."""
    config = replace(BASE, first_date=NOW.date() - timedelta(days=364), last_date=NOW.date())
    async with SimServer(config) as sim:
        world = sim.world
        summary = await sync_events(_config(sim, sqlite_url, archive_dir))
        listings = [r for r in sim.counters.log if r.route == "historical_markets"]
    old = world.historical_market_infos(series=SERIES)
    assert 6 * 270 <= len(old) <= 6 * 280 and summary.historical_markets == len(old)
    assert [r.params["limit"] for r in listings] == ["1000", "1000"]
    assert "cursor" not in listings[0].params and listings[1].params["cursor"]
    want_events, want_markets = _truth(world)
    assert _stored(sqlite_url) == (want_events, _normalized(want_markets))


async def test_no_series_filter_and_dropped_events_is_said_not_papered_over(
    sqlite_url: str, archive_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Both refusals at once: the old events are undiscoverable, and the sync says so.

    With neither ``series_ticker`` nor the dropped events, nothing names the old events;
    the sync stores what the listing shows (truth: the world's events minus the wholly
    historical ones) and warns, instead of claiming a complete series.
    """
    config = replace(BASE, historical_series_filter=False, events_list_drops_historical=True)
    async with SimServer(config) as sim:
        world = sim.world
        await sync_events(_config(sim, sqlite_url, archive_dir))
    dropped = set(_all_historical(world))
    want_events, want_markets = _truth(world)
    got_events, got_markets = _stored(sqlite_url)
    assert set(got_events) == set(want_events) - dropped
    assert got_markets == {
        t: row for t, row in _normalized(want_markets).items() if row[0] not in dropped
    }
    assert any("cannot be discovered" in r.getMessage() for r in caplog.records)


async def test_a_complete_listing_raises_no_discovery_warning(
    sqlite_url: str, archive_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with SimServer(replace(BASE, historical_series_filter=False)) as sim:
        await sync_events(_config(sim, sqlite_url, archive_dir))
    assert not any("cannot be discovered" in r.getMessage() for r in caplog.records)
