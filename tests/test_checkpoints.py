"""Checkpoint rows and leases, on SQLite and MariaDB.

Lease times are the database server's: a lease "expiring" is its stored expiry moved
into the past by the server's own clock, so no test waits for a real lease to run out.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select, update

from schemas.archive import WindowKey
from schemas.checkpoints import (
    claim_window,
    ensure_checkpoint,
    get_checkpoint,
    release_window,
    save_checkpoint,
    set_status,
)
from schemas.core import CheckpointStatus, WindowPolicy
from schemas.db import make_engine
from schemas.dbclock import db_after, db_now
from schemas.tables import kalshi_backfill_checkpoint

KEY = WindowKey("KXHIGHNY", "KXHIGHNY-25NOV20", 1, WindowPolicy.FULL_MARKET_WINDOW)


def test_save_then_update_keeps_unmentioned_columns(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        save_checkpoint(
            conn,
            KEY,
            status=CheckpointStatus.RUNNING,
            window_start_ts=60,
            window_end_ts=600,
            is_final=True,
            pages_archived=3,
        )
        save_checkpoint(
            conn,
            KEY,
            status=CheckpointStatus.EXTRACTED,
            window_start_ts=60,
            window_end_ts=600,
            is_final=True,
            requests=4,
        )
        set_status(conn, KEY, CheckpointStatus.FAILED, last_error="x" * 5000)
    with engine.connect() as conn:
        cp = get_checkpoint(conn, KEY)
    assert cp is not None
    assert (cp.status, cp.pages_archived, cp.requests) == (CheckpointStatus.FAILED, 3, 4)
    assert cp.last_error is not None and len(cp.last_error) == 2000
    assert (cp.window_start_ts, cp.window_end_ts) == (60, 600)
    engine.dispose()


def expire_lease(engine: Engine, seconds_ago: float = 1.0) -> None:
    """Every lease ran out ``seconds_ago`` by the database's clock (its worker stalled)."""
    with engine.begin() as conn:
        conn.execute(
            update(kalshi_backfill_checkpoint).values(lease_expires_utc=db_after(-seconds_ago))
        )


def test_only_one_worker_holds_a_lease_until_it_expires(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        ensure_checkpoint(conn, KEY, window_start_ts=60, window_end_ts=600, is_final=True)
        ensure_checkpoint(conn, KEY, window_start_ts=0, window_end_ts=1, is_final=False)
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "a", 30)
    with engine.begin() as conn:
        assert not claim_window(conn, KEY, "b", 30)
        assert claim_window(conn, KEY, "a", 30)  # renew
    expire_lease(engine)
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "b", 30)  # expired
    with engine.begin() as conn:
        release_window(conn, KEY, "a")  # not the holder: no effect
        assert get_checkpoint(conn, KEY).lease_owner == "b"  # type: ignore[union-attr]
        release_window(conn, KEY, "b")
        cp = get_checkpoint(conn, KEY)
    assert cp is not None and cp.lease_owner is None
    assert (cp.window_start_ts, cp.window_end_ts, cp.is_final) == (60, 600, True)
    engine.dispose()


def test_a_lease_is_timed_by_the_database_clock(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        ensure_checkpoint(conn, KEY, window_start_ts=60, window_end_ts=600, is_final=True)
    with engine.begin() as conn:
        before = conn.execute(select(db_now())).scalar_one()
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "a", 30)
    with engine.begin() as conn:
        after = conn.execute(select(db_now())).scalar_one()
        cp = get_checkpoint(conn, KEY)
    assert cp is not None and cp.lease_claimed_utc is not None and cp.lease_expires_utc
    assert before <= cp.lease_claimed_utc <= after
    # Both from one reading of the server's clock, in the claiming statement.
    assert cp.lease_expires_utc - cp.lease_claimed_utc == timedelta(seconds=30)
    engine.dispose()
