"""The simulator's open-point switches each do what ``server.py``'s docstring says.

Truth comes from the world model (``World.candles`` with every switch at its default,
the market infos) and from hand-computed values (schedule times, the real 400 bodies
recorded in ``shared/kalshi-samples``), never from the switch code under test.
"""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from tests.kalshi_sim import FaultConfig, SimConfig, SimServer, World
from tests.kalshi_sim.__main__ import build_parser, config_from_args
from tests.kalshi_sim.config import SWITCHES
from tests.test_kalshi_sim import (
    BASE,
    HIST_EVENT,
    LIVE_EVENT,
    NOW,
    OPEN_EVENT,
    assert_valid,
    event_window,
    get,
)

TRUTH = World(BASE)
"""Every switch at its default: the reference candles of the seed."""


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _event_path(event: str) -> str:
    return f"/series/{event.split('-')[0]}/events/{event}/candlesticks"


def _stamps(page: dict[str, Any]) -> list[int]:
    return sorted({c["end_period_ts"] for cs in page["market_candlesticks"] for c in cs})


def _truth(event: str, period: int, start: int, end: int) -> dict[str, list[dict[str, Any]]]:
    return {
        m.ticker: TRUTH.candles(m.ticker, period, start, end) for m in TRUTH.live_markets(event)
    }


# --- read back ------------------------------------------------------------------------


def test_every_switch_reads_back_and_has_a_cli_flag() -> None:
    hints = typing.get_type_hints(SimConfig)
    assert set(SWITCHES) <= set(hints)
    defaults = SimConfig(now=NOW)
    assert defaults.switches() == {
        "uncapped_adjusted_end": "end_ts",
        "market_tickers_scope": "all_markets",
        "event_cap_counts": "returned",
        "paging_direction": "forward",
        "publication_delay_s": 0,
        "schedule": "legacy",
        "sparse_market_rate": 0.0,
        "historical_over_cap": "400",
        "batch_over_cap": "400",
        "batch_serves_historical": False,
        "historical_series_filter": True,
        "events_list_drops_historical": False,
        "nested_markets_of_historical_event": "absent",
        "series_list_filter": "applied",
    }
    argv = [
        "--now=2025-11-20T15:00:00Z",
        "--uncapped-adjusted-end=zero",
        "--market-tickers-scope=with_candles",
        "--event-cap-counts=requested",
        "--paging-direction=backward",
        "--publication-delay-s=120",
        "--schedule=weather",
        "--sparse-market-rate=0.5",
        "--historical-over-cap=served",
        "--batch-over-cap=truncated",
        "--batch-serves-historical=true",
        "--historical-series-filter=false",
        "--events-list-drops-historical=true",
        "--nested-markets-of-historical-event=listed",
        "--series-list-filter=ignored",
    ]
    config = config_from_args(build_parser().parse_args(argv))
    want = {
        "uncapped_adjusted_end": "zero",
        "market_tickers_scope": "with_candles",
        "event_cap_counts": "requested",
        "paging_direction": "backward",
        "publication_delay_s": 120,
        "schedule": "weather",
        "sparse_market_rate": 0.5,
        "historical_over_cap": "served",
        "batch_over_cap": "truncated",
        "batch_serves_historical": True,
        "historical_series_filter": False,
        "events_list_drops_historical": True,
        "nested_markets_of_historical_event": "listed",
        "series_list_filter": "ignored",
    }
    assert config.switches() == want
    assert SimServer(config).describe() == want
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--paging-direction=sideways"])


