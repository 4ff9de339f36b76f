"""``status``: progress per series, read from the database only.

:func:`series_status` counts checkpoints by status (final windows apart from open ones),
rows stored, missing minutes from ``kalshi_window_stats`` (each market-minute once), and
names the last error of failed windows and the leases held; :func:`workers` lists the
registered processes. A module of its own because it is the one report that never opens
the archive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from load.report.common import fields_json, series_of
from schemas.checkpoints import list_checkpoints
from schemas.core import CheckpointStatus
from schemas.db import translate_db_error
from schemas.tables import kalshi_candle, kalshi_window_stats
from schemas.tickers import validate_series_ticker
from schemas.workers import WorkerRow, list_workers


def _db_rows(engine: Engine, stmt: Any, what: str) -> list[Any]:
    try:
        with engine.connect() as conn:
            return list(conn.execute(stmt).all())
    except SQLAlchemyError as e:
        raise translate_db_error(e, engine.url.render_as_string(hide_password=False), what) from e


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


def series_status(engine: Engine, series_ticker: str | None = None) -> list[SeriesStatus]:
    """One :class:`SeriesStatus` per (series, period) found in checkpoints, stats or candles."""
    if series_ticker is not None:
        validate_series_ticker(series_ticker)
    out: dict[tuple[str, int], SeriesStatus] = {}

    def entry(series: str, period: int) -> SeriesStatus:
        key = (series, int(period))
        if key not in out:
            out[key] = SeriesStatus(series, int(period))
        return out[key]

    try:
        with engine.connect() as conn:
            checkpoints = list_checkpoints(conn, series_ticker)
    except SQLAlchemyError as e:
        url = engine.url.render_as_string(hide_password=False)
        raise translate_db_error(e, url, "reading checkpoints") from e
    for cp in checkpoints:
        st = entry(cp.key.series_ticker, cp.key.period_interval)
        by_status = st.windows if cp.is_final else st.open_windows
        by_status[cp.status.value] = by_status.get(cp.status.value, 0) + 1
        note = WindowNote(
            cp.key.event_ticker,
            cp.key.period_interval,
            cp.key.window_policy.value,
            cp.status.value,
            cp.last_error,
            cp.lease_owner,
            cp.lease_expires_utc,
            cp.lease_claimed_utc,
        )
        if cp.status is CheckpointStatus.FAILED:
            st.failed.append(note)
        if cp.lease_owner is not None:
            st.leased.append(note)

    prefix = None if series_ticker is None else f"{series_ticker}-"
    for (event, period), (expected, missing, maint) in _market_minutes(engine, prefix).items():
        st = entry(series_of(event), period)
        st.expected_candles += expected
        st.missing_candles += missing
        st.missing_in_maintenance += maint

    c = kalshi_candle.c
    counts = select(c.event_ticker, c.period_interval_minutes, func.count()).group_by(
        c.event_ticker, c.period_interval_minutes
    )
    if prefix is not None:
        # The market-key prefix is a range on the primary key's first column.
        counts = counts.where(c.market_ticker.startswith(prefix, autoescape=True))
    for event, period, n in _db_rows(engine, counts, "counting candles"):
        entry(series_of(event), period).rows_stored += int(n)
    return [out[k] for k in sorted(out)]


def _market_minutes(engine: Engine, prefix: str | None) -> dict[tuple[str, int], tuple[int, ...]]:
    """(expected, missing, missing in maintenance) per (event, period), each market-minute once.

    ``kalshi_window_stats`` has a row per market for each window policy of an event. A
    market's minutes in the trade window are among its minutes in the full-market window
    (the manifest clips each market to its window), so summing both policies counts them
    twice. Per market, the row of the policy window covering the most minutes is taken.
    """
    ws = kalshi_window_stats.c
    stmt = select(
        ws.event_ticker,
        ws.period_interval_minutes,
        ws.market_ticker,
        ws.expected_candles,
        ws.missing_candles,
        ws.missing_in_maintenance,
    )
    if prefix is not None:
        stmt = stmt.where(ws.event_ticker.startswith(prefix, autoescape=True))
    widest: dict[tuple[str, int, str], tuple[int, int, int]] = {}
    for event, period, market, expected, missing, maint in _db_rows(engine, stmt, "reading stats"):
        key, row = (event, int(period), market), (int(expected), int(missing), int(maint))
        if key not in widest or row[0] > widest[key][0]:
            widest[key] = row
    out: dict[tuple[str, int], tuple[int, ...]] = {}
    for (event, period, _), row in widest.items():
        prev = out.get((event, period), (0, 0, 0))
        out[(event, period)] = tuple(a + b for a, b in zip(prev, row, strict=True))
    return out
