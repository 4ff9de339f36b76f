"""Reading the book grid (:mod:`load.access.grid`) from the database, and writing it out.

:func:`book_grid` answers one market, one event or the events of several series dated in
a range, as one frame; :func:`iter_grid_days` yields it one event date at a time, and
:func:`write_grid` writes those days as Hive partitions beside each series'
``markets.parquet``, exactly the layout of ``export`` (:mod:`load.access.export`), so
memory stays at one day's periods over any range. Each event costs two queries: its
candles (only the grid's columns, streamed as text: :mod:`load.access.stream`) and, once
per series, the markets' open and close times.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Engine, select

from load.access.export import (
    ExportedPart,
    ExportResult,
    events_by_date,
    partition_path,
)
from load.access.grid import (
    GRID_CANDLE_SCHEMA,
    GRID_SCHEMA,
    SPAN_SCHEMA,
    grid_candles_stmt,
    grid_frame,
)
from load.access.markets import write_markets
from load.access.output import check_out_dir, write_parquet_atomic
from load.access.query import check_range
from load.access.selection import series_tuple
from load.access.stream import read_ahead, read_frame
from schemas.checkpoints import dt_to_ts
from schemas.db import fetch_all
from schemas.errors import InputError
from schemas.tables import kalshi_candle, kalshi_event, kalshi_market
from schemas.tickers import validate_event_ticker, validate_market_ticker

_c, _m = kalshi_candle.c, kalshi_market.c
_FIRST, _LAST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class GridDay:
    """The grid of one series' events of one event date."""

    series_ticker: str
    event_date: date
    events: tuple[str, ...]
    frame: pl.DataFrame


def market_spans(engine: Engine, where: Any) -> pl.DataFrame:
    """(market, event, open, close) of the ``kalshi_market`` rows matching ``where``; a
    market without both times is left out (the grid bounds it by its candles)."""
    stmt = select(_m.market_ticker, _m.event_ticker, _m.open_time_utc, _m.close_time_utc)
    rows = [
        (t, e, dt_to_ts(o), dt_to_ts(c))
        for t, e, o, c in fetch_all(engine, stmt.where(where), "reading markets")
        if o is not None and c is not None
    ]
    schema = {"event_ticker": pl.String(), **SPAN_SCHEMA}
    return pl.DataFrame([(e, t, o, c) for t, e, o, c in rows], schema=schema, orient="row").sort(
        "market_ticker"
    )


def event_grid(
    engine: Engine,
    event_ticker: str,
    spans: pl.DataFrame,
    period: int = 1,
    market_ticker: str | None = None,
) -> pl.DataFrame:
    """The grid of one event (or of one of its markets), ``spans`` its markets' lives."""
    stmt = grid_candles_stmt(event_ticker, period)
    own = spans.filter(pl.col("event_ticker") == event_ticker)
    if market_ticker is not None:
        stmt = stmt.where(_c.market_ticker == market_ticker)
        own = own.filter(pl.col("market_ticker") == market_ticker)
    candles = read_frame(engine, stmt, GRID_CANDLE_SCHEMA, "grid read")
    return grid_frame(candles, own.select(list(SPAN_SCHEMA)), event_ticker, period)


def _event_of_market(engine: Engine, market_ticker: str) -> str:
    """The market's event, from ``kalshi_market`` or else its candles; InputError if
    the database knows neither."""
    found = fetch_all(
        engine, select(_m.event_ticker).where(_m.market_ticker == market_ticker), "reading markets"
    )
    if not found:
        found = fetch_all(
            engine,
            select(_c.event_ticker).where(_c.market_ticker == market_ticker).limit(1),
            "reading candles",
        )
    if not found:
        raise InputError(f"market {market_ticker} is not in the database")
    return str(found[0][0])


