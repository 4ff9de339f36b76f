"""Checkpoint rows: the stored truth about each event window's progress.

Both stages move a window through RUNNING → EXTRACTED → SUCCESS (or FAILED). Every
function takes a Connection so the caller decides the transaction: load marks SUCCESS in
the same transaction as the window's rows, so SUCCESS never exists without them.

Workers write a window's state only while they hold its lease (:func:`renew_window`,
:func:`finish_window`: one conditional UPDATE each), and every lease time is the database
server's (:mod:`schemas.dbclock`), never a host's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Update, and_, bindparam, case, or_, select, update

from schemas.archive import WindowKey
from schemas.core import CheckpointStatus, WindowPolicy
from schemas.db import upsert
from schemas.dbclock import db_after, db_after_param, db_now, micros
from schemas.tables import kalshi_backfill_checkpoint

_cp = kalshi_backfill_checkpoint
MAX_ERROR_CHARS = 2000
#: How long a claimed window stays its worker's without renewal (``--lease-seconds``).


def ts_to_dt(ts: int) -> datetime:
    """Unix seconds to an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)


def dt_to_ts(dt: datetime) -> int:
    """Aware datetime to unix seconds."""
    return int(dt.timestamp())


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint row, typed."""

    key: WindowKey
    window_start_ts: int
    window_end_ts: int
    is_final: bool
    status: CheckpointStatus
    resume_cursor_ts: int | None
    pages_archived: int
    requests: int
    retries: int
    candles_archived: int
    rows_loaded: int
    last_error: str | None
    lease_owner: str | None
    lease_expires_utc: datetime | None
    updated_at_utc: datetime
    lease_claimed_utc: datetime | None = None
    """When ``lease_owner`` took the lease (renewals keep it): the window is held since."""


_WINDOW_COLUMNS = (
    "series_ticker",
    "window_start_utc",
    "window_end_utc",
    "is_final",
    "status",
    "updated_at_utc",
)


def _new_row(
    key: WindowKey, start_ts: int, end_ts: int, is_final: bool, status: CheckpointStatus
) -> dict[str, Any]:
    """Every column of a fresh checkpoint row (counters at zero, no lease)."""
    now = datetime.now(UTC)
    return {
        "event_ticker": key.event_ticker,
        "period_interval_minutes": key.period_interval,
        "window_policy": key.window_policy.value,
        "series_ticker": key.series_ticker,
        "window_start_utc": ts_to_dt(start_ts),
        "window_end_utc": ts_to_dt(end_ts),
        "is_final": is_final,
        "status": status.value,
        "pages_archived": 0,
        "requests": 0,
        "retries": 0,
        "candles_archived": 0,
        "rows_loaded": 0,
        "created_at_utc": now,
        "updated_at_utc": now,
    }


def _where(key: WindowKey) -> Any:
    return and_(
        _cp.c.event_ticker == key.event_ticker,
        _cp.c.period_interval_minutes == key.period_interval,
        _cp.c.window_policy == key.window_policy.value,
    )


def _from_row(r: Any) -> Checkpoint:
    return Checkpoint(
        key=WindowKey(
            r.series_ticker,
            r.event_ticker,
            int(r.period_interval_minutes),
            WindowPolicy(r.window_policy),
        ),
        window_start_ts=dt_to_ts(r.window_start_utc),
        window_end_ts=dt_to_ts(r.window_end_utc),
        is_final=bool(r.is_final),
        status=CheckpointStatus(r.status),
        resume_cursor_ts=r.resume_cursor_ts,
        pages_archived=r.pages_archived,
        requests=r.requests,
        retries=r.retries,
        candles_archived=r.candles_archived,
        rows_loaded=r.rows_loaded,
        last_error=r.last_error,
        lease_owner=r.lease_owner,
        lease_expires_utc=r.lease_expires_utc,
        updated_at_utc=r.updated_at_utc,
        lease_claimed_utc=r.lease_claimed_utc,
    )


def get_checkpoint(conn: Connection, key: WindowKey) -> Checkpoint | None:
    row = conn.execute(select(_cp).where(_where(key))).one_or_none()
    return _from_row(row) if row is not None else None


def list_checkpoints(conn: Connection, series_ticker: str | None = None) -> list[Checkpoint]:
    stmt = select(_cp).order_by(_cp.c.series_ticker, _cp.c.event_ticker)
    if series_ticker:
        stmt = stmt.where(_cp.c.series_ticker == series_ticker)
    return [_from_row(r) for r in conn.execute(stmt)]


def save_checkpoint(
    conn: Connection,
    key: WindowKey,
    *,
    status: CheckpointStatus,
    window_start_ts: int,
    window_end_ts: int,
    is_final: bool,
    **fields: Any,
) -> None:
    """Create or update the window's row with ``status`` and any other columns given.

    ``fields`` are column names of ``kalshi_backfill_checkpoint`` (counters, last_error,
    resume_cursor_ts, extracted_at_utc, loaded_at_utc, ...). Columns not given keep their
    stored value on update.

    Unconditional: a worker calls it only inside a transaction whose conditional renewal
    (:func:`renew_window`) proved it holds the lease and locked the row (the loader's
    SUCCESS); every other worker write goes through :func:`renew_window` or
    :func:`finish_window`.
    """
    if "last_error" in fields and fields["last_error"] is not None:
        fields["last_error"] = str(fields["last_error"])[:MAX_ERROR_CHARS]
    row = _new_row(key, window_start_ts, window_end_ts, is_final, status) | fields
    update_cols = [*_WINDOW_COLUMNS, *fields]  # counters not given keep their stored value
    upsert(conn, _cp, [row], update=update_cols)


def set_status(conn: Connection, key: WindowKey, status: CheckpointStatus, **fields: Any) -> None:
    """Change an existing row's status (and other columns) without touching its window.

    Unconditional, for a caller that owns the row outright (tests, repairs): workers
    write under their lease (:func:`renew_window`, :func:`finish_window`).
    """
    if "last_error" in fields and fields["last_error"] is not None:
        fields["last_error"] = str(fields["last_error"])[:MAX_ERROR_CHARS]
    conn.execute(
        update(_cp)
        .where(_where(key))
        .values(status=status.value, updated_at_utc=datetime.now(UTC), **fields)
    )


# --- leases: several workers sharing one backfill through the checkpoint table ---
#
# A worker claims a window with ONE conditional UPDATE that only matches a row that is
# unclaimed, whose lease expired, or that it already holds. The database serializes
# concurrent UPDATEs of a row, so exactly one worker sees rowcount 1. This needs no
# SELECT ... FOR UPDATE SKIP LOCKED, so it works the same on MariaDB 10.11, MySQL 8,
# TiDB (optimistic or pessimistic) and SQLite. Run each call in its own short
# transaction (``engine.begin()``) so the lease is visible to others at once.
#
# Expiries are set and compared by the database's own clock (``db_now``/``db_after``):
# hosts whose clocks disagree still agree on whose lease is live.


def ensure_checkpoint(
    conn: Connection,
    key: WindowKey,
    *,
    window_start_ts: int,
    window_end_ts: int,
    is_final: bool,
    status: CheckpointStatus = CheckpointStatus.RUNNING,
) -> None:
    """Create the window's row if it does not exist; never touch an existing one."""
    upsert(
        conn,
        _cp,
        [_new_row(key, window_start_ts, window_end_ts, is_final, status)],
        update=[],
    )


