"""Window leases, worker rows and the shared budget on real databases (SQLite and MariaDB).

The extractor runs in process against the simulator over real HTTP; "another worker" is
a lease written under another owner, and a lease "expiring" is its expiry moved into the
past by the database's own clock (the clock every lease time comes from), so every
outcome here is decided by the database, not by timing.
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

from extract.api.throttle import Throttle
from extract.config import ApiConfig, ExtractConfig, RateLimit, RouteChoice
from extract.errors import LeaseLostError
from extract.events.sync import sync_events
from extract.run.candles import run_candles
from extract.run.workers import Coordinator
from load.config import LoadConfig
from load.errors import LeaseLostError as LoadLeaseLostError
from load.report.cli import status_cmd
from load.run.leases import keep_leases
from load.run.loader import load_windows
from schemas.archive import Manifest, WindowKey
from schemas.checkpoints import (
    claim_window,
    ensure_checkpoint,
    get_checkpoint,
    list_checkpoints,
    release_window,
    take_over_window,
)
from schemas.core import CheckpointStatus, WindowPolicy
from schemas.db import make_engine
from schemas.dbclock import db_after, db_now
from schemas.processes import KIND_EXTRACT, KIND_LOAD
from schemas.tables import kalshi_backfill_checkpoint, kalshi_candle, kalshi_worker
from schemas.workers import count_live, heartbeat, list_workers, prune_workers, unregister
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, SimServer
from tests.test_checkpoints import expire_lease

KEY = WindowKey("KXHIGHNY", "KXHIGHNY-25NOV20", 1, WindowPolicy.FULL_MARKET_WINDOW)
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


def _server_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        return conn.execute(select(db_now())).scalar_one()


def test_held_since_is_set_on_a_change_of_owner_and_kept_by_renewals(db_url: str) -> None:
    engine = make_engine(db_url)
    _fresh(engine)
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "a", 30)
        first = get_checkpoint(conn, KEY)
    assert first is not None and first.lease_claimed_utc is not None
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "a", 60)  # renewal
        assert not claim_window(conn, KEY, "b", 30)
        cp = get_checkpoint(conn, KEY)
    assert cp is not None and cp.lease_owner == "a"
    assert cp.lease_claimed_utc == first.lease_claimed_utc  # kept by the renewal
    assert cp.lease_expires_utc is not None
    assert cp.lease_expires_utc >= first.lease_claimed_utc + timedelta(seconds=60)

    expire_lease(engine)  # a's lease ran out: b takes it, since then
    before = _server_now(engine)
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "b", 30)
        cp = get_checkpoint(conn, KEY)
    assert cp is not None and cp.lease_owner == "b"
    assert cp.lease_claimed_utc is not None and cp.lease_claimed_utc >= before

    with engine.begin() as conn:  # a compare-and-swap: only from the current holder
        assert not take_over_window(conn, KEY, "c", "a", 30)
        assert take_over_window(conn, KEY, "c", "b", 30)
        taken = get_checkpoint(conn, KEY)
        release_window(conn, KEY, "c")
        cp = get_checkpoint(conn, KEY)
    assert taken is not None and taken.lease_owner == "c"
    assert taken.lease_expires_utc and taken.lease_claimed_utc
    assert taken.lease_expires_utc - taken.lease_claimed_utc == timedelta(seconds=30)
    assert cp is not None
    assert (cp.lease_owner, cp.lease_expires_utc, cp.lease_claimed_utc) == (None, None, None)
    engine.dispose()


def test_worker_rows_live_expire_and_go(db_url: str) -> None:
    engine = make_engine(db_url)
    w = kalshi_worker.c
    with engine.begin() as conn:
        heartbeat(conn, "h:1", KIND_EXTRACT, 15)
        heartbeat(conn, "h:2", KIND_EXTRACT, 15)
        heartbeat(conn, "h:3", KIND_LOAD, 15)
        assert count_live(conn, KIND_EXTRACT) == 2
        first = {r.worker_id: r for r in list_workers(conn)}["h:1"]
        # h:2 stopped beating: its heartbeat ran out; h:1 beats again.
        conn.execute(
            update(kalshi_worker).where(w.worker_id == "h:2").values(expires_utc=db_after(-1))
        )
        heartbeat(conn, "h:1", KIND_EXTRACT, 15)
        assert count_live(conn, KIND_EXTRACT) == 1
        rows = {r.worker_id: r for r in list_workers(conn)}
        assert rows["h:1"].started_at_utc == first.started_at_utc  # kept by later beats
        assert rows["h:1"].heartbeat_utc >= first.heartbeat_utc
        assert rows["h:1"].expires_utc - rows["h:1"].heartbeat_utc == timedelta(seconds=15)
        assert rows["h:3"].kind == KIND_LOAD
        unregister(conn, "h:1")
        assert prune_workers(conn) == 0  # h:2 died moments ago, h:3 is live
        conn.execute(update(kalshi_worker).values(expires_utc=db_after(-2 * 86400)))
        assert prune_workers(conn) == 2
        assert list_workers(conn) == []
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
            await a.beat()
            assert ta.nominal_rate == 10  # and a sees b at its next one
            claim = await a.claim(KEY, 60, 600, True)
            assert claim.ok and claim.taken_over_from is None
            lost = await b.claim(KEY, 60, 600, True)
            assert not lost.ok and lost.held_by == "w-a" and lost.until is not None
            await a.save(KEY)
        await a.beat()  # b unregistered on exit
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
    assert (await a.claim(KEY, 60, 600, True)).ok
    expire_lease(engine)  # a stalled past its lease, b took the window
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "w-b", 30)
    await a.beat()
    assert KEY in a.lost
    with pytest.raises(LeaseLostError, match="lease lost"):
        await a.save(KEY)
    engine.dispose()


# --- the extractor ----------------------------------------------------------------------------


def extract_config(sim: SimServer, db_url: str, archive: Path, **over: Any) -> ExtractConfig:
    """The lease tests' extractor: the event route, fast retries, a 30 s lease."""
    api = ApiConfig(
        base_url=sim.base_url,
        rate=RateLimit(500, 1.0),
        timeout_s=10,
        max_retries=8,
        backoff_base_s=0.005,
        backoff_max_s=0.05,
    )
    base = ExtractConfig(
        route=RouteChoice.EVENT,
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
        cfg = extract_config(sim, db_url, archive_dir)
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

        expire_lease(engine)  # the ghost died: its lease runs out
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
        cfg = extract_config(sim, db_url, archive_dir)
        await sync_events(cfg)
        assert (await run_candles(cfg)).done == 5
    engine = make_engine(db_url)
    key = cfg.window_key(held)
    with engine.begin() as conn:
        assert claim_window(conn, key, "ghost", 3600)
    lc = LoadConfig(db_url=db_url, archive_dir=archive_dir, worker_id="loader", lease_seconds=30)

    first = load_windows(lc, engine=engine)
    assert (first.windows_loaded, first.windows_held) == (4, 1)
    assert "; 1 held by other workers" in first.line()
    with engine.connect() as conn:
        cp = get_checkpoint(conn, key)
        assert cp is not None and cp.status is CheckpointStatus.EXTRACTED
        assert cp.lease_owner == "ghost"
        stmt = select(func.count()).where(kalshi_candle.c.event_ticker == held)
        n = conn.execute(stmt).scalar_one()
    assert n == 0

    expire_lease(engine)  # the ghost died
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
    _fresh(engine)
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "loader", 30)
        keep_leases(conn, [manifest], lc)  # ours: renewed
    expire_lease(engine)  # we stalled, another loader took over
    with engine.begin() as conn:
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
    since = _server_now(engine).replace(microsecond=0)
    until = since + timedelta(hours=1)
    w = kalshi_worker.c
    with engine.begin() as conn:
        assert claim_window(conn, KEY, "host-b:77", 3600)
        heartbeat(conn, "host-b:77", KIND_EXTRACT, 3600)
        heartbeat(conn, "host-c:5", KIND_LOAD, 1)
        # Whole seconds, so the expected lines are exact.
        conn.execute(update(kalshi_backfill_checkpoint).values(lease_claimed_utc=since))
        conn.execute(update(kalshi_backfill_checkpoint).values(lease_expires_utc=until))
        conn.execute(
            update(kalshi_worker).where(w.worker_id == "host-b:77").values(started_at_utc=since)
        )
        conn.execute(
            update(kalshi_worker)
            .where(w.worker_id == "host-c:5")
            .values(expires_utc=since - timedelta(hours=1))
        )
    engine.dispose()
    res = CliRunner().invoke(status_cmd, ["--db", db_url])
    assert res.exit_code == 0, res.output
    assert (
        f"LEASED {KEY.event_ticker} p1 FULL_MARKET_WINDOW (RUNNING) by host-b:77 "
        f"since {since.isoformat()} until {until.isoformat()}"
    ) in res.stdout.splitlines()
    assert f"WORKER host-b:77 extract live: started {since.isoformat()}" in res.stdout
    assert "WORKER host-c:5 load gone: " in res.stdout

    res = CliRunner().invoke(status_cmd, ["--db", db_url, "--format", "json"])
    (doc,) = orjson.loads(res.stdout)
    assert doc["leased"][0]["lease_claimed_utc"] == since.isoformat()
