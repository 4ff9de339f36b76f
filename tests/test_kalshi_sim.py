"""Tests of the Kalshi simulator (tests/kalshi_sim), over real HTTP.

The simulator is the reference the extractor is judged against, so these tests pin
its contract: every body validates against Kalshi's OpenAPI files, pagination and the
aggregate cap behave as documented, the world is deterministic, the historical tier
mirrors the live one, and throttling/faults do what their knobs say.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from openapi_schema_validator import OAS30Validator

from tests.kalshi_sim import FaultConfig, SimConfig, SimServer, World, run_sim_in_thread
from tests.kalshi_sim.candles import maintenance_mask

#: Kalshi's own OpenAPI operations, vendored so a clone validates anywhere; the team's
#: copy lives in shared/ beside the repo, and the two must not drift (test below).
SPEC_DIR = Path(__file__).resolve().parent / "kalshi_sim" / "openapi"
SHARED_SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "kalshi-openapi"
REPO = Path(__file__).resolve().parents[1]

NOW = datetime(2025, 11, 20, 15, 0, tzinfo=UTC)
BASE = SimConfig(
    seed=7,
    now=NOW,
    first_date=date(2025, 8, 1),
    last_date=date(2025, 11, 22),
)
# The cutoff is NOW - 90 days = 2025-08-22T15:00Z: events up to Aug 20 are historical.
LIVE_EVENT = "KXHIGHNY-25NOV18"  # settled, live
OPEN_EVENT = "KXHIGHNY-25NOV20"  # trading at NOW
HIST_EVENT = "KXHIGHNY-25AUG10"  # settled before the cutoff


# --- OpenAPI validation ---------------------------------------------------------------


def _nullable_refs(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable`` beside ``$ref``/``allOf`` means "or null".

    JSON Schema validators ignore keywords beside ``$ref`` (and ``allOf`` fails on
    null before ``nullable`` is consulted), so rewrite those into ``anyOf: [..., null]``.
    """
    if isinstance(node, list):
        return [_nullable_refs(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable_refs(v) for k, v in node.items()}
    if node.get("nullable") is True and ("$ref" in node or "allOf" in node):
        inner = {k: v for k, v in node.items() if k in ("$ref", "allOf")}
        rest = {k: v for k, v in node.items() if k not in ("$ref", "allOf", "nullable")}
        return {**rest, "anyOf": [inner, {"enum": [None]}]}
    return node


def test_vendored_spec_is_the_shared_one() -> None:
    """Every operation the simulator is checked against is here, and equals shared/'s copy."""
    vendored = {p.name: p.read_bytes() for p in SPEC_DIR.glob("*.yaml")}
    assert {"get-event-candlesticks.yaml", "get-historical-market-candlesticks.yaml"} <= set(
        vendored
    )
    if SHARED_SPEC_DIR.is_dir():  # beside the team's checkout; a lone clone has only ours
        shared = {p.name: p.read_bytes() for p in SHARED_SPEC_DIR.glob("*.yaml")}
        assert vendored == shared, "tests/kalshi_sim/openapi/ differs from shared/kalshi-openapi/"


@cache
def validator(spec_file: str) -> OAS30Validator:
    """Validator of the 200 response of the single GET operation in ``spec_file``."""
    path = SPEC_DIR / spec_file
    if not path.is_file():
        pytest.fail(f"Kalshi OpenAPI spec not found at {path}")
    spec = yaml.safe_load(path.read_text())
    (operation,) = spec["paths"].values()
    ref = operation["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    root = {"components": _nullable_refs(spec["components"]), "$ref": ref}
    return OAS30Validator(root, format_checker=OAS30Validator.FORMAT_CHECKER)


def _shape(node: Any) -> Any:
    """A value's structure: keys, types and nulls, not the values themselves."""
    if isinstance(node, dict):
        return tuple(sorted((k, _shape(v)) for k, v in node.items()))
    if isinstance(node, list):
        return ("list", tuple(_shape(v) for v in node))
    return type(node).__name__


def _one_per_shape(body: Any) -> Any:
    """``body`` with candle lists reduced to one candle of each distinct shape.

    The candle schemas constrain only keys, types and nullability (money and counts
    are plain ``type: string``, no pattern or enum), so validating one candle per
    shape is equivalent to validating all of them, and 100x faster.
    """
    if isinstance(body, list):
        return [_one_per_shape(v) for v in body]
    if not isinstance(body, dict):
        return body
    out = {}
    for k, v in body.items():
        if k in ("candlesticks", "market_candlesticks") and isinstance(v, list):
            lists = v if k == "market_candlesticks" else [v]
            reduced = [list({_shape(c): c for c in cs}.values()) for cs in lists]
            out[k] = reduced if k == "market_candlesticks" else reduced[0]
        else:
            out[k] = _one_per_shape(v)
    return out


def assert_valid(spec_file: str, body: Any) -> None:
    body = _one_per_shape(body)
    errors = sorted(validator(spec_file).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


# --- helpers --------------------------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(BASE) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(
    http: aiohttp.ClientSession, sim: SimServer, path: str, **params: Any
) -> tuple[int, Any]:
    """(status, parsed JSON body) of a GET."""
    query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
    async with http.get(sim.base_url + path, params=query) as resp:
        return resp.status, await resp.json(content_type=None)


def ts(dt: datetime) -> int:
    return int(dt.timestamp())


def event_window(world: World, event: str) -> tuple[int, int]:
    info = world.event_info(event)
    assert info is not None
    return info.open_ts, info.close_ts


# --- schema validation of every route -------------------------------------------------


async def test_every_route_validates_against_the_spec(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    start, end = event_window(sim.world, LIVE_EVENT)
    market = sim.world.live_markets(LIVE_EVENT)[0].ticker
    hist_market = sim.world.market_infos(HIST_EVENT)[0].ticker
    hist_start, hist_end = event_window(sim.world, HIST_EVENT)
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("get-series.yaml", "/series/KXHIGHNY", {}),
        ("get-events.yaml", "/events", {"series_ticker": "KXHIGHCHI", "limit": 5}),
        ("get-events.yaml", "/events", {"with_nested_markets": True, "limit": 30}),
        ("get-events.yaml", "/events", {"status": "open", "with_nested_markets": True}),
        ("get-events.yaml", "/events", {"series_ticker": "NOPE"}),
        ("get-event.yaml", f"/events/{LIVE_EVENT}", {}),
        ("get-event.yaml", f"/events/{OPEN_EVENT}", {"with_nested_markets": True}),
        ("get-event.yaml", f"/events/{HIST_EVENT}", {}),
        ("get-market.yaml", f"/markets/{market}", {}),
        ("get-markets.yaml", "/markets", {"event_ticker": OPEN_EVENT}),
        ("get-historical-cutoff-timestamps.yaml", "/historical/cutoff", {}),
        ("get-historical-markets.yaml", "/historical/markets", {"event_ticker": HIST_EVENT}),
        ("get-historical-markets.yaml", "/historical/markets", {"limit": 3}),
        ("get-historical-market.yaml", f"/historical/markets/{hist_market}", {}),
    ]
    for period in (1, 60, 1440):
        rng = {"start_ts": start, "end_ts": end, "period_interval": period}
        cases += [
            (
                "get-event-candlesticks.yaml",
                f"/series/KXHIGHNY/events/{LIVE_EVENT}/candlesticks",
                rng,
            ),
            (
                "get-event-candlesticks.yaml",
                f"/series/KXHIGHNY/events/{OPEN_EVENT}/candlesticks",
                {**rng, "end_ts": ts(NOW) + 86400},
            ),
            (
                "get-market-candlesticks.yaml",
                f"/series/KXHIGHNY/markets/{market}/candlesticks",
                {**rng, "start_ts": start + 7200, "include_latest_before_start": True},
            ),
            (
                "batch-get-market-candlesticks.yaml",
                "/markets/candlesticks",
                {
                    **rng,
                    "market_tickers": f"{market},{hist_market}",
                    "include_latest_before_start": True,
                },
            ),
            (
                "get-historical-market-candlesticks.yaml",
                f"/historical/markets/{hist_market}/candlesticks",
                {"start_ts": hist_start, "end_ts": hist_end, "period_interval": period},
            ),
        ]
    for spec_file, path, params in cases:
        status, body = await get(http, sim, path, **params)
        assert status == 200, (path, params, body)
        assert_valid(spec_file, body)
    # Every route was exercised, all answered 200.
    assert sim.counters.by_status == Counter({200: len(cases)})
    assert set(sim.counters.by_route) == {
        "series",
        "events",
        "event",
        "market",
        "markets",
        "historical_cutoff",
        "historical_markets",
        "historical_market",
        "event_candlesticks",
        "market_candlesticks",
        "batch_candlesticks",
        "historical_candlesticks",
    }


async def test_legacy_fields_validate_and_match_dollars(http: aiohttp.ClientSession) -> None:
    async with SimServer(replace(BASE, legacy_fields=True)) as sim:
        start, end = event_window(sim.world, LIVE_EVENT)
        path = f"/series/KXHIGHNY/events/{LIVE_EVENT}/candlesticks"
        _, body = await get(http, sim, path, start_ts=start, end_ts=end, period_interval=1)
        assert_valid("get-event-candlesticks.yaml", body)
        c = body["market_candlesticks"][0][0]
        cents = Decimal(c["yes_bid"]["open_dollars"]) * 100
        assert c["yes_bid"]["open"] == int(cents.to_integral_value(rounding="ROUND_HALF_UP"))
        assert c["volume"] == int(Decimal(c["volume_fp"]))
        assert isinstance(c["open_interest"], int)


def test_legacy_twins_are_extra_keys_only() -> None:
    """Legacy output minus the legacy keys is exactly the modern output."""
    modern, legacy = World(BASE), World(replace(BASE, legacy_fields=True))
    legacy_keys = {"open", "low", "high", "close", "mean", "previous"}
    for m in modern.market_infos("KXHIGHLAX-25NOV12"):
        for period in (1, 60, 1440):
            stripped = [
                {
                    k: ({kk: vv for kk, vv in v.items() if kk not in legacy_keys}
                        if isinstance(v, dict) else v)
                    for k, v in c.items()
                    if k not in ("volume", "open_interest")
                }
                for c in legacy.candles(m.ticker, period)
            ]  # fmt: skip
            assert stripped == modern.candles(m.ticker, period)


def test_null_book_knob_breaks_the_spec_on_purpose() -> None:
    world = World(replace(BASE, null_book_rate=0.5))
    market = world.live_markets(LIVE_EVENT)[0].ticker
    candles = world.candles(market)
    nulls = [c for c in candles if c["yes_bid"]["open_dollars"] is None]
    assert nulls and all(c["yes_ask"]["close_dollars"] is None for c in nulls)
    body = {"ticker": market, "candlesticks": nulls[:1]}
    assert list(validator("get-market-candlesticks.yaml").iter_errors(body))


# --- the world: shape of candles, determinism, laziness ---------------------------


def test_market_times_and_tickers() -> None:
    world = World(BASE)
    info = world.event_info(OPEN_EVENT)
    assert info is not None
    tickers = [m.ticker for m in info.markets]
    assert len(tickers) == 6 and tickers[0].startswith(f"{OPEN_EVENT}-T")
    assert any("-B" in t and t.endswith(".5") for t in tickers)
    market = world.market(tickers[0])
    assert market is not None
    assert market["close_time"] == "2025-11-21T04:59:00Z"  # 23:59 New York on Nov 20
    assert market["status"] == "active" and market["result"] == ""
    opens = {m.open_ts for e in world.event_tickers() for m in world.market_infos(e)}
    assert len(opens) > len(world.event_tickers())  # some markets open a few minutes late
    settled = world.market(world.live_markets(LIVE_EVENT)[0].ticker)
    assert settled is not None and settled["status"] == "finalized"
    assert settled["result"] in ("yes", "no") and "settlement_ts" in settled
    ev = world.event(OPEN_EVENT)
    assert ev is not None and ev["category"] == "Climate and Weather"
    results = [m["result"] for m in world.markets(OPEN_EVENT)]
    assert results == [""] * 6
    done = [m["result"] for m in world.markets(LIVE_EVENT)]
    assert done.count("yes") == 1  # a temperature ladder is mutually exclusive


def test_candle_invariants() -> None:
    world = World(BASE)
    seen_subcent = seen_fraction = seen_no_trade = seen_trade = False
    for event in (LIVE_EVENT, "KXHIGHMIA-25NOV12", "KXRAINNYC-25OCT30", OPEN_EVENT):
        for m in world.market_infos(event):
            candles = world.candles(m.ticker)
            stamps = [c["end_period_ts"] for c in candles]
            assert stamps == sorted(set(stamps))
            assert all(s % 60 == 0 and m.open_ts < s <= min(m.close_ts, ts(NOW)) for s in stamps)
            expected = (min(m.close_ts, ts(NOW)) - m.open_ts) // 60
            assert 0.85 * expected < len(stamps) < expected  # some minutes are missing
            import numpy as np

            assert not maintenance_mask(np.array(stamps, dtype=np.int64)).any()
            for c in candles:
                bid, ask, price = c["yes_bid"], c["yes_ask"], c["price"]
                assert Decimal(bid["close_dollars"]) < Decimal(ask["close_dollars"])
                assert Decimal(bid["open_dollars"]) < Decimal(ask["open_dollars"])
                for book in (bid, ask):
                    lo, hi = Decimal(book["low_dollars"]), Decimal(book["high_dollars"])
                    assert Decimal("0.01") <= lo <= hi <= Decimal("0.99")
                    assert lo <= Decimal(book["open_dollars"]) <= hi
                    assert lo <= Decimal(book["close_dollars"]) <= hi
                if set(price) == {"previous_dollars"}:
                    seen_no_trade = True
                    assert c["volume_fp"] == "0.00"
                else:
                    seen_trade = True
                    assert len(price) == 8
                    assert Decimal(price["low_dollars"]) <= Decimal(price["high_dollars"])
                seen_fraction |= not c["volume_fp"].endswith(".00")
                seen_subcent |= len(bid["close_dollars"]) > 6 or bid["close_dollars"][-2:] != "00"
    assert seen_subcent and seen_fraction and seen_no_trade and seen_trade


def test_maintenance_window_is_thursday_3_to_5_new_york() -> None:
    import numpy as np

    # Thursday 2025-11-20 03:00 EST = 08:00Z.
    start = ts(datetime(2025, 11, 20, 8, 0, tzinfo=UTC))
    mask = maintenance_mask(np.array([start, start + 60, start + 7200, start + 7260]))
    assert mask.tolist() == [False, True, True, False]


def test_same_seed_same_world_other_seed_other_world() -> None:
    a, b = World(BASE), World(BASE)
    c = World(replace(BASE, seed=8))
    market = a.live_markets(LIVE_EVENT)[2].ticker
    assert a.candles(market) == b.candles(market)
    assert a.candles(market, 60) == b.candles(market, 60)
    assert a.markets(LIVE_EVENT) == b.markets(LIVE_EVENT)
    other = c.live_markets(LIVE_EVENT)[2].ticker  # strikes depend on the seed too
    assert c.candles(other) != a.candles(market)


def test_moving_now_only_reveals_more_of_the_same_candles() -> None:
    world = World(BASE)
    market = world.market_infos(OPEN_EVENT)[0].ticker
    before = world.candles(market)
    assert before[-1]["end_period_ts"] <= ts(NOW)
    world.set_now(NOW + timedelta(hours=3))
    after = world.candles(market)
    assert after[: len(before)] == before and len(after) > len(before) + 100
    assert World(replace(BASE, now=NOW + timedelta(hours=3))).candles(market) == after


def test_a_year_of_events_is_lazy() -> None:
    world = World(replace(BASE, first_date=date(2024, 11, 20), last_date=date(2025, 11, 20)))
    t0 = time.perf_counter()
    events = world.series_events("KXHIGHNY")
    markets = [m for e in events for m in world.markets(e["event_ticker"])]
    assert len(events) == 366 and len(markets) == 366 * 6
    assert time.perf_counter() - t0 < 5
    assert world._minutes._data == {}  # listing generated no candle


# --- aggregation ------------------------------------------------------------------------


def _dec(v: str | None) -> Decimal | None:
    return None if v is None else Decimal(v)


@pytest.mark.parametrize("period", [60, 1440])
def test_aggregates_roll_up_the_minutes(period: int) -> None:
    world = World(BASE)
    for m in world.market_infos(LIVE_EVENT)[:3]:
        minutes = world.candles(m.ticker, 1)
        groups: dict[int, list[dict[str, Any]]] = {}
        for c in minutes:
            key = -(-c["end_period_ts"] // (period * 60)) * period * 60
            groups.setdefault(key, []).append(c)
        agg = world.candles(m.ticker, period)
        assert [c["end_period_ts"] for c in agg] == sorted(groups)
        for c in agg:
            g = groups[c["end_period_ts"]]
            for side in ("yes_bid", "yes_ask"):
                assert c[side]["open_dollars"] == g[0][side]["open_dollars"]
                assert c[side]["close_dollars"] == g[-1][side]["close_dollars"]
                assert _dec(c[side]["low_dollars"]) == min(_dec(x[side]["low_dollars"]) for x in g)  # type: ignore[type-var]
                assert _dec(c[side]["high_dollars"]) == max(
                    _dec(x[side]["high_dollars"]) for x in g
                )  # type: ignore[type-var]
            assert Decimal(c["volume_fp"]) == sum(Decimal(x["volume_fp"]) for x in g)
            assert c["open_interest_fp"] == g[-1]["open_interest_fp"]
            assert c["price"]["previous_dollars"] == g[0]["price"]["previous_dollars"]
            trades = [x["price"] for x in g if "close_dollars" in x["price"]]
            if not trades:
                assert set(c["price"]) == {"previous_dollars"}
                continue
            p = c["price"]
            assert p["open_dollars"] == trades[0]["open_dollars"]
            assert p["close_dollars"] == trades[-1]["close_dollars"]
            assert _dec(p["low_dollars"]) == min(_dec(t["low_dollars"]) for t in trades)  # type: ignore[type-var]
            assert _dec(p["high_dollars"]) == max(_dec(t["high_dollars"]) for t in trades)  # type: ignore[type-var]
            assert _dec(p["low_dollars"]) <= _dec(p["mean_dollars"]) <= _dec(p["high_dollars"])  # type: ignore[operator]


# --- event candlesticks: cap, adjusted_end_ts, errors ---------------------------------


async def _page_through(
    http: aiohttp.ClientSession, sim: SimServer, event: str, start: int, end: int, period: int
) -> tuple[dict[str, dict[int, dict[str, Any]]], list[dict[str, Any]]]:
    got: dict[str, dict[int, dict[str, Any]]] = {}
    pages = []
    series = event.split("-")[0]
    while True:
        status, page = await get(
            http,
            sim,
            f"/series/{series}/events/{event}/candlesticks",
            start_ts=start,
            end_ts=end,
            period_interval=period,
        )
        assert status == 200
        pages.append(page)
        for t, cs in zip(page["market_tickers"], page["market_candlesticks"], strict=True):
            for c in cs:
                got.setdefault(t, {})[c["end_period_ts"]] = c
        if page["adjusted_end_ts"] >= end:
            return got, pages
        assert page["adjusted_end_ts"] > start
        start = page["adjusted_end_ts"]


async def test_event_pages_follow_adjusted_end_ts_to_the_ground_truth(
    http: aiohttp.ClientSession,
) -> None:
    async with SimServer(replace(BASE, candle_cap=1000)) as sim:
        start, end = event_window(sim.world, LIVE_EVENT)
        end += 86400  # past the close: nothing more there
        got, pages = await _page_through(http, sim, LIVE_EVENT, start, end, 1)
        assert len(pages) >= 13
        for page in pages[:-1]:
            lists = page["market_candlesticks"]
            assert sum(map(len, lists)) <= 1000
            cut = page["adjusted_end_ts"]
            assert max(c["end_period_ts"] for cs in lists for c in cs) == cut
            # Whole timestamps: every market's candle at the cut is on this page.
            for t, cs in zip(page["market_tickers"], lists, strict=True):
                if any(c["end_period_ts"] == cut for c in sim.world.candles(t)):
                    assert cs[-1]["end_period_ts"] == cut
        assert pages[-1]["adjusted_end_ts"] == end
        for m in sim.world.market_infos(LIVE_EVENT):
            assert list(got[m.ticker].values()) == sim.world.candles(m.ticker)


async def test_event_candles_bounds_are_inclusive_and_uncut_pages_echo_end_ts(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    market = sim.world.live_markets(LIVE_EVENT)[0].ticker
    stamps = [c["end_period_ts"] for c in sim.world.candles(market)]
    lo, hi = stamps[10], stamps[20]
    path = f"/series/KXHIGHNY/events/{LIVE_EVENT}/candlesticks"
    _, page = await get(http, sim, path, start_ts=lo, end_ts=hi, period_interval=1)
    cs = page["market_candlesticks"][0]
    assert [c["end_period_ts"] for c in cs] == stamps[10:21]
    assert page["adjusted_end_ts"] == hi
    # An open event's candles stop at now.
    path = f"/series/KXHIGHNY/events/{OPEN_EVENT}/candlesticks"
    _, page = await get(
        http, sim, path, start_ts=ts(NOW) - 600, end_ts=ts(NOW) + 9999, period_interval=1
    )
    last = max(c["end_period_ts"] for cs in page["market_candlesticks"] for c in cs)
    assert last == ts(NOW)


async def test_candle_routes_reject_bad_parameters(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    path = f"/series/KXHIGHNY/events/{LIVE_EVENT}/candlesticks"
    for params in (
        {"end_ts": 10, "period_interval": 1},
        {"start_ts": 0, "period_interval": 1},
        {"start_ts": 0, "end_ts": 10},
        {"start_ts": 0, "end_ts": 10, "period_interval": 5},
        {"start_ts": "x", "end_ts": 10, "period_interval": 1},
        {"start_ts": 20, "end_ts": 10, "period_interval": 1},
    ):
        status, body = await get(http, sim, path, **params)
        assert status == 400
        if params.get("period_interval") in (1, 60, 1440):
            assert body["error"]["code"] == "bad_request", body
            assert set(body["error"]) == {"code", "message", "details"}
        else:  # the real server's other 400 shape, for a bad period_interval
            assert set(body) == {"msg"} and body["msg"].startswith("Parameter validation failed")
    rng = {"start_ts": 0, "end_ts": 10, "period_interval": 1}
    assert (await get(http, sim, "/series/KXHIGHNY/events/KXHIGHNY-19JAN01/candlesticks", **rng))[
        0
    ] == 404
    assert (await get(http, sim, f"/series/KXHIGHCHI/events/{LIVE_EVENT}/candlesticks", **rng))[
        0
    ] == 404
    status, body = await get(http, sim, "/series/NOPE")
    assert status == 404 and body["error"]["code"] == "not_found"
    assert (await get(http, sim, "/events/NOPE-25NOV20"))[0] == 404
    assert (
        await get(
            http,
            sim,
            "/markets/candlesticks",
            market_tickers=",".join(["A"] * 1 + [f"X{i}" for i in range(100)]),
            **rng,
        )
    )[0] == 400


# --- listing ---------------------------------------------------------------------------


async def test_events_paginate_and_nest_only_live_markets(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    seen: list[str] = []
    cursor = ""
    while True:
        status, body = await get(
            http,
            sim,
            "/events",
            series_ticker="KXHIGHNY",
            limit=40,
            cursor=cursor,
            with_nested_markets=True,
        )
        assert status == 200 and len(body["events"]) <= 40
        for e in body["events"]:
            seen.append(e["event_ticker"])
            hist = [
                m for m in sim.world.market_infos(e["event_ticker"]) if sim.world.is_historical(m)
            ]
            # An all-historical event has no markets key (the notes; the default switch).
            assert len(e.get("markets", [])) == 6 - len(hist)
            assert ("markets" in e) == (len(hist) < 6)
        cursor = body["cursor"]
        if not cursor:
            break
    assert seen == [e["event_ticker"] for e in sim.world.series_events("KXHIGHNY")]
    assert len(seen) == (date(2025, 11, 22) - date(2025, 8, 1)).days + 1
    _, body = await get(http, sim, "/events", series_ticker="KXHIGHNY", status="open")
    # NOV21 opens at 10:00 New York on Nov 20, which is NOW.
    assert [e["event_ticker"] for e in body["events"]] == ["KXHIGHNY-25NOV21", OPEN_EVENT]
    _, body = await get(http, sim, "/events", series_ticker="KXHIGHNY", status="unopened")
    assert [e["event_ticker"] for e in body["events"]] == ["KXHIGHNY-25NOV22"]
    _, body = await get(http, sim, "/events", series_ticker="KXNOPE")
    assert body == {"events": [], "cursor": ""}
    assert (await get(http, sim, "/events", limit=201))[0] == 400


# --- historical tier ---------------------------------------------------------------------


async def test_historical_tier_mirrors_live_candles(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    _, cut = await get(http, sim, "/historical/cutoff")
    assert cut["market_settled_ts"] == "2025-08-22T15:00:00Z"
    _, event = await get(http, sim, f"/events/{HIST_EVENT}", with_nested_markets=True)
    assert event["markets"] == [] and "markets" not in event["event"]
    _, listed = await get(http, sim, "/historical/markets", event_ticker=HIST_EVENT)
    tickers = [m["ticker"] for m in listed["markets"]]
    assert tickers == [m.ticker for m in sim.world.market_infos(HIST_EVENT)]
    live_path = f"/series/KXHIGHNY/events/{HIST_EVENT}/candlesticks"
    _, page = await get(http, sim, live_path, start_ts=0, end_ts=ts(NOW), period_interval=1)
    assert page == {"market_tickers": [], "market_candlesticks": [], "adjusted_end_ts": ts(NOW)}
    rng = {"start_ts": 0, "end_ts": ts(NOW), "period_interval": 1}
    status, _ = await get(http, sim, f"/series/KXHIGHNY/markets/{tickers[0]}/candlesticks", **rng)
    assert status == 404
    assert (await get(http, sim, f"/markets/{tickers[0]}"))[0] == 404
    hist_start, hist_end = event_window(sim.world, HIST_EVENT)
    for period in (1, 60):
        for t in tickers[:3]:
            _, hist = await get(
                http,
                sim,
                f"/historical/markets/{t}/candlesticks",
                start_ts=hist_start,
                end_ts=hist_end + 86400,  # past the last hour's end, under the 5,000 cap
                period_interval=period,
            )
            live = sim.world.candles(t, period)
            assert hist["ticker"] == t and len(hist["candlesticks"]) == len(live) > 0
            for h, c in zip(hist["candlesticks"], live, strict=True):
                assert h["end_period_ts"] == c["end_period_ts"]
                for side in ("yes_bid", "yes_ask"):
                    assert h[side] == {
                        k: c[side][f"{k}_dollars"] for k in ("open", "low", "high", "close")
                    }
                for k in ("open", "low", "high", "close", "mean", "previous"):
                    assert k in h["price"] and h["price"][k] == c["price"].get(f"{k}_dollars")
                assert "min" not in h["price"] and "max" not in h["price"]
                assert (h["volume"], h["open_interest"]) == (c["volume_fp"], c["open_interest_fp"])
    live_ticker = sim.world.live_markets(LIVE_EVENT)[0].ticker
    assert (await get(http, sim, f"/historical/markets/{live_ticker}/candlesticks", **rng))[
        0
    ] == 404
    assert (await get(http, sim, f"/historical/markets/{live_ticker}"))[0] == 404


async def test_moving_the_cutoff_mid_run_moves_markets_between_tiers(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    markets = sim.world.market_infos(LIVE_EVENT)
    # Between the first and the last market's settlement: the event is split.
    sim.set_cutoff(datetime.fromtimestamp(markets[2].settlement_ts + 1, UTC))
    rng = {"start_ts": 0, "end_ts": ts(NOW), "period_interval": 60}
    _, page = await get(http, sim, f"/series/KXHIGHNY/events/{LIVE_EVENT}/candlesticks", **rng)
    assert page["market_tickers"] == [m.ticker for m in markets[3:]]
    _, listed = await get(http, sim, "/historical/markets", event_ticker=LIVE_EVENT)
    assert [m["ticker"] for m in listed["markets"]] == [m.ticker for m in markets[:3]]
    sim.set_cutoff(None)
    _, page = await get(http, sim, f"/series/KXHIGHNY/events/{LIVE_EVENT}/candlesticks", **rng)
    assert len(page["market_tickers"]) == 6
    sim.set_now(NOW + timedelta(days=100))  # the default cutoff follows now
    _, page = await get(http, sim, f"/series/KXHIGHNY/events/{LIVE_EVENT}/candlesticks", **rng)
    assert page["market_tickers"] == []


@pytest.mark.parametrize("event", [LIVE_EVENT, HIST_EVENT])
async def test_a_hidden_market_is_on_neither_tier(
    sim: SimServer, http: aiohttp.ClientSession, event: str
) -> None:
    markets = sim.world.market_infos(event)
    lost = markets[1].ticker
    sim.hide_market(lost)
    rng = {"start_ts": 0, "end_ts": ts(NOW), "period_interval": 60}
    _, page = await get(http, sim, f"/series/KXHIGHNY/events/{event}/candlesticks", **rng)
    assert lost not in page["market_tickers"]
    _, body = await get(http, sim, f"/events/{event}", with_nested_markets=True)
    assert lost not in [m["ticker"] for m in body["markets"]]
    _, listed = await get(http, sim, "/historical/markets", event_ticker=event)
    assert lost not in [m["ticker"] for m in listed["markets"]]
    start, end = event_window(sim.world, event)
    window = {"start_ts": start, "end_ts": end, "period_interval": 60}
    _, batch = await get(http, sim, "/markets/candlesticks", market_tickers=lost, **window)
    assert batch == {"markets": []}
    for path in (
        f"/series/KXHIGHNY/markets/{lost}/candlesticks",
        f"/historical/markets/{lost}/candlesticks",
        f"/markets/{lost}",
        f"/historical/markets/{lost}",
    ):
        assert (await get(http, sim, path, **rng))[0] == 404, path
    assert len(sim.world.candles(lost, 60)) > 0  # the ground truth keeps it
    sim.hide_market(lost, hidden=False)
    _, listed = await get(http, sim, "/historical/markets", event_ticker=event)
    _, page = await get(http, sim, f"/series/KXHIGHNY/events/{event}/candlesticks", **rng)
    assert lost in [m["ticker"] for m in listed["markets"]] + page["market_tickers"]
    with pytest.raises(KeyError):
        sim.hide_market("KXHIGHNY-25NOV18-T999")


# --- batch and per-market routes ---------------------------------------------------------


async def test_batch_cap_and_latest_before_start(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    tickers = [
        m.ticker
        for e in ("KXHIGHNY-25NOV10", "KXHIGHCHI-25NOV10")
        for m in sim.world.live_markets(e)
    ]
    hist = sim.world.market_infos(HIST_EVENT)[0].ticker
    over = {
        "market_tickers": ",".join([*tickers, hist]),
        "start_ts": 0,
        "end_ts": ts(NOW),
        "period_interval": 1,
    }
    async with SimServer(replace(BASE, batch_over_cap="truncated")) as truncating:
        _, body = await get(http, truncating, "/markets/candlesticks", **over)
    assert [m["market_ticker"] for m in body["markets"]] == tickers
    total = sum(len(m["candlesticks"]) for m in body["markets"])
    assert 9_000 < total <= 10_000
    last = max(c["end_period_ts"] for m in body["markets"] for c in m["candlesticks"])
    for m in body["markets"]:
        assert m["candlesticks"] == sim.world.candles(m["market_ticker"], 1, 0, last)
    market = tickers[0]
    candles = sim.world.candles(market)
    start = candles[100]["end_period_ts"] + 30
    _, body = await get(
        http,
        sim,
        f"/series/KXHIGHNY/markets/{market}/candlesticks",
        start_ts=start,
        end_ts=start + 600,
        period_interval=1,
        include_latest_before_start=True,
    )
    synthetic, first_real = body["candlesticks"][0], body["candlesticks"][1]
    assert synthetic["end_period_ts"] == start + 30 == first_real["end_period_ts"]
    assert set(synthetic["price"]) == {"previous_dollars"}
    real = candles[100]["price"]
    assert synthetic["price"]["previous_dollars"] == real.get(
        "close_dollars", real["previous_dollars"]
    )
    assert synthetic["volume_fp"] == "0.00"


# --- rate limit and faults -------------------------------------------------------------


async def test_rate_limit_answers_bare_429s(http: aiohttp.ClientSession) -> None:
    async with SimServer(replace(BASE, rate_limit_rps=5, burst_seconds=2.0)) as sim:
        statuses = []
        for _ in range(30):
            async with http.get(sim.base_url + "/series/KXHIGHNY") as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    assert await resp.json() == {"error": "too many requests"}
                    assert "Retry-After" not in resp.headers
                    assert not any(h.lower().startswith("x-ratelimit") for h in resp.headers)
        assert statuses[:10] == [200] * 10  # a full bucket holds 2 s of 5 req/s
        assert 429 in statuses[10:]
        assert sim.counters.throttled == statuses.count(429)
        await asyncio.sleep(0.45)  # refills 2 requests' worth
        assert (await get(http, sim, "/series/KXHIGHNY"))[0] == 200


async def test_scripted_faults(sim: SimServer, http: aiohttp.ClientSession) -> None:
    start, end = event_window(sim.world, LIVE_EVENT)
    path = f"/series/KXHIGHNY/events/{LIVE_EVENT}/candlesticks"
    url = sim.base_url + path
    q = {"start_ts": str(start), "end_ts": str(end), "period_interval": "60"}
    sim.fail_next("/candlesticks", "503", 2)
    # aiohttp silently retries a GET once when the server drops the connection, so
    # two resets reach the client as one ServerDisconnectedError.
    sim.fail_next(LIVE_EVENT, "reset", 2)
    for expected in (503, 503):
        assert (await get(http, sim, path, **q))[0] == expected
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with http.get(url, params=q) as resp:
            await resp.read()
    sim.fail_next(path, "truncated")
    async with http.get(url, params=q) as resp:
        assert resp.status == 200
        raw = await resp.read()
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    sim.fail_next(path, "invalid_json")
    async with http.get(url, params=q) as resp:
        assert resp.status == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(await resp.read())
    sim.fail_next(path, "wrong_event")
    _, page = await get(http, sim, path, **q)
    assert all(not t.startswith(LIVE_EVENT) for t in page["market_tickers"])
    sim.fail_next(path, "stuck_end")
    _, page = await get(http, sim, path, **q)
    assert page["adjusted_end_ts"] == start
    sim.set_faults(slow_seconds=0.5)
    sim.fail_next(path, "slow")
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(url, params=q, timeout=aiohttp.ClientTimeout(total=0.2)) as resp:
            await resp.read()
    # Everything healthy again, and the accounting saw it all.
    assert (await get(http, sim, path, **q))[0] == 200
    await asyncio.sleep(0.4)  # let the slow handler finish and be logged
    c = sim.counters
    assert c.faults == Counter(
        {
            "503": 2,
            "reset": 2,
            "truncated": 1,
            "invalid_json": 1,
            "wrong_event": 1,
            "stuck_end": 1,
            "slow": 1,
        }
    )
    assert c.by_status[0] == 2 and c.by_status[503] == 2
    assert c.by_route["event_candlesticks"] == c.total == 10
    assert all(r.params["period_interval"] == "60" for r in c.requests_to(LIVE_EVENT))
    sim.reset()
    assert c.total == 0 and c.log == [] and sim.faults.pending() == 0


async def _status_sequence(http: aiohttp.ClientSession, config: SimConfig, n: int) -> list[int]:
    async with SimServer(config) as sim:
        out = []
        start, end = event_window(sim.world, LIVE_EVENT)
        for _ in range(n):
            status, _ = await get(
                http,
                sim,
                f"/series/KXHIGHNY/events/{LIVE_EVENT}/candlesticks",
                start_ts=start,
                end_ts=end,
                period_interval=1440,
            )
            out.append(status)
        assert (await get(http, sim, "/series/KXHIGHNY"))[0] == 200  # not a fault route
        assert sim.counters.faults_injected == sum(s != 200 for s in out)
        return out


async def test_random_faults_are_seeded(http: aiohttp.ClientSession) -> None:
    faults = FaultConfig(p_500=0.2, p_502=0.1, p_429=0.1)
    config = replace(BASE, faults=faults)
    first = await _status_sequence(http, config, 60)
    assert first == await _status_sequence(http, config, 60)
    assert {500, 502, 429, 200} <= set(first)
    every = replace(BASE, faults=FaultConfig(force_429_every=3))
    assert await _status_sequence(http, every, 6) == [200, 200, 429, 200, 200, 429]


# --- running it: thread and CLI --------------------------------------------------------------


def _fetch(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def test_thread_runner_serves_a_blocking_main_thread_and_subprocesses() -> None:
    with run_sim_in_thread(BASE) as sim:
        assert _fetch(sim.base_url + "/series/KXHIGHNY")[0] == 200
        code = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).status)"
        out = subprocess.run(
            [sys.executable, "-c", code, sim.base_url + "/historical/cutoff"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert out.stdout.strip() == "200"
        sim.fail_next("/series/", "500")
        assert _fetch(sim.base_url + "/series/KXHIGHNY") == (
            500,
            {
                "error": {
                    "code": "internal_server_error",
                    "message": "internal server error",
                    "details": "injected fault",
                }
            },
        )
        assert sim.counters.total == 3
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(sim.base_url + "/series/KXHIGHNY", timeout=2)


def test_cli_prints_base_url_and_serves() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.kalshi_sim",
            "--port",
            "0",
            "--seed",
            "3",
            "--now",
            "2025-11-20T15:00:00Z",
            "--first-date",
            "2025-11-01",
            "--last-date",
            "2025-11-21",
            "--candle-cap",
            "700",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/trade-api/v2")
        query = "start_ts=0&end_ts=1800000000&period_interval=1"
        path = f"/series/KXHIGHNY/events/{LIVE_EVENT}/candlesticks?{query}"
        status, page = _fetch(base_url + path)
        assert status == 200 and sum(map(len, page["market_candlesticks"])) <= 700
        assert page["adjusted_end_ts"] < 1800000000
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == 0
