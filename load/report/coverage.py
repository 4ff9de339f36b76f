"""A picture of completeness, honest for sparse markets: the matrix behind ``coverage``.

Rows are events (in date order), or once there are more than :data:`MAX_ROWS` of them,
event days or weeks, each summing its events. Columns are equal time bins counted from
each event's window start (the period boundary at or before its earliest market open),
at most :data:`MAX_COLUMNS` of them, so the picture stays readable whatever the range.
A cell counts market-minutes (market-periods): ``expected`` those of markets open then
(the statistics' rule, :func:`load.normalize.stats.first_period_end` /
:func:`~load.normalize.stats.last_period_end`), ``backfilled`` those inside a loaded
window (a checkpoint that reached SUCCESS), ``present`` those with a candle, and
``paused`` the backfilled ones starting inside the Thursday 03:00–05:00 New York pause.

Nothing here reads a candle row: present counts come from the database already binned
(``GROUP BY`` market and bin, one event at a time), the windows from the checkpoints, the
markets' lives from ``kalshi_market``. Memory holds one event's counts and the matrix.

Each cell's class (:class:`Cell`, one colour each in :mod:`load.report.coverage_png`):
no market open; not backfilled; extracted with no candle; candles missing mostly in the
pause; every market-minute present; and in between, orange ("some missing") in the
presence view, or one of four shades by the share present in the density view, the
default once candles are sparse (under :data:`DENSE_SHARE` of the backfilled minutes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import IntEnum
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, Integer, bindparam, func, literal_column, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement

from load.access.export import events_by_date
from load.access.selection import series_tuple
from load.access.stream import read_ahead
from load.normalize.stats import first_period_end, last_period_end, maintenance_mask
from schemas.checkpoints import dt_to_ts
from schemas.core import CheckpointStatus
from schemas.db import fetch_all
from schemas.errors import InputError
from schemas.tables import kalshi_backfill_checkpoint, kalshi_candle, kalshi_market

IntArray = npt.NDArray[np.int64]
CellArray = npt.NDArray[np.int8]
View = Literal["presence", "density"]

MAX_ROWS = 200
"""More events than this are drawn one row a day, then a week (or more days)."""
MAX_COLUMNS = 600
"""Time bins across (the picture is about 1,200 pixels wide)."""
DENSE_SHARE = 0.98
"""Below this share of backfilled market-minutes with a candle, density is the default."""
SPARSE_EVENT_SHARE = 0.5
"""An event with candles in fewer of its backfilled market-minutes is counted sparse."""
DENSITY_STEPS = (0.1, 0.5, 0.9)
"""Upper bounds of the first three density shades (the fourth runs to just under 100 %):
an illiquid market's few hundred candles in 2,400 minutes fall in the first two, a liquid
one's in the last."""


class Cell(IntEnum):
    """Class of one cell; the values index the palette of :mod:`load.report.coverage_png`."""

    OUTSIDE = 0
    NOT_BACKFILLED = 1
    MISSING = 2
    MAINTENANCE = 3
    PARTIAL = 4
    COMPLETE = 5
    SHARE_1 = 6
    SHARE_2 = 7
    SHARE_3 = 8
    SHARE_4 = 9


@dataclass
class Counts:
    """Market-minute counts of one row (arrays across the columns)."""

    expected: IntArray
    backfilled: IntArray
    present: IntArray
    paused: IntArray

    @classmethod
    def zeros(cls, n_cols: int) -> Counts:
        return cls(*(np.zeros(n_cols, dtype=np.int64) for _ in range(4)))

    def add(self, other: Counts) -> None:
        self.expected += other.expected
        self.backfilled += other.backfilled
        self.present += other.present
        self.paused += other.paused


@dataclass(frozen=True)
class EventKinds:
    """How many events are of each kind (the picture's title says them)."""

    events: int = 0
    not_backfilled: int = 0
    empty: int = 0
    """Backfilled (a loaded window) but no candle at all."""
    sparse: int = 0
    """Candles in fewer than :data:`SPARSE_EVENT_SHARE` of the backfilled minutes."""
    backfilled_minutes: int = 0
    present_minutes: int = 0

    @property
    def share(self) -> float | None:
        """Share of backfilled market-minutes with a candle (None when nothing is)."""
        return self.present_minutes / self.backfilled_minutes if self.backfilled_minutes else None


@dataclass(frozen=True)
class CoverageMatrix:
    """What the picture draws: a class per (row, bin), and what the title says."""

    label: str
    period_minutes: int
    bin_minutes: int
    row_kind: Literal["event", "day", "week", "days"]
    rows: tuple[str, ...]
    cells: CellArray
    view: View
    kinds: EventKinds

    def count(self, cell: Cell) -> int:
        return int(np.count_nonzero(self.cells == cell))


