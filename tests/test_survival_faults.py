"""Faults from the API and the database end in a correct backfill or a clear FAILED, never
in silently missing or wrong rows.

API faults come from the simulator over real HTTP (scripted with ``fail_next``); every
run goes on through the loader into MariaDB and the table is compared with the
simulator's ground truth. What the extract tests already prove (random faults produce a
correct archive) is not repeated: here each fault kind is made PERSISTENT for one event,
which must end FAILED with a reason naming the fault and a non-zero exit while the other
events load; then the fault clears and a rerun completes everything. The database side:
the loader's connection is killed (``KILL CONNECTION``, what a MariaDB restart does to
a client) at every statement of the load transaction in turn, and at its COMMIT.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, create_engine, event, text

from extract.cli import main as extract_main
from load.cli import cli as load_cli
from load.config import LoadConfig
from load.run.loader import load_windows
from schemas.db import make_engine
from schemas.errors import KalshiBackfillError
from tests.databases import MYSQL_SERVER_URL, mariadb_database
from tests.kalshi_sim import FAULT_KINDS, FaultConfig, FaultKind, SimServer, run_sim_in_thread
from tests.test_survival_support import (
    EVENTS,
    SERIES,
    SIM,
    checkpoint_statuses,
    stored_values,
    sync_events,
    truth_values,
)

FAULTY = EVENTS[1]

#: What the FAILED reason must say for each fault kind that never stops.
REASONS: dict[str, str] = {
    "500": "HTTP 500",
    "502": "HTTP 502",
    "503": "HTTP 503",
    "429": "HTTP 429",
    "reset": "Disconnected",
    "slow": "timeout after 1.0s",
    "truncated": "unparseable body",
    "invalid_json": "unparseable body",
    "wrong_event": "names markets of another event",
    "stuck_end": "does not advance",
    "bad_price": "not a price in [0, 1] dollars",
    "number_value": "where the contract has a string",
}
#: Contract-breaking values are refused, not retried: a burst of them fails its window.
REFUSED: tuple[FaultKind, ...] = ("bad_price", "number_value")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with run_sim_in_thread(replace(SIM, faults=FaultConfig(slow_seconds=1.5))) as server:
        yield server


def extract(sim: SimServer, db_url: str, archive: Path, retries: int = 2) -> Result:
    # The 1 s timeout: a "slow" answer (1.5 s) always times out, and a healthy one on a
    # busy machine (tests in parallel; the simulator shares this process's GIL) does not.
    args = ["candles", "--series", SERIES, "--db", db_url, "--archive", str(archive)]
    args += ["--api-base", sim.base_url, "--rps", "1000", "--timeout", "1"]
    args += ["--max-retries", str(retries), "--backoff-base", "0.001", "-q"]
    return CliRunner().invoke(extract_main, args)


def load(db_url: str, archive: Path) -> Result:
    return CliRunner().invoke(load_cli, ["run", "--db", db_url, "--archive", str(archive), "-q"])


def test_every_fault_kind_is_covered() -> None:
    assert set(REASONS) == set(FAULT_KINDS)


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_a_fault_that_never_stops_fails_its_window_clearly_then_a_rerun_completes(
    kind: FaultKind, sim: SimServer, sqlite_url: str, tmp_path: Path
) -> None:
    """(SQLite keeps these ten fast; the burst test below loads into MariaDB.)"""
    archive = tmp_path / "raw"
    sync_events(sim, sqlite_url)
    sim.reset()
    sim.fail_next(f"/events/{FAULTY}/candlesticks", kind, times=1000)
    try:
        r = extract(sim, sqlite_url, archive)
    finally:
        sim.faults.clear()
    assert r.exit_code == 1, r.output
    failed = [ln for ln in r.output.splitlines() if ln.startswith(f"FAILED {FAULTY}")]
    assert len(failed) == 1 and REASONS[kind] in failed[0], r.output
    assert "1 event windows FAILED" in r.output

    statuses = checkpoint_statuses(sqlite_url)
    assert statuses[FAULTY].startswith("FAILED: ") and REASONS[kind] in statuses[FAULTY]
    # The loader loads the complete windows and never touches the failed one.
    assert load(sqlite_url, archive).exit_code == 0
    others = [e for e in EVENTS if e != FAULTY]
    assert stored_values(sqlite_url) == truth_values(sim, others)
    assert checkpoint_statuses(sqlite_url)[FAULTY].startswith("FAILED")

    if kind not in ("wrong_event", "reset"):
        return  # clearing and rerunning is the same for every kind: two suffice
    # The fault is gone: a rerun fetches what is missing and the table is complete.
    assert extract(sim, sqlite_url, archive).exit_code == 0
    assert load(sqlite_url, archive).exit_code == 0
    assert stored_values(sqlite_url) == truth_values(sim, EVENTS)
    assert set(checkpoint_statuses(sqlite_url).values()) == {"SUCCESS"}


def test_bursts_of_every_fault_are_retried_into_a_correct_table(
    sim: SimServer, mariadb_url: str, tmp_path: Path
) -> None:
    """Bursts shorter than the retry budget: no FAILED, and the rows are the truth."""
    archive = tmp_path / "raw"
    sync_events(sim, mariadb_url)
    sim.reset()
    for kind in FAULT_KINDS:
        if kind not in REFUSED:
            sim.fail_next("/candlesticks", kind, times=2)
    try:
        r = extract(sim, mariadb_url, archive, retries=30)
        assert sim.faults.pending() == 0
    finally:
        sim.faults.clear()
    assert r.exit_code == 0, r.output
    assert load(mariadb_url, archive).exit_code == 0
    assert stored_values(mariadb_url) == truth_values(sim, EVENTS)
    assert set(checkpoint_statuses(mariadb_url).values()) == {"SUCCESS"}


# --- the database goes away in the middle of a load -------------------------------------


class ConnectionKiller:
    """Kills the loader's connection from another session, as a server restart would:
    before the ``at``-th statement the loader sends, or before its ``at``-th COMMIT."""

    def __init__(self, engine: Engine, at: int, on_commit: bool) -> None:
        self.admin = create_engine(MYSQL_SERVER_URL)
        self.at, self.on_commit = at, on_commit
        self.seen = 0
        self.killed = False
        if on_commit:
            event.listen(engine, "commit", self.commit_hook)
        else:
            event.listen(engine, "before_cursor_execute", self.statement_hook)

    def _kill(self, thread_id: int) -> None:
        self.killed = True
        with self.admin.begin() as conn:
            conn.execute(text(f"KILL CONNECTION {int(thread_id)}"))

    def statement_hook(self, conn: Any, cursor: Any, *args: Any) -> None:
        self.seen += 1
        if self.seen == self.at:
            self._kill(cursor.connection.thread_id())

    def commit_hook(self, conn: Any) -> None:
        self.seen += 1
        if self.seen == self.at:
            self._kill(conn.connection.dbapi_connection.thread_id())


@pytest.fixture(scope="module")
def extracted(sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One archive of the three events (extracted once for the whole module)."""
    archive = tmp_path_factory.mktemp("extracted") / "raw"
    with mariadb_database() as db_url:
        sync_events(sim, db_url)
        assert extract(sim, db_url, archive).exit_code == 0
    yield archive


