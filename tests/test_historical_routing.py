"""The pure decisions of the historical tier: routing, chunking, lookups, dry-run counts.

No HTTP, no database: :mod:`extract.plan.tiers` and the pure helpers of ``events``/``candles``
are checked on hand-made inputs (``test_historical_backfill`` runs them end to end).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extract.config import ExtractConfig, RouteChoice
from extract.errors import BadPageError
from extract.events.sync import build_rows, events_to_look_up
from extract.plan.selection import PlannedWindow, dry_run_lines, planned_requests
from extract.plan.tiers import (
    HISTORICAL_CHUNK_CANDLES,
    Cutoff,
    Route,
    historical_chunks,
    historical_requests,
    needs_historical_lookup,
    route_market,
    route_markets,
    settled_at,
)
from extract.plan.windows import EventTimes, MarketTimes, Window, plan_window
from schemas.archive import WindowKey
from schemas.core import WindowPolicy

CUT = 1_000_000


def market(
    ticker: str = "KXHIGHNY-25NOV20-T52",
    *,
    close: int | None = CUT - 500,
    settled: int | None = None,
    flagged: bool = False,
) -> MarketTimes:
    return MarketTimes(ticker, 0 if close is not None else None, close, settled, flagged)


# --- route_market ---------------------------------------------------------------------


def test_settled_before_the_cutoff_is_historical() -> None:
    assert route_market(market(settled=CUT - 1), CUT) is Route.HISTORICAL


def test_settled_at_or_after_the_cutoff_is_live() -> None:
    # "settled before market_settled_ts": the cutoff instant itself is still live
    assert route_market(market(settled=CUT), CUT) is Route.LIVE
    assert route_market(market(settled=CUT + 60), CUT) is Route.LIVE


def test_close_stands_in_for_an_unknown_settlement() -> None:
    m = market(close=CUT - 60, settled=None)
    assert settled_at(m) == CUT - 60
    assert route_market(m, CUT) is Route.HISTORICAL
    assert route_market(market(close=CUT + 60), CUT) is Route.LIVE
    # a settlement time wins over the close
    assert route_market(market(close=CUT - 60, settled=CUT + 60), CUT) is Route.LIVE


def test_no_times_at_all_is_live() -> None:
    assert route_market(market(close=None, settled=None), CUT) is Route.LIVE


def test_the_stored_flag_is_terminal_and_routes_the_dry_run() -> None:
    flagged = market(settled=CUT + 3600, flagged=True)
    assert route_market(flagged, CUT) is Route.HISTORICAL
    assert route_market(flagged, None) is Route.HISTORICAL
    # without a cutoff only the flag counts
    assert route_market(market(settled=CUT - 1), None) is Route.LIVE


def test_an_event_split_by_the_cutoff_is_routed_market_by_market() -> None:
    ms = [
        market("KXHIGHNY-25NOV20-T52", settled=CUT - 120),
        market("KXHIGHNY-25NOV20-B52.5", settled=CUT - 1),
        market("KXHIGHNY-25NOV20-T53", settled=CUT + 59),
    ]
    assert route_markets(ms, CUT) == {
        "KXHIGHNY-25NOV20-T52": Route.HISTORICAL,
        "KXHIGHNY-25NOV20-B52.5": Route.HISTORICAL,
        "KXHIGHNY-25NOV20-T53": Route.LIVE,
    }


# --- historical chunks ----------------------------------------------------------------


def test_one_chunk_covers_a_daily_market() -> None:
    assert [(r.start_ts, r.end_ts) for r in historical_chunks(600, 600 + 2300 * 60, 1)] == [
        (600, 600 + 2300 * 60)
    ]


def test_chunks_hold_at_most_the_bound_and_never_overlap() -> None:
    chunks = historical_chunks(0, 12_000 * 60, 1)
    assert [(r.start_ts, r.end_ts) for r in chunks] == [
        (0, 4999 * 60),
        (4999 * 60 + 1, 4999 * 60 + 1 + 4999 * 60),
        (2 * (4999 * 60 + 1), 12_000 * 60),
    ]


@given(
    start=st.integers(0, 10**6),
    length=st.integers(0, 40_000 * 60),
    period=st.sampled_from([1, 60, 1440]),
    bound=st.integers(50, 6000),
)
@settings(deadline=None)
def test_chunks_cover_every_period_end_exactly_once(
    start: int, length: int, period: int, bound: int
) -> None:
    end = start + length
    chunks = historical_chunks(start, end, period, bound)
    step = period * 60
    assert chunks[0].start_ts == start and chunks[-1].end_ts == end
    for a, b in itertools.pairwise(chunks):
        assert b.start_ts == a.end_ts + 1  # contiguous, inclusive ends, no overlap
    for r in chunks:
        ends = r.end_ts // step - (-(-r.start_ts // step)) + 1  # period ends in [start, end]
        assert ends <= bound
    assert historical_requests([(start, end)], period, bound) == len(chunks)


def test_chunks_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        historical_chunks(10, 5, 1)
    with pytest.raises(ValueError, match="at least 1"):
        historical_chunks(0, 5, 1, 0)


def test_the_bound_is_the_live_routes_cap() -> None:
    assert HISTORICAL_CHUNK_CANDLES == 5000


# --- the cutoff body ------------------------------------------------------------------


def test_cutoff_parses_the_spec_shape() -> None:
    body = {
        "market_settled_ts": "2025-08-22T15:00:00Z",
        "trades_created_ts": "2025-08-22T15:00:00Z",
        "orders_updated_ts": "2025-08-22T15:00:00Z",
    }
    cutoff = Cutoff.from_body(body)
    assert cutoff.market_settled_ts == int(datetime(2025, 8, 22, 15, tzinfo=UTC).timestamp())
    assert str(cutoff) == "2025-08-22T15:00:00Z"
    offset = Cutoff.from_body({"market_settled_ts": "2025-08-22T17:00:00+02:00"})
    assert offset == cutoff


@pytest.mark.parametrize(
    "body", [None, [], {}, {"market_settled_ts": 5}, {"market_settled_ts": "yesterday"}]
)
def test_a_bad_cutoff_body_is_a_retriable_bad_page(body: Any) -> None:
    with pytest.raises(BadPageError, match="market_settled_ts"):
        Cutoff.from_body(body)


# --- live pages that lack a market ----------------------------------------------------


def test_lookup_rules() -> None:
    assert needs_historical_lookup(CUT - 1, 6, CUT)  # could hold a settled market
    assert not needs_historical_lookup(CUT, 6, CUT)  # markets settle after the strike date
    assert needs_historical_lookup(CUT + 86_400, 0, CUT)  # nothing nested: ask
    assert needs_historical_lookup(None, 3, CUT)  # no strike date: ask
    # an event already known wholly historical and still absent from the live listing
    assert not needs_historical_lookup(CUT - 1, 0, CUT, {"A": True, "B": True})
    assert needs_historical_lookup(CUT - 1, 0, CUT, {"A": True, "B": False})
    assert needs_historical_lookup(CUT - 1, 1, CUT, {"A": True})


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_events_to_look_up() -> None:
    cutoff = Cutoff(CUT)
    events: list[dict[str, Any]] = [
        {"event_ticker": "KXHIGHNY-25NOV01", "strike_date": _iso(CUT - 86_400), "markets": []},
        {"event_ticker": "KXHIGHNY-25NOV02", "strike_date": _iso(CUT - 60), "markets": [{}]},
        {"event_ticker": "KXHIGHNY-25NOV03", "strike_date": _iso(CUT + 60), "markets": [{}]},
        {"event_ticker": "KXHIGHNY-25NOV04", "strike_date": _iso(CUT - 60), "markets": []},
    ]
    stored = {"KXHIGHNY-25NOV04": {"KXHIGHNY-25NOV04-T1": True}}
    assert events_to_look_up(events, cutoff, stored) == ["KXHIGHNY-25NOV01", "KXHIGHNY-25NOV02"]


def _market_json(ticker: str, event: str) -> dict[str, Any]:
    return {
        "ticker": ticker,
        "event_ticker": event,
        "open_time": "2025-11-19T15:00:00Z",
        "close_time": "2025-11-21T04:59:00Z",
        "settlement_ts": "2025-11-21T15:00:00Z",
        "status": "finalized",
        "strike_type": "between",
        "floor_strike": Decimal("50.5"),
    }


def test_build_rows_flags_historical_markets_and_they_win() -> None:
    event = "KXHIGHNY-25NOV20"
    live = _market_json(f"{event}-T52", event)
    moved = _market_json(f"{event}-B50.5", event)
    events = [{"event_ticker": event, "series_ticker": "KXHIGHNY", "markets": [live, moved]}]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cfg = ExtractConfig(series="KXHIGHNY")
    # B50.5 moved between the live listing and the historical lookup: listed by both
    _, rows = build_rows(
        events, cfg, {}, now, {event: [moved, _market_json(f"{event}-T49", event)]}
    )
    flags = {r["market_ticker"]: r["is_historical"] for r in rows}
    assert flags == {f"{event}-T52": False, f"{event}-B50.5": True, f"{event}-T49": True}
    hist = next(r for r in rows if r["market_ticker"] == f"{event}-T49")
    assert hist["settlement_ts_utc"] == datetime(2025, 11, 21, 15, tzinfo=UTC)
    assert hist["floor_strike"] == Decimal("50.5")


def test_build_rows_refuses_historical_markets_of_an_unlisted_event() -> None:
    cfg = ExtractConfig(series="KXHIGHNY")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(BadPageError, match="not listed"):
        build_rows([], cfg, {}, now, {"KXHIGHNY-25NOV20": []})


# --- dry-run planning -----------------------------------------------------------------


def _planned(hist: int, live: int, minutes: int = 2300) -> PlannedWindow:
    event = "KXHIGHNY-25NOV20"
    ms = tuple(
        MarketTimes(f"{event}-T{i}", 0, minutes * 60, CUT + i, i < hist) for i in range(hist + live)
    )
    window = plan_window(
        EventTimes(event, None, None, ms), WindowPolicy.FULL_MARKET_WINDOW, 1, 10**9
    )
    assert isinstance(window, Window)
    return PlannedWindow(
        WindowKey("KXHIGHNY", event, 1, WindowPolicy.FULL_MARKET_WINDOW), window, ms
    )


def test_planned_requests_split_live_and_historical() -> None:
    # 4 live markets x 2300 minutes at the 5,000 cap: 2 pages; 2 historical: 1 each
    assert planned_requests(_planned(2, 4), 1, None) == (2, 2)
    assert planned_requests(_planned(0, 2), 1, None) == (1, 0)
    # a wholly historical event asks nothing of the event route
    assert planned_requests(_planned(3, 0), 1, None) == (0, 3)
    # a long window needs several chunks per historical market
    assert planned_requests(_planned(1, 0, minutes=12_000), 1, None) == (0, 3)
    # with a cutoff past every settlement, everything is historical
    assert planned_requests(_planned(0, 2), 1, CUT + 3600) == (0, 2)


def test_dry_run_lines_show_both_tiers() -> None:
    cfg = ExtractConfig(series="KXHIGHNY", route=RouteChoice.EVENT)
    lines = dry_run_lines([_planned(2, 4)], cfg)
    assert lines[0].endswith("6 markets  ~4 requests (2 live, 2 historical)")
    assert lines[-1].startswith("plan: 1 events, ~4 candle requests at 5 req/s ≈ 0.8s")
    assert lines[-1].endswith("2 live, 2 historical)")
