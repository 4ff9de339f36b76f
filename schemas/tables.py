"""SQLAlchemy Core definitions of every table, valid on SQLite, MariaDB 10.11 and MySQL 8.

Money and counts are exact decimals: ``DECIMAL`` on MySQL/MariaDB, canonical decimal TEXT
on SQLite (whose NUMERIC affinity would silently turn them into floats). Times are stored
as naive UTC ``DATETIME`` and come back as timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

metadata = MetaData()

PRICE_PRECISION, PRICE_SCALE = 10, 6
COUNT_PRECISION, COUNT_SCALE = 18, 2


class ExactDecimal(TypeDecorator[Decimal]):
    """DECIMAL(p, s) everywhere; on SQLite a fixed-scale string so no float ever appears."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision=precision, scale=scale, asdecimal=True)
        self.precision = precision
        self.scale = scale
        self._quantum = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(self.precision + 2))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        dec = value if isinstance(value, Decimal) else Decimal(str(value))
        dec = dec.quantize(self._quantum)
        return str(dec) if dialect.name == "sqlite" else dec

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class UtcDateTime(TypeDecorator[datetime]):
    """Naive-UTC DATETIME in the database, timezone-aware UTC in Python.

    ``fsp`` is the MySQL fractional-second precision (0 = whole seconds).
    """

    impl = DateTime
    cache_ok = True

    def __init__(self, fsp: int = 0) -> None:
        super().__init__(timezone=False)
        self.fsp = fsp

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=self.fsp))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass timezone-aware UTC times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        ts: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def Price() -> ExactDecimal:
    """A dollar amount as Kalshi sends it (up to 6 decimal places)."""
    return ExactDecimal(PRICE_PRECISION, PRICE_SCALE)


def Count() -> ExactDecimal:
    """A contract count (2 decimal places: fractional contracts exist)."""
    return ExactDecimal(COUNT_PRECISION, COUNT_SCALE)


kalshi_series = Table(
    "kalshi_series",
    metadata,
    Column("series_ticker", String(32), primary_key=True),
    Column("title", String(255)),
    Column("category", String(64), index=True),
    Column("tags", Text, comment="JSON array of the series' tags"),
    Column("frequency", String(32), comment="as Kalshi words it: daily, hourly, monthly..."),
    Column("settlement_sources", Text, comment="JSON array of {name, url}"),
    Column("last_updated_ts_utc", UtcDateTime(), comment="the series' last_updated_ts"),
    Column("retrieved_at_utc", UtcDateTime(6), nullable=False),
)

kalshi_event = Table(
    "kalshi_event",
    metadata,
    Column("event_ticker", String(64), primary_key=True),
    Column("series_ticker", String(32), nullable=False, index=True),
    Column("title", String(255)),
    Column("sub_title", String(255)),
    Column("category", String(64)),
    Column("strike_date", UtcDateTime()),
    Column("event_date", Date, comment="local date the event is about (from its ticker)"),
    Column("trade_start_utc", UtcDateTime(), comment="as-of trade window start"),
    Column("trade_end_utc", UtcDateTime(), comment="as-of trade window end"),
    Column("updated_at_utc", UtcDateTime(6), nullable=False),
)

kalshi_market = Table(
    "kalshi_market",
    metadata,
    Column("market_ticker", String(96), primary_key=True),
    Column("event_ticker", String(64), nullable=False, index=True),
    Column("series_ticker", String(32), nullable=False),
    Column("open_time_utc", UtcDateTime()),
    Column("close_time_utc", UtcDateTime()),
    Column("expiration_time_utc", UtcDateTime()),
    Column("latest_expiration_time_utc", UtcDateTime()),
    Column("settlement_ts_utc", UtcDateTime()),
    Column("status", String(32)),
    Column("result", String(16)),
    Column("strike_type", String(32)),
    Column("floor_strike", ExactDecimal(18, 6)),
    Column("cap_strike", ExactDecimal(18, 6)),
    Column(
        "is_historical",
        Boolean,
        nullable=False,
        default=False,
        comment="settled before the historical cutoff when last synced",
    ),
    Column("updated_at_utc", UtcDateTime(6), nullable=False),
)

