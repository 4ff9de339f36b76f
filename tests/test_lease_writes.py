"""Checkpoint writes under the lease, the database's clock, and a loop no database call blocks.

Issue 15 items 3, 4 and 13, on SQLite and MariaDB:

- a worker that stalled past its lease never overwrites the state of the worker that
  took the window over (RUNNING, EXTRACTED, FAILED, and the loader's FAILED);
- two hosts whose clocks disagree by minutes still count each other live and expire
  leases on the server's time (a host's clock is skewed by patching ``datetime`` in the
  lease modules: whatever still read the host's clock would see the skew);
- a database call that waits (a lock held by another connection) never freezes the
  event loop: other windows and the heartbeat go on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.engine import make_url

import extract.run.workers
import load.run.leases
import schemas.checkpoints
import schemas.workers
from extract.api.throttle import Throttle
from extract.config import ExtractConfig
from extract.errors import LeaseLostError
from extract.events.sync import sync_events
from extract.run.candles import run_candles
from extract.run.workers import Coordinator
from load.config import LoadConfig
from load.errors import LoadFailedError
from load.run.leases import record_failure
from load.run.loader import load_windows
from schemas.archive import Manifest, WindowKey
from schemas.checkpoints import (
    claim_window,
    ensure_checkpoint,
    finish_window,
    get_checkpoint,
    renew_window,
)
from schemas.core import CheckpointStatus
from schemas.db import make_engine
from schemas.dbclock import db_after
from schemas.processes import KIND_EXTRACT, KIND_LOAD
from schemas.tables import kalshi_backfill_checkpoint, kalshi_worker
from schemas.workers import heartbeat, list_workers
from tests.kalshi_sim import FaultConfig, SimServer, run_sim_in_thread
from tests.test_checkpoints import expire_lease
from tests.test_scale_leases import KEY, SIM, extract_config

STALLED = "KXHIGHNY-25NOV14"


def _config(sim: SimServer, db_url: str, archive: Path, **over: Any) -> ExtractConfig:
    return extract_config(sim, db_url, archive, **{"worker_id": "w-a", **over})


def _take_over(engine: Engine, key: WindowKey) -> None:
    """Worker w-b takes the (expired) window and records its own progress."""
    expire_lease(engine)
    with engine.begin() as conn:
        assert claim_window(conn, key, "w-b", 3600)
        assert renew_window(
            conn, key, "w-b", 3600, status=CheckpointStatus.RUNNING, pages_archived=7
        )


def _assert_w_b_state(engine: Engine, key: WindowKey) -> None:
    with engine.connect() as conn:
        cp = get_checkpoint(conn, key)
    assert cp is not None
    assert (cp.lease_owner, cp.status, cp.pages_archived) == (
        "w-b",
        CheckpointStatus.RUNNING,
        7,
    )
    assert cp.last_error is None


# --- item 3: every checkpoint write is conditional on the lease ---------------------------


def test_the_statements_write_only_for_the_lease_holder(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        ensure_checkpoint(conn, KEY, window_start_ts=60, window_end_ts=600, is_final=True)
        assert claim_window(conn, KEY, "w-a", 30)
    _take_over(engine, KEY)
    with engine.begin() as conn:  # w-a wakes up and tries every kind of write
        assert not renew_window(conn, KEY, "w-a", 30, status=CheckpointStatus.EXTRACTED)
        assert not finish_window(conn, KEY, "w-a", status=CheckpointStatus.FAILED, last_error="x")
        assert not claim_window(conn, KEY, "w-a", 30)
    _assert_w_b_state(engine, KEY)
    with engine.begin() as conn:  # the holder's own final write releases the lease
        assert finish_window(conn, KEY, "w-b", status=CheckpointStatus.EXTRACTED)
        cp = get_checkpoint(conn, KEY)
    assert cp is not None and (cp.status, cp.lease_owner) == (CheckpointStatus.EXTRACTED, None)
    engine.dispose()


async def test_a_stalled_extractor_saves_nothing_once_its_window_was_taken(
    db_url: str,
) -> None:
    engine = make_engine(db_url)
    a = Coordinator(engine, db_url, "w-a", 30)
    assert (await a.claim(KEY, 60, 600, True)).ok
    await a.save(KEY, CheckpointStatus.RUNNING, window=(60, 600, True), pages_archived=1)
    _take_over(engine, KEY)  # a stalled past its lease
    for status in (CheckpointStatus.RUNNING, CheckpointStatus.EXTRACTED, CheckpointStatus.FAILED):
        with pytest.raises(LeaseLostError):
            await a.save(KEY, status, window=(60, 900, False), last_error="late")
    _assert_w_b_state(engine, KEY)
    with engine.connect() as conn:
        cp = get_checkpoint(conn, KEY)
    assert cp is not None and (cp.window_end_ts, cp.is_final) == (600, True)
    engine.dispose()


async def test_a_window_failing_after_a_takeover_keeps_the_new_holders_state(
    db_url: str, archive_dir: Path
) -> None:
    """The extractor's FAILED: its requests for one event stall (each answer comes after
    the timeout); meanwhile its lease expires and w-b takes the window over. When its
    retries run out, its FAILED must not land on w-b's row."""
    sim_config = replace(SIM, faults=FaultConfig(p_slow=1.0, slow_seconds=3.0, routes=(STALLED,)))
    async with SimServer(sim_config) as sim:
        cfg = _config(sim, db_url, archive_dir, concurrency=2)
        await sync_events(cfg)
        cfg = replace(cfg, api=replace(cfg.api, timeout_s=1.0, max_retries=1))
        engine = make_engine(db_url)
        key = cfg.window_key(STALLED)
        run = asyncio.create_task(run_candles(cfg))
        for _ in range(400):  # until w-a holds the window and marked it RUNNING
            await asyncio.sleep(0.01)
            with engine.connect() as conn:
                cp = get_checkpoint(conn, key)
            if cp is not None and cp.lease_owner == "w-a":
                break
        assert cp is not None and cp.lease_owner == "w-a", "w-a never took the window"
        _take_over(engine, key)
        summary = await run
    _assert_w_b_state(engine, key)
    assert (summary.done, summary.lost, summary.failed) == (4, 1, 0)
    engine.dispose()


