"""Reading stored candles back for backtests: a market's range, and as-of book snapshots.

Everything here returns ``polars.DataFrame`` frames whose money and count columns are
``pl.Decimal`` with the table's scale, so a value read back is exactly the string Kalshi
sent (never a float). The I/O is one SELECT per call; the as-of policy itself is the pure
:func:`asof_join`, tested without a database.

As-of policy (no look-ahead): a candle covers the period ``(end - period, end]`` and its
*close* is the quote at ``end``. A snapshot at ``t`` therefore takes, per market, the close
of the latest candle whose ``end_period_ts_utc <= t``. The open of that candle would be
older information, and any candle ending after ``t`` holds quotes from the future. A
market with no candle in ``[t - lookback, t]`` gets nulls rather than an arbitrarily old
quote.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import Engine, Select, select
from sqlalchemy.exc import SQLAlchemyError

# The loader's frame schema is the read schema too: what load writes, query returns.
from load.access.stream import read_frame
from load.normalize.pages import CANDLE_SCHEMA, TIME_DTYPE
from schemas.archive import parse_utc_iso
from schemas.db import translate_db_error
from schemas.errors import InputError
from schemas.tables import kalshi_candle, kalshi_market
from schemas.tickers import validate_event_ticker, validate_market_ticker

CANDLE_INDEX = "ix_candle_market_period_time"
DEFAULT_LOOKBACK = timedelta(days=1)
"""How far back an as-of snapshot looks for a candle before it reports the market empty."""


#: Columns of an as-of snapshot frame, in order.
ASOF_COLUMNS = (
    "market_ticker",
    "asof_ts",
    "candle_end_ts",
    "yes_bid",
    "yes_ask",
    "staleness_s",
)

_c = kalshi_candle.c


def parse_time(value: str, what: str, *, whole_day: bool = False) -> datetime:
    """An ISO-8601 date or date-time as aware UTC (no offset means UTC); InputError if bad.

    A bare date is its midnight, unless ``whole_day``: then it is the day's last
    microsecond, so an inclusive range END named by a date (``query --to 2025-11-21``)
    holds every candle ending on that day instead of stopping at its first instant.
    """
    text = value.strip()
    try:
        ts = parse_utc_iso(text)
    except ValueError as e:
        raise InputError(
            f"{what} {value!r} is not an ISO-8601 time (like 2025-11-20T14:30:00Z)"
        ) from e
    if whole_day and _is_bare_date(text):
        ts += timedelta(days=1, microseconds=-1)
    return ts


def _is_bare_date(text: str) -> bool:
    """True for a date without a time (``2025-11-21``, or ``20251121``)."""
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _aware(ts: datetime, what: str) -> datetime:
    if ts.tzinfo is None:
        raise InputError(f"{what} {ts.isoformat()} has no time zone: pass aware UTC times")
    return ts.astimezone(UTC)


def check_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Both bounds aware UTC and ``start <= end``, else InputError."""
    start, end = _aware(start, "--from"), _aware(end, "--to")
    if start > end:
        raise InputError(f"--from {start.isoformat()} is after --to {end.isoformat()}")
    return start, end


def read_candles(engine: Engine, stmt: Select[Any], what: str) -> pl.DataFrame:
    """Run a SELECT of all kalshi_candle columns and return a CANDLE_SCHEMA frame.

    Through :func:`load.access.stream.read_frame`: no Python object per value.
    """
    return read_frame(engine, stmt, CANDLE_SCHEMA, what)


def market_range_stmt(
    market_ticker: str, start: datetime, end: datetime, period: int = 1
) -> Select[Any]:
    """The SELECT behind :func:`query_candles`: equality on (market, period), range on time.

    That is exactly the prefix of ``ix_candle_market_period_time``. On MySQL/MariaDB the
    index is named in a hint because with a single period stored the optimizer may find the
    clustered primary key (market, time, period) about as cheap and pick it instead; with
    several periods stored only the named index avoids reading the other periods' rows.
    """
    stmt = (
        select(kalshi_candle)
        .where(
            _c.market_ticker == market_ticker,
            _c.period_interval_minutes == period,
            _c.end_period_ts_utc >= start,
            _c.end_period_ts_utc <= end,
        )
        .order_by(_c.end_period_ts_utc)
    )
    hint = f"FORCE INDEX ({CANDLE_INDEX})"
    return stmt.with_hint(kalshi_candle, hint, dialect_name="mysql").with_hint(
        kalshi_candle, hint, dialect_name="mariadb"
    )