def window_columns(window_start_ts: int, window_end_ts: int, is_final: bool) -> dict[str, Any]:
    """The window's extent as checkpoint columns, for :func:`renew_window`'s ``progress``
    (a run may see a window grown, or become final, since its row was created)."""
    return {
        "window_start_utc": ts_to_dt(window_start_ts),
        "window_end_utc": ts_to_dt(window_end_ts),
        "is_final": is_final,
    }


def claim_window(conn: Connection, key: WindowKey, owner: str, lease_seconds: float) -> bool:
    """Take (or renew) the window's lease for ``owner``; False if another live worker has it.

    The row must exist (:func:`ensure_checkpoint`). ``lease_claimed_utc`` is set when the
    lease changes hands and kept by renewals, so status can say since when it is held.
    """
    # lease_claimed_utc is assigned FIRST: MySQL evaluates SET left to right (later
    # assignments see new values), SQLite on the old row; first, both read the old owner.
    claimed_since = case(
        (
            and_(_cp.c.lease_owner == owner, _cp.c.lease_claimed_utc.is_not(None)),
            _cp.c.lease_claimed_utc,
        ),
        else_=db_now(),
    )
    result = conn.execute(
        update(_cp)
        .where(_where(key))
        .where(
            or_(
                _cp.c.lease_owner.is_(None),
                _cp.c.lease_owner == owner,
                _cp.c.lease_expires_utc.is_(None),
                _cp.c.lease_expires_utc < db_now(),
            )
        )
        .ordered_values(
            (_cp.c.lease_claimed_utc, claimed_since),
            (_cp.c.lease_owner, owner),
            (_cp.c.lease_expires_utc, db_after(lease_seconds)),
        )
    )
    return result.rowcount == 1