# --- event candlesticks -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["end_ts", "last_candle", "zero", "absent"])
async def test_uncapped_adjusted_end(http: aiohttp.ClientSession, how: str) -> None:
    start, end = event_window(TRUTH, LIVE_EVENT)
    end += 7200
    async with SimServer(replace(BASE, uncapped_adjusted_end=how)) as sim:  # type: ignore[arg-type]
        _, page = await get(
            http, sim, _event_path(LIVE_EVENT), start_ts=start, end_ts=end, period_interval=60
        )
        # A range before the event opens: an empty uncapped page.
        _, empty = await get(
            http,
            sim,
            _event_path(LIVE_EVENT),
            start_ts=start - 7200,
            end_ts=start - 1,
            period_interval=60,
        )
    truth = _truth(LIVE_EVENT, 60, start, end)
    assert page["market_candlesticks"] == list(truth.values())
    last = max(c["end_period_ts"] for cs in truth.values() for c in cs)
    assert last < end
    want, want_empty = {
        "end_ts": (end, start - 1),
        "last_candle": (last, start - 7200),
        "zero": (0, 0),
        "absent": (None, None),
    }[how]
    assert page.get("adjusted_end_ts") == want and empty.get("adjusted_end_ts") == want_empty
    assert ("adjusted_end_ts" in page) == (how != "absent")
    if how != "absent":  # the spec marks the key required: "absent" breaks it on purpose
        assert_valid("get-event-candlesticks.yaml", page)


async def test_market_tickers_scope_with_candles(http: aiohttp.ClientSession) -> None:
    config = replace(BASE, sparse_market_rate=0.5, market_tickers_scope="with_candles")
    world = World(config)
    start, end = event_window(world, LIVE_EVENT)
    live = [m.ticker for m in world.live_markets(LIVE_EVENT)]
    # An hour in which some, not all, markets have a candle (sparse markets make it so).
    hour = next(
        t
        for t in range(start, end, 3600)
        if 0 < sum(bool(world.candles(m, 1, t, t + 3599)) for m in live) < len(live)
    )
    async with (
        SimServer(config) as sim,
        SimServer(replace(config, market_tickers_scope="all_markets")) as full,
    ):
        params = {"start_ts": hour, "end_ts": hour + 3599, "period_interval": 1}
        _, page = await get(http, sim, _event_path(LIVE_EVENT), **params)
        _, all_page = await get(http, full, _event_path(LIVE_EVENT), **params)
    with_candles = [m for m in live if world.candles(m, 1, hour, hour + 3599)]
    assert page["market_tickers"] == with_candles
    assert page["market_candlesticks"] == [
        world.candles(m, 1, hour, hour + 3599) for m in with_candles
    ]
    assert all_page["market_tickers"] == live
    assert_valid("get-event-candlesticks.yaml", page)