def test_a_stalled_loader_records_no_failure_on_a_window_taken_over(db_url: str) -> None:
    engine = make_engine(db_url)
    manifest = Manifest(KEY, 60, 600, True, (), ())
    lc = LoadConfig(db_url=db_url, worker_id="w-a", lease_seconds=30)
    with engine.begin() as conn:
        ensure_checkpoint(conn, KEY, window_start_ts=60, window_end_ts=600, is_final=True)
        assert claim_window(conn, KEY, "w-a", 30)
    _take_over(engine, KEY)
    with engine.begin() as conn:
        assert not record_failure(conn, KEY, manifest, "bad page", lc, claimed=True)
        assert not record_failure(conn, KEY, None, "bad manifest", lc, claimed=False)
    _assert_w_b_state(engine, KEY)
    engine.dispose()


async def test_the_loader_leaves_a_window_another_worker_holds_as_it_is(
    db_url: str, archive_dir: Path
) -> None:
    """A corrupt manifest found while another live worker (an extractor redoing the
    window) holds the window: the loader fails the run, but writes nothing on that row."""
    async with SimServer(SIM) as sim:
        cfg = _config(sim, db_url, archive_dir)
        await sync_events(cfg)
        assert (await run_candles(cfg)).done == 5
    engine = make_engine(db_url)
    key = cfg.window_key(STALLED)
    (archive_dir / key.manifest_path).write_bytes(b"{not json")
    with engine.begin() as conn:
        assert claim_window(conn, key, "w-b", 3600)
        assert renew_window(
            conn, key, "w-b", 3600, status=CheckpointStatus.RUNNING, pages_archived=7
        )
    lc = LoadConfig(db_url=db_url, archive_dir=archive_dir, worker_id="loader")
    with pytest.raises(LoadFailedError):
        load_windows(lc, engine=engine)
    _assert_w_b_state(engine, key)
    engine.dispose()


# --- item 4: lease and heartbeat times from the database server ------------------------------

_REAL_DATETIME = datetime


class _HostClock:
    """This host's clock, off by ``skew``: what ``datetime.now`` answers in the lease code."""

    skew = timedelta(0)


class _SkewedDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return _REAL_DATETIME.now(tz) + _HostClock.skew


@pytest.fixture
def host_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_HostClock]]:
    for module in (schemas.checkpoints, schemas.workers, extract.run.workers, load.run.leases):
        monkeypatch.setattr(module, "datetime", _SkewedDatetime, raising=False)
    yield _HostClock
    _HostClock.skew = timedelta(0)


@contextlib.contextmanager
def _on_host(clock: type[_HostClock], seconds: float) -> Iterator[None]:
    clock.skew = timedelta(seconds=seconds)
    try:
        yield
    finally:
        clock.skew = timedelta(0)


async def test_hosts_with_skewed_clocks_see_each_other_live_and_share_the_budget(
    db_url: str, host_clock: type[_HostClock]
) -> None:
    engine = make_engine(db_url)
    ta, tb = Throttle(20), Throttle(20)
    a = Coordinator(engine, db_url, "host-a:1", 30, throttle=ta, key_rps=20)  # 60 s ahead
    b = Coordinator(engine, db_url, "host-b:1", 30, throttle=tb, key_rps=20)  # 60 s behind
    with _on_host(host_clock, +60):
        await a.beat()
    with _on_host(host_clock, -60):
        await b.beat()
    with _on_host(host_clock, +60):
        await a.beat()
    # Heartbeats live 15 s: by its own clock, a would see b dead for two minutes already.
    assert (a.live_workers, b.live_workers) == (2, 2)
    assert (ta.nominal_rate, tb.nominal_rate) == (10, 10)  # the key's 20/s, not 40/s
    engine.dispose()


