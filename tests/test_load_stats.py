"""Missing-minute statistics (pure Polars), including the maintenance pause across DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from load.normalize.pages import CANDLE_SCHEMA, empty_candles
from load.normalize.stats import compute_stats
from schemas.archive import ManifestMarket
from schemas.core import WindowPolicy
from schemas.tables import CANDLE_PRICE_COLUMNS
from tests.kalshi_sim.candles import maintenance_mask

NY = ZoneInfo("America/New_York")
MARKET = "KXHIGHNY-25NOV06-T52"


def ts(dt: datetime) -> int:
    return int(dt.timestamp())


def frame(rows: list[tuple[str, int, bool]], period: int = 1) -> pl.DataFrame:
    """Candles (market, end_period_ts, book_is_null) with every other value set."""
    if not rows:
        return empty_candles()
    data = {
        "market_ticker": [r[0] for r in rows],
        "end_period_ts_utc": [datetime.fromtimestamp(r[1], UTC) for r in rows],
        "period_interval_minutes": [period] * len(rows),
        "event_ticker": [r[0].rsplit("-", 1)[0] for r in rows],
        **{
            c: [None if (r[2] and c.startswith("yes_bid_low")) else Decimal("0.5") for r in rows]
            for c in CANDLE_PRICE_COLUMNS
        },
        "volume": [Decimal("1")] * len(rows),
        "open_interest": [Decimal("1")] * len(rows),
        "retrieved_at_utc": [datetime(2026, 1, 1, tzinfo=UTC)] * len(rows),
    }
    return pl.DataFrame(data, schema=CANDLE_SCHEMA)


def stats(
    candles: pl.DataFrame, markets: list[ManifestMarket], start: int, end: int, period: int = 1
) -> dict[str, dict[str, int]]:
    out = compute_stats(
        candles,
        markets,
        event_ticker="KXHIGHNY-25NOV06",
        period_minutes=period,
        window_policy=WindowPolicy.FULL_MARKET_WINDOW,
        window_start_ts=start,
        window_end_ts=end,
    )
    assert set(out["window_policy"].to_list()) == {"FULL_MARKET_WINDOW"}
    return {r["market_ticker"]: r for r in out.iter_rows(named=True)}


def test_grid_counts_open_exclusive_close_inclusive_and_window_clipped() -> None:
    open_ts = ts(datetime(2025, 11, 3, 15, 0, 30, tzinfo=UTC))  # not on the grid
    close_ts = open_ts - 30 + 10 * 60  # 15:10:00
    m = ManifestMarket(MARKET, open_ts, close_ts)
    grid = [open_ts - 30 + 60 * i for i in range(1, 11)]  # 15:01 .. 15:10
    have = [(MARKET, t, False) for t in grid if t not in (grid[2], grid[5])]
    have.append((MARKET, grid[3], True))  # a null-book candle (counted once, deduped)
    have.append((MARKET, grid[0] - 60, False))  # before open: not on the grid
    s = stats(frame(have), [m], open_ts - 3600, close_ts + 3600)[MARKET]
    assert s["expected_candles"] == 10
    assert s["present_candles"] == 8
    assert s["missing_candles"] == 2
    assert s["missing_in_maintenance"] == 0  # a Monday
    assert s["null_book_candles"] == 1
    # The window cuts the grid: only 15:04 .. 15:07 count.
    s = stats(frame(have), [m], grid[3], grid[6])[MARKET]
    assert (s["expected_candles"], s["present_candles"], s["missing_candles"]) == (4, 3, 1)


def test_market_without_candles_and_unknown_markets() -> None:
    a = ManifestMarket(MARKET, 0, 600)
    b = ManifestMarket("KXHIGHNY-25NOV06-B50.5", 0, 600)
    out = stats(frame([(MARKET, 60, False), ("KXHIGHNY-25NOV06-X", 120, False)]), [a, b], 0, 600)
    assert set(out) == {MARKET, "KXHIGHNY-25NOV06-B50.5"}
    assert out["KXHIGHNY-25NOV06-B50.5"]["missing_candles"] == 10
    assert out[MARKET]["present_candles"] == 1
    assert stats(empty_candles(), [a], 0, 600)[MARKET]["missing_candles"] == 10


def _maintenance_utc(day: datetime) -> tuple[int, int]:
    start = datetime(day.year, day.month, day.day, 3, tzinfo=NY)
    return ts(start), ts(start + timedelta(hours=2))


def test_maintenance_minutes_follow_new_york_time_across_dst() -> None:
    # US DST ended Sunday 2025-11-02: Thursday Oct 30 is EDT (UTC-4), Nov 6 is EST (UTC-5).
    before, after = datetime(2025, 10, 30), datetime(2025, 11, 6)
    assert _maintenance_utc(before)[0] == ts(datetime(2025, 10, 30, 7, tzinfo=UTC))
    assert _maintenance_utc(after)[0] == ts(datetime(2025, 11, 6, 8, tzinfo=UTC))
    open_ts = ts(datetime(2025, 10, 29, 0, tzinfo=UTC))
    close_ts = ts(datetime(2025, 11, 7, 0, tzinfo=UTC))
    m = ManifestMarket(MARKET, open_ts, close_ts)
    # Candles everywhere except 06:00-11:00 UTC on both Thursdays (5 hours each).
    grid = np.arange(open_ts + 60, close_ts + 1, 60)
    holes = np.zeros(grid.shape, dtype=bool)
    for day in (before, after):
        lo = ts(datetime(day.year, day.month, day.day, 6, tzinfo=UTC))
        holes |= (grid > lo) & (grid <= lo + 5 * 3600)
    candles = frame([(MARKET, int(t), False) for t in grid[~holes]])
    s = stats(candles, [m], open_ts, close_ts)[MARKET]
    assert s["expected_candles"] == len(grid)
    assert s["missing_candles"] == 2 * 300
    # A minute is "in maintenance" when it STARTS in [03:00, 05:00) New York time.
    assert s["missing_in_maintenance"] == 2 * 120
    # Independent check: the simulator's zoneinfo-based mask agrees minute by minute.
    assert int(maintenance_mask(grid[holes]).sum()) == 2 * 120


def test_maintenance_across_spring_forward_and_hourly_periods() -> None:
    # DST began Sunday 2026-03-08: Thursday Mar 5 is EST (08:00 UTC), Mar 12 EDT (07:00).
    open_ts = ts(datetime(2026, 3, 4, 0, tzinfo=UTC))
    close_ts = ts(datetime(2026, 3, 13, 0, tzinfo=UTC))
    m = ManifestMarket(MARKET, open_ts, close_ts)
    s = stats(empty_candles(), [m], open_ts, close_ts)[MARKET]
    assert s["missing_candles"] == s["expected_candles"] == 9 * 1440
    assert s["missing_in_maintenance"] == 2 * 120
    hourly = stats(empty_candles(), [m], open_ts, close_ts, period=60)[MARKET]
    assert hourly["expected_candles"] == 9 * 24
    assert hourly["missing_in_maintenance"] == 2 * 2  # the hours starting 03:00 and 04:00
    # A candle inside the pause is present, so it is not "missing in maintenance".
    in_pause = ts(datetime(2026, 3, 12, 7, 30, tzinfo=UTC))
    s = stats(frame([(MARKET, in_pause, False)]), [m], open_ts, close_ts)[MARKET]
    assert s["missing_in_maintenance"] == 2 * 120 - 1


def test_close_off_the_period_grid_counts_the_period_holding_it() -> None:
    # Hand truth: open Mon 2025-11-03 10:00, close Tue 23:59 UTC. Hourly periods end at
    # 11:00 .. 24:00 on Monday (14) and 01:00 .. 24:00 on Tuesday (24): 38 candles, the
    # last one (ending Wed 00:00) holds the close. Daily: Tue 00:00 and Wed 00:00.
    open_ts = ts(datetime(2025, 11, 3, 10, 0, tzinfo=UTC))
    close_ts = ts(datetime(2025, 11, 4, 23, 59, tzinfo=UTC))
    end = ts(datetime(2025, 11, 5, tzinfo=UTC))  # the final window's end, rounded up
    m = ManifestMarket(MARKET, open_ts, close_ts)
    hourly = [open_ts + 3600 * i for i in range(1, 39)]
    assert hourly[-1] == end
    s = stats(frame([(MARKET, t, False) for t in hourly], 60), [m], open_ts, end, 60)[MARKET]
    assert (s["expected_candles"], s["present_candles"], s["missing_candles"]) == (38, 38, 0)
    daily = [end - 86400, end]
    s = stats(frame([(MARKET, daily[0], False)], 1440), [m], open_ts, end, 1440)[MARKET]
    assert (s["expected_candles"], s["present_candles"], s["missing_candles"]) == (2, 1, 1)
    # An open window (not final) ending at 23:59 expects no candle for the hour still
    # forming: Tuesday 23:00 is the last period that has ended.
    s = stats(frame([], 60), [m], open_ts, close_ts, 60)[MARKET]
    assert s["expected_candles"] == 37
