"""Test data for the access commands: the simulator's ground truth written into a database.

The rows are built straight from ``World.candles`` (the exact pages the live API would
serve), independently of the load stage, so the access functions are checked against the
simulator and not against the code that loaded them. ``test_access_e2e`` covers the same
commands on data that went simulator → extract → archive → load.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from schemas.archive import (
    KIND_EVENT_CANDLES,
    LocalArchive,
    Manifest,
    ManifestMarket,
    PageEnvelope,
    WindowKey,
)
from schemas.checkpoints import ts_to_dt
from schemas.core import WindowPolicy
from schemas.db import make_engine
from schemas.tables import kalshi_candle, kalshi_event, kalshi_market, kalshi_window_stats
from schemas.tickers import event_date_from_ticker
from tests.kalshi_sim import SeriesSpec, SimConfig, World
from tests.kalshi_sim.candles import maintenance_mask

SERIES = "KXHIGHNY"
#: 2025-11-20 is a Thursday: its window holds the 03:00-05:00 ET maintenance pause.
EVENTS = ("KXHIGHNY-25NOV19", "KXHIGHNY-25NOV20")
RETRIEVED = datetime(2025, 11, 25, 12, 0, tzinfo=UTC)

CONFIG = SimConfig(
    seed=11,
    series=(SeriesSpec(SERIES, "America/New_York", "New York City"),),
    first_date=date(2025, 11, 18),
    last_date=date(2025, 11, 21),
    now=datetime(2025, 11, 24, tzinfo=UTC),
    markets_per_event=3,
    missing_minute_rate=0.05,
)
WORLD = World(CONFIG)

_BOOK = ("open", "high", "low", "close")
_PRICE = ("open", "high", "low", "close", "mean", "previous", "min", "max")


def dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def candle_row(market: str, event: str, c: dict[str, Any], period: int = 1) -> dict[str, Any]:
    """A live-shape candle as a kalshi_candle row (absent price keys are NULL)."""
    row: dict[str, Any] = {
        "market_ticker": market,
        "end_period_ts_utc": ts_to_dt(c["end_period_ts"]),
        "period_interval_minutes": period,
        "event_ticker": event,
        "volume": dec(c.get("volume_fp")),
        "open_interest": dec(c.get("open_interest_fp")),
        "retrieved_at_utc": RETRIEVED,
    }
    for side in ("yes_bid", "yes_ask"):
        for k in _BOOK:
            row[f"{side}_{k}"] = dec(c[side].get(f"{k}_dollars"))
    for k in _PRICE:
        row[f"price_{k}"] = dec(c["price"].get(f"{k}_dollars"))
    return row


def market_tickers(event: str) -> list[str]:
    return [m.ticker for m in WORLD.market_infos(event)]


def truth_rows(event: str, period: int = 1) -> list[dict[str, Any]]:
    """Every candle of the event's markets as rows, in (market, time) order (fresh dicts)."""
    return [dict(r) for r in _truth_rows(event, period)]


@lru_cache(maxsize=16)
def _truth_rows(event: str, period: int) -> tuple[dict[str, Any], ...]:
    return tuple(
        candle_row(m, event, c, period)
        for m in sorted(market_tickers(event))
        for c in WORLD.candles(m, period)
    )


def window_stats_rows(event: str) -> list[dict[str, Any]]:
    """kalshi_window_stats for 1-minute candles, from the ground truth."""
    out = []
    for m in WORLD.market_infos(event):
        grid = np.arange(m.open_ts - m.open_ts % 60 + 60, m.close_ts + 1, 60, dtype=np.int64)
        present = np.array([c["end_period_ts"] for c in WORLD.candles(m.ticker)], dtype=np.int64)
        missing = grid[~np.isin(grid, present)]
        out.append(
            {
                "event_ticker": event,
                "period_interval_minutes": 1,
                "window_policy": "FULL_MARKET_WINDOW",
                "market_ticker": m.ticker,
                "expected_candles": int(grid.size),
                "present_candles": int(present.size),
                "missing_candles": int(missing.size),
                "missing_in_maintenance": int(maintenance_mask(missing).sum()),
                "null_book_candles": 0,
                "computed_at_utc": RETRIEVED,
            }
        )
    return out