async def test_a_lease_expires_on_the_servers_time_whatever_the_hosts_say(
    db_url: str, host_clock: type[_HostClock]
) -> None:
    engine = make_engine(db_url)
    other = replace(KEY, event_ticker="KXHIGHNY-25NOV21")
    a = Coordinator(engine, db_url, "host-a:1", 2)  # 60 s ahead
    b = Coordinator(engine, db_url, "host-b:1", 2)  # 60 s behind
    with _on_host(host_clock, +60):
        assert (await a.claim(KEY, 60, 600, True)).ok
    with _on_host(host_clock, -60):
        assert (await b.claim(other, 60, 600, True)).ok
        assert not (await b.claim(KEY, 60, 600, True)).ok  # a's lease is live
    with _on_host(host_clock, +60):
        assert not (await a.claim(other, 60, 600, True)).ok  # and so is b's
    await asyncio.sleep(2.5)  # both 2-second leases run out (server time)
    with _on_host(host_clock, -60):
        assert (await b.claim(KEY, 60, 600, True)).ok
    with _on_host(host_clock, +60):
        assert (await a.claim(other, 60, 600, True)).ok
    engine.dispose()


# --- item 13: database calls never block the event loop ----------------------------------------


@contextlib.contextmanager
def _lock_held(db_url: str, engine: Engine, key: WindowKey, seconds: float) -> Iterator[None]:
    """Another connection holds a lock for ``seconds`` (from a thread): on SQLite the whole
    database (BEGIN EXCLUSIVE), on MariaDB the window's checkpoint row (FOR UPDATE)."""
    taken = threading.Event()

    def hold() -> None:
        url = make_url(db_url)
        if url.get_backend_name() == "sqlite":
            raw = sqlite3.connect(str(url.database), timeout=30)
            raw.isolation_level = None
            raw.execute("BEGIN EXCLUSIVE")
            taken.set()
            time.sleep(seconds)
            raw.execute("ROLLBACK")
            raw.close()
            return
        cp = kalshi_backfill_checkpoint.c
        with engine.connect() as conn, conn.begin():
            conn.execute(  # the whole key: a record lock, no gap lock on its neighbours
                select(kalshi_backfill_checkpoint)
                .where(
                    cp.event_ticker == key.event_ticker,
                    cp.period_interval_minutes == key.period_interval,
                    cp.window_policy == key.window_policy.value,
                )
                .with_for_update()
            ).all()
            taken.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold, name="lock-holder")
    thread.start()
    assert taken.wait(10)
    try:
        yield
    finally:
        thread.join()


async def test_a_blocked_database_call_does_not_freeze_the_extractor(
    db_url: str, archive_dir: Path
) -> None:
    # The simulator serves from its own thread: its CPU is not this loop's.
    with run_sim_in_thread(SIM) as sim:
        cfg = _config(sim, db_url, archive_dir, concurrency=2)
        await sync_events(cfg)
        engine = make_engine(db_url)
        key = cfg.window_key("KXHIGHNY-25NOV12")  # the first window the run takes
        with engine.begin() as conn:
            ensure_checkpoint(conn, key, window_start_ts=0, window_end_ts=1, is_final=True)

        gaps: list[float] = []

        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.02)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        hold_s = 6.0
        with _lock_held(db_url, engine, key, hold_s):
            started = sim.counters.total
            run = asyncio.create_task(run_candles(cfg, engine=engine))
            await asyncio.sleep(hold_s - 0.3)  # while the lock is held
            during = sim.counters.total - started
            summary = await run
        tick.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tick
    assert summary.done == 5 and summary.failed == 0
    # Blocked on the loop, the first locked call would stop every tick until the lock
    # goes (~6 s). Off the loop, the ticks go on; the margin absorbs a busy machine's own
    # pauses (up to 2 s measured at load average 13 on 2 cores).
    assert max(gaps) < hold_s / 2, f"the event loop stalled {max(gaps):.2f} s"
    if make_url(db_url).get_backend_name() != "sqlite":
        # Only one window's row was locked: the other windows fetched meanwhile.
        assert during >= 3
    engine.dispose()


def test_status_says_live_or_gone_by_the_servers_clock(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        heartbeat(conn, "host-a:1", KIND_EXTRACT, 15)
        heartbeat(conn, "host-b:1", KIND_LOAD, 15)
        conn.execute(
            update(kalshi_worker)
            .where(kalshi_worker.c.worker_id == "host-b:1")
            .values(expires_utc=db_after(-1))
        )
        rows = {w.worker_id: w for w in list_workers(conn)}
    engine.dispose()
    real = datetime.now(UTC)
    for status_host_skew in (timedelta(minutes=-2), timedelta(0), timedelta(minutes=2)):
        assert rows["host-a:1"].live(real + status_host_skew)
        assert not rows["host-b:1"].live(real + status_host_skew)
