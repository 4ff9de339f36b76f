"""A picture of completeness: one row an event, minutes across, holes in colour.

Each cell is one candle period of one event, counted from the event's window start (the
earliest market open). Its class says how many of the markets that should have a candle
there (the period overlaps ``(open_time, close_time]`` from ``kalshi_market``: the stats'
rule, :func:`load.normalize.stats.first_period_end` /
:func:`load.normalize.stats.last_period_end`) actually have one:

- ``OUTSIDE``: no market is open (the row ended, or has not started): white.
- ``COMPLETE``: every open market has its candle: green.
- ``PARTIAL``: some open markets have no candle: orange.
- ``MISSING``: no open market has a candle: red.
- ``MAINTENANCE``: a missing candle inside the weekly pause (Thursday 03:00–05:00 New York
  time), where quiet minutes are expected: blue.

The matrix is built with numpy per event (:func:`event_coverage_row`, pure) from candle
end times only; the drawing is a matplotlib Figure on the Agg canvas, written atomically.
A market missing from ``kalshi_market`` is bounded by its own first and last candle.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import IntEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from load.access.export import events_by_date
from load.normalize.stats import first_period_end, last_period_end, maintenance_mask
from schemas.checkpoints import dt_to_ts
from schemas.db import translate_db_error
from schemas.errors import ConfigError, InputError, MissingExtraError
from schemas.tables import kalshi_candle, kalshi_market
from schemas.tickers import validate_series_ticker

IntArray = npt.NDArray[np.int64]
CellArray = npt.NDArray[np.int8]


class Cell(IntEnum):
    """Class of one (event, period) cell; the values index the colour map."""

    OUTSIDE = 0
    COMPLETE = 1
    PARTIAL = 2
    MISSING = 3
    MAINTENANCE = 4


COLOURS = {
    Cell.OUTSIDE: "#ffffff",
    Cell.COMPLETE: "#4caf50",
    Cell.PARTIAL: "#ff9800",
    Cell.MISSING: "#d32f2f",
    Cell.MAINTENANCE: "#1e88e5",
}


@dataclass(frozen=True)
class MarketSpan:
    """A market's life as unix seconds: a candle is expected for each period overlapping it."""

    market_ticker: str
    open_ts: int
    close_ts: int


@dataclass(frozen=True)
class CoverageMatrix:
    """Rows are events (in date order), columns candle periods from each window start."""

    series_ticker: str
    period_minutes: int
    events: tuple[str, ...]
    window_start_ts: tuple[int, ...]
    cells: CellArray

    def count(self, cell: Cell) -> int:
        return int(np.count_nonzero(self.cells == cell))


def window_start(spans: Sequence[MarketSpan], period_s: int) -> int:
    """The event's first period boundary at or before its earliest market open."""
    first = min(s.open_ts for s in spans)
    return first - first % period_s


def event_coverage_row(
    spans: Sequence[MarketSpan],
    candle_ts: Mapping[str, IntArray],
    start_ts: int,
    n_cols: int,
    period_s: int,
) -> CellArray:
    """Classify each period ``start_ts + (i + 1) * period_s`` of one event (pure numpy)."""
    ends = start_ts + period_s * np.arange(1, n_cols + 1, dtype=np.int64)
    expected = np.zeros(n_cols, dtype=np.int64)
    present = np.zeros(n_cols, dtype=np.int64)
    for span in spans:
        open_mask = (ends >= first_period_end(span.open_ts, period_s)) & (
            ends <= last_period_end(span.close_ts, period_s)
        )
        expected += open_mask
        ts = candle_ts.get(span.market_ticker)
        if ts is None or ts.size == 0:
            continue
        idx = (ts - start_ts) // period_s - 1
        idx = idx[(idx >= 0) & (idx < n_cols) & ((ts - start_ts) % period_s == 0)]
        hit = np.zeros(n_cols, dtype=np.bool_)
        hit[idx] = True
        present += hit & open_mask
    cells = np.full(n_cols, Cell.OUTSIDE, dtype=np.int8)
    some = expected > 0
    cells[some & (present == expected)] = Cell.COMPLETE
    cells[some & (present > 0) & (present < expected)] = Cell.PARTIAL
    cells[some & (present == 0)] = Cell.MISSING
    cells[some & (present < expected) & maintenance_mask(ends, period_s)] = Cell.MAINTENANCE
    return cells


