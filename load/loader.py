"""The load stage: discover → read → normalize → stats → write + SUCCESS, one batch at a time.

A window is loaded when its manifest exists (extract writes it last) and its checkpoint
is not SUCCESS for that same window: a SUCCESS whose ``window_end`` is older than the
manifest's (an open event that a later extract extended) is loaded again. A manifest
older than a FAILED extraction of its window is not loaded: the window stays FAILED with
its reason and the run exits non-zero until an extract succeeds. The rows, the
window stats and the checkpoint SUCCESS are written in ONE transaction, so killing the
loader at any moment leaves either all of a batch or none of it, and a rerun completes
it: the upsert makes replaying a window harmless.

Failures are grouped by what happens next:
- a corrupt page (gzip, JSON, envelope or a value): the file goes to quarantine, the
  window's manifest is deleted (a later extract refetches the page), its checkpoint is
  FAILED naming the file, and the other windows load; the run ends non-zero;
- a lost connection (MariaDB restarted, network cut): the transaction rolled back, the
  batch is retried with backoff; when the retries run out its windows are FAILED;
- any other database error in a batch of several windows: each window is retried alone,
  so one bad window cannot sink its neighbours.

Memory stays flat: ``writers`` batches (default 2, each on its own connection and in its
own transaction) are written while the next one waits and the one after it is read.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from load.config import LoadConfig
from load.errors import CorruptPageError, LeaseLostError, LoadFailedError, NoWindowsError
from load.leases import LoadLeases, keep_leases, record_failure, release_leases
from load.normalize import RawPage, dedupe_candles, normalize_json
from load.progress import LoadProgress
from load.stats import stats_rows, window_stats
from load.writer import write_candles
from schemas.archive import (
    MANIFEST_FILE,
    QUARANTINE_DIR,
    ArchiveStore,
    LocalArchive,
    Manifest,
    WindowKey,
    open_archive,
)
from schemas.checkpoints import (
    Checkpoint,
    list_checkpoints,
    save_checkpoint,
    ts_to_dt,
)
from schemas.crashpoints import (
    LOAD_AFTER_COMMIT,
    LOAD_BEFORE_COMMIT,
    LOAD_BEFORE_SUCCESS,
    crashpoint,
)
from schemas.db import make_engine, translate_db_error, upsert
from schemas.errors import ArchiveError, ConfigError, CorruptArchiveError, DatabaseError, InputError
from schemas.tables import CheckpointStatus, WindowPolicy, kalshi_window_stats
from schemas.workers import KIND_EXTRACT, count_live, pid_alive

log = logging.getLogger(__name__)

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
_POLICY_BY_SLUG = {"full": WindowPolicy.FULL_MARKET_WINDOW, "trade": WindowPolicy.TRADE_WINDOW_ONLY}


@dataclass(frozen=True)
class PreparedWindow:
    """A window read and normalized, ready to write."""

    manifest_path: str
    manifest: Manifest
    candles: pl.DataFrame
    stats: pl.DataFrame


@dataclass(frozen=True)
class WindowFailure:
    """A window that could not be read: why, and which file to quarantine (if any)."""

    manifest_path: str
    manifest: Manifest | None
    key: WindowKey | None
    error: str
    bad_file: str | None


@dataclass
class LoadSummary:
    """What one run did; ``failures`` holds one line per failed window."""

    windows_loaded: int = 0
    windows_skipped: int = 0
    windows_failed: int = 0
    windows_held: int = 0
    """Windows another live worker held (a loader, or the extractor finishing them)."""
    rows: int = 0
    elapsed_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    writers: int = 0
    """Batch writers the run used (``LoadConfig.writers``; 1 on SQLite); 0 before writing."""

    @property
    def rows_per_s(self) -> int:
        return int(self.rows / self.elapsed_s) if self.elapsed_s > 0 else 0

    def add(self, other: LoadSummary) -> None:
        """Count ``other`` (one batch's writes) in this summary too."""
        self.windows_loaded += other.windows_loaded
        self.windows_skipped += other.windows_skipped
        self.windows_failed += other.windows_failed
        self.windows_held += other.windows_held
        self.rows += other.rows
        self.failures.extend(other.failures)

    def line(self) -> str:
        text = (
            f"load: {self.windows_loaded} windows loaded, {self.windows_skipped} skipped, "
            f"{self.windows_failed} failed; {self.rows:,} rows in {self.elapsed_s:.1f} s "
            f"({self.rows_per_s:,} rows/s)"
        )
        if self.windows_held:
            text += f"; {self.windows_held} held by other workers"
        if self.writers:
            text += f"; with {self.writers} writer{'s' if self.writers != 1 else ''}"
        return text


def load_windows(
    config: LoadConfig, *, engine: Engine | None = None, progress: LoadProgress | None = None
) -> LoadSummary:
    """Load every pending window of the archive (with ``config.follow``, until extract is
    done: :mod:`load.follow`); see the module docstring.

    ``progress`` is shown the running summary after each batch (the CLI's bar).

    Returns the summary; raises LoadFailedError (after loading everything it could) when
    any window failed, NoWindowsError when the archive holds no complete window of what
    was asked, and DatabaseError when the database cannot be used at all.
    """
    if config.follow:
        from load.follow import follow_windows  # it runs the passes below

        def one_pass(cfg: LoadConfig, eng: Engine) -> LoadSummary:
            # No bar: a pass a second would redraw (or log) it for nothing.
            return load_pass(cfg, engine=eng, quiet_when_idle=True)

        summary = follow_windows(config, one_pass, engine=engine)
    else:
        summary = load_pass(config, engine=engine, progress=progress)
    if summary.windows_failed:
        raise LoadFailedError(
            f"{summary.windows_failed} window(s) failed: " + "; ".join(summary.failures[:5])
        )
    return summary


def load_pass(
    config: LoadConfig,
    *,
    engine: Engine | None = None,
    progress: LoadProgress | None = None,
    quiet_when_idle: bool = False,
) -> LoadSummary:
    """One look at the archive: load what is pending now; failures are in the summary.

    ``quiet_when_idle`` (``--follow``, a pass a second) logs a pass that found nothing
    to load at DEBUG instead of INFO.
    """
    started = time.perf_counter()
    archive = _open_archive(config.archive_dir)
    own_engine = engine is None
    eng = make_engine(config.db_url, local_infile=True) if engine is None else engine
    summary = LoadSummary()
    work_dir = new_work_dir()
    try:
        pending = _discover(archive, eng, config, summary, quiet_when_idle=quiet_when_idle)
        if progress is not None:
            progress.update(summary, len(pending), force=True)
        batches = [
            pending[i : i + config.batch_windows]
            for i in range(0, len(pending), config.batch_windows)
        ]
        leases = LoadLeases(eng, config)
        claim = partial(leases.claim, needs_load=needs_load)
        try:
            with BatchWriters(eng, work_dir, config, summary, leases) as writers:
                for results in _prepared(archive, batches, prefetch=config.prefetch, claim=claim):
                    ready = [r for r in results if isinstance(r, PreparedWindow)]
                    for failure in (r for r in results if isinstance(r, WindowFailure)):
                        _fail_window(archive, eng, config, failure, summary)
                        if failure.manifest is not None:
                            leases.done([failure.manifest.key])
                    if ready:
                        writers.submit(ready)
                    if progress is not None:
                        progress.update(summary, len(pending))
        finally:
            leases.close()
            summary.windows_held += leases.skipped_held
        if progress is not None:
            progress.update(summary, len(pending), force=True)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        if own_engine:
            eng.dispose()
        summary.elapsed_s = time.perf_counter() - started
    busy = summary.windows_loaded or summary.windows_failed or summary.windows_held
    log.log(logging.DEBUG if quiet_when_idle and not busy else logging.INFO, "%s", summary.line())
    return summary


WORK_DIR_PREFIX = "kalshi-load-"


def new_work_dir() -> Path:
    """A private temporary folder for the staging CSVs (the only files LOAD DATA reads).

    Its name carries the loader's pid. A loader killed by SIGKILL cannot remove its
    folder (nor the CSV it was writing), so each run first removes the folders of
    loaders that are no longer alive: a killed run leaves nothing behind for long.
    """
    root = Path(tempfile.gettempdir())
    for stale in root.glob(f"{WORK_DIR_PREFIX}*"):
        pid = stale.name[len(WORK_DIR_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{WORK_DIR_PREFIX}{os.getpid()}-"))


# --- discover ---------------------------------------------------------------------------


def _open_archive(location: str | Path) -> ArchiveStore:
    archive = open_archive(location)
    if isinstance(archive, LocalArchive) and not archive.root.is_dir():
        raise ConfigError(f"archive folder {location} does not exist: run extract first")
    archive.check_version()
    return archive


def failed_after(manifest: Manifest, checkpoint: Checkpoint | None) -> bool:
    """True when an extraction of a LATER window than this manifest's FAILED.

    An open event's manifest stays in the archive while its next (or final) extraction
    runs; when that one fails, its FAILED checkpoint names the window it attempted. The
    older manifest must not be loaded over it: SUCCESS would erase the failure and its
    reason, and ``status`` would show a finished window that is not. Only a later
    successful extract (a manifest for that window, EXTRACTED) clears it. A FAILED the
    loader itself recorded names the manifest's own window, so it is loaded again.
    """
    if checkpoint is None or checkpoint.status is not CheckpointStatus.FAILED:
        return False
    return (
        checkpoint.window_start_ts < manifest.window_start_ts
        or checkpoint.window_end_ts > manifest.window_end_ts
        or (checkpoint.is_final and not manifest.is_final)
    )


def needs_load(manifest: Manifest, checkpoint: Checkpoint | None) -> bool:
    """False when the checkpoint is SUCCESS for (at least) this manifest's window, or a
    later extraction of the window failed (:func:`failed_after`)."""
    if failed_after(manifest, checkpoint):
        return False
    if checkpoint is None or checkpoint.status is not CheckpointStatus.SUCCESS:
        return True
    return not (
        checkpoint.window_start_ts <= manifest.window_start_ts
        and checkpoint.window_end_ts >= manifest.window_end_ts
    )


def _discover(
    archive: ArchiveStore,
    engine: Engine,
    config: LoadConfig,
    summary: LoadSummary,
    *,
    quiet_when_idle: bool = False,
) -> list[tuple[str, Manifest]]:
    """Manifests (small, read once) of the windows to load, in archive order."""
    try:
        with engine.connect() as conn:
            checkpoints = {cp.key: cp for cp in list_checkpoints(conn, config.series)}
            extractors = count_live(conn, KIND_EXTRACT)
    except SQLAlchemyError as e:
        raise translate_db_error(e, config.db_url, "reading checkpoints") from e
    pending: list[tuple[str, Manifest]] = []
    found = 0
    for rel in archive.iter_manifests(config.series):
        found += 1
        try:
            manifest = archive.read_manifest(rel)
        except CorruptArchiveError as e:
            key = _key_from_path(rel)
            _fail_window(
                archive, engine, config, WindowFailure(rel, None, key, str(e), rel), summary
            )
            continue
        checkpoint = checkpoints.get(manifest.key)
        if checkpoint is not None and failed_after(manifest, checkpoint):
            _report_failed_after(manifest, checkpoint, summary)
        elif needs_load(manifest, checkpoint):
            pending.append((rel, manifest))
        else:
            summary.windows_skipped += 1
    if not found:
        what = _nothing_found(archive, config.series)
        if not extractors:
            raise NoWindowsError(what)
        # An extractor is alive: its windows are not complete YET. That is "nothing left
        # to load" for now (exit 0), which loaders run beside extract rely on.
        log.log(logging.DEBUG if quiet_when_idle else logging.INFO, "%s; %d extractor(s) "
                "alive: nothing to load yet", what, extractors)  # fmt: skip
        return []
    log.log(
        logging.DEBUG if quiet_when_idle and not pending else logging.INFO,
        "load: %d window(s) to load, %d already loaded",
        len(pending),
        summary.windows_skipped,
    )
    return pending


def _nothing_found(archive: ArchiveStore, series: str | None) -> str:
    """What the archive holds, for a run that found no complete window of ``series``."""
    asked = f"of series {series} " if series else ""
    complete = Counter(rel.split("/", 1)[0] for rel in archive.iter_manifests())
    started = {
        "/".join(rel.split("/")[:4])
        for rel in archive.glob(f"{series or '*'}/*/p*/*/*")
        if not rel.startswith(QUARANTINE_DIR)
    } - {rel.rsplit("/", 1)[0] for rel in archive.iter_manifests(series)}
    held = (
        "complete windows of " + ", ".join(f"{s} ({n})" for s, n in sorted(complete.items()))
        if complete
        else "no complete window at all"
    )
    unfinished = (
        f"; {len(started)} window folder(s) {asked}without a manifest (extract is running "
        "or was interrupted: rerun it)"
        if started
        else ""
    )
    return f"no complete window {asked}in {archive}: it holds {held}{unfinished}"


def _report_failed_after(manifest: Manifest, checkpoint: Checkpoint, summary: LoadSummary) -> None:
    """Count a window whose later extraction failed as failed; its checkpoint is untouched."""
    line = (
        f"{manifest.key}: its extraction up to {ts_to_dt(checkpoint.window_end_ts).isoformat()} "
        f"FAILED ({checkpoint.last_error}); the archive holds only an older window (up to "
        f"{ts_to_dt(manifest.window_end_ts).isoformat()}), not loaded: run extract again"
    )
    log.error("%s", line)
    summary.windows_failed += 1
    summary.failures.append(line)


def _key_from_path(manifest_path: str) -> WindowKey | None:
    """The window a manifest's folder names (for a manifest too corrupt to say it)."""
    parts = PurePosixPath(manifest_path).parts
    if len(parts) != 5 or parts[-1] != MANIFEST_FILE or not parts[2].startswith("p"):
        return None
    try:
        return WindowKey(parts[0], parts[1], int(parts[2][1:]), _POLICY_BY_SLUG[parts[3]])
    except (KeyError, ValueError, InputError):
        return None


# --- read -------------------------------------------------------------------------------


def _prepared(
    archive: ArchiveStore,
    batches: Sequence[Sequence[tuple[str, Manifest]]],
    *,
    prefetch: bool,
    claim: Callable[[Manifest], bool] = lambda _m: True,
) -> Iterator[list[PreparedWindow | WindowFailure]]:
    """Each batch read and normalized; with ``prefetch`` the next one is read meanwhile.

    Only the windows ``claim`` grants (their lease: see ``load.leases``) are read.

    Reading is gunzip and Polars (both release the GIL), writing mostly waits on the
    server: overlapping them uses the second core. Besides the batches being written,
    at most two are in memory (the one yielded, the one being read).
    """

    def read(batch: Sequence[tuple[str, Manifest]]) -> list[PreparedWindow | WindowFailure]:
        return [read_window(archive, rel, m) for rel, m in batch if claim(m)]

    if not prefetch or len(batches) < 2:
        for batch in batches:
            yield read(batch)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-read") as pool:
        nxt: Future[list[PreparedWindow | WindowFailure]] = pool.submit(read, batches[0])
        for i in range(len(batches)):
            current = nxt.result()
            if i + 1 < len(batches):
                nxt = pool.submit(read, batches[i + 1])
            yield current


def read_window(
    archive: ArchiveStore, manifest_path: str, manifest: Manifest
) -> PreparedWindow | WindowFailure:
    """Read, check and normalize one window's pages (no database, no network)."""
    key = manifest.key
    pages: list[RawPage] = []
    try:
        for name in manifest.pages:
            rel = f"{key.dir}/{name}"
            pages.append(RawPage(rel, _gunzip(archive.read_bytes(rel), rel)))
        candles = normalize_json(pages, key=key)
    except CorruptPageError as e:
        return WindowFailure(manifest_path, manifest, key, str(e), e.source)
    except ArchiveError as e:  # a page the manifest lists is missing or unreadable
        return WindowFailure(manifest_path, manifest, key, str(e), None)
    return PreparedWindow(manifest_path, manifest, candles, window_stats(candles, manifest))


def _gunzip(data: bytes, rel: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise CorruptPageError(f"{rel}: not a valid gzip file ({e})", source=rel) from e


# --- fail -------------------------------------------------------------------------------


def _fail_window(
    archive: ArchiveStore,
    engine: Engine,
    config: LoadConfig,
    failure: WindowFailure,
    summary: LoadSummary,
) -> None:
    """Quarantine the bad file, drop the manifest, record FAILED with the reason."""
    error = failure.error
    if failure.bad_file is not None and archive.exists(failure.bad_file):
        moved = archive.move_to_quarantine(failure.bad_file)
        error = f"{error} (moved to {moved})"
    archive.delete(failure.manifest_path)  # a later extract refetches the window
    log.error("window %s failed: %s", failure.key or failure.manifest_path, error)
    summary.windows_failed += 1
    summary.failures.append(error)
    if failure.key is not None:
        _record_failed(engine, config, failure.key, failure.manifest, error)


def _record_failed(
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


# --- write ------------------------------------------------------------------------------


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
        _record_failed(engine, config, failure.key, failure.manifest, str(error))
    except DatabaseError as e:
        raise DatabaseError(f"{error}; recording the failure failed too: {e}") from e


def _names(windows: Sequence[PreparedWindow]) -> str:
    names = [str(w.manifest.key) for w in windows[:3]]
    more = f" and {len(windows) - 3} more" if len(windows) > 3 else ""
    return ", ".join(names) + more


def _log_window(w: PreparedWindow) -> None:
    """Per event: candles per market, markets in the response, missing (maintenance)."""
    per_market = w.candles.group_by("market_ticker").len().sort("market_ticker")
    counts = ", ".join(f"{t.rsplit('-', 1)[-1]}={n:,}" for t, n in per_market.iter_rows())
    expected = {m.market_ticker for m in w.manifest.markets}
    extra = set(per_market["market_ticker"].to_list()) - expected
    missing = int(w.stats["missing_candles"].sum() or 0)
    maint = int(w.stats["missing_in_maintenance"].sum() or 0)
    log.info(
        "loaded %s: %s candles, %d of %d market(s) in the response (%s); "
        "missing %s candle(s), %s inside maintenance",
        w.manifest.key,
        f"{w.candles.height:,}",
        per_market.height,
        len(expected),
        counts or "none",
        f"{missing:,}",
        f"{maint:,}",
    )
    if extra:
        log.warning("%s: candles of markets not in its manifest: %s", w.manifest.key, sorted(extra))