def _statements_of_one_load(archive: Path, db_url: str) -> int:
    eng = make_engine(db_url)
    count = [0]
    event.listen(eng, "before_cursor_execute", lambda *a: count.__setitem__(0, count[0] + 1))
    load_windows(LoadConfig(db_url=db_url, archive_dir=archive, retry_backoff_s=0), engine=eng)
    eng.dispose()
    return count[0]


def connection_kill_sweep(
    sim: SimServer, archive: Path, db_url: str, sample: int | None, seed: int = 0
) -> int:
    """Kill the loader's connection before statement n (or COMMIT n) of a load, for every
    n (``sample=None``) or a seeded sample; each load must end complete and correct, or
    fail with one clear line and complete on the next run. Returns the moments tried."""
    sync_events(sim, db_url)
    total = _statements_of_one_load(archive, db_url)
    truth = truth_values(sim, EVENTS)
    assert stored_values(db_url) == truth
    moments = [(n, False) for n in range(1, total + 1)] + [(n, True) for n in (1, 2, 3)]
    if sample is not None:
        moments = random.Random(seed).sample(moments, sample)
    cfg = LoadConfig(db_url=db_url, archive_dir=archive, retry_backoff_s=0)
    gave_up = 0
    for at, on_commit in moments:
        where = f"seed {seed}: killed before {'commit' if on_commit else 'statement'} {at}"
        eng = make_engine(db_url)
        with eng.begin() as conn:
            for table in ("kalshi_candle", "kalshi_window_stats", "kalshi_backfill_checkpoint"):
                conn.exec_driver_sql(f"DELETE FROM {table}")
        killer = ConnectionKiller(eng, at, on_commit)
        try:
            summary = load_windows(cfg, engine=eng)
            assert (summary.windows_loaded, summary.windows_failed) == (3, 0), where
        except KalshiBackfillError as e:
            # Lost outside the retried write (reading checkpoints): one clear error,
            # nothing half written, and the next run completes.
            gave_up += 1
            assert "Lost connection" in str(e) and "\n" not in str(e), where
            assert_rows_only_with_success(db_url, where)
            load_windows(cfg, engine=eng)
        finally:
            eng.dispose()
            killer.admin.dispose()
        assert killer.killed, where
        assert stored_values(db_url) == truth, where
        assert set(checkpoint_statuses(db_url).values()) == {"SUCCESS"}, where
    return len(moments)


@pytest.mark.mariadb
def test_connection_killed_mid_load_loses_and_duplicates_nothing(
    sim: SimServer, extracted: Path, mariadb_url: str
) -> None:
    """A seeded sample here; ``make soak`` sweeps every statement."""
    seed = secrets.randbelow(2**31)
    connection_kill_sweep(sim, extracted, mariadb_url, sample=4, seed=seed)


def assert_rows_only_with_success(db_url: str, where: str) -> None:
    done = {e for e, s in checkpoint_statuses(db_url).items() if s == "SUCCESS"}
    have = {m.rsplit("-", 1)[0] for m, _ in stored_values(db_url)}
    assert have == done, where
