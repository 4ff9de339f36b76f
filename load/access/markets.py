"""``series=S/markets.parquet``: what a backtest needs to settle, beside the candles.

``export`` and ``grid --out`` write it into each series' folder, so a backtest joins each
market's outcome (result, settlement time) and terms (strike type, floor and cap strikes,
open, close and expiration times) without the database. It holds every market of the
series the database knows (a few thousand rows a year), not only those of the exported
dates: exports of different ranges into one folder then agree on it, and rewriting it is
atomic like every partition file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from load.access.output import write_parquet_atomic
from load.normalize.pages import TIME_DTYPE
from schemas.db import translate_db_error
from schemas.tables import kalshi_event, kalshi_market
from schemas.tickers import event_date_from_ticker

MARKETS_FILE = "markets.parquet"
STRIKE_DTYPE = pl.Decimal(18, 6)

#: The columns of markets.parquet, in order, with their types.
MARKETS_SCHEMA: dict[str, pl.DataType] = {
    "market_ticker": pl.String(),
    "event_ticker": pl.String(),
    "series_ticker": pl.String(),
    "event_date": pl.Date(),
    "strike_type": pl.String(),
    "floor_strike": STRIKE_DTYPE,
    "cap_strike": STRIKE_DTYPE,
    "open_time_utc": TIME_DTYPE,
    "close_time_utc": TIME_DTYPE,
    "expiration_time_utc": TIME_DTYPE,
    "latest_expiration_time_utc": TIME_DTYPE,
    "status": pl.String(),
    "result": pl.String(),
    "settlement_ts_utc": TIME_DTYPE,
}


def read_markets(engine: Engine, series: Sequence[str]) -> pl.DataFrame:
    """Every market of ``series`` with its event date, by ticker (:data:`MARKETS_SCHEMA`).

    A few thousand rows a year: read through the driver, so every value (an empty
    ``result`` of an open market included) is exactly the stored one. The event date is
    ``kalshi_event.event_date``, else the date in the event ticker (as ``export``).
    """
    m, e = kalshi_market.c, kalshi_event.c
    stmt = (
        select(
            m.market_ticker,
            m.event_ticker,
            m.series_ticker,
            e.event_date,
            m.strike_type,
            m.floor_strike,
            m.cap_strike,
            m.open_time_utc,
            m.close_time_utc,
            m.expiration_time_utc,
            m.latest_expiration_time_utc,
            m.status,
            m.result,
            m.settlement_ts_utc,
        )
        .select_from(kalshi_market.outerjoin(kalshi_event, e.event_ticker == m.event_ticker))
        .where(m.series_ticker.in_(list(series)))
        .order_by(m.market_ticker)
    )
    try:
        with engine.connect() as conn:
            rows = [list(r) for r in conn.execute(stmt)]
    except SQLAlchemyError as err:
        url = engine.url.render_as_string(hide_password=False)
        raise translate_db_error(err, url, "reading markets") from err
    for r in rows:
        if r[3] is None:
            r[3] = event_date_from_ticker(r[1])
    return pl.DataFrame(rows, schema=MARKETS_SCHEMA, orient="row")


def markets_path(out_dir: Path, series_ticker: str) -> Path:
    """Where a series' markets file goes, beside its ``date=`` partitions."""
    return out_dir / f"series={series_ticker}" / MARKETS_FILE


def write_markets(engine: Engine, series_ticker: str, out_dir: Path) -> tuple[Path, int] | None:
    """Write ``series=S/markets.parquet`` atomically; returns the path and its rows (None,
    and no file, when the database knows no market of the series)."""
    frame = read_markets(engine, [series_ticker])
    if frame.is_empty():
        return None
    dest = markets_path(out_dir, series_ticker)
    write_parquet_atomic(frame, dest)
    return dest, frame.height
