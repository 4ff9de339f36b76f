"""``plot``: the book of one market as a picture, for "this number looks wrong" moments.

Drawn from the market's grid (:mod:`load.access.grid`), so the picture shows exactly what a
backtest reads: yes bid and yes ask as step lines (each value holds from its period's end
until the next), trades as dots at their close where the period had volume, volume bars
below, the periods without a candle shaded, the Thursday 03:00–05:00 New York pause
banded, and the market's open, close and result marked. Prices become floats here only to
be drawn, never to be stored or compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from load.access.book import book_grid
from load.normalize.stats import maintenance_mask
from load.report.figure import new_figure, save_png
from schemas.db import translate_db_error
from schemas.tables import kalshi_market

BID, ASK, TRADE = "#1565c0", "#c62828", "#212121"
NO_CANDLE = "#eeeeee"
PAUSE = "#bbdefb"
MARKS = "#6a1b9a"


@dataclass(frozen=True)
class MarketBook:
    """What the picture draws: the market's grid and its facts from ``kalshi_market``."""

    market_ticker: str
    period_minutes: int
    grid: pl.DataFrame
    open_time: datetime | None
    close_time: datetime | None
    result: str | None
    settlement_time: datetime | None


def read_market_book(
    engine: Engine,
    market: str,
    start: datetime | None = None,
    end: datetime | None = None,
    period: int = 1,
) -> MarketBook:
    """The market's grid in [start, end] and its open, close, result and settlement.

    InputError for a market the database does not know or a range whose start is after
    its end (from :func:`load.access.book.book_grid`).
    """
    grid = book_grid(engine, market=market, start=start, end=end, period=period)
    m = kalshi_market.c
    stmt = select(m.open_time_utc, m.close_time_utc, m.result, m.settlement_ts_utc).where(
        m.market_ticker == market
    )
    try:
        with engine.connect() as conn:
            row = conn.execute(stmt).first()
    except SQLAlchemyError as e:
        url = engine.url.render_as_string(hide_password=False)
        raise translate_db_error(e, url, "reading the market") from e
    facts: tuple[Any, ...] = tuple(row) if row is not None else (None, None, None, None)
    return MarketBook(market, period, grid, *facts)


def runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(first, last) index of each run of True in ``mask`` (pure)."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def _floats(frame: pl.DataFrame, col: str) -> npt.NDArray[np.float64]:
    return frame[col].cast(pl.Float64).to_numpy().astype(np.float64)


def render_plot(book: MarketBook, out: str | Path) -> Path:
    """Draw ``book`` as a PNG at ``out`` (temporary file, then rename); returns the path."""
    from matplotlib.dates import DateFormatter

    g = book.grid
    fig = new_figure(13, 6.5, "plot")
    price_ax, vol_ax = fig.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08}
    )
    step = np.timedelta64(book.period_minutes * 60, "s")
    if g.height:
        ends = g["end_period_ts_utc"].dt.replace_time_zone(None).to_numpy()
        starts = ends - step
        epoch = g["end_period_ts_utc"].dt.epoch("s").to_numpy()
        for first, last in runs(~g["has_candle"].to_numpy()):
            for ax in (price_ax, vol_ax):
                ax.axvspan(starts[first], ends[last], color=NO_CANDLE, lw=0, zorder=0)
        for first, last in runs(maintenance_mask(epoch, book.period_minutes * 60)):
            for ax in (price_ax, vol_ax):
                ax.axvspan(starts[first], ends[last], color=PAUSE, lw=0, zorder=0.5)
        price_ax.step(ends, _floats(g, "yes_bid"), where="post", color=BID, lw=1, label="yes bid")
        price_ax.step(ends, _floats(g, "yes_ask"), where="post", color=ASK, lw=1, label="yes ask")
        traded = (g["volume"] > 0) & g["price_close"].is_not_null()
        t = g.filter(traded)
        price_ax.scatter(
            t["end_period_ts_utc"].dt.replace_time_zone(None).to_numpy(),
            _floats(t, "price_close"),
            s=6,
            color=TRADE,
            zorder=3,
            label="trade (close)",
        )
        width = step / np.timedelta64(1, "D")
        vol_ax.bar(starts, _floats(g, "volume"), width=width, align="edge", color=TRADE, lw=0)
    result = book.result or "not settled"
    shown = (starts[0], ends[-1]) if g.height else None
    for when, text in ((book.open_time, "open"), (book.close_time, f"close, result {result}")):
        if when is None:
            continue
        x = np.datetime64(when.replace(tzinfo=None), "s")
        if shown is None or shown[0] <= x <= shown[1]:
            for ax in (price_ax, vol_ax):
                ax.axvline(x, color=MARKS, lw=1, ls="--")
            price_ax.annotate(
                text,
                (x, 1.0),
                xycoords=("data", "axes fraction"),
                color=MARKS,
                fontsize=8,
                ha="left",
                va="top",
                xytext=(3, -2),
                textcoords="offset points",
            )
    settled = f", settled {book.settlement_time:%Y-%m-%d %H:%M} UTC" if book.settlement_time else ""
    price_ax.set_title(
        f"{book.market_ticker}: result {result}{settled}; {g.height} periods of "
        f"{book.period_minutes} min, {int(g['has_candle'].sum()) if g.height else 0} with a candle",
        fontsize=9,
    )
    price_ax.set_ylim(-0.02, 1.02)
    if shown is not None:
        price_ax.set_xlim(*shown)
    price_ax.set_ylabel("price ($)")
    vol_ax.set_ylabel("volume")
    vol_ax.xaxis.set_major_formatter(DateFormatter("%m-%d %H:%M"))  # type: ignore[no-untyped-call]
    vol_ax.set_xlabel("UTC; grey: no candle in the period, blue: Thursday maintenance pause")
    price_ax.legend(loc="lower right", fontsize=7, frameon=False, ncol=3)
    return save_png(fig, out)
