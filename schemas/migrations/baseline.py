"""The tables as they stood when Alembic arrived: a frozen copy, never edited.

Revision ``0001_baseline`` creates exactly these, and a database made before Alembic
existed (tables present, no version table) is recognised by comparing its tables
and columns with them. Later schema changes go into ``schemas/tables.py`` AND a new
revision; this file stays as it is, so the baseline keeps meaning the same thing.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

from schemas.tables import ExactDecimal, UtcDateTime

_PRICES = (
    "yes_bid_open", "yes_bid_high", "yes_bid_low", "yes_bid_close",
    "yes_ask_open", "yes_ask_high", "yes_ask_low", "yes_ask_close",
    "price_open", "price_high", "price_low", "price_close",
    "price_mean", "price_previous", "price_min", "price_max",
)  # fmt: skip


def baseline_metadata() -> MetaData:
    """A new MetaData holding the seven baseline tables."""
    md = MetaData()
    Table(
        "kalshi_event",
        md,
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
    Table(
        "kalshi_market",
        md,
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
    Table(
        "kalshi_candle",
        md,
        Column("market_ticker", String(96), primary_key=True),
        Column("end_period_ts_utc", UtcDateTime(), primary_key=True),
        Column("period_interval_minutes", SmallInteger, primary_key=True, autoincrement=False),
        Column("event_ticker", String(64), nullable=False),
        *(Column(name, ExactDecimal(10, 6)) for name in _PRICES),
        *(Column(name, ExactDecimal(18, 2)) for name in ("volume", "open_interest")),
        Column("retrieved_at_utc", UtcDateTime(6), nullable=False),
        Index(
            "ix_candle_market_period_time",
            "market_ticker",
            "period_interval_minutes",
            "end_period_ts_utc",
        ),
        mysql_engine="InnoDB",
    )
    Table(
        "kalshi_backfill_checkpoint",
        md,
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
    Table(
        "kalshi_window_stats",
        md,
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
    Table(
        "kalshi_worker",
        md,
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
    return md
