"""Normalization: pages in, exact candle rows out (pure; no database, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import polars as pl
import pytest

from load.errors import CorruptPageError, MalformedValueError
from load.normalize.pages import CANDLE_SCHEMA, RawPage, normalize_json, normalize_pages
from schemas.archive import (
    KIND_EVENT_CANDLES,
    KIND_HISTORICAL_MARKET_CANDLES,
    PageEnvelope,
    WindowKey,
)
from schemas.core import WindowPolicy
from schemas.errors import CorruptArchiveError
from schemas.tables import CANDLE_COLUMNS
from tests.kalshi_sim import World
from tests.test_load_support import closed_events, sim_config, truth_row

EVENT = "KXHIGHNY-25NOV20"
MARKET = "KXHIGHNY-25NOV20-T52"
TS = 1763650860  # 2025-11-20 15:01:00 UTC
T0 = datetime(2025, 11, 21, 12, 0, tzinfo=UTC)
KEY = WindowKey("KXHIGHNY", EVENT, 1, WindowPolicy.FULL_MARKET_WINDOW)


def book(o: Any, lo: Any, hi: Any, c: Any) -> dict[str, Any]:
    return {"open_dollars": o, "low_dollars": lo, "high_dollars": hi, "close_dollars": c}


def candle(ts: int = TS, **over: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "end_period_ts": ts,
        "yes_bid": book("0.5600", "0.5500", "0.5700", "0.5600"),
        "yes_ask": book("0.5800", "0.5700", "0.5900", "0.5800"),
        "price": {
            "open_dollars": "0.5700",
            "low_dollars": "0.5600",
            "high_dollars": "0.5800",
            "close_dollars": "0.5750",
            "mean_dollars": "0.5712",
            "previous_dollars": "0.5500",
            "min_dollars": "0.5600",
            "max_dollars": "0.5800",
        },
        "volume_fp": "12.50",
        "open_interest_fp": "100.00",
    }
    c.update(over)
    return c


def live_page(
    candles_by_market: dict[str, list[dict[str, Any]]],
    *,
    at: datetime = T0,
    event: str = EVENT,
    start_ts: int = TS - 600,
) -> PageEnvelope:
    return PageEnvelope(
        kind=KIND_EVENT_CANDLES,
        series_ticker=event.split("-")[0],
        event_ticker=event,
        market_ticker=None,
        period_interval=1,
        window_policy=WindowPolicy.FULL_MARKET_WINDOW,
        path=f"/trade-api/v2/series/KXHIGHNY/events/{event}/candlesticks",
        params={"start_ts": start_ts, "end_ts": TS + 600, "period_interval": 1},
        status=200,
        retrieved_at_utc=at,
        body={
            "market_tickers": list(candles_by_market),
            "market_candlesticks": list(candles_by_market.values()),
            "adjusted_end_ts": TS + 600,
        },
    )


def hist_page(market: str, candles: list[dict[str, Any]], *, at: datetime = T0) -> PageEnvelope:
    return PageEnvelope(
        kind=KIND_HISTORICAL_MARKET_CANDLES,
        series_ticker=market.split("-")[0],
        event_ticker=market.rsplit("-", 1)[0],
        market_ticker=market,
        period_interval=1,
        window_policy=WindowPolicy.FULL_MARKET_WINDOW,
        path=f"/trade-api/v2/historical/markets/{market}/candlesticks",
        params={"start_ts": TS - 600, "end_ts": TS + 600, "period_interval": 1},
        status=200,
        retrieved_at_utc=at,
        body={"ticker": market, "candlesticks": candles},
    )


def only_row(frame: pl.DataFrame) -> dict[str, Any]:
    assert frame.height == 1
    return frame.row(0, named=True)


def test_frame_has_exactly_the_table_columns_and_exact_types() -> None:
    frame = normalize_pages([live_page({MARKET: [candle()]})])
    assert tuple(frame.columns) == CANDLE_COLUMNS
    assert dict(frame.schema) == CANDLE_SCHEMA
    row = only_row(frame)
    assert row["market_ticker"] == MARKET
    assert row["event_ticker"] == EVENT
    assert row["end_period_ts_utc"] == datetime(2025, 11, 20, 15, 1, tzinfo=UTC)
    assert row["period_interval_minutes"] == 1
    assert row["retrieved_at_utc"] == T0  # from the envelope, not the load time
    assert row["yes_bid_open"] == Decimal("0.56")
    assert row["price_close"] == Decimal("0.575")
    assert row["price_mean"] == Decimal("0.5712")
    assert row["volume"] == Decimal("12.50")
    assert row["open_interest"] == Decimal("100")
    assert all(isinstance(row[c], Decimal) for c in CANDLE_COLUMNS[4:22])


def test_sub_cent_prices_keep_all_six_decimals() -> None:
    c = candle(
        yes_bid=book("0.000001", "0.000001", "0.0001", "0.000042"),
        volume_fp="0.01",
    )
    row = only_row(normalize_pages([live_page({MARKET: [c]})]))
    assert row["yes_bid_open"] == Decimal("0.000001")
    assert row["yes_bid_high"] == Decimal("0.0001")
    assert row["yes_bid_close"] == Decimal("0.000042")
    assert row["volume"] == Decimal("0.01")


def test_legacy_cents_only_page_converts_exactly() -> None:
    legacy = {
        "end_period_ts": TS,
        "yes_bid": {"open": 56, "low": 1, "high": 99, "close": 100},
        "yes_ask": {"open": 57, "low": 0, "high": 60, "close": 58},
        "price": {"open": 56, "low": 55, "high": 57, "close": 57, "mean": 56, "previous": 5},
        "volume": 12,
        "open_interest": 340,
    }
    row = only_row(normalize_pages([live_page({MARKET: [legacy]})]))
    assert row["yes_bid_open"] == Decimal("0.56")
    assert row["yes_bid_low"] == Decimal("0.01")
    assert row["yes_bid_close"] == Decimal("1.00")
    assert row["yes_ask_low"] == Decimal("0")
    assert row["price_previous"] == Decimal("0.05")
    assert row["price_min"] is None and row["price_max"] is None
    assert row["volume"] == Decimal("12") and row["open_interest"] == Decimal("340")
    assert str(row["yes_bid_open"]) == "0.560000"  # scale 6, never a binary fraction


def test_dollars_win_over_rounded_legacy_cents() -> None:
    c = candle(yes_bid={**book("0.5625", "0.5600", "0.5650", "0.5625"), "open": 56, "close": 56})
    c["volume"] = 12
    c["volume_fp"] = "12.50"
    row = only_row(normalize_pages([live_page({MARKET: [c]})]))
    assert row["yes_bid_open"] == Decimal("0.5625")
    assert row["yes_bid_close"] == Decimal("0.5625")
    assert row["volume"] == Decimal("12.50")


def test_price_with_only_previous_and_explicit_nulls_stay_null() -> None:
    no_trade = candle(price={"previous_dollars": "0.5500"})
    nulls = candle(
        ts=TS + 60,
        yes_bid=book(None, None, None, None),
        yes_ask={"open_dollars": "0.58", "low_dollars": None, "high_dollars": "0.59"},
        price={"previous_dollars": None, "open_dollars": None},
    )
    frame = normalize_pages([live_page({MARKET: [no_trade, nulls]})])
    first, second = frame.rows(named=True)
    assert first["price_previous"] == Decimal("0.55")
    for col in ("open", "high", "low", "close", "mean", "min", "max"):
        assert first[f"price_{col}"] is None
        assert second[f"price_{col}"] is None
    assert second["price_previous"] is None
    assert [second[f"yes_bid_{k}"] for k in ("open", "high", "low", "close")] == [None] * 4
    assert second["yes_ask_open"] == Decimal("0.58")
    assert second["yes_ask_low"] is None and second["yes_ask_close"] is None  # absent = NULL


def test_historical_shape_gives_the_live_rows() -> None:
    world = World(sim_config(null_book_rate=0.05))
    event = closed_events(world, "KXHIGHNY", 1)[0]
    ev = world.event_info(event)
    assert ev is not None
    market = ev.markets[1].ticker
    live = live_page({market: world.candles(market)}, event=event)
    hist = hist_page(market, world.historical_candles(market))
    a = normalize_pages([live])
    b = normalize_pages([hist])
    assert a.height == len(world.candles(market)) > 1000
    # The historical route has no min/max: NULL there, everything else identical.
    assert b["price_min"].null_count() == b.height
    assert a.drop("price_min", "price_max").equals(b.drop("price_min", "price_max"))
    truth = [truth_row(c) for c in world.candles(market)]
    got = a.select(CANDLE_COLUMNS[4:22]).rows()
    assert got == truth


def test_boundary_candle_kept_once_later_retrieval_wins() -> None:
    early = live_page({MARKET: [candle(TS - 60), candle(TS, volume_fp="1.00")]}, at=T0)
    late = live_page(
        {MARKET: [candle(TS, volume_fp="2.00"), candle(TS + 60)]},
        at=T0 + timedelta(seconds=5),
        start_ts=TS,
    )
    for order in ([early, late], [late, early]):
        frame = normalize_pages(order)
        assert frame.height == 3
        row = frame.filter(pl.col("end_period_ts_utc").dt.epoch("s") == TS).row(0, named=True)
        assert row["volume"] == Decimal("2.00")
        assert row["retrieved_at_utc"] == T0 + timedelta(seconds=5)
    # Same retrieval time: the later page in manifest order wins.
    tie = live_page({MARKET: [candle(TS, volume_fp="3.00")]}, at=T0, start_ts=TS)
    frame = normalize_pages([early, tie])
    assert frame.height == 2
    volumes = frame.sort("end_period_ts_utc")["volume"].to_list()
    assert volumes == [Decimal("12.50"), Decimal("3.00")]


def test_output_is_sorted_by_primary_key() -> None:
    other = "KXHIGHNY-25NOV20-B50.5"
    frame = normalize_pages([live_page({MARKET: [candle(TS + 60), candle(TS)], other: [candle()]})])
    keys = frame.select("market_ticker", pl.col("end_period_ts_utc").dt.epoch("s")).rows()
    assert keys == [(other, TS), (MARKET, TS), (MARKET, TS + 60)]


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("price.close_dollars", "0.5600001"),  # Polars' cast would silently truncate this
        ("price.close_dollars", "abc"),
        ("yes_bid.open_dollars", "1e-2"),
        ("yes_ask.low_dollars", "+0.56"),
        ("yes_ask.low_dollars", "-0.01"),
        ("yes_bid.high_dollars", "12345.0"),
        ("yes_bid.high_dollars", ""),
        ("yes_bid.high_dollars", True),
        ("volume_fp", "1.005"),
        ("open_interest_fp", "NaN"),
        ("yes_bid.open", 56.5),  # legacy cents must be whole
    ],
)
def test_malformed_value_raises_naming_the_file(where: str, value: Any) -> None:
    c = candle()
    target = c
    *path, last = where.split(".")
    for part in path:
        target = target[part]
    target[last] = value
    if where == "yes_bid.open":
        c["yes_bid"]["open_dollars"] = None
    pages = [live_page({MARKET: [candle(TS - 60)]}), live_page({MARKET: [c]})]
    with pytest.raises(MalformedValueError) as info:
        normalize_pages(pages, sources=["a/p1.json.gz", "a/p2.json.gz"])
    assert "a/p2.json.gz" in str(info.value)
    assert info.value.source == "a/p2.json.gz"
    assert isinstance(info.value, CorruptArchiveError)


def _raw(doc: Any, source: str = "w/x.json.gz") -> RawPage:
    return RawPage(source, orjson.dumps(doc))


def test_broken_envelopes_raise_corrupt_page_errors() -> None:
    good = live_page({MARKET: [candle()]}).to_json()
    cases: list[Any] = [
        b"{not json",
        {**good, "archive_version": 3},
        {**good, "kind": "trades"},
        {**good, "status": 429},
        {**good, "period_interval": 5},
        {**good, "period_interval": 99999},
        {**good, "body": {**good["body"], "market_tickers": [MARKET, MARKET]}},
        {**good, "body": {**good["body"], "market_candlesticks": [[{"yes_bid": {}}]]}},
        {**good, "body": {**good["body"], "market_candlesticks": [[None]]}},
        {**good, "body": {**good["body"], "market_tickers": ["../etc"]}},
        {**good, "retrieved_at_utc": "yesterday"},
    ]
    for doc in cases:
        page = RawPage("w/x.json.gz", doc) if isinstance(doc, bytes) else _raw(doc)
        with pytest.raises(CorruptPageError) as info:
            normalize_json([page])
        assert info.value.source == "w/x.json.gz" and "w/x.json.gz" in str(info.value)


def test_page_of_another_window_is_refused() -> None:
    page = live_page({MARKET: [candle()]}).to_json()
    assert normalize_json([_raw(page)], key=KEY).height == 1
    other = WindowKey("KXHIGHNY", EVENT, 60, WindowPolicy.FULL_MARKET_WINDOW)
    with pytest.raises(CorruptPageError, match="not of the window"):
        normalize_json([_raw(page)], key=other)


def test_empty_input_and_empty_pages_give_an_empty_typed_frame() -> None:
    assert normalize_pages([]).schema == pl.Schema(CANDLE_SCHEMA)
    frame = normalize_pages([live_page({MARKET: []}), hist_page(MARKET, [])])
    assert frame.height == 0 and frame.schema == pl.Schema(CANDLE_SCHEMA)


@pytest.mark.parametrize(
    "data",
    [b"", b"null", b"1", b'"x"', b"true", b"[]", b"[null]", b"{}{}", b"null\n"],
    ids=["empty", "null", "number", "string", "bool", "list", "list-null", "two", "null-nl"],
)
def test_a_page_that_is_not_one_object_is_corrupt_not_a_crash(data: bytes) -> None:
    # A page is one JSON object (schemas.archive.pages). pyarrow 26's JSON reader, measured as a
    # faster reader, kills the process (SIGSEGV) on a lone ``null``: whatever reads pages
    # must refuse these as corrupt pages, naming the file.
    good = _raw(live_page({MARKET: [candle()]}).to_json(), "w/good.json.gz")
    with pytest.raises(CorruptPageError) as info:
        normalize_json([good, RawPage("w/bad.json.gz", data)])
    assert info.value.source == "w/bad.json.gz" and "w/bad.json.gz" in str(info.value)
