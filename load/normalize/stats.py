"""Missing-minute statistics of one window: pure, vectorized Polars, no I/O.

For each market of the window (from its manifest) the expected candles are the
``end_period_ts`` values on the period grid (multiples of period × 60 s) of every period
that overlaps the market's life ``(open_ts, close_ts]`` (:func:`first_period_end`,
:func:`last_period_end`: the period holding an off-grid close counts, as its candle ends
after the close) and that ends in ``[window_start_ts, window_end_ts]`` (an open window's
period still forming has not ended). The coverage picture uses the same two functions.
``present`` counts the distinct candles on that grid, ``missing`` the rest.
``missing_in_maintenance`` counts the missing periods that START inside the weekly pause
(Thursday 03:00–05:00 America/New_York): quiet minutes there are expected. The pause is
found by converting UTC to New York time in Polars, so daylight saving time is handled
by the tz database, never by a fixed offset. ``null_book_candles`` counts candles whose
yes bid or yes ask OHLC has a null.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from schemas.archive import Manifest, ManifestMarket
from schemas.core import WindowPolicy

MAINTENANCE_TZ = "America/New_York"
MAINTENANCE_WEEKDAY = 4  # Polars: Monday = 1, so Thursday = 4
MAINTENANCE_HOURS = (3, 4)  # local hours whose minutes start inside 03:00–05:00

BOOK_COLUMNS: tuple[str, ...] = tuple(
    f"yes_{side}_{k}" for side in ("bid", "ask") for k in ("open", "high", "low", "close")
)
STATS_COLUMNS: tuple[str, ...] = (
    "event_ticker",
    "period_interval_minutes",
    "window_policy",
    "market_ticker",
    "expected_candles",
    "present_candles",
    "missing_candles",
    "missing_in_maintenance",
    "null_book_candles",
)


def in_maintenance(start: pl.Expr) -> pl.Expr:
    """True where a period STARTING at ``start`` (Datetime UTC) lies in the weekly pause."""
    local = start.dt.convert_time_zone(MAINTENANCE_TZ)
    return (local.dt.weekday() == MAINTENANCE_WEEKDAY) & local.dt.hour().is_in(MAINTENANCE_HOURS)


def maintenance_mask(ends: npt.ArrayLike, period_s: int = 60) -> npt.NDArray[np.bool_]:
    """:func:`in_maintenance` for an array of period END times (unix seconds), as numpy.

    The one definition of the pause, shared with the coverage picture.
    """
    starts = pl.DataFrame({"start": np.asarray(ends, dtype=np.int64) - period_s})
    start = pl.from_epoch("start", time_unit="s").dt.replace_time_zone("UTC")
    mask = starts.select(in_maintenance(start))
    return mask.to_series().to_numpy().astype(np.bool_)


def first_period_end(open_ts: Any, step: int) -> Any:
    """End of the first period a market open at ``open_ts`` trades in: the grid point > open.

    Works alike on ints, numpy arrays and Polars expressions, so the stats and the
    coverage picture share one rule.
    """
    return (-(-(open_ts + 1) // step)) * step


def last_period_end(close_ts: Any, step: int) -> Any:
    """End of the period holding ``close_ts``: the grid point at or after the close.

    A close off the grid (23:59 with hourly candles, any close with daily ones) still has
    the candle of the period it falls in, which ends after it.
    """
    return (-(-close_ts // step)) * step


def compute_stats(
    candles: pl.DataFrame,
    markets: Sequence[ManifestMarket],
    *,
    event_ticker: str,
    period_minutes: int,
    window_policy: WindowPolicy,
    window_start_ts: int,
    window_end_ts: int,
) -> pl.DataFrame:
    """One row per market of ``markets``, with the columns of ``kalshi_window_stats``.

    ``candles`` is a normalized frame (``load.normalize.pages``) of this window; candles of a
    market not in ``markets`` count nowhere (the loader logs them).
    """
    step = period_minutes * 60
    bounds = pl.DataFrame(
        {
            "market_ticker": [m.market_ticker for m in markets],
            "open": [m.open_ts for m in markets],
            "close": [m.close_ts for m in markets],
        },
        schema={"market_ticker": pl.String, "open": pl.Int64, "close": pl.Int64},
    ).with_columns(
        first=pl.max_horizontal(
            first_period_end(pl.col("open"), step), -(-window_start_ts // step) * step
        ),
        last=pl.min_horizontal(
            last_period_end(pl.col("close"), step), (window_end_ts // step) * step
        ),
    )
    grid = (
        bounds.select(
            "market_ticker",
            ts=pl.int_ranges(pl.col("first"), pl.col("last") + step, step, dtype=pl.Int64),
        )
        .explode("ts", empty_as_null=False)
        .drop_nulls("ts")
    )
    have = (
        candles.filter(pl.col("period_interval_minutes") == period_minutes)
        .select(
            "market_ticker",
            ts=pl.col("end_period_ts_utc").dt.epoch("s"),
            null_book=pl.any_horizontal(pl.col(c).is_null() for c in BOOK_COLUMNS),
        )
        .unique(subset=["market_ticker", "ts"], keep="last")
    )
    on_grid = grid.join(have.select("market_ticker", "ts"), on=["market_ticker", "ts"], how="semi")
    missing = grid.join(have.select("market_ticker", "ts"), on=["market_ticker", "ts"], how="anti")
    missing_counts = missing.group_by("market_ticker").agg(
        missing_candles=pl.len(),
        missing_in_maintenance=in_maintenance(
            pl.from_epoch(pl.col("ts") - step, time_unit="s").dt.replace_time_zone("UTC")
        ).sum(),
    )
    expected = grid.group_by("market_ticker").agg(expected_candles=pl.len())
    present = on_grid.group_by("market_ticker").agg(present_candles=pl.len())
    null_books = have.group_by("market_ticker").agg(null_book_candles=pl.col("null_book").sum())
    out = bounds.select("market_ticker")
    for part in (expected, present, missing_counts, null_books):
        out = out.join(part, on="market_ticker", how="left", maintain_order="left")
    return out.select(
        event_ticker=pl.lit(event_ticker, pl.String),
        period_interval_minutes=pl.lit(period_minutes, pl.Int16),
        window_policy=pl.lit(WindowPolicy(window_policy).value, pl.String),
        market_ticker="market_ticker",
        **{
            c: pl.col(c).fill_null(0).cast(pl.Int64)
            for c in (
                "expected_candles",
                "present_candles",
                "missing_candles",
                "missing_in_maintenance",
                "null_book_candles",
            )
        },
    )


def window_stats(candles: pl.DataFrame, manifest: Manifest) -> pl.DataFrame:
    """:func:`compute_stats` for a manifest's markets and bounds."""
    key = manifest.key
    return compute_stats(
        candles,
        manifest.markets,
        event_ticker=key.event_ticker,
        period_minutes=key.period_interval,
        window_policy=key.window_policy,
        window_start_ts=manifest.window_start_ts,
        window_end_ts=manifest.window_end_ts,
    )


def stats_rows(stats: pl.DataFrame, computed_at: datetime) -> list[dict[str, object]]:
    """Rows for ``kalshi_window_stats`` (a few per window: plain dicts are fine here)."""
    return [{**r, "computed_at_utc": computed_at} for r in stats.iter_rows(named=True)]
