"""Shared helpers of the load tests: archives built from the simulator's ground truth.

No tests here. Pages are built from ``World`` in exactly the shape the simulator serves
(the same ``World.candles`` the HTTP handler serializes, cut at whole timestamps by the
aggregate cap and paged by ``adjusted_end_ts`` like the extractor does), so most load
tests do not depend on extract; ``test_load_e2e`` goes through the real extractor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from schemas.archive import (
    KIND_EVENT_CANDLES,
    KIND_HISTORICAL_MARKET_CANDLES,
    LocalArchive,
    Manifest,
    ManifestMarket,
    PageEnvelope,
    WindowKey,
)
from schemas.core import WindowPolicy
from schemas.tables import CANDLE_COUNT_COLUMNS, CANDLE_PRICE_COLUMNS, kalshi_candle
from tests.kalshi_sim import SimConfig, World

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)

Truth = dict[tuple[str, int], tuple[Decimal | None, ...]]


def sim_config(**overrides: Any) -> SimConfig:
    """A small deterministic world: events up to the day before NOW."""
    base: dict[str, Any] = {
        "seed": 7,
        "now": NOW,
        "first_date": date(2025, 11, 17),
        "last_date": date(2026, 1, 19),
        "markets_per_event": 4,
        "candle_cap": 5000,
    }
    base.update(overrides)
    return SimConfig(**base)


@dataclass(frozen=True)
class BuiltWindow:
    manifest: Manifest
    page_paths: tuple[str, ...]
    """Archive-relative paths of the pages, in manifest order."""


def build_window(
    archive: LocalArchive,
    world: World,
    event_ticker: str,
    *,
    period: int = 1,
    policy: WindowPolicy = WindowPolicy.FULL_MARKET_WINDOW,
    retrieved_at: datetime = T0,
    cap: int | None = None,
    historical: Iterable[str] = (),
    end_ts: int | None = None,
) -> BuiltWindow:
    """Archive one event window and write its manifest last.

    Live markets come from capped event pages paged by ``adjusted_end_ts``; the markets
    in ``historical`` from one per-market historical page each (the historical shape).
    """
    ev = world.event_info(event_ticker)
    assert ev is not None, event_ticker
    series = ev.series.ticker
    key = WindowKey(series, event_ticker, period, policy)
    step = period * 60
    start = min(m.open_ts for m in ev.markets)
    natural_end = -(-max(m.close_ts for m in ev.markets) // step) * step
    end = natural_end if end_ts is None else end_ts
    hist = set(historical)
    live = [m for m in ev.markets if m.ticker not in hist]
    cap = world.config.candle_cap if cap is None else cap
    names: list[str] = []
    when = retrieved_at
    cursor = start
    while True:
        lists = [world.candles(m.ticker, period, cursor, end) for m in live]
        body = _capped([m.ticker for m in live], lists, cap, end)
        page = PageEnvelope(
            kind=KIND_EVENT_CANDLES,
            series_ticker=series,
            event_ticker=event_ticker,
            market_ticker=None,
            period_interval=period,
            window_policy=policy,
            path=f"/trade-api/v2/series/{series}/events/{event_ticker}/candlesticks",
            params={"start_ts": cursor, "end_ts": end, "period_interval": period},
            status=200,
            retrieved_at_utc=when,
            body=body,
        )
        rel = key.page_path(cursor)
        archive.write_page(rel, page)
        names.append(rel.removeprefix(key.dir + "/"))
        when += timedelta(seconds=1)
        if body["adjusted_end_ts"] >= end:
            break
        cursor = body["adjusted_end_ts"]
    for m in ev.markets:
        if m.ticker not in hist:
            continue
        page = PageEnvelope(
            kind=KIND_HISTORICAL_MARKET_CANDLES,
            series_ticker=series,
            event_ticker=event_ticker,
            market_ticker=m.ticker,
            period_interval=period,
            window_policy=policy,
            path=f"/trade-api/v2/historical/markets/{m.ticker}/candlesticks",
            params={"start_ts": start, "end_ts": end, "period_interval": period},
            status=200,
            retrieved_at_utc=when,
            body={
                "ticker": m.ticker,
                "candlesticks": world.historical_candles(m.ticker, period, start, end),
            },
        )
        rel = key.page_path(start, m.ticker)
        archive.write_page(rel, page)
        names.append(rel.removeprefix(key.dir + "/"))
        when += timedelta(seconds=1)
    manifest = Manifest(
        key=key,
        window_start_ts=start,
        window_end_ts=end,
        is_final=end >= natural_end,
        markets=tuple(
            ManifestMarket(
                m.ticker, m.open_ts, m.close_ts, "historical" if m.ticker in hist else "live"
            )
            for m in ev.markets
        ),
        pages=tuple(names),
        completed_at_utc=when,
    )
    archive.write_manifest(manifest)
    return BuiltWindow(manifest, tuple(f"{key.dir}/{n}" for n in names))


def _capped(
    tickers: Sequence[str], lists: list[list[dict[str, Any]]], cap: int, end: int
) -> dict[str, Any]:
    """The event page as the server cuts it: whole timestamps while the total <= cap."""
    counts: dict[int, int] = {}
    for cs in lists:
        for c in cs:
            counts[c["end_period_ts"]] = counts.get(c["end_period_ts"], 0) + 1
    if sum(counts.values()) <= cap:
        return {
            "market_tickers": list(tickers),
            "market_candlesticks": lists,
            "adjusted_end_ts": end,
        }
    kept, last = 0, min(counts)
    for ts in sorted(counts):
        if kept + counts[ts] > cap:
            break
        kept += counts[ts]
        last = ts
    return {
        "market_tickers": list(tickers),
        "market_candlesticks": [[c for c in cs if c["end_period_ts"] <= last] for cs in lists],
        "adjusted_end_ts": last,
    }


def new_archive(root: Path) -> LocalArchive:
    archive = LocalArchive(root)
    archive.ensure_writable()
    return archive


def closed_events(world: World, series: str, n: int) -> list[str]:
    """The ``n`` newest events of ``series`` whose markets all closed before now."""
    out = []
    for t in world.event_tickers(series):
        ev = world.event_info(t)
        assert ev is not None
        if max(m.close_ts for m in ev.markets) < world.now_ts:
            out.append(t)
        if len(out) == n:
            break
    return out


def _dec(v: Any) -> Decimal | None:
    return None if v is None else Decimal(v)


def truth_row(c: dict[str, Any]) -> tuple[Decimal | None, ...]:
    """A live-shape candle as the exact values kalshi_candle must hold (None = NULL)."""
    out: list[Decimal | None] = []
    for col in CANDLE_PRICE_COLUMNS:
        struct, _, field = col.rpartition("_")
        out.append(_dec(c[struct].get(f"{field}_dollars")))
    out.append(_dec(c["volume_fp"]))
    out.append(_dec(c["open_interest_fp"]))
    return tuple(out)


def ground_truth(world: World, events: Iterable[str], period: int = 1) -> Truth:
    """Every candle of the events' markets, keyed by (market, end_period_ts)."""
    truth: Truth = {}
    for et in events:
        ev = world.event_info(et)
        assert ev is not None
        for m in ev.markets:
            for c in world.candles(m.ticker, period):
                truth[(m.ticker, c["end_period_ts"])] = truth_row(c)
    return truth