def _read_event(
    engine: Engine, event_ticker: str, period: int
) -> tuple[list[MarketSpan], dict[str, IntArray]]:
    """The event's market spans and candle end times (unix seconds) per market."""
    m, c = kalshi_market.c, kalshi_candle.c
    markets = select(m.market_ticker, m.open_time_utc, m.close_time_utc).where(
        m.event_ticker == event_ticker
    )
    candles = (
        select(c.market_ticker, c.end_period_ts_utc)
        .where(
            c.market_ticker.startswith(f"{event_ticker}-", autoescape=True),
            c.event_ticker == event_ticker,
            c.period_interval_minutes == period,
        )
        .order_by(c.market_ticker, c.end_period_ts_utc)
    )
    try:
        with engine.connect() as conn:
            market_rows = conn.execute(markets).all()
            candle_rows = conn.execute(candles).all()
    except SQLAlchemyError as e:
        url = engine.url.render_as_string(hide_password=False)
        raise translate_db_error(e, url, "reading coverage") from e
    by_market: dict[str, list[int]] = {}
    for ticker, end in candle_rows:
        by_market.setdefault(ticker, []).append(dt_to_ts(end))
    ts = {k: np.asarray(v, dtype=np.int64) for k, v in by_market.items()}
    spans = {
        t: MarketSpan(t, dt_to_ts(o), dt_to_ts(cl))
        for t, o, cl in market_rows
        if o is not None and cl is not None
    }
    for ticker, arr in ts.items():
        if ticker not in spans:
            spans[ticker] = MarketSpan(ticker, int(arr[0]) - period * 60, int(arr[-1]))
    return [spans[k] for k in sorted(spans)], ts


def build_coverage(
    engine: Engine,
    series_ticker: str,
    date_from: date | None = None,
    date_to: date | None = None,
    period: int = 1,
) -> CoverageMatrix:
    """The coverage matrix of a series' events dated in [from, to] (all when omitted)."""
    validate_series_ticker(series_ticker)
    lo, hi = date_from or date.min, date_to or date.max
    if lo > hi:
        raise InputError(f"--from {lo} is after --to {hi}")
    period_s = period * 60
    rows: list[tuple[str, int, list[MarketSpan], dict[str, IntArray]]] = []
    for events in events_by_date(engine, series_ticker, lo, hi).values():
        for ev in events:
            spans, ts = _read_event(engine, ev, period)
            if spans:
                rows.append((ev, window_start(spans, period_s), spans, ts))
    if not rows:
        raise InputError(f"no event of {series_ticker} with markets or candles in that range")
    n_cols = max(
        -(-(max(s.close_ts for s in spans) - start) // period_s) for _, start, spans, _ in rows
    )
    cells = np.stack(
        [event_coverage_row(spans, ts, start, n_cols, period_s) for _, start, spans, ts in rows]
    )
    return CoverageMatrix(
        series_ticker,
        period,
        tuple(r[0] for r in rows),
        tuple(r[1] for r in rows),
        cells,
    )


def require_plot_extra() -> None:
    """Raise MissingExtraError (one line naming the ``pip install``) without matplotlib:
    the [plot] extra, which a plain ``pip install kalshi-candles`` does not pull in. The
    command calls it before any database work, so the user learns it first."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise MissingExtraError("coverage", "matplotlib", "plot") from e


def render_coverage(matrix: CoverageMatrix, out: str | Path) -> Path:
    """Draw the matrix as a PNG at ``out`` (temporary file, then rename); returns the path."""
    # Imported here: matplotlib costs a noticeable start-up time that `load run` and the
    # other commands registered beside this one should not pay.
    require_plot_extra()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    dest = Path(out)
    n_rows, n_cols = matrix.cells.shape
    # A bare Figure on the Agg canvas: no pyplot, so no global backend or figure registry.
    fig = Figure(figsize=(12, min(40.0, 1.8 + 0.28 * n_rows)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    cmap = ListedColormap([COLOURS[c] for c in Cell])
    ax.imshow(
        matrix.cells,
        aspect="auto",
        interpolation="nearest",
        cmap=cmap,
        vmin=0,
        vmax=len(Cell) - 1,
    )
    step = max(1, n_rows // 40)
    ax.set_yticks(range(0, n_rows, step))
    ax.set_yticklabels(matrix.events[::step], fontsize=7)
    hours = n_cols * matrix.period_minutes / 60
    tick_h = 6 if hours > 24 else 2
    ticks = np.arange(0, hours + 1e-9, tick_h)
    ax.set_xticks(ticks * 60 / matrix.period_minutes - 0.5)
    ax.set_xticklabels([f"{int(h)}h" for h in ticks], fontsize=7)
    ax.set_xlabel("time since the event's first market opened")
    missing = matrix.count(Cell.MISSING) + matrix.count(Cell.PARTIAL)
    ax.set_title(
        f"{matrix.series_ticker}: {n_rows} events, {matrix.period_minutes}-minute candles, "
        f"{missing} periods with holes, {matrix.count(Cell.MAINTENANCE)} in maintenance",
        fontsize=9,
    )
    labels = {
        Cell.COMPLETE: "all markets present",
        Cell.PARTIAL: "some markets missing",
        Cell.MISSING: "all markets missing",
        Cell.MAINTENANCE: "missing in maintenance pause",
        Cell.OUTSIDE: "no market open",
    }
    ax.legend(
        handles=[Patch(facecolor=COLOURS[c], edgecolor="#999999", label=labels[c]) for c in Cell],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12 if n_rows > 3 else -0.3),
        ncol=5,
        fontsize=7,
        frameon=False,
    )
    fig.tight_layout()
    tmp = dest.with_name(f".tmp-{dest.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(tmp, format="png", bbox_inches="tight")
        os.replace(tmp, dest)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {dest}: {e.strerror or e}") from e
    return dest
