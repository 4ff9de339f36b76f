"""The simulator's series: ``GET /series`` with its filters, and the hourly, monthly and
zone-less series a category backfill meets (issue 20 item 5).

Every time below is computed by hand from the schedule the docs state (docs/simulator.md):
the truth is the calendar, not the simulator's own arithmetic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime

import aiohttp
import pytest

from tests.kalshi_sim import CATEGORY_SERIES, WEATHER, SimConfig, SimServer, World
from tests.test_kalshi_sim import assert_valid, get

NOW = datetime(2025, 11, 20, 15, 0, tzinfo=UTC)
WORLD = SimConfig(
    seed=3,
    series=CATEGORY_SERIES,
    now=NOW,
    first_date=date(2025, 11, 10),
    last_date=date(2025, 11, 21),
    schedule="weather",
    markets_per_event=3,
)
WEATHER_TICKERS = ["KXHIGHCHI", "KXHIGHNY", "KXHIGHTHNL", "KXLOWTNYC", "KXRAINNYCM", "KXTEMPNYCH"]


def ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())  # type: ignore[misc]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# --- GET /series ----------------------------------------------------------------------------


async def test_the_series_list_filters_by_category_and_tags(
    http: aiohttp.ClientSession,
) -> None:
    async with SimServer(WORLD) as sim:
        cases = {
            (WEATHER, ""): WEATHER_TICKERS,
            ("Financials", ""): ["KXINXD"],
            ("Climate", ""): [],  # exact match: a prefix is not the category
            (WEATHER, "Rain"): ["KXRAINNYCM"],
            (WEATHER, "Rain,S&P"): ["KXRAINNYCM"],  # any of the tags, within the category
            ("", "Rain,S&P"): ["KXINXD", "KXRAINNYCM"],
            ("Sports", ""): [],
        }
        for (category, tags), want in cases.items():
            params = {k: v for k, v in (("category", category), ("tags", tags)) if v}
            status, body = await get(http, sim, "/series", **params)
            assert status == 200
            assert_valid("get-series-list.yaml", body)
            assert [s["ticker"] for s in body["series"]] == want, params
        status, body = await get(http, sim, "/series", include_volume=True)
        assert status == 200 and all(s["volume_fp"] == "0.00" for s in body["series"])
        assert_valid("get-series-list.yaml", body)
        assert sim.counters.by_route["series_list"] == len(cases) + 1


async def test_min_updated_ts_keeps_the_series_updated_since(http: aiohttp.ClientSession) -> None:
    async with SimServer(WORLD) as sim:
        _, every = await get(http, sim, "/series")
        stamps = sorted(
            int(datetime.fromisoformat(s["last_updated_ts"]).timestamp()) for s in every["series"]
        )
        middle = stamps[len(stamps) // 2]
        _, some = await get(http, sim, "/series", min_updated_ts=middle)
        kept = [
            s["ticker"]
            for s in every["series"]
            if int(datetime.fromisoformat(s["last_updated_ts"]).timestamp()) >= middle
        ]
        assert [s["ticker"] for s in some["series"]] == kept
        assert 0 < len(kept) < len(every["series"])


async def test_a_server_that_ignores_the_filters_lists_every_series(
    http: aiohttp.ClientSession,
) -> None:
    async with SimServer(replace(WORLD, series_list_filter="ignored")) as sim:
        _, body = await get(http, sim, "/series", category="Sports", tags="Rain")
    assert sorted(s["ticker"] for s in body["series"]) == sorted([*WEATHER_TICKERS, "KXINXD"])


def test_each_series_says_its_frequency_and_tags() -> None:
    world = World(WORLD)
    docs = {t: world.series(t) for t in [*WEATHER_TICKERS, "KXINXD"]}
    assert {t: d["frequency"] for t, d in docs.items() if d} == {
        "KXHIGHCHI": "daily",
        "KXHIGHNY": "daily",
        "KXHIGHTHNL": "daily",
        "KXLOWTNYC": "daily",
        "KXRAINNYCM": "monthly",
        "KXTEMPNYCH": "hourly",
        "KXINXD": "daily",
    }
    assert docs["KXRAINNYCM"] is not None and docs["KXRAINNYCM"]["tags"] == ["Rain"]
    assert docs["KXINXD"] is not None and docs["KXINXD"]["category"] == "Financials"


# --- cadences -------------------------------------------------------------------------------


def test_an_hourly_series_has_an_event_each_hour_open_two_hours() -> None:
    world = World(WORLD)
    tickers = world.event_tickers("KXTEMPNYCH")
    assert len(tickers) == 12 * 24  # 12 days of 24 hours
    assert tickers[0] == "KXTEMPNYCH-25NOV2123" and tickers[-1] == "KXTEMPNYCH-25NOV1000"
    # 08:00 EST on Nov 20 is 13:00Z: the markets open at 06:00 EST (11:00Z), maybe a few
    # minutes late, and close at 13:00Z (before NOW, 15:00Z).
    for m in world.market_infos("KXTEMPNYCH-25NOV2008"):
        assert m.close_ts == ts(2025, 11, 20, 13)
        assert 0 <= m.open_ts - ts(2025, 11, 20, 11) <= 7 * 60
        candles = world.candles(m.ticker, 1)
        assert candles and candles[-1]["end_period_ts"] == m.close_ts
        assert len(candles) <= 120
    assert world.event_info("KXTEMPNYCH-25NOV2024") is None  # no 24th hour
    event = world.event("KXTEMPNYCH-25NOV2008")
    assert event is not None and event["strike_date"] == "2025-11-20T13:00:00Z"


def test_a_monthly_series_spans_the_month() -> None:
    world = World(WORLD)
    assert world.event_tickers("KXRAINNYCM") == ["KXRAINNYCM-25NOV"]
    # 14:00Z on Oct 31 to 23:59 EST on Nov 30 (04:59Z on Dec 1): 44,099 minutes.
    for m in world.market_infos("KXRAINNYCM-25NOV"):
        assert m.close_ts == ts(2025, 12, 1, 4, 59)
        assert 0 <= m.open_ts - ts(2025, 10, 31, 14) <= 7 * 60
        # Served up to NOW: Oct 31 14:00Z .. Nov 20 15:00Z, 5 % of minutes missing
        candles = world.candles(m.ticker, 1)
        minutes = (ts(2025, 11, 20, 15) - m.open_ts) // 60
        assert 0.9 * minutes < len(candles) <= minutes
        prices = {c["yes_bid"]["close_dollars"] for c in candles}
        assert len(prices) > 20  # the book moves instead of pinning at a cent
    assert world.event_info("KXRAINNYCM-25OCT") is None  # no day of October in the world


def test_weather_closes_at_2359_standard_time_in_every_zone() -> None:
    world = World(WORLD)
    closes = {
        "KXHIGHNY-25NOV12": ts(2025, 11, 13, 4, 59),  # EST, UTC-5
        "KXHIGHCHI-25NOV12": ts(2025, 11, 13, 5, 59),  # CST, UTC-6
        "KXHIGHTHNL-25NOV12": ts(2025, 11, 13, 9, 59),  # HST, UTC-10
        "KXLOWTNYC-25NOV12": ts(2025, 11, 13, 4, 59),
    }
    for event, close in closes.items():
        assert {m.close_ts for m in world.market_infos(event)} == {close}, event


async def test_hourly_and_monthly_events_list_and_page_like_any_other(
    http: aiohttp.ClientSession,
) -> None:
    async with SimServer(WORLD) as sim:
        status, body = await get(
            http, sim, "/events", series_ticker="KXTEMPNYCH", with_nested_markets=True, limit=50
        )
        assert status == 200 and len(body["events"]) == 50 and body["cursor"]
        assert_valid("get-events.yaml", body)
        start, end = ts(2025, 10, 31, 14), ts(2025, 11, 20, 15)
        path = "/series/KXRAINNYCM/events/KXRAINNYCM-25NOV/candlesticks"
        status, page = await get(http, sim, path, start_ts=start, end_ts=end, period_interval=1)
        assert status == 200
        assert_valid("get-event-candlesticks.yaml", page)
        served = sum(len(cs) for cs in page["market_candlesticks"])
        assert served <= 5000 and page["adjusted_end_ts"] < end  # capped: page on
