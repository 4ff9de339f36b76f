"""``status``: progress per series, read from the database's per-window records only.

:func:`series_status` counts checkpoints by status (final windows apart from open ones),
rows stored and missing minutes from ``kalshi_window_stats`` (each market-minute once),
and names the last error of failed windows and the leases held, with a few aggregate
queries whose cost follows the number of windows, never the candle table's size;
:func:`workers` lists the registered processes. A module of its own because it is the
one report that never opens the archive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Select, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from load.access.selection import series_tuple, ticker_prefixes
from load.report.common import fields_json, series_of
from schemas.core import CheckpointStatus
from schemas.db import fetch_all, translate_db_error
from schemas.tables import kalshi_backfill_checkpoint, kalshi_window_stats
from schemas.workers import WorkerRow, list_workers


@dataclass(frozen=True)
class WindowNote:
    """A window worth naming in the status: failed (with its error) or leased."""

    event_ticker: str
    period_interval: int
    window_policy: str
    status: str
    last_error: str | None = None
    lease_owner: str | None = None
    lease_expires_utc: datetime | None = None
    lease_claimed_utc: datetime | None = None
    """Since when ``lease_owner`` holds the window (renewals keep it)."""


@dataclass
class SeriesStatus:
    """Progress of one series at one candle period.

    ``windows`` counts FINAL windows by status; ``open_windows`` the windows of events
    still open (``is_final`` false), whose SUCCESS only means "loaded up to the last
    extract": a later one extends them, so they are never counted as finished.
    """

    series_ticker: str
    period_interval: int
    windows: dict[str, int] = field(default_factory=lambda: _by_status())
    open_windows: dict[str, int] = field(default_factory=lambda: _by_status())
    rows_stored: int = 0
    expected_candles: int = 0
    missing_candles: int = 0
    missing_in_maintenance: int = 0
    failed: list[WindowNote] = field(default_factory=list)
    leased: list[WindowNote] = field(default_factory=list)

    @property
    def missing_pct(self) -> Decimal | None:
        """Missing minutes over expected minutes, in percent (2 places), None before stats."""
        if self.expected_candles == 0:
            return None
        pct = Decimal(100 * self.missing_candles) / Decimal(self.expected_candles)
        return pct.quantize(Decimal("0.01"))

    def to_json(self) -> dict[str, Any]:
        pct = self.missing_pct
        return {
            "series_ticker": self.series_ticker,
            "period_interval": self.period_interval,
            "windows": dict(self.windows),
            "open_windows": dict(self.open_windows),
            "windows_total": sum(self.windows.values()) + sum(self.open_windows.values()),
            "rows_stored": self.rows_stored,
            "expected_candles": self.expected_candles,
            "missing_candles": self.missing_candles,
            "missing_in_maintenance": self.missing_in_maintenance,
            "missing_pct": None if pct is None else str(pct),
            "failed": [fields_json(n) for n in self.failed],
            "leased": [fields_json(n) for n in self.leased],
        }


def _by_status() -> dict[str, int]:
    return dict.fromkeys((s.value for s in CheckpointStatus), 0)


def workers(engine: Engine) -> list[WorkerRow]:
    """The extract and load processes registered on this database (live or gone)."""
    try:
        with engine.connect() as conn:
            return list_workers(conn)
    except SQLAlchemyError as e:
        url = engine.url.render_as_string(hide_password=False)
        raise translate_db_error(e, url, "reading workers") from e


def series_status(engine: Engine, series: str | Sequence[str] | None = None) -> list[SeriesStatus]:
    """One :class:`SeriesStatus` per (series, period) found in checkpoints or window stats.

    Reads per-window records only (``kalshi_backfill_checkpoint``, ``kalshi_window_stats``),
    aggregated by the database, never the candle table: its cost follows the number of
    windows, not of candles. ``rows_stored`` is the candles the loaded windows hold (each
    market's widest window, as for the missing minutes); ``verify`` compares the table
    itself with the archive.
    """
    chosen = series_tuple(series)
    out: dict[tuple[str, int], SeriesStatus] = {}

    def entry(series_ticker: str, period: int) -> SeriesStatus:
        key = (series_ticker, int(period))
        if key not in out:
            out[key] = SeriesStatus(series_ticker, int(period))
        return out[key]

    cp = kalshi_backfill_checkpoint.c
    counts = select(
        cp.series_ticker, cp.period_interval_minutes, cp.is_final, cp.status, func.count()
    )
    counts = counts.group_by(cp.series_ticker, cp.period_interval_minutes, cp.is_final, cp.status)
    notes = select(
        cp.series_ticker,
        cp.event_ticker,
        cp.period_interval_minutes,
        cp.window_policy,
        cp.status,
        cp.last_error,
        cp.lease_owner,
        cp.lease_expires_utc,
        cp.lease_claimed_utc,
    ).where(or_(cp.status == CheckpointStatus.FAILED.value, cp.lease_owner.is_not(None)))
    notes = notes.order_by(cp.series_ticker, cp.event_ticker, cp.period_interval_minutes)
    if chosen is not None:
        counts = counts.where(cp.series_ticker.in_(chosen))
        notes = notes.where(cp.series_ticker.in_(chosen))
    for s, period, is_final, status, n in fetch_all(engine, counts, "counting windows"):
        st = entry(s, period)
        by_status = st.windows if is_final else st.open_windows
        by_status[status] = by_status.get(status, 0) + int(n)
    for r in fetch_all(engine, notes, "reading failed and leased windows"):
        note = WindowNote(
            r.event_ticker,
            int(r.period_interval_minutes),
            r.window_policy,
            r.status,
            r.last_error,
            r.lease_owner,
            r.lease_expires_utc,
            r.lease_claimed_utc,
        )
        st = entry(r.series_ticker, r.period_interval_minutes)
        if r.status == CheckpointStatus.FAILED.value:
            st.failed.append(note)
        if r.lease_owner is not None:
            st.leased.append(note)

    for event, period, expected, present, missing, maint in fetch_all(
        engine, _market_minutes_stmt(chosen), "reading window stats"
    ):
        st = entry(series_of(event), period)
        st.expected_candles += int(expected)
        st.rows_stored += int(present)
        st.missing_candles += int(missing)
        st.missing_in_maintenance += int(maint)
    return [out[k] for k in sorted(out)]


def _market_minutes_stmt(series: Sequence[str] | None) -> Select[Any]:
    """(event, period, expected, present, missing, missing in maintenance), summed by the
    database over each market's widest window.

    ``kalshi_window_stats`` has a row per market for each window policy of an event. A
    market's minutes in the trade window are among its minutes in the full-market window
    (the manifest clips each market to its window), so summing both policies counts them
    twice. Per market, the row of the policy window covering the most minutes is taken
    (``ROW_NUMBER()``: MariaDB 10.2, MySQL 8, SQLite 3.25, TiDB).
    """
    ws = kalshi_window_stats.c
    rank = (
        func.row_number()
        .over(
            partition_by=(ws.event_ticker, ws.period_interval_minutes, ws.market_ticker),
            order_by=(ws.expected_candles.desc(), ws.window_policy),
        )
        .label("widest")
    )
    per_market = select(
        ws.event_ticker,
        ws.period_interval_minutes,
        ws.expected_candles,
        ws.present_candles,
        ws.missing_candles,
        ws.missing_in_maintenance,
        rank,
    )
    where = ticker_prefixes(ws.event_ticker, series)
    if where is not None:
        per_market = per_market.where(where)
    inner = per_market.subquery()
    return (
        select(
            inner.c.event_ticker,
            inner.c.period_interval_minutes,
            func.sum(inner.c.expected_candles),
            func.sum(inner.c.present_candles),
            func.sum(inner.c.missing_candles),
            func.sum(inner.c.missing_in_maintenance),
        )
        .where(inner.c.widest == 1)
        .group_by(inner.c.event_ticker, inner.c.period_interval_minutes)
    )
