"""Writing batches: each ONE transaction (lease check, stage, merge, stats, SUCCESS),
on ``LoadConfig.writers`` connections at once, retried when the connection drops.

Split from :mod:`load.run.loader` (which discovers and reads the windows) along the line the
pipeline already had: the reader thread prepares batches, these writers commit them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from load.config import LoadConfig
from load.errors import LeaseLostError
from load.normalize.pages import dedupe_candles
from load.normalize.stats import stats_rows
from load.run.leases import LoadLeases, keep_leases, record_failure, release_leases
from load.run.outcome import LoadSummary, PreparedWindow, WindowFailure
from load.run.writer import write_candles
from schemas.archive import Manifest, WindowKey
from schemas.checkpoints import save_checkpoint
from schemas.core import CheckpointStatus
from schemas.crashpoints import (
    LOAD_AFTER_COMMIT,
    LOAD_BEFORE_COMMIT,
    LOAD_BEFORE_SUCCESS,
    crashpoint,
)
from schemas.db import translate_db_error, upsert
from schemas.errors import DatabaseError
from schemas.logs import log_detail
from schemas.tables import kalshi_window_stats

log = logging.getLogger("load.run.loader")  # the stage's one logger name, as before the split

#: MySQL/MariaDB client and server codes that mean "the connection is gone or the server
#: is busy": the transaction was rolled back and the same statements can simply be rerun.
RETRIABLE_MYSQL_CODES = frozenset(
    {
        1040,  # too many connections
        1053,  # server shutdown in progress
        1205,  # lock wait timeout
        1213,  # deadlock
        1927,  # connection was killed (MariaDB)
        2002,  # can't connect (socket)
        2003,  # can't connect (TCP)
        2006,  # server has gone away
        2013,  # lost connection during query
        2055,  # lost connection (system error)
        4031,  # disconnected by the server (MySQL 8 idle timeout)
    }
)


def record_failed(
    engine: Engine, config: LoadConfig, key: WindowKey, manifest: Manifest | None, error: str
) -> None:
    """FAILED only while we hold the window's lease (a window read was claimed first)."""
    try:
        with engine.begin() as conn:
            written = record_failure(
                conn, key, manifest, error, config, claimed=manifest is not None
            )
    except SQLAlchemyError as e:
        raise translate_db_error(e, config.db_url, f"recording the failure of {key}") from e
    if not written:
        log.warning("%s: not marked FAILED: another worker holds the window now", key)


def is_retriable(e: SQLAlchemyError) -> bool:
    """True when the statement can simply be rerun: the connection dropped or was busy."""
    if isinstance(e, DBAPIError) and e.connection_invalidated:
        return True
    orig: Any = getattr(e, "orig", None)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in RETRIABLE_MYSQL_CODES
    return "database is locked" in str(orig or e)


def write_batch(
    conn: Connection, windows: Sequence[PreparedWindow], work_dir: Path, config: LoadConfig
) -> int:
    """Rows, stats and checkpoints SUCCESS of ``windows``, in the caller's transaction.

    The windows' leases are renewed first and released last in that same transaction:
    LeaseLostError (another loader took one over) rolls all of it back.
    """
    keep_leases(conn, [w.manifest for w in windows], config)
    frames = [w.candles for w in windows]
    frame = frames[0] if len(frames) == 1 else dedupe_candles(pl.concat(frames))
    rows = write_candles(conn, frame, work_dir=work_dir, staging=config.staging_method)
    now = datetime.now(UTC)
    stats = [row for w in windows for row in stats_rows(w.stats, now)]
    upsert(conn, kalshi_window_stats, stats)
    crashpoint(LOAD_BEFORE_SUCCESS)
    for w in windows:
        m = w.manifest
        save_checkpoint(
            conn,
            m.key,
            status=CheckpointStatus.SUCCESS,
            window_start_ts=m.window_start_ts,
            window_end_ts=m.window_end_ts,
            is_final=m.is_final,
            rows_loaded=w.candles.height,
            loaded_at_utc=now,
            last_error=None,
        )
    release_leases(conn, [w.manifest.key for w in windows], config)
    crashpoint(LOAD_BEFORE_COMMIT)
    return rows


