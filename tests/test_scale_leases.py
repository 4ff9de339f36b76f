"""Window leases, worker rows and the shared budget on real databases (SQLite and MariaDB).

The extractor runs in process against the simulator over real HTTP; "another worker" is
a lease written under another owner, and a lease "expiring" is its expiry moved into the
past, so every outcome here is decided by the database, not by timing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select, update

from extract.candles import run_candles
from extract.config import ApiConfig, ExtractConfig, RateLimit
from extract.errors import LeaseLostError
from extract.events import sync_events
from extract.throttle import Throttle
from extract.workers import Coordinator
from load.access_cli import status_cmd
from load.config import LoadConfig
from load.errors import LeaseLostError as LoadLeaseLostError
from load.leases import keep_leases
from load.loader import load_windows
from schemas.archive import Manifest, WindowKey
from schemas.checkpoints import (
    claim_window,
    ensure_checkpoint,
    get_checkpoint,
    list_checkpoints,
    release_window,
    take_over_window,
)
from schemas.db import add_missing_columns, make_engine
from schemas.tables import (
    CheckpointStatus,
    WindowPolicy,
    kalshi_backfill_checkpoint,
    kalshi_candle,
)
from schemas.workers import (
    KIND_EXTRACT,
    KIND_LOAD,
    count_live,
    heartbeat,
    list_workers,
    prune_workers,
    unregister,
)
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, SimServer

KEY = WindowKey("KXHIGHNY", "KXHIGHNY-25NOV20", 1, WindowPolicy.FULL_MARKET_WINDOW)
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
NOW = datetime(2025, 11, 20, 15, 0, tzinfo=UTC)
SIM = SimConfig(
    seed=7,
    series=(DEFAULT_SERIES[0],),
    now=NOW,
    first_date=date(2025, 11, 12),
    last_date=date(2025, 11, 16),
    markets_per_event=2,
    candle_cap=1000,
    historical_cutoff_days=3650,
)


def _fresh(engine: Engine, key: WindowKey = KEY) -> None:
    with engine.begin() as conn:
        ensure_checkpoint(conn, key, window_start_ts=60, window_end_ts=600, is_final=True)


# --- the statements ----------------------------------------------------------------------


def test_held_since_is_set_on_a_change_of_owner_and_kept_by_renewals(db_url: str) -> None:
    engine = make_engine(db_url)
    _fresh(engine)
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "a", 30, now=T0)
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "a", 30, now=T0 + timedelta(seconds=20))  # renewal
        assert not claim_window(conn, KEY, "b", 30, now=T0 + timedelta(seconds=21))
        cp = get_checkpoint(conn, KEY)
    assert cp is not None and cp.lease_owner == "a"
    assert cp.lease_claimed_utc == T0
    assert cp.lease_expires_utc == T0 + timedelta(seconds=50)

    later = T0 + timedelta(seconds=51)  # a's lease ran out: b takes it, since `later`
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "b", 30, now=later)
        cp = get_checkpoint(conn, KEY)
    assert cp is not None and (cp.lease_owner, cp.lease_claimed_utc) == ("b", later)

    with engine.begin() as conn:  # a compare-and-swap: only from the current holder
        assert not take_over_window(conn, KEY, "c", "a", 30, now=later)
        assert take_over_window(conn, KEY, "c", "b", 30, now=later + timedelta(seconds=1))
        release_window(conn, KEY, "c")
        cp = get_checkpoint(conn, KEY)
    assert cp is not None
    assert (cp.lease_owner, cp.lease_expires_utc, cp.lease_claimed_utc) == (None, None, None)
    engine.dispose()


def test_worker_rows_live_expire_and_go(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        heartbeat(conn, "h:1", KIND_EXTRACT, 15, now=T0)
        heartbeat(conn, "h:2", KIND_EXTRACT, 15, now=T0)
        heartbeat(conn, "h:3", KIND_LOAD, 15, now=T0)
        heartbeat(conn, "h:1", KIND_EXTRACT, 15, now=T0 + timedelta(seconds=10))
        assert count_live(conn, KIND_EXTRACT, now=T0 + timedelta(seconds=5)) == 2
        # h:2 stopped beating: it no longer counts; h:1 beat again.
        assert count_live(conn, KIND_EXTRACT, now=T0 + timedelta(seconds=16)) == 1
        rows = {w.worker_id: w for w in list_workers(conn)}
        assert rows["h:1"].started_at_utc == T0  # kept by later beats
        assert rows["h:1"].heartbeat_utc == T0 + timedelta(seconds=10)
        assert rows["h:3"].kind == KIND_LOAD
        unregister(conn, "h:1")
        assert prune_workers(conn, now=T0 + timedelta(days=2)) == 2
        assert list_workers(conn) == []
    engine.dispose()


def test_an_older_database_gains_the_new_lease_column(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE kalshi_backfill_checkpoint DROP COLUMN lease_claimed_utc")
    engine.dispose()
    engine = make_engine(db_url)  # opening it adds the column back
    with engine.begin() as conn:
        assert add_missing_columns(conn) == []
    _fresh(engine)
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "a", 30, now=T0)
        cp = get_checkpoint(conn, KEY)
    assert cp is not None and cp.lease_claimed_utc == T0
    engine.dispose()


# --- the coordinator -----------------------------------------------------------------------


async def test_two_coordinators_one_window_and_a_split_budget(db_url: str) -> None:
    engine = make_engine(db_url)
    ta, tb = Throttle(20), Throttle(20)
    a = Coordinator(engine, db_url, "w-a", 30, throttle=ta, key_rps=20)
    b = Coordinator(engine, db_url, "w-b", 30, throttle=tb, key_rps=20)
    async with a.running():
        assert ta.nominal_rate == 20  # alone
        async with b.running():
            assert tb.nominal_rate == 10  # b saw a at its first beat
            a.beat()
            assert ta.nominal_rate == 10  # and a sees b at its next one
            claim = a.claim(KEY, 60, 600, True)
            assert claim.ok and claim.taken_over_from is None
            lost = b.claim(KEY, 60, 600, True)
            assert not lost.ok and lost.held_by == "w-a" and lost.until is not None
            a.renew(KEY)
        a.beat()  # b unregistered on exit
        assert ta.nominal_rate == 20
    with engine.connect() as conn:
        cp = get_checkpoint(conn, KEY)
        assert list_workers(conn) == []
    # a exited holding KEY: its exit released the lease.
    assert cp is not None and cp.lease_owner is None
    engine.dispose()


async def test_a_stalled_worker_learns_it_lost_its_window(db_url: str) -> None:
    engine = make_engine(db_url)
    a = Coordinator(engine, db_url, "w-a", 30)
    assert a.claim(KEY, 60, 600, True).ok
    with engine.begin() as conn:  # a stalled past its lease, b took the window
        conn.execute(
            update(kalshi_backfill_checkpoint).values(lease_expires_utc=T0 - timedelta(days=1))
        )
        assert claim_window(conn, KEY, "w-b", 30)
    a.beat()
    assert KEY in a.lost
    with pytest.raises(LeaseLostError, match="lease lost"):
        a.renew(KEY)
    engine.dispose()


# --- the extractor ----------------------------------------------------------------------------


def _config(sim: SimServer, db_url: str, archive: Path, **over: Any) -> ExtractConfig:
    api = ApiConfig(
        base_url=sim.base_url,
        rate=RateLimit(500, 1.0),
        timeout_s=10,
        max_retries=8,
        backoff_base_s=0.005,
        backoff_max_s=0.05,
    )
    base = ExtractConfig(
        series="KXHIGHNY",
        db_url=db_url,
        archive_dir=archive,
        api=api,
        now=sim.world.now,
        worker_id="me",
        lease_seconds=30,
    )
    return replace(base, **over)


async def test_a_held_window_is_skipped_then_taken_over_once_its_lease_expires(
    db_url: str, archive_dir: Path
) -> None:
    held = "KXHIGHNY-25NOV14"
    async with SimServer(SIM) as sim:
        cfg = _config(sim, db_url, archive_dir)
        await sync_events(cfg)
        engine = make_engine(db_url)
        key = cfg.window_key(held)
        with engine.begin() as conn:  # another worker, alive, is on it
            ensure_checkpoint(conn, key, window_start_ts=0, window_end_ts=1, is_final=True)
            assert claim_window(conn, key, "ghost", 3600)

        first = await run_candles(cfg)
        assert (first.done, first.held, first.taken_over, first.failed) == (4, 1, 0, 0)
        assert any(line.startswith("leases: 1 held by other workers") for line in first.lines())
        with engine.connect() as conn:
            cp = get_checkpoint(conn, key)
        assert cp is not None and cp.lease_owner == "ghost" and cp.pages_archived == 0
        assert not [r for r in sim.counters.log if held in r.path]

        with engine.begin() as conn:  # the ghost died: its lease runs out
            conn.execute(
                update(kalshi_backfill_checkpoint).values(
                    lease_expires_utc=datetime.now(UTC) - timedelta(seconds=1)
                )
            )
        second = await run_candles(cfg)
        assert (second.done, second.skipped, second.taken_over, second.held) == (1, 4, 1, 0)
        with engine.connect() as conn:
            cps = list_checkpoints(conn, "KXHIGHNY")
            workers = list_workers(conn)
        engine.dispose()
        assert {c.status for c in cps} == {CheckpointStatus.EXTRACTED}
        assert all(c.lease_owner is None and c.lease_expires_utc is None for c in cps)
        assert workers == []  # unregistered at exit


# --- the loader ---------------------------------------------------------------------------


async def test_the_loader_skips_a_held_window_and_loads_it_after_the_lease(
    db_url: str, archive_dir: Path
) -> None:
    held = "KXHIGHNY-25NOV13"
    async with SimServer(SIM) as sim:
        cfg = _config(sim, db_url, archive_dir)
        await sync_events(cfg)
        assert (await run_candles(cfg)).done == 5
    engine = make_engine(db_url)
    key = cfg.window_key(held)
    with engine.begin() as conn:
        assert claim_window(conn, key, "ghost", 3600)
    lc = LoadConfig(db_url=db_url, archive_dir=archive_dir, worker_id="loader", lease_seconds=30)

    first = load_windows(lc, engine=engine)
    assert (first.windows_loaded, first.windows_held) == (4, 1)
    assert first.line().endswith("; 1 held by other workers")
    with engine.connect() as conn:
        cp = get_checkpoint(conn, key)
        assert cp is not None and cp.status is CheckpointStatus.EXTRACTED
        assert cp.lease_owner == "ghost"
        stmt = select(func.count()).where(kalshi_candle.c.event_ticker == held)
        n = conn.execute(stmt).scalar_one()
    assert n == 0

    with engine.begin() as conn:  # the ghost died
        conn.execute(
            update(kalshi_backfill_checkpoint).values(
                lease_expires_utc=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
    second = load_windows(lc, engine=engine)
    assert (second.windows_loaded, second.windows_skipped, second.windows_held) == (1, 4, 0)
    with engine.connect() as conn:
        cps = list_checkpoints(conn, "KXHIGHNY")
        assert list_workers(conn) == []
    assert {c.status for c in cps} == {CheckpointStatus.SUCCESS}
    assert all(c.lease_owner is None for c in cps)
    engine.dispose()


def test_a_write_whose_lease_was_taken_rolls_back(db_url: str) -> None:
    engine = make_engine(db_url)
    manifest = Manifest(KEY, 60, 600, True, (), ())
    lc = LoadConfig(db_url=db_url, worker_id="loader", lease_seconds=30)
    with engine.begin() as conn:
        keep_leases(conn, [manifest], lc)  # creates the row and takes the lease
    with engine.begin() as conn:  # we stalled, another loader took over
        conn.execute(
            update(kalshi_backfill_checkpoint).values(
                lease_expires_utc=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
        assert claim_window(conn, KEY, "other", 30)
    with pytest.raises(LoadLeaseLostError), engine.begin() as conn:
        keep_leases(conn, [manifest], lc)
    with engine.connect() as conn:
        cp = get_checkpoint(conn, KEY)
    assert cp is not None and cp.lease_owner == "other"
    engine.dispose()


# --- status ---------------------------------------------------------------------------------


def test_status_shows_who_holds_which_window_since_when(db_url: str) -> None:
    engine = make_engine(db_url)
    _fresh(engine)
    since = datetime.now(UTC).replace(microsecond=0)
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "host-b:77", 3600, now=since)
        heartbeat(conn, "host-b:77", KIND_EXTRACT, 3600, now=since)
        heartbeat(conn, "host-c:5", KIND_LOAD, 1, now=since - timedelta(hours=1))
    engine.dispose()
    res = CliRunner().invoke(status_cmd, ["--db", db_url])
    assert res.exit_code == 0, res.output
    until = since + timedelta(hours=1)
    assert (
        f"LEASED {KEY.event_ticker} p1 FULL_MARKET_WINDOW (RUNNING) by host-b:77 "
        f"since {since.isoformat()} until {until.isoformat()}"
    ) in res.stdout.splitlines()
    assert f"WORKER host-b:77 extract live: started {since.isoformat()}" in res.stdout
    assert "WORKER host-c:5 load gone: " in res.stdout

    res = CliRunner().invoke(status_cmd, ["--db", db_url, "--format", "json"])
    (doc,) = orjson.loads(res.stdout)
    assert doc["leased"][0]["lease_claimed_utc"] == since.isoformat()