def stored(engine: Engine) -> Truth:
    """Every kalshi_candle row as (market, ts) → exact values (NULLs as None)."""
    t = kalshi_candle.c
    values = [t[n] for n in (*CANDLE_PRICE_COLUMNS, *CANDLE_COUNT_COLUMNS)]
    with engine.connect() as conn:
        rows = conn.execute(select(t.market_ticker, t.end_period_ts_utc, *values)).all()
    return {(r[0], int(r[1].timestamp())): tuple(r[2:]) for r in rows}


def full_rows(engine: Engine) -> list[str]:
    """Every column of every kalshi_candle row, rendered as text by the database itself
    (fast, and exact for comparing one database with itself; NULL shows as ``~``)."""
    mysql = engine.dialect.name in ("mysql", "mariadb")
    cols = [
        f"COALESCE(CAST({c.name} AS {'CHAR' if mysql else 'TEXT'}), '~')"
        for c in kalshi_candle.columns
    ]
    row = f"CONCAT_WS('|', {', '.join(cols)})" if mysql else " || '|' || ".join(cols)
    keys = "market_ticker, end_period_ts_utc, period_interval_minutes"
    with engine.connect() as conn:
        return list(
            conn.exec_driver_sql(f"SELECT {row} FROM kalshi_candle ORDER BY {keys}").scalars()
        )
