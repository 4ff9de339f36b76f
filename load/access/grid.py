"""The book at every period: what a backtest steps through, with no look-ahead.

Real candles are sparse (a minute has one only when something traded or a quote moved),
so a backtest needs the book at each period it steps through, not the candles as stored.
:func:`grid_frame` (pure Polars, no I/O) gives one row per market and per period of the
market's life, from the first period after its open to the period holding its close
(the statistics' rule, :func:`load.normalize.stats.first_period_end` /
:func:`load.normalize.stats.last_period_end`), with :data:`GRID_SCHEMA`:

- ``end_period_ts_utc`` (``t``): the period's end;
- ``yes_bid``, ``yes_ask``: the closes of the last candle ending at or before ``t`` (the
  :mod:`load.access.query` as-of rule), both from that one candle. A candle whose bid or
  ask close is null gives null there from its period until the next candle, never an
  older quote; before the market's first candle both are null;
- ``book_end_ts``: the end of that candle; ``staleness_s``: ``t`` minus it, in seconds;
- ``has_candle``: this period has its own candle; ``volume``: its volume (0 without);
- ``open_interest``: the last candle's, carried forward;
- ``price_close``: the period's trade close, when the period has a candle that traded.

Prices and counts stay ``pl.Decimal`` (never floats). The grid is a backward
``join_asof`` per market, computed one event at a time, so memory stays at one event's
periods whatever the range; :mod:`load.access.gridout` reads and writes it.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import Select, select

from load.normalize.pages import CANDLE_SCHEMA, TIME_DTYPE
from load.normalize.stats import first_period_end, last_period_end
from schemas.tables import kalshi_candle

#: The columns of a grid frame, in order, with their types.
GRID_SCHEMA: dict[str, pl.DataType] = {
    "market_ticker": pl.String(),
    "event_ticker": pl.String(),
    "end_period_ts_utc": TIME_DTYPE,
    "yes_bid": CANDLE_SCHEMA["yes_bid_close"],
    "yes_ask": CANDLE_SCHEMA["yes_ask_close"],
    "book_end_ts": TIME_DTYPE,
    "staleness_s": pl.Int64(),
    "has_candle": pl.Boolean(),
    "volume": CANDLE_SCHEMA["volume"],
    "open_interest": CANDLE_SCHEMA["open_interest"],
    "price_close": CANDLE_SCHEMA["price_close"],
}

#: The candle columns the grid needs, with their types (what :func:`grid_candles_stmt` reads).
GRID_CANDLE_SCHEMA: dict[str, pl.DataType] = {
    name: CANDLE_SCHEMA[name]
    for name in (
        "market_ticker",
        "end_period_ts_utc",
        "yes_bid_close",
        "yes_ask_close",
        "price_close",
        "volume",
        "open_interest",
    )
}

#: A market's life for the grid: unix seconds of its open and close.
SPAN_SCHEMA: dict[str, pl.DataType] = {
    "market_ticker": pl.String(),
    "open_ts": pl.Int64(),
    "close_ts": pl.Int64(),
}

_c = kalshi_candle.c


def grid_candles_stmt(event_ticker: str, period: int) -> Select[Any]:
    """The event's candles, only the grid's columns, by market then time.

    The market-key prefix is a range scan of the primary key (see
    :func:`load.access.query.event_candles_stmt`).
    """
    return (
        select(*(_c[name] for name in GRID_CANDLE_SCHEMA))
        .where(
            _c.market_ticker.startswith(f"{event_ticker}-", autoescape=True),
            _c.event_ticker == event_ticker,
            _c.period_interval_minutes == period,
        )
        .order_by(_c.market_ticker, _c.end_period_ts_utc)
    )


def grid_frame(
    candles: pl.DataFrame, spans: pl.DataFrame, event_ticker: str, period: int
) -> pl.DataFrame:
    """The book of each market of ``spans`` at every period of its life (pure).

    ``candles`` has the columns of :data:`GRID_CANDLE_SCHEMA` (any order of rows);
    ``spans`` those of :data:`SPAN_SCHEMA`. A market with candles but no span (not in
    ``kalshi_market``) runs from its first candle's period to its last. Rows are sorted
    by market, then time.
    """
    step = period * 60
    candles = candles.select(list(GRID_CANDLE_SCHEMA)).cast(pl.Schema(GRID_CANDLE_SCHEMA))
    have = candles.select("market_ticker", ts=pl.col("end_period_ts_utc").dt.epoch("s")).unique(
        subset=["market_ticker", "ts"]
    )
    unknown = (
        have.join(spans.select("market_ticker"), on="market_ticker", how="anti")
        .group_by("market_ticker")
        .agg(open_ts=pl.col("ts").min() - step, close_ts=pl.col("ts").max())
    )
    parts = [spans.select(list(SPAN_SCHEMA)), unknown.select(list(SPAN_SCHEMA))]
    bounds = pl.concat(parts).cast(pl.Schema(SPAN_SCHEMA))
    grid = (
        bounds.select(
            "market_ticker",
            ts=pl.int_ranges(
                first_period_end(pl.col("open_ts"), step),
                last_period_end(pl.col("close_ts"), step) + step,
                step,
                dtype=pl.Int64,
            ),
        )
        .explode("ts", empty_as_null=False)
        .drop_nulls("ts")
        .select(
            "market_ticker",
            end_period_ts_utc=pl.from_epoch("ts", time_unit="s").cast(TIME_DTYPE),
        )
        .sort("end_period_ts_utc", "market_ticker")
    )
    book = (
        candles.select(
            "market_ticker",
            book_end_ts="end_period_ts_utc",
            yes_bid="yes_bid_close",
            yes_ask="yes_ask_close",
            open_interest="open_interest",
        )
        .unique(subset=["market_ticker", "book_end_ts"], keep="last")
        .sort("book_end_ts", "market_ticker")
    )
    own = candles.select(
        "market_ticker",
        "end_period_ts_utc",
        "volume",
        "price_close",
        has_candle=pl.lit(True),
    ).unique(subset=["market_ticker", "end_period_ts_utc"], keep="last")
    joined = grid.join_asof(
        book,
        left_on="end_period_ts_utc",
        right_on="book_end_ts",
        by="market_ticker",
        strategy="backward",
        # Both sides are sorted by time just above; Polars cannot check that per `by`
        # group and would warn on every call.
        check_sortedness=False,
    ).join(own, on=["market_ticker", "end_period_ts_utc"], how="left")
    return (
        joined.select(
            "market_ticker",
            event_ticker=pl.lit(event_ticker, pl.String),
            end_period_ts_utc="end_period_ts_utc",
            yes_bid="yes_bid",
            yes_ask="yes_ask",
            book_end_ts="book_end_ts",
            staleness_s=(pl.col("end_period_ts_utc") - pl.col("book_end_ts")).dt.total_seconds(),
            has_candle=pl.col("has_candle").fill_null(False),
            volume=pl.col("volume").fill_null(pl.lit(0).cast(GRID_SCHEMA["volume"])),
            open_interest="open_interest",
            price_close="price_close",
        )
        .cast(pl.Schema(GRID_SCHEMA))
        .sort("market_ticker", "end_period_ts_utc")
    )