def classify(counts: Counts, view: View) -> CellArray:
    """Each cell's class from its counts (pure; the rules of the module docstring)."""
    exp, bf = counts.expected, counts.backfilled
    present = np.minimum(counts.present, bf)
    share = np.divide(present, bf, out=np.zeros(bf.shape), where=bf > 0)
    cells = np.full(exp.shape, Cell.OUTSIDE, dtype=np.int8)
    some = (exp > 0) & (bf > 0)
    if view == "density":
        for i, cell in enumerate((Cell.SHARE_1, Cell.SHARE_2, Cell.SHARE_3, Cell.SHARE_4)):
            low = DENSITY_STEPS[i - 1] if i else 0.0
            high = DENSITY_STEPS[i] if i < len(DENSITY_STEPS) else 1.0
            cells[some & (share >= low) & (share < high)] = cell
    else:
        cells[some] = Cell.PARTIAL
    cells[some & (present == 0)] = Cell.MISSING
    cells[some & (present < bf) & (2 * counts.paused >= bf)] = Cell.MAINTENANCE
    cells[some & (present == bf)] = Cell.COMPLETE
    cells[(exp > 0) & (bf == 0)] = Cell.NOT_BACKFILLED
    return cells


# --- reading ------------------------------------------------------------------------------


class _epoch(FunctionElement[int]):
    """Unix seconds of a naive-UTC DATETIME column, in SQL (no time zone involved)."""

    type = Integer()
    inherit_cache = True