@pytest.mark.parametrize("direction", ["forward", "backward"])
async def test_event_cap_counts_requested(http: aiohttp.ClientSession, direction: str) -> None:
    """Pages cut the RANGE at whole periods: markets x periods <= cap, whatever returns."""
    cap = 600
    config = replace(BASE, candle_cap=cap, event_cap_counts="requested", paging_direction=direction)  # type: ignore[arg-type]
    start, end = event_window(TRUTH, LIVE_EVENT)
    markets = len(TRUTH.live_markets(LIVE_EVENT))
    per_page = cap // markets  # 100 periods
    async with SimServer(config) as sim:
        params = {"start_ts": start, "end_ts": end, "period_interval": 1}
        _, page = await get(http, sim, _event_path(LIVE_EVENT), **params)
        record = sim.counters.log[-1]
    first = -(-start // 60) * 60  # period ends inside [start_ts, end_ts], both inclusive
    last = end - end % 60
    assert record.candidates == markets * ((last - first) // 60 + 1)
    if direction == "forward":
        cut = first + (per_page - 1) * 60
        assert page["adjusted_end_ts"] == cut
        assert page["market_candlesticks"] == list(_truth(LIVE_EVENT, 1, start, cut).values())
    else:
        cut = last - (per_page - 1) * 60
        truth = _truth(LIVE_EVENT, 1, cut, end)
        assert page["market_candlesticks"] == list(truth.values())
        assert page["adjusted_end_ts"] == min(
            c["end_period_ts"] for cs in truth.values() for c in cs
        )
    stamps = _stamps(page)
    assert (stamps[-1] - stamps[0]) // 60 + 1 <= per_page
    # Candles returned are fewer than requested candidates (missing minutes): the
    # returned-count rule would have served more periods on the same page.
    assert sum(len(cs) for cs in page["market_candlesticks"]) < cap


async def test_event_pages_under_requested_cap_cover_the_event(http: aiohttp.ClientSession) -> None:
    """Following adjusted_end_ts forward collects exactly the truth, never over cap."""
    cap = 1200
    config = replace(BASE, candle_cap=cap, event_cap_counts="requested")
    start, end = event_window(TRUTH, LIVE_EVENT)
    got: dict[str, list[dict[str, Any]]] = {}
    async with SimServer(config) as sim:
        cursor = start
        while True:
            _, page = await get(
                http, sim, _event_path(LIVE_EVENT), start_ts=cursor, end_ts=end, period_interval=1
            )
            for t, cs in zip(page["market_tickers"], page["market_candlesticks"], strict=True):
                got.setdefault(t, []).extend(cs)
            if page["adjusted_end_ts"] >= end:
                break
            cursor = page["adjusted_end_ts"] + 1
        assert all(r.candidates is not None for r in sim.counters.log)
        assert max(r.candidates or 0 for r in sim.counters.log[:-1]) > cap  # each asked for more
    assert got == _truth(LIVE_EVENT, 1, start, end)


async def test_backward_paging_returns_the_candles_nearest_end(http: aiohttp.ClientSession) -> None:
    cap = 1000
    config = replace(BASE, candle_cap=cap, paging_direction="backward")
    start, end = event_window(TRUTH, LIVE_EVENT)
    async with SimServer(config) as sim:
        _, page = await get(
            http, sim, _event_path(LIVE_EVENT), start_ts=start, end_ts=end, period_interval=1
        )
    stamps = _stamps(page)
    assert page["adjusted_end_ts"] == stamps[0] > start
    assert stamps[-1] == end - end % 60  # the last minute of the range is served
    truth = _truth(LIVE_EVENT, 1, stamps[0], end)
    assert page["market_candlesticks"] == list(truth.values())
    total = sum(len(cs) for cs in truth.values())
    assert total <= cap
    # The next earlier timestamp would not have fit (whole timestamps, as forward).
    before = _truth(LIVE_EVENT, 1, stamps[0] - 60, stamps[0] - 1)
    assert total + sum(len(cs) for cs in before.values()) > cap
    # The candles lie outside the claimed [start_ts, adjusted_end_ts], bar the boundary.
    assert (
        sum(c["end_period_ts"] > page["adjusted_end_ts"] for cs in truth.values() for c in cs) > 0
    )


# --- time and schedule ---------------------------------------------------------------------


async def test_publication_delay_holds_back_the_latest_candles(http: aiohttp.ClientSession) -> None:
    delay = 300
    config = replace(BASE, publication_delay_s=delay)
    _, end = event_window(TRUTH, OPEN_EVENT)
    now = int(NOW.timestamp())
    start = now - 3 * 3600  # 6 markets x 180 minutes: under the event cap
    async with SimServer(config) as sim:
        _, page = await get(
            http, sim, _event_path(OPEN_EVENT), start_ts=start, end_ts=end, period_interval=1
        )
    truth = _truth(OPEN_EVENT, 1, start, end)
    assert max(_stamps({"market_candlesticks": list(truth.values())})) > now - delay
    assert page["market_candlesticks"] == [
        [c for c in cs if c["end_period_ts"] <= now - delay] for cs in truth.values()
    ]


@pytest.mark.parametrize(
    ("event", "close"),
    [
        ("KXHIGHNY-25AUG10", "2025-08-11T04:59:00Z"),  # EDT: 0:59 AM local, 23:59 standard time
        ("KXHIGHNY-25NOV18", "2025-11-19T04:59:00Z"),
        ("KXHIGHMIA-25AUG10", "2025-08-11T04:59:00Z"),
        ("KXHIGHCHI-25AUG10", "2025-08-11T05:59:00Z"),
        ("KXHIGHAUS-25NOV18", "2025-11-19T05:59:00Z"),
        ("KXHIGHDEN-25AUG10", "2025-08-11T06:59:00Z"),
        ("KXHIGHLAX-25AUG10", "2025-08-11T07:59:00Z"),
        ("KXHIGHLAX-25NOV18", "2025-11-19T07:59:00Z"),
    ],
)
def test_weather_schedule(event: str, close: str) -> None:
    world = World(replace(BASE, schedule="weather"))
    day = world.event_info(event)
    assert day is not None
    before = day.day - timedelta(days=1)
    opened = datetime(before.year, before.month, before.day, 14, tzinfo=UTC)
    for m in world.market_infos(event):
        market = world.market(m.ticker)
        assert market is not None and market["close_time"] == close
        assert 0 <= m.open_ts - int(opened.timestamp()) <= 7 * 60
        candles = world.candles(m.ticker, 1)
        assert candles[-1]["end_period_ts"] == m.close_ts  # the closing minute prints
        assert candles[0]["end_period_ts"] > m.open_ts
    legacy, weather = TRUTH.market_infos(event)[0], world.market_infos(event)[0]
    # In winter both close at 23:59 local; the legacy market opened at 10:00 local then.
    assert (legacy.open_ts, legacy.close_ts) != (weather.open_ts, weather.close_ts)


def test_sparse_markets_trade_in_rare_bursts() -> None:
    world = World(replace(BASE, sparse_market_rate=0.5))
    again = World(replace(BASE, sparse_market_rate=0.5))
    markets = [
        m
        for e in ("KXHIGHNY-25NOV10", "KXHIGHCHI-25NOV10", "KXRAINNYC-25NOV10")
        for m in world.market_infos(e)
    ]
    sparse = [m.ticker for m in markets if world.is_sparse(m.ticker)]
    assert sparse == [m.ticker for m in markets if again.is_sparse(m.ticker)]
    assert 0 < len(sparse) < len(markets)
    for m in markets:
        n = len(world.candles(m.ticker, 1))
        minutes = (m.close_ts - m.open_ts) // 60
        if m.ticker in sparse:
            assert 30 <= n <= 600 and n < minutes / 4, (m.ticker, n)
            # Every sparse candle is one the liquid market also has (bursts only remove).
            dense = {c["end_period_ts"] for c in TRUTH.candles(m.ticker, 1)}
            assert {c["end_period_ts"] for c in world.candles(m.ticker, 1)} <= dense
        else:
            assert world.candles(m.ticker, 1) == TRUTH.candles(m.ticker, 1)


# --- per-market and batch caps -------------------------------------------------------------

MARKET_400 = {
    "error": {
        "code": "bad_request",
        "message": "bad request",
        "details": "requested time range with candlesticks: 11400.000000, max candlesticks: 5000",
    }
}


@pytest.mark.parametrize("how", ["400", "truncated", "served"])
async def test_per_market_over_cap(http: aiohttp.ClientSession, how: str) -> None:
    live = TRUTH.live_markets(LIVE_EVENT)[0]
    hist = TRUTH.market_infos(HIST_EVENT)[0]
    async with SimServer(replace(BASE, historical_over_cap=how)) as sim:  # type: ignore[arg-type]
        for m, path in (
            (live, f"/series/KXHIGHNY/markets/{live.ticker}/candlesticks"),
            (hist, f"/historical/markets/{hist.ticker}/candlesticks"),
        ):
            # 11,400 requested; the first 5,000 periods end 1,000 minutes before the close.
            start = m.close_ts - 6000 * 60
            end = start + 11400 * 60
            status, body = await get(http, sim, path, start_ts=start, end_ts=end, period_interval=1)
            assert sim.counters.log[-1].candidates == 11400
            truth = TRUTH.candles(m.ticker, 1, start, end)
            if how == "400":
                assert (status, body) == (400, MARKET_400)
                continue
            assert status == 200
            served = [c["end_period_ts"] for c in body["candlesticks"]]
            keep = end if how == "served" else start + 5000 * 60
            assert served == [c["end_period_ts"] for c in truth if c["end_period_ts"] <= keep]
            assert served  # the window holds candles either way
            assert (served[-1] == m.close_ts) == (how == "served")
        # Exactly at the cap is served.
        start = live.close_ts - 5000 * 60
        status, body = await get(
            http,
            sim,
            f"/series/KXHIGHNY/markets/{live.ticker}/candlesticks",
            start_ts=start,
            end_ts=live.close_ts,
            period_interval=1,
        )
        assert status == 200 and body["candlesticks"] == TRUTH.candles(
            live.ticker, 1, start, live.close_ts
        )


@pytest.mark.parametrize("how", ["400", "truncated", "served"])
async def test_batch_over_cap(http: aiohttp.ClientSession, how: str) -> None:
    tickers = [m.ticker for m in TRUTH.live_markets(LIVE_EVENT)]
    assert len(tickers) == 6
    _, end = event_window(TRUTH, LIVE_EVENT)
    end -= end % 60
    start = end - 5999 * 60  # 6,000 period ends inclusive: 6 x 6,000 = 36,000 requested
    params = {"market_tickers": ",".join(tickers), "start_ts": start, "end_ts": end}
    async with SimServer(replace(BASE, batch_over_cap=how)) as sim:  # type: ignore[arg-type]
        status, body = await get(http, sim, "/markets/candlesticks", period_interval=1, **params)
        assert sim.counters.log[-1].candidates == 36000
    truth = {t: TRUTH.candles(t, 1, start, end) for t in tickers}
    if how == "400":  # the genuine body, byte for byte in meaning
        assert status == 400
        assert body == {
            "error": {
                "code": "bad_request",
                "message": "bad request",
                "details": (
                    "requested candlesticks across all markets: 36000, max candlesticks: 10000"
                ),
            }
        }
        return
    got = {m["market_ticker"]: m["candlesticks"] for m in body["markets"]}
    assert list(got) == tickers
    if how == "served":
        assert got == truth
    else:
        total = sum(len(cs) for cs in got.values())
        assert 9_000 < total <= 10_000
        last = max(c["end_period_ts"] for cs in got.values() for c in cs)
        assert got == {t: [c for c in cs if c["end_period_ts"] <= last] for t, cs in truth.items()}
    assert_valid("batch-get-market-candlesticks.yaml", body)


@pytest.mark.parametrize("served", [False, True])
async def test_batch_serves_historical(http: aiohttp.ClientSession, served: bool) -> None:
    hist = [m.ticker for m in TRUTH.market_infos(HIST_EVENT)]
    live = TRUTH.live_markets(LIVE_EVENT)[0].ticker
    start, end = event_window(TRUTH, HIST_EVENT)
    async with SimServer(replace(BASE, batch_serves_historical=served)) as sim:
        status, body = await get(
            http,
            sim,
            "/markets/candlesticks",
            market_tickers=",".join([*hist, live]),
            start_ts=start,
            end_ts=end + 3600,
            period_interval=60,
        )
    assert status == 200
    got = {m["market_ticker"]: m["candlesticks"] for m in body["markets"]}
    want = hist if served else []
    assert list(got) == [*want, live]
    for t in want:
        assert got[t] == TRUTH.candles(t, 60, start, end + 3600) != []
    assert_valid("batch-get-market-candlesticks.yaml", body)


# --- listings ------------------------------------------------------------------------------


@pytest.mark.parametrize("allowed", [True, False])
async def test_historical_series_filter(http: aiohttp.ClientSession, allowed: bool) -> None:
    async with SimServer(replace(BASE, historical_series_filter=allowed)) as sim:
        status, body = await get(
            http, sim, "/historical/markets", series_ticker="KXHIGHNY", limit=1000
        )
        _, by_event = await get(http, sim, "/historical/markets", event_ticker=HIST_EVENT)
        too_big, _ = await get(http, sim, "/historical/markets", limit=1001)
    assert [m["ticker"] for m in by_event["markets"]] == [
        m.ticker for m in TRUTH.market_infos(HIST_EVENT)
    ]
    assert too_big == 400
    if not allowed:
        assert status == 400 and body["error"]["code"] == "bad_request"
        return
    # Aug 1 .. Aug 21 settled before the cutoff (Aug 22 15:00Z): 21 events x 6 markets.
    want = [m.ticker for m in TRUTH.historical_market_infos(series="KXHIGHNY")]
    assert [m["ticker"] for m in body["markets"]] == want and body["cursor"] == ""
    assert len(want) == 21 * 6 and all(t.startswith("KXHIGHNY-25AUG") for t in want)
    assert_valid("get-historical-markets.yaml", body)


async def _all_events(
    http: aiohttp.ClientSession, sim: SimServer, **params: Any
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = ""
    while True:
        _, body = await get(
            http, sim, "/events", series_ticker="KXHIGHNY", limit=50, cursor=cursor, **params
        )
        out += body["events"]
        cursor = body["cursor"]
        if not cursor:
            return out


def _all_historical(event: str) -> bool:
    return all(TRUTH.is_historical(m) for m in TRUTH.market_infos(event))


@pytest.mark.parametrize("drops", [False, True])
async def test_events_list_drops_historical(http: aiohttp.ClientSession, drops: bool) -> None:
    async with SimServer(replace(BASE, events_list_drops_historical=drops)) as sim:
        listed = [e["event_ticker"] for e in await _all_events(http, sim)]
        status, one = await get(http, sim, f"/events/{HIST_EVENT}")
    every = TRUTH.event_tickers("KXHIGHNY")
    old = [e for e in every if _all_historical(e)]
    assert len(old) == 21  # Aug 1 .. Aug 21 (Aug 21's markets settle by 14:10Z on Aug 22)
    assert listed == ([e for e in every if e not in old] if drops else every)
    assert status == 200 and one["event"]["event_ticker"] == HIST_EVENT


@pytest.mark.parametrize("how", ["absent", "empty", "listed"])
async def test_nested_markets_of_historical_event(http: aiohttp.ClientSession, how: str) -> None:
    async with SimServer(replace(BASE, nested_markets_of_historical_event=how)) as sim:  # type: ignore[arg-type]
        events = await _all_events(http, sim, with_nested_markets=True)
        _, one = await get(http, sim, f"/events/{HIST_EVENT}", with_nested_markets=True)
    assert_valid("get-events.yaml", {"events": events, "cursor": ""})
    for e in [*events, one["event"]]:
        ticker = e["event_ticker"]
        if not _all_historical(ticker):
            live = [m.ticker for m in TRUTH.live_markets(ticker)]
            assert [m["ticker"] for m in e["markets"]] == live
        elif how == "absent":
            assert "markets" not in e
        elif how == "empty":
            assert e["markets"] == []
        else:
            assert [m["ticker"] for m in e["markets"]] == [
                m.ticker for m in TRUTH.market_infos(ticker)
            ]
    assert one["markets"] == []  # the top-level list of GET /events/{t} holds live markets


# --- contract-breaking values --------------------------------------------------------------


async def test_bad_value_faults(http: aiohttp.ClientSession) -> None:
    start, end = event_window(TRUTH, LIVE_EVENT)
    market = TRUTH.live_markets(LIVE_EVENT)[0].ticker
    hist = TRUTH.market_infos(HIST_EVENT)[0].ticker
    hs, he = event_window(TRUTH, HIST_EVENT)
    async with SimServer(BASE) as sim:
        sim.fail_next("/candlesticks", "bad_price", times=3)
        sim.fail_next("/candlesticks", "number_value", times=2)
        sim.fail_next("/series/KXHIGHNY", "bad_price")  # no candle there: served normally
        rng = {"start_ts": start, "end_ts": end, "period_interval": 60}
        _, event_page = await get(http, sim, _event_path(LIVE_EVENT), **rng)
        _, market_page = await get(
            http, sim, f"/series/KXHIGHNY/markets/{market}/candlesticks", **rng
        )
        _, hist_page = await get(
            http,
            sim,
            f"/historical/markets/{hist}/candlesticks",
            start_ts=hs,
            end_ts=he,
            period_interval=60,
        )
        _, num_page = await get(http, sim, _event_path(LIVE_EVENT), **rng)
        _, hist_num = await get(
            http,
            sim,
            f"/historical/markets/{hist}/candlesticks",
            start_ts=hs,
            end_ts=he,
            period_interval=60,
        )
        _, series = await get(http, sim, "/series/KXHIGHNY")
        _, clean = await get(http, sim, _event_path(LIVE_EVENT), **rng)
        faults = [r.fault for r in sim.counters.log]
    assert faults == ["bad_price"] * 3 + ["number_value"] * 2 + [None, None]
    truth = TRUTH.candles(market, 60, start, end)
    assert clean["market_candlesticks"][0] == truth
    assert event_page["market_candlesticks"][0][0]["yes_ask"]["close_dollars"] == "1.2500"
    assert event_page["market_candlesticks"][0][1:] == truth[1:]
    assert market_page["candlesticks"][0]["yes_ask"]["close_dollars"] == "1.2500"
    assert hist_page["candlesticks"][0]["yes_ask"]["close"] == "1.2500"
    vol = num_page["market_candlesticks"][0][0]["volume_fp"]
    assert isinstance(vol, float) and str(vol) != truth[0]["volume_fp"]
    assert float(truth[0]["volume_fp"]) == vol
    assert isinstance(hist_num["candlesticks"][0]["volume"], float)
    assert series["series"]["ticker"] == "KXHIGHNY"


async def test_random_bad_value_faults_hit_candle_routes(http: aiohttp.ClientSession) -> None:
    start, end = event_window(TRUTH, LIVE_EVENT)
    async with SimServer(replace(BASE, faults=FaultConfig(p_number_value=1.0))) as sim:
        _, page = await get(
            http, sim, _event_path(LIVE_EVENT), start_ts=start, end_ts=end, period_interval=60
        )
        _, series = await get(http, sim, "/series/KXHIGHNY")
    assert isinstance(page["market_candlesticks"][0][0]["volume_fp"], float)
    assert [r.fault for r in sim.counters.log] == ["number_value", None]
    assert series["series"]["ticker"] == "KXHIGHNY"


# --- spec validity under every switch ------------------------------------------------------


async def test_every_switch_mix_serves_spec_valid_pages(http: aiohttp.ClientSession) -> None:
    """All non-default answers at once (bar "absent", which drops a required key)."""
    config = replace(
        BASE,
        first_date=date(2025, 8, 15),
        uncapped_adjusted_end="last_candle",
        market_tickers_scope="with_candles",
        event_cap_counts="requested",
        paging_direction="backward",
        publication_delay_s=120,
        schedule="weather",
        sparse_market_rate=0.5,
        historical_over_cap="truncated",
        batch_over_cap="served",
        batch_serves_historical=True,
        events_list_drops_historical=True,
        nested_markets_of_historical_event="listed",
    )
    async with SimServer(config) as sim:
        world = sim.world
        start, end = event_window(world, OPEN_EVENT)
        live = [m.ticker for m in world.live_markets(LIVE_EVENT)]
        hist = world.market_infos("KXHIGHNY-25AUG16")[0].ticker
        for period in (1, 60):
            rng = {"start_ts": start - 86400 * 2, "end_ts": end, "period_interval": period}
            _, page = await get(http, sim, _event_path(LIVE_EVENT), **rng)
            assert_valid("get-event-candlesticks.yaml", page)
            _, batch = await get(
                http, sim, "/markets/candlesticks", market_tickers=",".join([*live, hist]), **rng
            )
            assert_valid("batch-get-market-candlesticks.yaml", batch)
            _, hist_page = await get(http, sim, f"/historical/markets/{hist}/candlesticks", **rng)
            assert_valid("get-historical-market-candlesticks.yaml", hist_page)
        _, events = await get(http, sim, "/events", with_nested_markets=True, limit=200)
        assert_valid("get-events.yaml", events)
        _, market = await get(http, sim, f"/markets/{live[0]}")
        assert_valid("get-market.yaml", market)
        assert all(r.status == 200 for r in sim.counters.log)