class BatchWriters:
    """Writes batches on ``config.writers`` connections at once, one thread each.

    Each batch stays ONE transaction on one connection (lease check, stage, merge, stats,
    SUCCESS, commit): two writers let one connection's merge run on a core while the
    other's LOAD DATA runs on the other. ``submit`` blocks while every writer is busy, so
    at most ``writers`` batches are being written, plus the one the caller holds and the
    one the reader prefetches. With one writer (always on SQLite, where a second would
    only wait for the file lock) each batch is written in the caller's thread.

    A writer that raises (the database unusable, a bug) fails the run: the error comes
    out of the next ``submit`` or of the ``with`` block once every batch in flight has
    finished, so no thread is left writing behind the caller's back.
    """

    def __init__(
        self,
        engine: Engine,
        work_dir: Path,
        config: LoadConfig,
        summary: LoadSummary,
        leases: LoadLeases,
    ) -> None:
        self.engine, self.work_dir, self.config = engine, work_dir, config
        self.summary, self.leases = summary, leases
        self.writers = config.writers if engine.dialect.name in ("mysql", "mariadb") else 1
        summary.writers = self.writers
        self._pool = (
            ThreadPoolExecutor(max_workers=self.writers, thread_name_prefix="load-write")
            if self.writers > 1
            else None
        )
        self._in_flight: dict[Future[LoadSummary], list[WindowKey]] = {}

    def __enter__(self) -> BatchWriters:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self._pool is None:
            return
        try:
            self._collect(ALL_COMPLETED)
        except BaseException:
            if exc is None:
                raise
            log.exception("a batch writer failed too")
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, windows: Sequence[PreparedWindow]) -> None:
        """Write ``windows`` as one batch (now, or on the next free writer)."""
        keys = [w.manifest.key for w in windows]
        if self._pool is None:
            self.summary.add(self._write(windows))
            self.leases.done(keys)
            return
        while len(self._in_flight) >= self.writers:
            self._collect(FIRST_COMPLETED)
        self._in_flight[self._pool.submit(self._write, windows)] = keys

    def _write(self, windows: Sequence[PreparedWindow]) -> LoadSummary:
        part = LoadSummary()  # merged by the caller's thread: no shared counters
        _write_with_retries(self.engine, windows, self.work_dir, self.config, part)
        return part

    def _collect(self, return_when: str) -> None:
        """Wait for one (or every) batch in flight; count them; raise the first error."""
        if not self._in_flight:
            return
        done, _ = wait(self._in_flight, return_when=return_when)
        error: BaseException | None = None
        for future in done:
            keys = self._in_flight.pop(future)
            try:
                self.summary.add(future.result())
            except BaseException as e:  # re-raised below, once every done batch is counted
                error = error or e
                continue  # still held: LoadLeases.close releases it
            self.leases.done(keys)
        if error is not None:
            raise error


def _write_with_retries(
    engine: Engine,
    windows: Sequence[PreparedWindow],
    work_dir: Path,
    config: LoadConfig,
    summary: LoadSummary,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    for attempt in range(1, config.db_attempts + 1):
        try:
            with engine.begin() as conn:
                rows = write_batch(conn, windows, work_dir, config)
            crashpoint(LOAD_AFTER_COMMIT)
        except LeaseLostError as e:
            if len(windows) > 1:  # write the others; the lost one fails again alone
                for w in windows:
                    _write_with_retries(engine, [w], work_dir, config, summary, sleep)
                return
            summary.windows_held += 1
            log.warning("%s: the worker that took it over loads it", e)
            return
        except SQLAlchemyError as e:
            error = translate_db_error(e, config.db_url, "loading " + _names(windows))
            if is_retriable(e) and attempt < config.db_attempts:
                wait = config.retry_backoff_s * 2 ** (attempt - 1)
                log.warning("%s; retry %d in %.1f s", error, attempt, wait)
                sleep(wait)
                continue
            if not is_retriable(e) and len(windows) > 1:
                log.warning("%s; retrying its windows one by one", error)
                for w in windows:
                    _write_with_retries(engine, [w], work_dir, config, summary, sleep)
                return
            for w in windows:
                failure = WindowFailure(
                    w.manifest_path, w.manifest, w.manifest.key, str(error), None
                )
                _record_db_failure(engine, config, failure, summary, error)
            return
        summary.windows_loaded += len(windows)
        summary.rows += rows
        for w in windows:
            _log_window(w)
        return


def _record_db_failure(
    engine: Engine,
    config: LoadConfig,
    failure: WindowFailure,
    summary: LoadSummary,
    error: DatabaseError,
) -> None:
    """A window the database refused: FAILED (the archive is fine, so nothing moves)."""
    log.error("window %s failed: %s", failure.key, error)
    summary.windows_failed += 1
    summary.failures.append(str(error))
    assert failure.key is not None
    try:
        record_failed(engine, config, failure.key, failure.manifest, str(error))
    except DatabaseError as e:
        raise DatabaseError(f"{error}; recording the failure failed too: {e}") from e


def _names(windows: Sequence[PreparedWindow]) -> str:
    names = [str(w.manifest.key) for w in windows[:3]]
    more = f" and {len(windows) - 3} more" if len(windows) > 3 else ""
    return ", ".join(names) + more


def _log_window(w: PreparedWindow) -> None:
    """Per event, one line to the log file: candles per market, markets in the response,
    missing minutes (inside maintenance)."""
    per_market = w.candles.group_by("market_ticker").len().sort("market_ticker")
    counts = dict(per_market.iter_rows())
    expected = {m.market_ticker for m in w.manifest.markets}
    extra = set(counts) - expected
    missing = int(w.stats["missing_candles"].sum() or 0)
    maint = int(w.stats["missing_in_maintenance"].sum() or 0)
    log_detail(
        log,
        "loaded %s: %s candles, %d/%d markets in the response, %s missing (%s in maintenance)",
        w.manifest.key,
        f"{w.candles.height:,}",
        len(counts),
        len(expected),
        f"{missing:,}",
        f"{maint:,}",
        candles_per_market=counts,
        missing_candles=missing,
        missing_in_maintenance=maint,
    )
    if extra:
        log.warning("%s: candles of markets not in its manifest: %s", w.manifest.key, sorted(extra))
