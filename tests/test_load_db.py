"""The load stage against real databases (SQLite and MariaDB through ``db_url``).

Archives are built from the simulator's ground truth (see ``test_load_support``); every
test compares what the database holds with that truth, value for value, NULLs included.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, delete, event, func, select, text

from load.cli import cli
from load.config import LoadConfig
from load.errors import LoadFailedError
from load.run.loader import load_windows
from schemas.archive import QUARANTINE_DIR, LocalArchive
from schemas.checkpoints import get_checkpoint, list_checkpoints
from schemas.core import CheckpointStatus
from schemas.db import make_engine, upsert
from schemas.tables import kalshi_backfill_checkpoint, kalshi_candle, kalshi_window_stats
from tests.databases import MYSQL_SERVER_URL
from tests.kalshi_sim import World
from tests.kalshi_sim.candles import maintenance_mask as sim_maintenance_mask
from tests.test_load_support import (
    T0,
    BuiltWindow,
    Truth,
    build_window,
    closed_events,
    full_rows,
    ground_truth,
    new_archive,
    sim_config,
    stored,
)


@pytest.fixture(scope="module")
def world() -> World:
    """Legacy cent twins, sub-cent markets and null books: every value path at once."""
    return World(
        sim_config(
            markets_per_event=3, legacy_fields=True, null_book_rate=0.03, subcent_market_rate=0.5
        )
    )


@pytest.fixture(scope="module")
def events(world: World) -> list[str]:
    return closed_events(world, "KXHIGHNY", 2) + closed_events(world, "KXHIGHCHI", 1)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url, local_infile=True)
    yield eng
    eng.dispose()


def historical_market(world: World, event_ticker: str) -> str:
    ev = world.event_info(event_ticker)
    assert ev is not None
    return ev.markets[0].ticker


def build_all(archive: LocalArchive, world: World, events: list[str]) -> list[BuiltWindow]:
    """One window per event; the first event's first market comes from the historical tier."""
    return [
        build_window(
            archive,
            world,
            e,
            historical=[historical_market(world, e)] if i == 0 else (),
            retrieved_at=T0 + timedelta(minutes=i),
        )
        for i, e in enumerate(events)
    ]


def expected(world: World, events: list[str]) -> Truth:
    """Ground truth; the historical route has no price min/max, so those are NULL there."""
    truth = ground_truth(world, events)
    hist = historical_market(world, events[0])
    for k, v in truth.items():
        if k[0] == hist:
            truth[k] = (*v[:14], None, None, *v[16:])
    return truth


def config(db_url: str, archive: Path, **over: Any) -> LoadConfig:
    return LoadConfig(db_url=db_url, archive_dir=archive, retry_backoff_s=0, **over)


def test_loaded_rows_equal_the_ground_truth(
    db_url: str, engine: Engine, archive_dir: Path, world: World, events: list[str]
) -> None:
    built = build_all(new_archive(archive_dir), world, events)
    summary = load_windows(config(db_url, archive_dir), engine=engine)
    truth = expected(world, events)
    assert (summary.windows_loaded, summary.windows_failed, summary.rows) == (3, 0, len(truth))
    got = stored(engine)
    assert got.keys() == truth.keys()
    assert got == truth  # every Decimal and every NULL
    nulls = sum(v is None for row in got.values() for v in row[:8])
    assert nulls > 0  # the null books really were exercised
    with engine.connect() as conn:
        for b in built:
            cp = get_checkpoint(conn, b.manifest.key)
            assert cp is not None and cp.status is CheckpointStatus.SUCCESS
            assert cp.window_end_ts == b.manifest.window_end_ts
            mine = {k for k in truth if k[0].startswith(b.manifest.key.event_ticker + "-")}
            assert cp.rows_loaded == len(mine)
        rows = conn.execute(select(kalshi_candle.c.retrieved_at_utc).distinct()).scalars().all()
        # retrieved_at_utc comes from the page envelopes, never from the load time
        assert min(rows) >= T0 and max(rows) < T0 + timedelta(hours=1)


