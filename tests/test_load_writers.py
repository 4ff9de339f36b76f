"""Two batch writers (``LoadConfig.writers``): the same tables as one, kills and failures.

Each writer thread writes whole batches on its own connection, one transaction per batch
(stage, merge, stats, SUCCESS, commit). These tests make the two writers really overlap
(a barrier that only two writers in flight at once can pass), then kill their connections,
fail one of them, and SIGKILL the whole loader, checking every time that no window is
SUCCESS without its rows and that a rerun ends with the ground truth.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, delete, event, func, select, text

from load.config import LoadConfig
from load.errors import LoadFailedError
from load.run.loader import load_windows
from schemas.core import CheckpointStatus
from schemas.crashpoints import LOAD_AFTER_MERGE, LOAD_BEFORE_COMMIT
from schemas.db import make_engine
from schemas.tables import kalshi_backfill_checkpoint, kalshi_candle, kalshi_window_stats
from tests.databases import MYSQL_SERVER_URL
from tests.kalshi_sim import World
from tests.test_load_support import (
    Truth,
    build_window,
    closed_events,
    full_rows,
    ground_truth,
    new_archive,
    sim_config,
    stored,
)
from tests.test_survival_support import load_cmd, run_stage, stage_env

MERGE = "INSERT INTO kalshi_candle ("


@pytest.fixture(scope="module")
def world() -> World:
    return World(sim_config(markets_per_event=3, null_book_rate=0.03, subcent_market_rate=0.5))


@pytest.fixture(scope="module")
def events(world: World) -> list[str]:
    return closed_events(world, "KXHIGHNY", 3) + closed_events(world, "KXHIGHCHI", 2)


@pytest.fixture
def truth(world: World, events: list[str], archive_dir: Path) -> Truth:
    """Five windows archived (one per event); their ground truth."""
    archive = new_archive(archive_dir)
    for e in events:
        build_window(archive, world, e)
    return ground_truth(world, events)


@pytest.fixture
def engine(mariadb_url: str) -> Iterator[Engine]:
    eng = make_engine(mariadb_url, local_infile=True)
    yield eng
    eng.dispose()


def config(db_url: str, archive: Path, **over: Any) -> LoadConfig:
    return LoadConfig(db_url=db_url, archive_dir=archive, retry_backoff_s=0, **over)


def tables(engine: Engine) -> tuple[list[str], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every candle (as text), every checkpoint's outcome, every stats row."""
    cp, st = kalshi_backfill_checkpoint.c, kalshi_window_stats.c
    with engine.connect() as conn:
        cps = conn.execute(
            select(cp.event_ticker, cp.status, cp.rows_loaded, cp.lease_owner).order_by(
                cp.event_ticker
            )
        ).all()
        stats = conn.execute(
            select(
                st.event_ticker,
                st.market_ticker,
                st.expected_candles,
                st.present_candles,
                st.missing_candles,
                st.missing_in_maintenance,
                st.null_book_candles,
            ).order_by(st.event_ticker, st.market_ticker)
        ).all()
    return full_rows(engine), [tuple(r) for r in cps], [tuple(r) for r in stats]


def assert_success_only_with_rows(engine: Engine) -> None:
    """Every SUCCESS window has exactly its rows; no rows without SUCCESS."""
    cp, c = kalshi_backfill_checkpoint.c, kalshi_candle.c
    with engine.connect() as conn:
        cps = conn.execute(select(cp.event_ticker, cp.status, cp.rows_loaded)).all()
        counts = dict(
            conn.execute(select(c.event_ticker, func.count()).group_by(c.event_ticker)).all()
        )
    success = {r.event_ticker: r.rows_loaded for r in cps if r.status == "SUCCESS"}
    assert set(counts) <= set(success), f"rows without SUCCESS: {set(counts) - set(success)}"
    for ev, n in success.items():
        assert counts.get(ev) == n, f"{ev}: SUCCESS says {n} rows, table has {counts.get(ev)}"


