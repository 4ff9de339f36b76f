"""Parquet export for research: one file per (series, event date), decimals exact.

Layout (Hive-style, so ``pl.scan_parquet(out, hive_partitioning=True)`` and DuckDB/Spark
read the partition columns from the path)::

    OUT/series=KXHIGHNY/date=2025-11-20/part-0.parquet
    OUT/series=KXHIGHNY/markets.parquet      (every market of the series: load.access.markets)

``date`` is the EVENT date (``kalshi_event.event_date``, else the date in the event
ticker), not the UTC date of each candle: a weather event's candles span two or three UTC
days, and a researcher wants one event in one place. The file holds every
``kalshi_candle`` column; the series and date are in the path only.

The export streams one event date at a time (one query per event, through the market-key
range, read as text and cast by Polars: :mod:`load.access.stream`), the next date read
while this one is written, so memory stays at two days' candles whatever the range. Each
file is written to a temporary name in its folder, fsynced and renamed: a reader sees the
old file or the new one, never half of one, and a killed export leaves no partial
``part-0.parquet``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from load.access.markets import write_markets
from load.access.output import check_out_dir, write_parquet_atomic
from load.access.query import event_candles_stmt, read_candles
from load.access.selection import series_tuple
from load.access.stream import read_ahead
from load.normalize.pages import CANDLE_SCHEMA
from schemas.db import translate_db_error
from schemas.errors import InputError
from schemas.tables import kalshi_event
from schemas.tickers import event_date_from_ticker

PART_NAME = "part-0.parquet"


@dataclass(frozen=True)
class ExportedPart:
    """One written partition file."""

    series_ticker: str
    event_date: date
    path: Path
    rows: int
    events: tuple[str, ...]


def partition_path(out_dir: Path, series_ticker: str, event_date: date) -> Path:
    """Where the partition of one series and event date is written."""
    return out_dir / f"series={series_ticker}" / f"date={event_date.isoformat()}" / PART_NAME


def events_by_date(
    engine: Engine, series_ticker: str, date_from: date, date_to: date
) -> dict[date, list[str]]:
    """The series' event tickers grouped by event date, dates within [from, to], sorted."""
    e = kalshi_event.c
    stmt = select(e.event_ticker, e.event_date).where(e.series_ticker == series_ticker)
    try:
        with engine.connect() as conn:
            rows = conn.execute(stmt).all()
    except SQLAlchemyError as err:
        url = engine.url.render_as_string(hide_password=False)
        raise translate_db_error(err, url, "reading events") from err
    out: dict[date, list[str]] = defaultdict(list)
    for ticker, event_date in rows:
        day = event_date or event_date_from_ticker(ticker)
        if day is not None and date_from <= day <= date_to:
            out[day].append(ticker)
    return {d: sorted(out[d]) for d in sorted(out)}


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote: the partitions, then each series' markets file."""

    parts: list[ExportedPart]
    markets: list[tuple[Path, int]]


def export_series(
    engine: Engine,
    series: str | Sequence[str],
    date_from: date,
    date_to: date,
    out_dir: str | Path,
    period: int = 1,
) -> ExportResult:
    """Export the candles of the series' events dated in [from, to], and each series'
    ``markets.parquet`` (:mod:`load.access.markets`).

    Dates whose events hold no candles get no file (an existing file from an earlier export
    is left alone). InputError for a bad series, a range whose start is after its end, or
    an ``out_dir`` that is a file.
    """
    chosen = series_tuple(series)
    assert chosen is not None
    if date_from > date_to:
        raise InputError(f"--from {date_from} is after --to {date_to}")
    out = check_out_dir(out_dir)
    parts: list[ExportedPart] = []
    markets: list[tuple[Path, int]] = []
    for series_ticker in chosen:
        days = events_by_date(engine, series_ticker, date_from, date_to).items()

        def read(day_events: tuple[date, list[str]]) -> pl.DataFrame:
            frames = [
                read_candles(engine, event_candles_stmt(ev, None, None, period), "export read")
                for ev in day_events[1]
            ]
            return pl.concat(frames) if frames else pl.DataFrame(schema=CANDLE_SCHEMA)

        for (day, events), frame in read_ahead(days, read):
            if frame.is_empty():
                continue
            frame = frame.sort("market_ticker", "end_period_ts_utc")
            dest = partition_path(out, series_ticker, day)
            write_parquet_atomic(frame, dest)
            parts.append(ExportedPart(series_ticker, day, dest, frame.height, tuple(events)))
        written = write_markets(engine, series_ticker, out)
        if written is not None:
            markets.append(written)
    return ExportResult(parts, markets)