def renew_window(
    conn: Connection,
    key: WindowKey,
    owner: str,
    lease_seconds: float,
    *,
    status: CheckpointStatus | None = None,
    **progress: Any,
) -> bool:
    """Extend ``owner``'s lease; False if it no longer holds it (never takes a free window).

    For renewals that may race a release (a renewal thread, a loader's commit). With
    ``status`` and/or ``progress`` (other columns: counters, resume cursor, last_error,
    :func:`window_columns`), the window's state is saved by the SAME statement, and only
    while ``owner`` holds the lease: an extractor's per-page checkpoint costs one UPDATE,
    and a worker that lost its window never overwrites the new holder's state.
    """
    return _update_held(conn, key, owner, lease_seconds, status, progress)


def finish_window(
    conn: Connection,
    key: WindowKey,
    owner: str,
    *,
    status: CheckpointStatus,
    **progress: Any,
) -> bool:
    """Save the window's final ``status`` (and ``progress``) and give its lease back, in one
    UPDATE that matches only while ``owner`` holds the lease; False (nothing written) if
    another worker took the window meanwhile."""
    return _update_held(conn, key, owner, None, status, progress)


def _update_held(
    conn: Connection,
    key: WindowKey,
    owner: str,
    lease_seconds: float | None,
    status: CheckpointStatus | None,
    progress: dict[str, Any],
) -> bool:
    """The one conditional UPDATE behind renew and finish (``lease_seconds`` None: release)."""
    if status is not None:
        progress["status"] = status.value
    if progress.get("last_error") is not None:
        progress["last_error"] = str(progress["last_error"])[:MAX_ERROR_CHARS]
    params = {f"set_{name}": value for name, value in progress.items()}
    params.update(
        w_event=key.event_ticker,
        w_period=key.period_interval,
        w_policy=key.window_policy.value,
        w_owner=owner,
    )
    if lease_seconds is not None:
        params["lease_us"] = micros(lease_seconds)
    stmt = _held_statement(tuple(progress), release=lease_seconds is None)
    return conn.execute(stmt, params).rowcount == 1


@functools.cache
def _held_statement(columns: tuple[str, ...], *, release: bool) -> Update:
    """The conditional UPDATE setting ``columns``, built once: a page's checkpoint then costs
    no statement construction (and SQLAlchemy reuses its cache key and compiled form)."""
    values: dict[str, Any] = {name: bindparam(f"set_{name}") for name in columns}
    if columns:
        values["updated_at_utc"] = db_now()
    if release:
        values.update(lease_owner=None, lease_expires_utc=None, lease_claimed_utc=None)
    else:
        values["lease_expires_utc"] = db_after_param("lease_us")
    return (
        update(_cp)
        .where(
            _cp.c.event_ticker == bindparam("w_event"),
            _cp.c.period_interval_minutes == bindparam("w_period"),
            _cp.c.window_policy == bindparam("w_policy"),
            _cp.c.lease_owner == bindparam("w_owner"),
        )
        .values(values)
    )


def take_over_window(
    conn: Connection,
    key: WindowKey,
    owner: str,
    from_owner: str,
    lease_seconds: float,
) -> bool:
    """Take the lease from ``from_owner``, known dead before its lease expired.

    A compare-and-swap on the owner: of several workers taking over at once, one wins.
    """
    result = conn.execute(
        update(_cp)
        .where(_where(key))
        .where(_cp.c.lease_owner == from_owner)
        .values(
            lease_owner=owner,
            lease_claimed_utc=db_now(),
            lease_expires_utc=db_after(lease_seconds),
        )
    )
    return result.rowcount == 1


def release_window(conn: Connection, key: WindowKey, owner: str) -> None:
    """Give the lease back (only if ``owner`` still holds it)."""
    conn.execute(
        update(_cp)
        .where(_where(key))
        .where(_cp.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_utc=None, lease_claimed_utc=None)
    )
