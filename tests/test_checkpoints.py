"""Checkpoint rows and leases, on SQLite and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.archive import WindowKey
from schemas.checkpoints import (
    claim_window,
    ensure_checkpoint,
    get_checkpoint,
    release_window,
    save_checkpoint,
    set_status,
)
from schemas.db import make_engine
from schemas.tables import CheckpointStatus, WindowPolicy

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


def test_only_one_worker_holds_a_lease_until_it_expires(db_url: str) -> None:
    engine = make_engine(db_url)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        ensure_checkpoint(conn, KEY, window_start_ts=60, window_end_ts=600, is_final=True)
        ensure_checkpoint(conn, KEY, window_start_ts=0, window_end_ts=1, is_final=False)
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "a", 30, now=t0)
    with engine.begin() as conn:
        assert not claim_window(conn, KEY, "b", 30, now=t0 + timedelta(seconds=10))
        assert claim_window(conn, KEY, "a", 30, now=t0 + timedelta(seconds=10))  # renew
    with engine.begin() as conn:
        assert not claim_window(conn, KEY, "b", 30, now=t0 + timedelta(seconds=39))
        assert claim_window(conn, KEY, "b", 30, now=t0 + timedelta(seconds=41))  # expired
    with engine.begin() as conn:
        release_window(conn, KEY, "a")  # not the holder: no effect
        assert get_checkpoint(conn, KEY).lease_owner == "b"  # type: ignore[union-attr]
        release_window(conn, KEY, "b")
        cp = get_checkpoint(conn, KEY)
    assert cp is not None and cp.lease_owner is None
    assert (cp.window_start_ts, cp.window_end_ts, cp.is_final) == (60, 600, True)
    engine.dispose()