def query_candles(
    engine: Engine, market_ticker: str, start: datetime, end: datetime, period: int = 1
) -> pl.DataFrame:
    """A market's candles with ``start <= end_period_ts_utc <= end``, oldest first.

    Raises InputError for a malformed ticker or a range whose start is after its end.
    """
    validate_market_ticker(market_ticker)
    start, end = check_range(start, end)
    return read_candles(engine, market_range_stmt(market_ticker, start, end, period), "query")


def event_candles_stmt(
    event_ticker: str, start: datetime | None, end: datetime | None, period: int
) -> Select[Any]:
    """All candles of an event's markets (optionally in a time range), by market then time.

    ``kalshi_candle`` has no index on ``event_ticker``; market tickers start with the event
    ticker and a dash, so the prefix condition turns into a range scan of the key's first
    column and the event_ticker condition only filters what that range returns.
    """
    stmt = select(kalshi_candle).where(
        _c.market_ticker.startswith(f"{event_ticker}-", autoescape=True),
        _c.event_ticker == event_ticker,
        _c.period_interval_minutes == period,
    )
    if start is not None:
        stmt = stmt.where(_c.end_period_ts_utc >= start)
    if end is not None:
        stmt = stmt.where(_c.end_period_ts_utc <= end)
    return stmt.order_by(_c.market_ticker, _c.end_period_ts_utc)


def event_market_tickers(engine: Engine, event_ticker: str) -> list[str]:
    """The event's markets known to ``kalshi_market`` (may be empty)."""
    m = kalshi_market.c
    stmt = select(m.market_ticker).where(m.event_ticker == event_ticker).order_by(m.market_ticker)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(stmt)]
    except SQLAlchemyError as e:
        url = engine.url.render_as_string(hide_password=False)
        raise translate_db_error(e, url, "reading markets") from e


def asof_join(
    candles: pl.DataFrame,
    market_tickers: Sequence[str],
    timestamps: Sequence[datetime],
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> pl.DataFrame:
    """Pure as-of policy: per (market, timestamp) the close of the last candle at or before it.

    ``candles`` needs ``market_ticker``, ``end_period_ts_utc``, ``yes_bid_close`` and
    ``yes_ask_close``. Every market of ``market_tickers`` and of ``candles`` gets a row per
    timestamp; with no candle in ``[t - lookback, t]`` its quote columns are null. The
    result has :data:`ASOF_COLUMNS`, sorted by time then market.
    """
    times = sorted({_aware(t, "timestamp") for t in timestamps})
    markets = sorted(set(market_tickers) | set(candles["market_ticker"].unique().to_list()))
    grid = (
        pl.DataFrame({"market_ticker": markets}, schema={"market_ticker": pl.String()})
        .join(pl.DataFrame({"asof_ts": times}, schema={"asof_ts": TIME_DTYPE}), how="cross")
        .sort("asof_ts", "market_ticker")
    )
    right = (
        candles.select(
            "market_ticker",
            pl.col("end_period_ts_utc").cast(TIME_DTYPE).alias("candle_end_ts"),
            pl.col("yes_bid_close").alias("yes_bid"),
            pl.col("yes_ask_close").alias("yes_ask"),
        )
        .unique(subset=["market_ticker", "candle_end_ts"], keep="last")
        .sort("candle_end_ts", "market_ticker")
    )
    joined = grid.join_asof(
        right,
        left_on="asof_ts",
        right_on="candle_end_ts",
        by="market_ticker",
        strategy="backward",
        tolerance=lookback,
        # Both sides are sorted by time just above; Polars cannot check that per `by`
        # group and would warn on every call.
        check_sortedness=False,
    )
    return joined.with_columns(
        (pl.col("asof_ts") - pl.col("candle_end_ts")).dt.total_seconds().alias("staleness_s")
    ).select(ASOF_COLUMNS)


def asof_snapshots(
    engine: Engine,
    event_ticker: str,
    timestamps: Sequence[datetime],
    period: int = 1,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> pl.DataFrame:
    """Top of book (yes bid/ask close) of every market of an event at each timestamp.

    One query reads the event's candles over ``[min(ts) - lookback, max(ts)]``; the
    snapshots are then a backward ``join_asof`` in Polars (see :func:`asof_join`), never a
    query per timestamp.
    """
    validate_event_ticker(event_ticker)
    if not timestamps:
        raise InputError("give at least one timestamp (--at)")
    times = [_aware(t, "timestamp") for t in timestamps]
    stmt = event_candles_stmt(event_ticker, min(times) - lookback, max(times), period)
    candles = read_candles(engine, stmt, "as-of read")
    markets = event_market_tickers(engine, event_ticker)
    return asof_join(candles, markets, times, lookback)
