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

This module discovers and reads windows; :mod:`load.run.batches` writes them and
:mod:`load.run.outcome` holds what the two hand each other. Memory stays flat: ``writers``
batches (default 2, each on its own connection and in its own transaction) are written
while the next one waits and the one after it is read.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path, PurePosixPath

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from load.config import LoadConfig
from load.errors import CorruptPageError, LoadFailedError, NoWindowsError
from load.normalize.pages import RawPage, WindowView, normalize_text
from load.normalize.stats import window_stats
from load.run.batches import BatchWriters, record_failed
from load.run.leases import LoadLeases
from load.run.outcome import LoadSummary, PreparedWindow, WindowFailure
from load.run.progress import LoadProgress
from schemas.archive import (
    MANIFEST_FILE,
    QUARANTINE_DIR,
    ArchiveStore,
    LocalArchive,
    Manifest,
    WindowKey,
    gunzip,
    open_archive,
)
from schemas.checkpoints import (
    Checkpoint,
    list_checkpoints,
    ts_to_dt,
)
from schemas.core import CheckpointStatus, WindowPolicy
from schemas.db import make_engine, make_stage_engine, translate_db_error
from schemas.errors import ArchiveError, ConfigError, CorruptArchiveError, InputError
from schemas.processes import KIND_EXTRACT, pid_alive
from schemas.workers import count_live

log = logging.getLogger(__name__)
_POLICY_BY_SLUG = {"full": WindowPolicy.FULL_MARKET_WINDOW, "trade": WindowPolicy.TRADE_WINDOW_ONLY}


def load_windows(
    config: LoadConfig, *, engine: Engine | None = None, progress: LoadProgress | None = None
) -> LoadSummary:
    """Load every pending window of the archive (with ``config.follow``, until extract is
    done: :mod:`load.run.follow`); see the module docstring.

    ``progress`` is shown the running summary after each batch (the CLI's bar).

    Returns the summary; raises LoadFailedError (after loading everything it could) when
    any window failed, NoWindowsError when the archive holds no complete window of what
    was asked, and DatabaseError when the database cannot be used at all.
    """
    # Two engines: staging connections may answer LOAD DATA LOCAL (the file each
    # offered, no other); leases, reads and failure records go through one that may not.
    # An engine the caller gives serves both (tests hook their own engine).
    own_engine = engine is None
    eng = make_engine(config.db_url) if engine is None else engine
    files = config.staging_method == "load_data"
    stage = make_stage_engine(config.db_url) if own_engine and files else None
    try:
        if config.follow:
            from load.run.follow import follow_windows  # it runs the passes below

            def one_pass(cfg: LoadConfig, e: Engine) -> LoadSummary:
                # No bar: a pass a second would redraw (or log) it for nothing.
                return load_pass(cfg, engine=e, stage_engine=stage, quiet_when_idle=True)

            summary = follow_windows(config, one_pass, engine=eng)
        else:
            summary = load_pass(config, engine=eng, stage_engine=stage, progress=progress)
    finally:
        if own_engine:
            eng.dispose()
        if stage is not None:
            stage.dispose()
    if summary.windows_failed:
        raise LoadFailedError(
            f"{summary.windows_failed} window(s) failed: " + "; ".join(summary.failures[:5])
        )
    return summary


def load_pass(
    config: LoadConfig,
    *,
    engine: Engine | None = None,
    stage_engine: Engine | None = None,
    progress: LoadProgress | None = None,
    quiet_when_idle: bool = False,
) -> LoadSummary:
    """One look at the archive: load what is pending now; failures are in the summary.

    Batches are written through ``stage_engine`` (by default ``engine``: the only
    connections that may answer LOAD DATA LOCAL), everything else through ``engine``.
    ``quiet_when_idle`` (``--follow``, a pass a second) logs a pass that found nothing
    to load at DEBUG instead of INFO.
    """
    started = time.perf_counter()
    archive = _open_archive(config.archive_dir)
    own_engine = engine is None
    eng = make_engine(config.db_url) if engine is None else engine
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
            writing = stage_engine if stage_engine is not None else eng
            with BatchWriters(writing, work_dir, config, summary, leases) as writers:
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
    series: tuple[str | None, ...] = config.series or (None,)
    try:
        with engine.connect() as conn:
            checkpoints = {cp.key: cp for s in series for cp in list_checkpoints(conn, s)}
            extractors = count_live(conn, KIND_EXTRACT)
    except SQLAlchemyError as e:
        raise translate_db_error(e, config.db_url, "reading checkpoints") from e
    pending: list[tuple[str, Manifest]] = []
    found = 0
    for rel in (rel for s in series for rel in archive.iter_manifests(s)):
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


def _nothing_found(archive: ArchiveStore, series: tuple[str, ...]) -> str:
    """What the archive holds, for a run that found no complete window of ``series``."""
    asked = f"of series {', '.join(series)} " if series else ""
    complete = Counter(rel.split("/", 1)[0] for rel in archive.iter_manifests())
    started = {
        "/".join(rel.split("/")[:4])
        for s in series or ("*",)
        for rel in archive.glob(f"{s}/*/p*/*/*")
        if not rel.startswith(QUARANTINE_DIR)
    } - {rel.rsplit("/", 1)[0] for s in series or (None,) for rel in archive.iter_manifests(s)}
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

    Only the windows ``claim`` grants (their lease: see ``load.run.leases``) are read.

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
        for rel in manifest.page_paths():  # its own pages, then the packed ones
            pages.append(RawPage(rel, _gunzip(archive.read_bytes(rel), rel)))
        candles = normalize_text(pages, window=WindowView(key, manifest.market_tickers))
    except CorruptPageError as e:
        return WindowFailure(manifest_path, manifest, key, str(e), e.source)
    except ArchiveError as e:  # a page the manifest lists is missing or unreadable
        return WindowFailure(manifest_path, manifest, key, str(e), None)
    return PreparedWindow(manifest_path, manifest, candles, window_stats(candles, manifest))


def _gunzip(data: bytes, rel: str) -> bytes:
    try:
        return gunzip(data, rel)  # ISA-L: 1.6 x zlib's speed
    except CorruptArchiveError as e:
        raise CorruptPageError(str(e), source=rel) from e.__cause__


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
        record_failed(engine, config, failure.key, failure.manifest, error)