def hand_stats(world: World, event_ticker: str) -> dict[str, dict[str, int]]:
    """Each market's stats from the simulated world alone, not from ``load.normalize.stats``.

    Markets open and close on whole minutes here, so the expected 1-minute candles end at
    every minute after the open up to and including the close.
    """
    ev = world.event_info(event_ticker)
    assert ev is not None
    out = {}
    for m in ev.markets:
        grid = np.arange(m.open_ts + 60, m.close_ts + 1, 60, dtype=np.int64)
        candles = world.candles(m.ticker, 1)
        present = np.array([c["end_period_ts"] for c in candles], dtype=np.int64)
        missing = grid[~np.isin(grid, present)]
        null_books = sum(
            any(c[side].get(f"{k}_dollars") is None for side in ("yes_bid", "yes_ask")
                for k in ("open", "high", "low", "close"))
            for c in candles
        )  # fmt: skip
        assert candles  # the market served candles
        out[m.ticker] = {
            "expected_candles": int(grid.size),
            "present_candles": int(np.isin(present, grid).sum()),
            "missing_candles": int(missing.size),
            "missing_in_maintenance": int(sim_maintenance_mask(missing).sum()),
            "null_book_candles": null_books,
        }
    return out


def test_window_stats_are_stored_with_the_rows(
    db_url: str, engine: Engine, archive_dir: Path, world: World, events: list[str]
) -> None:
    archive = new_archive(archive_dir)
    built = build_window(archive, world, events[1])
    load_windows(config(db_url, archive_dir), engine=engine)
    with engine.connect() as conn:
        rows = conn.execute(
            select(kalshi_window_stats).order_by(kalshi_window_stats.c.market_ticker)
        ).all()
    want = hand_stats(world, events[1])
    assert len(rows) == len(built.manifest.markets) == len(want)
    for row in rows:
        w = want[row.market_ticker]
        got = {k: getattr(row, k) for k in w}
        assert got == w, row.market_ticker
    assert sum(r.missing_candles for r in rows) > 0
    assert sum(r.null_book_candles for r in rows) > 0


def test_loading_twice_changes_nothing_and_skips_success(
    db_url: str, engine: Engine, archive_dir: Path, world: World, events: list[str]
) -> None:
    build_all(new_archive(archive_dir), world, events)
    load_windows(config(db_url, archive_dir), engine=engine)
    first = full_rows(engine)
    again = load_windows(config(db_url, archive_dir), engine=engine)
    assert (again.windows_loaded, again.windows_skipped, again.rows) == (0, 3, 0)
    assert full_rows(engine) == first
    # Forced replay of every window (checkpoints gone): same rows, same values.
    with engine.begin() as conn:
        conn.execute(delete(kalshi_backfill_checkpoint))
    replay = load_windows(config(db_url, archive_dir, batch_windows=2), engine=engine)
    assert replay.windows_loaded == 3 and replay.rows == len(first)
    assert full_rows(engine) == first


def test_extended_open_window_is_loaded_again(
    db_url: str, engine: Engine, archive_dir: Path, world: World, events: list[str]
) -> None:
    archive = new_archive(archive_dir)
    e = events[1]
    partial = build_window(archive, world, e, end_ts=None or _midpoint(world, e))
    assert not partial.manifest.is_final
    load_windows(config(db_url, archive_dir), engine=engine)
    n_partial = len(stored(engine))
    # A later extract extends the window (later retrieval, new manifest).
    full = build_window(archive, world, e, retrieved_at=T0 + timedelta(hours=3))
    summary = load_windows(config(db_url, archive_dir), engine=engine)
    assert summary.windows_loaded == 1 and summary.windows_skipped == 0
    got = stored(engine)
    assert len(got) > n_partial
    assert got == ground_truth(world, [e])
    with engine.connect() as conn:
        cp = get_checkpoint(conn, full.manifest.key)
        times = conn.execute(select(kalshi_candle.c.retrieved_at_utc).distinct()).scalars().all()
    assert cp is not None and cp.window_end_ts == full.manifest.window_end_ts and cp.is_final
    # Every row now carries the later retrieval: the old rows were updated, not kept.
    assert min(times) >= T0 + timedelta(hours=3)


def _midpoint(world: World, event_ticker: str) -> int:
    ev = world.event_info(event_ticker)
    assert ev is not None
    mid = (ev.open_ts + ev.close_ts) // 2
    return mid - mid % 60


def _rewrite(archive: LocalArchive, rel: str, edit: Any) -> None:
    doc = orjson.loads(gzip.decompress(archive.read_bytes(rel)))
    edit(doc)
    archive.write_atomic(rel, gzip.compress(orjson.dumps(doc)))