def _check_event(engine: Engine, event_ticker: str) -> None:
    """InputError unless ``kalshi_event`` or ``kalshi_market`` knows the event."""
    e = kalshi_event.c
    if fetch_all(
        engine, select(e.event_ticker).where(e.event_ticker == event_ticker), "reading events"
    ):
        return
    market = select(_m.market_ticker).where(_m.event_ticker == event_ticker).limit(1)
    if fetch_all(engine, market, "reading markets"):
        return
    raise InputError(f"event {event_ticker} is not in the database")


def iter_grid_days(
    engine: Engine,
    series: str | Sequence[str],
    date_from: date | None = None,
    date_to: date | None = None,
    period: int = 1,
) -> Iterator[GridDay]:
    """The grid of each series' events dated in [from, to], one event date at a time.

    InputError for a bad series or a range whose start is after its end.
    """
    chosen = series_tuple(series)
    assert chosen is not None
    lo, hi = date_from or date.min, date_to or date.max
    if lo > hi:
        raise InputError(f"--from {lo} is after --to {hi}")
    for series_ticker in chosen:
        spans = market_spans(engine, _m.series_ticker == series_ticker)
        days = events_by_date(engine, series_ticker, lo, hi).items()

        def read(day_events: tuple[date, list[str]], spans: pl.DataFrame = spans) -> pl.DataFrame:
            return pl.concat([event_grid(engine, ev, spans, period) for ev in day_events[1]])

        for (day, events), frame in read_ahead(days, read):
            yield GridDay(series_ticker, day, tuple(events), frame)


def book_grid(
    engine: Engine,
    *,
    market: str | None = None,
    event: str | None = None,
    series: str | Sequence[str] | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    period: int = 1,
) -> pl.DataFrame:
    """The book at every period (:data:`load.access.grid.GRID_SCHEMA`) of one market, one
    event, or the events of ``series`` dated in [``date_from``, ``date_to``].

    ``start`` / ``end`` (aware times) keep the periods ending inside them; the book still
    comes from the candles before ``start``. InputError for a market or event the
    database does not know, or a range whose start is after its end.
    """
    if sum(x is not None for x in (market, event, series)) != 1:
        raise InputError("give exactly one of --market, --event or --series")
    lo, hi = check_range(start or _FIRST, end or _LAST)
    if market is not None:
        validate_market_ticker(market)
        ev = _event_of_market(engine, market)
        spans = market_spans(engine, _m.market_ticker == market)
        frame = event_grid(engine, ev, spans, period, market_ticker=market)
    elif event is not None:
        validate_event_ticker(event)
        _check_event(engine, event)
        frame = event_grid(engine, event, market_spans(engine, _m.event_ticker == event), period)
    else:
        assert series is not None
        days = list(iter_grid_days(engine, series, date_from, date_to, period))
        frames = [d.frame for d in days]
        frame = pl.concat(frames) if frames else pl.DataFrame(schema=GRID_SCHEMA)
    if start is not None or end is not None:
        t = pl.col("end_period_ts_utc")
        frame = frame.filter((t >= lo) & (t <= hi))
    return frame


def write_grid(
    engine: Engine,
    series: str | Sequence[str],
    date_from: date | None,
    date_to: date | None,
    out_dir: str | Path,
    period: int = 1,
) -> ExportResult:
    """The grid of the series' events dated in [from, to] as ``series=S/date=D/part-0.parquet``
    (atomic files, one event date in memory at a time), and each series' markets.parquet."""
    out = check_out_dir(out_dir)
    parts: list[ExportedPart] = []
    markets: list[tuple[Path, int]] = []
    done: list[str] = []
    for day in iter_grid_days(engine, series, date_from, date_to, period):
        if day.series_ticker not in done:
            done.append(day.series_ticker)
            written = write_markets(engine, day.series_ticker, out)
            if written is not None:
                markets.append(written)
        if day.frame.is_empty():
            continue
        dest = partition_path(out, day.series_ticker, day.event_date)
        write_parquet_atomic(day.frame, dest)
        parts.append(
            ExportedPart(day.series_ticker, day.event_date, dest, day.frame.height, day.events)
        )
    return ExportResult(parts, markets)