@compiles(_epoch)
def _epoch_sqlite(element: _epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(_epoch, "mysql")
@compiles(_epoch, "mariadb")
def _epoch_mysql(element: _epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return (
        f"TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {compiler.process(element.clauses, **kw)})"
    )


@dataclass(frozen=True)
class _Event:
    ticker: str
    day: date
    spans: tuple[tuple[str, int, int], ...]
    """(market, open ts, close ts) from kalshi_market."""
    windows: tuple[tuple[int, int], ...]
    """Loaded windows (start ts, end ts)."""


def binned_candles(
    engine: Engine, event: str, period: int, origin: int, bin_s: int
) -> dict[str, dict[int, int]]:
    """Candles per market and bin of ``bin_s`` seconds from ``origin`` (a period ending in
    ``(origin + k * bin_s, origin + (k + 1) * bin_s]`` is in bin ``k``), counted by the
    database: one row per market and bin, never one per candle."""
    c = kalshi_candle.c
    cell = (
        (_epoch(c.end_period_ts_utc) - bindparam("origin", origin + 1, Integer))
        // bindparam("bin_s", bin_s, Integer)
    ).label("cell")
    stmt = (
        select(c.market_ticker, cell, func.count())
        .where(
            c.market_ticker.startswith(f"{event}-", autoescape=True),
            c.event_ticker == event,
            c.period_interval_minutes == period,
        )
        .group_by(c.market_ticker, literal_column("cell"))
    )
    out: dict[str, dict[int, int]] = {}
    for market, k, n in fetch_all(engine, stmt, "counting candles"):
        out.setdefault(market, {})[int(k)] = int(n)
    return out


def event_counts(
    ev: _Event, candles: dict[str, dict[int, int]], origin: int, n_cols: int, bin_s: int, step: int
) -> Counts:
    """The counts of one event's row (pure numpy): a market without a ``kalshi_market``
    span is bounded by its own candles."""
    spans = list(ev.spans)
    known = {m for m, _, _ in spans}
    for market, bins in candles.items():
        if market not in known and bins:
            spans.append((market, origin + min(bins) * bin_s, origin + (max(bins) + 1) * bin_s))
    row = Counts.zeros(n_cols)
    for market, open_ts, close_ts in spans:
        first, last = first_period_end(open_ts, step), last_period_end(close_ts, step)
        ends = np.arange(first, last + 1, step, dtype=np.int64)
        k = (ends - origin - 1) // bin_s
        keep = (k >= 0) & (k < n_cols)
        ends, k = ends[keep], k[keep]
        loaded = np.zeros(ends.shape, dtype=np.bool_)
        for start, end in ev.windows:
            loaded |= (ends >= start) & (ends <= end)
        row.expected += np.bincount(k, minlength=n_cols)
        row.backfilled += np.bincount(k[loaded], minlength=n_cols)
        paused = loaded & maintenance_mask(ends, step)
        row.paused += np.bincount(k[paused], minlength=n_cols)
        have = np.zeros(n_cols, dtype=np.int64)
        for b, n in candles.get(market, {}).items():
            if 0 <= b < n_cols:
                have[b] = n
        per_market = np.bincount(k[loaded], minlength=n_cols)
        row.present += np.minimum(have, per_market)
    return row


def _events(engine: Engine, series: Sequence[str], lo: date, hi: date, period: int) -> list[_Event]:
    m, cp = kalshi_market.c, kalshi_backfill_checkpoint.c
    spans: dict[str, list[tuple[str, int, int]]] = {}
    stmt = select(m.event_ticker, m.market_ticker, m.open_time_utc, m.close_time_utc).where(
        m.series_ticker.in_(list(series))
    )
    for ev, market, o, c in fetch_all(engine, stmt, "reading markets"):
        if o is not None and c is not None:
            spans.setdefault(ev, []).append((market, dt_to_ts(o), dt_to_ts(c)))
    windows: dict[str, list[tuple[int, int]]] = {}
    loaded = or_(cp.status == CheckpointStatus.SUCCESS.value, cp.loaded_at_utc.is_not(None))
    stmt = select(cp.event_ticker, cp.window_start_utc, cp.window_end_utc).where(
        cp.series_ticker.in_(list(series)), cp.period_interval_minutes == period, loaded
    )
    for ev, start, end in fetch_all(engine, stmt, "reading checkpoints"):
        windows.setdefault(ev, []).append((dt_to_ts(start), dt_to_ts(end)))
    out = []
    for s in series:
        for day, events in events_by_date(engine, s, lo, hi).items():
            out += [
                _Event(ev, day, tuple(sorted(spans.get(ev, []))), tuple(windows.get(ev, [])))
                for ev in events
            ]
    return sorted(out, key=lambda e: (e.day, e.ticker))


def _extent(ev: _Event) -> tuple[int, int]:
    """(first open, last close) of the event's markets, else of its loaded windows."""
    if ev.spans:
        return min(o for _, o, _ in ev.spans), max(c for _, _, c in ev.spans)
    return min(w[0] for w in ev.windows), max(w[1] for w in ev.windows)


def _row_key(ev: _Event, kind: str, first: date, days: int) -> tuple[str, date]:
    if kind == "event":
        return ev.ticker, ev.day
    start = first + timedelta(days=(ev.day - first).days // days * days)
    label = start.isoformat() if days == 1 else f"{start.isoformat()} +{days}d"
    return label, start


def build_coverage(
    engine: Engine,
    series: str | Sequence[str],
    date_from: date | None = None,
    date_to: date | None = None,
    period: int = 1,
    view: View | None = None,
    max_rows: int = MAX_ROWS,
) -> CoverageMatrix:
    """The coverage matrix of the series' events dated in [from, to] (all when omitted).

    ``view`` None picks density once candles are sparse; more than ``max_rows`` events
    are drawn a day, then a week (or more days) a row. InputError for a bad series, a
    range whose start is after its end, or no event with markets in it.
    """
    chosen = series_tuple(series)
    assert chosen is not None
    lo, hi = date_from or date.min, date_to or date.max
    if lo > hi:
        raise InputError(f"--from {lo} is after --to {hi}")
    step = period * 60
    events = [e for e in _events(engine, chosen, lo, hi, period) if e.spans or e.windows]
    if not events:
        raise InputError(f"no event of {', '.join(chosen)} with markets in that range")
    span_s = max(end - start for start, end in map(_extent, events))
    periods = -(-(span_s + step) // step)
    bin_periods = max(1, -(-periods // MAX_COLUMNS))
    bin_s = bin_periods * step
    n_cols = -(-periods // bin_periods)
    n_days = (events[-1].day - events[0].day).days + 1
    kind: Literal["event", "day", "week", "days"] = "event"
    days = 1
    if len(events) > max_rows:
        kind, days = ("day", 1) if n_days <= max_rows else ("week", 7)
        if -(-n_days // days) > max_rows:
            kind, days = "days", -(-n_days // max_rows)
    rows: dict[str, Counts] = {}
    kinds = dict.fromkeys(("not_backfilled", "empty", "sparse", "bf", "present"), 0)

    def origin(ev: _Event) -> int:
        start, _ = _extent(ev)
        return start - start % step

    def read(ev: _Event) -> dict[str, dict[int, int]]:
        return binned_candles(engine, ev.ticker, period, origin(ev), bin_s)

    for ev, candles in read_ahead(events, read):
        counts = event_counts(ev, candles, origin(ev), n_cols, bin_s, step)
        label, _ = _row_key(ev, kind, events[0].day, days)
        rows.setdefault(label, Counts.zeros(n_cols)).add(counts)
        bf, present = (
            int(counts.backfilled.sum()),
            int(np.minimum(counts.present, counts.backfilled).sum()),
        )
        kinds["bf"] += bf
        kinds["present"] += present
        if bf == 0:
            kinds["not_backfilled"] += 1
        elif present == 0:
            kinds["empty"] += 1
        elif present < SPARSE_EVENT_SHARE * bf:
            kinds["sparse"] += 1
    summary = EventKinds(
        len(events),
        kinds["not_backfilled"],
        kinds["empty"],
        kinds["sparse"],
        kinds["bf"],
        kinds["present"],
    )
    if view is None:
        share = summary.share
        view = "density" if share is not None and share < DENSE_SHARE else "presence"
    cells = np.stack([classify(c, view) for c in rows.values()])
    return CoverageMatrix(
        ", ".join(chosen),
        period,
        bin_s // 60,
        kind,
        tuple(rows),
        cells,
        view,
        summary,
    )