def seed(
    url: str,
    events: Sequence[str] = EVENTS,
    *,
    periods: Iterable[int] = (1,),
    stats: bool = False,
    drop: Sequence[tuple[str, int]] = (),
) -> Engine:
    """Write events, markets and candles (and window stats) of ``events``; returns an engine.

    ``drop`` removes (market, end_ts) candles, to make holes on purpose.
    """
    engine = make_engine(url)
    gone = set(drop)
    with engine.begin() as conn:
        for ev in events:
            conn.execute(
                kalshi_event.insert(),
                [
                    {
                        "event_ticker": ev,
                        "series_ticker": SERIES,
                        "title": f"High in NYC {ev}",
                        "event_date": event_date_from_ticker(ev),
                        "updated_at_utc": RETRIEVED,
                    }
                ],
            )
            conn.execute(
                kalshi_market.insert(),
                [
                    {
                        "market_ticker": m.ticker,
                        "event_ticker": ev,
                        "series_ticker": SERIES,
                        "open_time_utc": ts_to_dt(m.open_ts),
                        "close_time_utc": ts_to_dt(m.close_ts),
                        "status": "finalized",
                        "is_historical": False,
                        "updated_at_utc": RETRIEVED,
                    }
                    for m in WORLD.market_infos(ev)
                ],
            )
            for period in periods:
                rows = [
                    r
                    for r in truth_rows(ev, period)
                    if (r["market_ticker"], int(r["end_period_ts_utc"].timestamp())) not in gone
                ]
                conn.execute(kalshi_candle.insert(), rows)
            if stats:
                conn.execute(kalshi_window_stats.insert(), window_stats_rows(ev))
    return engine


def test_truth_rows_are_exact_decimals() -> None:
    """The helper itself: rows hold Decimals with the API's digits and NULL for absent keys."""
    rows = truth_rows(EVENTS[0])
    assert len(rows) > 3 * 2000
    assert all(isinstance(r["yes_bid_close"], Decimal) for r in rows)
    assert any(r["price_close"] is None for r in rows)  # minutes without trades
    first = WORLD.candles(rows[0]["market_ticker"])[0]
    assert rows[0]["yes_ask_close"] == Decimal(first["yes_ask"]["close_dollars"])


def archive_event(
    root: Path, event: str, *, cap: int = 4000, complete: bool = True
) -> tuple[LocalArchive, WindowKey, list[str]]:
    """Archive an event's 1-minute pages the way extract does (capped pages followed by
    ``adjusted_end_ts``, the boundary candle repeated), manifest last; returns the page
    names (relative to the window folder)."""
    archive = LocalArchive(root)
    archive.ensure_writable()
    infos = WORLD.market_infos(event)
    key = WindowKey(SERIES, event, 1, WindowPolicy.FULL_MARKET_WINDOW)
    start, end = min(m.open_ts for m in infos), max(m.close_ts for m in infos)
    names: list[str] = []
    cursor = start
    while True:
        page = WORLD.event_candles(event, cursor, end, 1, cap)
        params = {"start_ts": cursor, "end_ts": end, "period_interval": 1}
        envelope = PageEnvelope(
            kind=KIND_EVENT_CANDLES,
            series_ticker=SERIES,
            event_ticker=event,
            market_ticker=None,
            period_interval=1,
            window_policy=WindowPolicy.FULL_MARKET_WINDOW,
            path=f"/series/{SERIES}/events/{event}/candlesticks",
            params=params,
            status=200,
            retrieved_at_utc=RETRIEVED + timedelta(seconds=len(names)),
            body=page.as_json(),
        )
        rel = key.page_path(cursor)
        archive.write_page(rel, envelope)
        names.append(rel.rsplit("/", 1)[-1])
        if page.adjusted_end_ts >= end:
            break
        cursor = page.adjusted_end_ts
    if complete:
        archive.write_manifest(
            Manifest(
                key=key,
                window_start_ts=start,
                window_end_ts=end,
                is_final=True,
                markets=tuple(ManifestMarket(m.ticker, m.open_ts, m.close_ts) for m in infos),
                pages=tuple(names),
            )
        )
    return archive, key, names