def clear(engine: Engine) -> None:
    with engine.begin() as conn:
        for t in (kalshi_candle, kalshi_backfill_checkpoint, kalshi_window_stats):
            conn.execute(delete(t))


class MergeHook:
    """Runs at every candle merge, in the writer's thread, on the writer's connection.

    ``overlap``: the first two merges wait for each other at a barrier, so the test knows
    two writers were in a transaction at the same time (with one writer it times out).
    ``kill``: then each of them kills its own connection, as a server restart would.
    ``fail_at``: the n-th merge raises a plain error (a bug in a writer thread).
    """

    def __init__(
        self, engine: Engine, *, overlap: bool = False, kill: bool = False, fail_at: int = 0
    ) -> None:
        self.admin = create_engine(MYSQL_SERVER_URL)
        self.barrier = threading.Barrier(2, timeout=30) if overlap else None
        self.kill, self.fail_at = kill, fail_at
        self.lock = threading.Lock()
        self.merges = 0
        self.kills = 0
        self.overlapped = 0
        self.connections: set[int] = set()
        event.listen(engine, "before_cursor_execute", self.hook)

    def hook(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith(MERGE):
            return
        thread_id = int(cursor.connection.thread_id())
        with self.lock:
            self.merges += 1
            n = self.merges
            self.connections.add(thread_id)
        if n == self.fail_at:
            raise RuntimeError("a writer thread broke")
        if self.barrier is not None and n <= 2:
            self.barrier.wait()  # BrokenBarrierError (fails the load) unless two overlap
            with self.lock:
                self.overlapped += 1
            if self.kill:
                with self.admin.begin() as admin:
                    admin.execute(text(f"KILL {thread_id}"))
                with self.lock:
                    self.kills += 1

    def close(self) -> None:
        self.admin.dispose()


@pytest.mark.mariadb
def test_two_writers_write_the_same_tables_as_one(
    mariadb_url: str, engine: Engine, archive_dir: Path, truth: Truth
) -> None:
    results = []
    for writers, batch in ((1, 1), (2, 1), (2, 2), (3, 1)):
        clear(engine)
        summary = load_windows(
            config(mariadb_url, archive_dir, writers=writers, batch_windows=batch), engine=engine
        )
        assert (summary.windows_loaded, summary.windows_failed, summary.rows) == (
            5,
            0,
            len(truth),
        )
        assert stored(engine) == truth
        results.append(tables(engine))
    assert all(r == results[0] for r in results[1:])
    rows, cps, stats = results[0]
    assert len(rows) == len(truth) and len(stats) == 5 * 3
    assert {(c[1], c[3]) for c in cps} == {("SUCCESS", None)}  # every lease given back


@pytest.mark.mariadb
def test_two_writers_overlap_and_both_killed_connections_are_retried(
    mariadb_url: str, engine: Engine, archive_dir: Path, truth: Truth
) -> None:
    hook = MergeHook(engine, overlap=True, kill=True)
    try:
        summary = load_windows(config(mariadb_url, archive_dir, writers=2), engine=engine)
    finally:
        hook.close()
    assert hook.overlapped == 2 and hook.kills == 2  # two transactions in flight, both lost
    assert len(hook.connections) >= 2
    assert hook.merges == 5 + 2  # each killed batch was merged again
    assert (summary.windows_loaded, summary.windows_failed) == (5, 0)
    assert stored(engine) == truth
    assert_success_only_with_rows(engine)


@pytest.mark.mariadb
def test_one_writer_is_not_concurrent(
    mariadb_url: str, engine: Engine, archive_dir: Path, truth: Truth
) -> None:
    """The overlap check above can fail: one writer never has two merges in flight."""
    hook = MergeHook(engine, overlap=True)
    hook.barrier = threading.Barrier(2, timeout=2)
    try:
        with pytest.raises(threading.BrokenBarrierError):
            load_windows(config(mariadb_url, archive_dir, writers=1), engine=engine)
    finally:
        hook.close()
    assert hook.overlapped == 0
    assert_success_only_with_rows(engine)
    assert len(truth) > 0


@pytest.mark.mariadb
def test_a_failing_writer_fails_the_run_loudly_and_leaves_no_thread(
    mariadb_url: str, engine: Engine, archive_dir: Path, truth: Truth
) -> None:
    hook = MergeHook(engine, fail_at=2)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            load_windows(config(mariadb_url, archive_dir, writers=2), engine=engine)
            outcome.append(None)
        except BaseException as e:  # handed to the test's thread below
            outcome.append(e)

    runner = threading.Thread(target=run)
    runner.start()
    runner.join(timeout=120)
    hook.close()
    assert not runner.is_alive(), "the load hung after a writer failed"
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError), outcome
    assert "a writer thread broke" in str(outcome[0])
    assert not [t for t in threading.enumerate() if t.name.startswith("load-write")]
    assert_success_only_with_rows(engine)
    with engine.connect() as conn:
        done = conn.execute(
            select(func.count())
            .select_from(kalshi_backfill_checkpoint)
            .where(kalshi_backfill_checkpoint.c.status == CheckpointStatus.SUCCESS.value)
        ).scalar_one()
    assert done < 5  # the failed batch is not SUCCESS; the run stopped
    # The leases were given back: a rerun (same worker or not) loads the rest at once.
    rerun = load_windows(config(mariadb_url, archive_dir, worker_id="rerun"), engine=engine)
    assert rerun.windows_loaded == 5 - done
    assert stored(engine) == truth