#: Candle value columns in table order; the loader's frames use exactly these names.
CANDLE_PRICE_COLUMNS: tuple[str, ...] = (
    "yes_bid_open", "yes_bid_high", "yes_bid_low", "yes_bid_close",
    "yes_ask_open", "yes_ask_high", "yes_ask_low", "yes_ask_close",
    "price_open", "price_high", "price_low", "price_close",
    "price_mean", "price_previous", "price_min", "price_max",
)  # fmt: skip
CANDLE_COUNT_COLUMNS: tuple[str, ...] = ("volume", "open_interest")
CANDLE_KEY_COLUMNS: tuple[str, ...] = (
    "market_ticker",
    "end_period_ts_utc",
    "period_interval_minutes",
)

kalshi_candle = Table(
    "kalshi_candle",
    metadata,
    Column("market_ticker", String(96), primary_key=True),
    Column("end_period_ts_utc", UtcDateTime(), primary_key=True),
    Column("period_interval_minutes", SmallInteger, primary_key=True, autoincrement=False),
    Column("event_ticker", String(64), nullable=False),
    *(Column(name, Price()) for name in CANDLE_PRICE_COLUMNS),
    *(Column(name, Count()) for name in CANDLE_COUNT_COLUMNS),
    Column("retrieved_at_utc", UtcDateTime(6), nullable=False),
    Index(
        "ix_candle_market_period_time",
        "market_ticker",
        "period_interval_minutes",
        "end_period_ts_utc",
    ),
    mysql_engine="InnoDB",
)

#: Every column of kalshi_candle, in order: the loader's staged frames match it exactly.
CANDLE_COLUMNS: tuple[str, ...] = tuple(c.name for c in kalshi_candle.columns)

kalshi_backfill_checkpoint = Table(
    "kalshi_backfill_checkpoint",
    metadata,
    Column("event_ticker", String(64), primary_key=True),
    Column("period_interval_minutes", SmallInteger, primary_key=True, autoincrement=False),
    Column("window_policy", String(24), primary_key=True),
    Column("series_ticker", String(32), nullable=False, index=True),
    Column("window_start_utc", UtcDateTime(), nullable=False),
    Column("window_end_utc", UtcDateTime(), nullable=False),
    Column(
        "is_final",
        Boolean,
        nullable=False,
        default=True,
        comment="false while the event is open: a later run extends the window",
    ),
    Column("status", String(16), nullable=False),
    Column("resume_cursor_ts", BigInteger, comment="next start_ts extract will request"),
    Column("pages_archived", Integer, nullable=False, default=0),
    Column("requests", Integer, nullable=False, default=0),
    Column("retries", Integer, nullable=False, default=0),
    Column("candles_archived", Integer, nullable=False, default=0),
    Column("rows_loaded", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("lease_owner", String(128)),
    Column("lease_expires_utc", UtcDateTime(6)),
    Column(
        "lease_claimed_utc",
        UtcDateTime(6),
        comment="when lease_owner took the lease (renewals keep it): held since",
    ),
    Column("created_at_utc", UtcDateTime(6), nullable=False),
    Column("updated_at_utc", UtcDateTime(6), nullable=False),
    Column("extracted_at_utc", UtcDateTime(6)),
    Column("loaded_at_utc", UtcDateTime(6)),
)

kalshi_window_stats = Table(
    "kalshi_window_stats",
    metadata,
    Column("event_ticker", String(64), primary_key=True),
    Column("period_interval_minutes", SmallInteger, primary_key=True, autoincrement=False),
    Column("window_policy", String(24), primary_key=True),
    Column("market_ticker", String(96), primary_key=True),
    Column("expected_candles", Integer, nullable=False),
    Column("present_candles", Integer, nullable=False),
    Column("missing_candles", Integer, nullable=False),
    Column("missing_in_maintenance", Integer, nullable=False),
    Column(
        "null_book_candles",
        Integer,
        nullable=False,
        comment="candles whose yes bid or yes ask OHLC is null",
    ),
    Column("computed_at_utc", UtcDateTime(6), nullable=False),
)

# Processes working on one backfill: extractors split the API key's budget among the
# live ones (heartbeat not expired); ``load status`` lists them.
kalshi_worker = Table(
    "kalshi_worker",
    metadata,
    Column("worker_id", String(128), primary_key=True),
    Column("kind", String(16), nullable=False, comment="extract or load"),
    Column("started_at_utc", UtcDateTime(6), nullable=False),
    Column("heartbeat_utc", UtcDateTime(6), nullable=False),
    Column(
        "expires_utc",
        UtcDateTime(6),
        nullable=False,
        comment="counted as live until then (a few missed heartbeats after the last one)",
    ),
)