def test_corrupt_pages_are_quarantined_and_only_their_windows_fail(
    db_url: str, engine: Engine, archive_dir: Path, world: World, events: list[str]
) -> None:
    archive = new_archive(archive_dir)
    good, truncated, malformed = build_all(archive, world, events)
    bad_gzip = truncated.page_paths[-1]
    data = archive.read_bytes(bad_gzip)
    archive.write_atomic(bad_gzip, data[: len(data) // 2])
    bad_value = malformed.page_paths[0]

    def poison(doc: Any) -> None:
        doc["body"]["market_candlesticks"][1][5]["yes_ask"]["close_dollars"] = "0.12.5"

    _rewrite(archive, bad_value, poison)

    result = CliRunner().invoke(cli, ["run", "--db", db_url, "--archive", str(archive_dir)])
    assert result.exit_code == 1, result.output
    assert "2 window(s) failed" in result.output
    assert bad_gzip in result.output and bad_value in result.output
    # The good window is loaded, the bad ones left nothing behind.
    assert stored(engine) == expected(world, events[:1])
    with engine.connect() as conn:
        cps = {cp.key: cp for cp in list_checkpoints(conn)}
    assert cps[good.manifest.key].status is CheckpointStatus.SUCCESS
    for b, path in ((truncated, bad_gzip), (malformed, bad_value)):
        cp = cps[b.manifest.key]
        assert cp.status is CheckpointStatus.FAILED
        assert cp.last_error is not None and path in cp.last_error
        # quarantined (never deleted), and the manifest dropped so extract refetches
        assert not archive.exists(path)
        assert list((archive_dir / QUARANTINE_DIR).rglob(Path(path).name + ".*"))
        assert not archive.exists(b.manifest.key.manifest_path)
    # The other pages of a failed window stay where they are.
    assert archive.exists(truncated.page_paths[0])
    # A rerun finds nothing left to do (no manifest) and succeeds.
    again = load_windows(config(db_url, archive_dir), engine=engine)
    assert (again.windows_loaded, again.windows_failed, again.windows_skipped) == (0, 0, 1)


def test_corrupt_manifest_fails_its_window(
    db_url: str, engine: Engine, archive_dir: Path, world: World, events: list[str]
) -> None:
    archive = new_archive(archive_dir)
    b = build_window(archive, world, events[0])
    archive.write_atomic(b.manifest.key.manifest_path, b"{ not a manifest")
    with pytest.raises(LoadFailedError, match="manifest"):
        load_windows(config(db_url, archive_dir), engine=engine)
    assert not archive.exists(b.manifest.key.manifest_path)
    assert list((archive_dir / QUARANTINE_DIR).rglob("manifest.json.*"))
    assert stored(engine) == {}


def test_bulk_rows_match_rows_written_through_sqlalchemy(
    db_url: str, engine: Engine, archive_dir: Path, world: World, events: list[str]
) -> None:
    """On SQLite the key's text must be byte-identical to SQLAlchemy's, or the upsert
    would add a second row instead of replacing the first."""
    build_window(new_archive(archive_dir), world, events[1])
    truth = ground_truth(world, [events[1]])
    market, ts = min(truth)
    orm_row = {
        "market_ticker": market,
        "end_period_ts_utc": datetime.fromtimestamp(ts, UTC),
        "period_interval_minutes": 1,
        "event_ticker": events[1],
        "yes_bid_open": Decimal("0.999999"),
        "volume": Decimal("7.25"),
        "retrieved_at_utc": datetime(2020, 1, 1, tzinfo=UTC),
    }
    with engine.begin() as conn:
        upsert(conn, kalshi_candle, [orm_row])
    load_windows(config(db_url, archive_dir), engine=engine)
    got = stored(engine)
    assert len(got) == len(truth)
    assert got == truth
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(kalshi_candle)).scalar_one()
    assert n == len(truth)


@pytest.mark.mariadb
def test_staging_methods_and_batch_sizes_give_the_same_table(
    mariadb_url: str, archive_dir: Path, world: World, events: list[str]
) -> None:
    build_all(new_archive(archive_dir), world, events[:2])
    eng = make_engine(mariadb_url, local_infile=True)
    try:
        results = []
        for method, batch in (("load_data", 3), ("insert", 1), ("load_data", 1)):
            with eng.begin() as conn:
                for t in (kalshi_candle, kalshi_backfill_checkpoint, kalshi_window_stats):
                    conn.execute(delete(t))
            cfg = config(mariadb_url, archive_dir, staging_method=method, batch_windows=batch)
            assert load_windows(cfg, engine=eng).windows_loaded == 2
            results.append(full_rows(eng))
        assert results[0] == results[1] == results[2]
        assert len(results[0]) == len(expected(world, events[:2]))
    finally:
        eng.dispose()


@pytest.mark.mariadb
def test_server_refusing_load_data_local_falls_back_to_inserts(
    mariadb_url: str, archive_dir: Path, world: World, events: list[str], caplog: Any
) -> None:
    """MySQL 8 ships with local_infile OFF: the load still works, through INSERTs."""
    build_window(new_archive(archive_dir), world, events[1])
    make_engine(mariadb_url).dispose()  # creates the tables
    refusing = create_engine(
        mariadb_url,
        connect_args={
            "local_infile": False,
            "init_command": "SET SESSION time_zone='+00:00', sql_mode='STRICT_TRANS_TABLES'",
        },
    )
    try:
        summary = load_windows(config(mariadb_url, archive_dir), engine=refusing)
        assert summary.windows_loaded == 1
        assert "LOAD DATA LOCAL INFILE refused (4166)" in caplog.text
        assert stored(refusing) == ground_truth(world, [events[1]])
    finally:
        refusing.dispose()


# --- lost connections -------------------------------------------------------------------


class Killer:
    """Kills the loader's own MariaDB connection (from another session) just before the
    candle merge, ``times`` times: a real "lost connection during query"."""

    def __init__(self, engine: Engine, times: int) -> None:
        self.admin = create_engine(MYSQL_SERVER_URL)
        self.left = times
        self.kills = 0
        self.merges = 0
        event.listen(engine, "before_cursor_execute", self.hook)

    def hook(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith("INSERT INTO kalshi_candle ("):
            return
        self.merges += 1
        if self.left > 0:
            self.left -= 1
            self.kills += 1
            with self.admin.begin() as admin:
                admin.execute(text(f"KILL {int(cursor.connection.thread_id())}"))


@pytest.mark.mariadb
def test_lost_connection_is_retried_without_partial_rows(
    mariadb_url: str, archive_dir: Path, world: World, events: list[str]
) -> None:
    build_all(new_archive(archive_dir), world, events)
    eng = make_engine(mariadb_url, local_infile=True)
    killer = Killer(eng, times=2)
    try:
        summary = load_windows(config(mariadb_url, archive_dir), engine=eng)
        assert killer.kills == 2 and killer.merges == 3 + 2
        assert summary.windows_loaded == 3 and summary.windows_failed == 0
        assert stored(eng) == expected(world, events)
    finally:
        eng.dispose()
        killer.admin.dispose()


@pytest.mark.mariadb
def test_connection_lost_on_every_try_marks_failed_then_rerun_loads(
    mariadb_url: str, archive_dir: Path, world: World, events: list[str]
) -> None:
    archive = new_archive(archive_dir)
    built = build_window(archive, world, events[2])
    eng = make_engine(mariadb_url, local_infile=True)
    killer = Killer(eng, times=3)
    try:
        with pytest.raises(LoadFailedError, match=r"Lost connection|gone away|2013|2006"):
            load_windows(config(mariadb_url, archive_dir, db_attempts=3), engine=eng)
        assert killer.kills == 3
        assert stored(eng) == {}  # nothing half-written
        with eng.connect() as conn:
            cp = get_checkpoint(conn, built.manifest.key)
        assert cp is not None and cp.status is CheckpointStatus.FAILED
        assert archive.exists(built.manifest.key.manifest_path)  # the archive was fine
        rerun = load_windows(config(mariadb_url, archive_dir), engine=eng)
        assert rerun.windows_loaded == 1
        assert stored(eng) == ground_truth(world, [events[2]])
    finally:
        eng.dispose()
        killer.admin.dispose()


def test_config_is_validated() -> None:
    with pytest.raises(Exception, match="batch_windows"):
        LoadConfig(batch_windows=0)
    assert replace(LoadConfig(), batch_windows=5).batch_windows == 5