@pytest.mark.mariadb
@pytest.mark.parametrize("point", [LOAD_AFTER_MERGE, LOAD_BEFORE_COMMIT])
def test_sigkill_with_two_writers_then_rerun_equals_the_truth(
    mariadb_url: str, engine: Engine, archive_dir: Path, truth: Truth, tmp_path: Path, point: str
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cmd = load_cmd(mariadb_url, archive_dir, "--writers", "2")
    killed = run_stage(cmd, stage_env(tmp, crash=f"{point}:3"))
    assert killed.returncode == -9, killed.stderr
    assert_success_only_with_rows(engine)
    with engine.connect() as conn:
        statuses = conn.execute(select(kalshi_backfill_checkpoint.c.status)).scalars().all()
    assert statuses.count("SUCCESS") < 5
    rerun = run_stage(cmd, stage_env(tmp))
    assert rerun.returncode == 0, rerun.stderr
    assert stored(engine) == truth
    assert_success_only_with_rows(engine)


def test_writers_is_validated() -> None:
    with pytest.raises(Exception, match="writers"):
        LoadConfig(writers=0)


def test_sqlite_uses_one_writer(sqlite_url: str, archive_dir: Path, truth: Truth) -> None:
    """SQLite has one write lock: a second writer would only wait for it."""
    eng = make_engine(sqlite_url)
    try:
        summary = load_windows(config(sqlite_url, archive_dir, writers=2), engine=eng)
        assert summary.windows_loaded == 5
        assert stored(eng) == truth
    finally:
        eng.dispose()


@pytest.mark.mariadb
def test_load_failed_error_is_unchanged_by_writers(
    mariadb_url: str, engine: Engine, archive_dir: Path, truth: Truth
) -> None:
    """A window that fails (its connection lost on every try) is FAILED, the others load."""
    kills = [0]
    admin = create_engine(MYSQL_SERVER_URL)
    first_event = min(k[0] for k in truth).rsplit("-", 1)[0]

    def hook(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        if statement.startswith("INSERT INTO kalshi_window_stats") and first_event in str(params):
            kills[0] += 1
            with admin.begin() as a:
                a.execute(text(f"KILL {int(cursor.connection.thread_id())}"))

    event.listen(engine, "before_cursor_execute", hook)
    try:
        with pytest.raises(LoadFailedError, match="1 window"):
            load_windows(config(mariadb_url, archive_dir, writers=2, db_attempts=2), engine=engine)
    finally:
        admin.dispose()
    assert kills[0] == 2
    assert_success_only_with_rows(engine)
    got = stored(engine)
    assert got == {k: v for k, v in truth.items() if not k[0].startswith(first_event + "-")}
