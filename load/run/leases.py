"""Several loaders on one archive: each window is loaded by the one loader holding its lease.

The same leases as extract (:mod:`extract.run.workers`), through the checkpoint row:

- :meth:`LoadLeases.claim` takes a window's lease in its own short transaction before
  its pages are read; a window held by another live worker (a loader, or the extractor
  still finishing it) is skipped this run, and a window another loader finished since
  discovery is released and skipped.
- :func:`keep_leases` runs INSIDE the write transaction: it renews the lease only if we
  still hold it (failing if another worker took it over, even one that finished and
  released it since) and :func:`release_leases` gives it back in the same transaction as
  SUCCESS. The renewal's UPDATE locks the row until the commit, so the SUCCESS written
  after it is ours alone: SUCCESS, the rows and the end of the lease commit together.
- :func:`record_failure` writes FAILED with ONE conditional UPDATE, only while we hold the
  lease: a loader that stalled past its lease never overwrites the new holder's state.
- A thread renews every held lease and the worker's ``kalshi_worker`` row a few times
  per lease, so a long batch never loses its windows; a killed loader's leases expire
  (or are taken at once by a rerun on the same host, as in extract).

Lease and heartbeat times are the database server's (:mod:`schemas.dbclock`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from load.config import LoadConfig
from load.errors import LeaseLostError
from schemas.archive import Manifest, WindowKey
from schemas.checkpoints import (
    Checkpoint,
    claim_window,
    ensure_checkpoint,
    finish_window,
    get_checkpoint,
    release_window,
    renew_window,
    take_over_window,
    window_columns,
)
from schemas.core import CheckpointStatus
from schemas.db import run_transaction, translate_db_error
from schemas.errors import DatabaseError
from schemas.processes import KIND_LOAD, local_process_gone
from schemas.workers import heartbeat, unregister

log = logging.getLogger(__name__)

#: Longest pause between two renewals (shorter leases renew more often).
MAX_RENEW_S = 5.0
#: The worker row counts as live for this many renewal intervals after the last one.
LIVE_BEATS = 3


def _ensure(conn: Connection, m: Manifest) -> None:
    ensure_checkpoint(
        conn,
        m.key,
        window_start_ts=m.window_start_ts,
        window_end_ts=m.window_end_ts,
        is_final=m.is_final,
        status=CheckpointStatus.EXTRACTED,  # its manifest exists
    )


def keep_leases(conn: Connection, manifests: Iterable[Manifest], config: LoadConfig) -> None:
    """Renew our lease on each window, in the caller's (write) transaction.

    Raises LeaseLostError when we no longer hold one of them (another worker took it,
    and may have finished and released it since): the caller rolls the transaction back,
    so nothing of that window is written by two loaders.
    """
    for m in manifests:
        if not renew_window(conn, m.key, config.worker_id, config.lease_seconds):
            raise LeaseLostError(f"{m.key}: lease lost to another worker")


def record_failure(
    conn: Connection,
    key: WindowKey,
    manifest: Manifest | None,
    error: str,
    config: LoadConfig,
    *,
    claimed: bool,
) -> bool:
    """Mark the window FAILED with ``error`` and release it, only while we hold its lease.

    ``claimed``: we took the window's lease before reading it (its manifest was read);
    False for a window failed at discovery (a corrupt manifest), whose lease is taken
    here first, so a window another live worker holds is never written. Returns False,
    with nothing written, when another worker holds the window.
    """
    if manifest is not None:
        _ensure(conn, manifest)
    me = config.worker_id
    if not claimed and not claim_window(conn, key, me, config.lease_seconds):
        return False
    extent = (
        {}
        if manifest is None
        else window_columns(manifest.window_start_ts, manifest.window_end_ts, manifest.is_final)
    )
    return finish_window(conn, key, me, status=CheckpointStatus.FAILED, last_error=error, **extent)


def release_leases(conn: Connection, keys: Iterable[WindowKey], config: LoadConfig) -> None:
    """Give the windows back, in the caller's transaction (the one that marks SUCCESS)."""
    for key in keys:
        release_window(conn, key, config.worker_id)


class LoadLeases:
    """One loader's leases and worker row for a run; :meth:`close` at the end."""

    def __init__(self, engine: Engine, config: LoadConfig) -> None:
        self.engine = engine
        self.config = config
        self.interval = min(MAX_RENEW_S, config.lease_seconds / 3.0)
        self.held: set[WindowKey] = set()
        self.skipped_held = 0
        """Windows another live worker held when we tried (skipped this run)."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat()
        self._thread = threading.Thread(target=self._renew_forever, name="load-leases")
        self._thread.daemon = True
        self._thread.start()

    def _db(self, e: SQLAlchemyError, what: str) -> DatabaseError:
        return translate_db_error(e, self.config.db_url, what)

    def claim(
        self, manifest: Manifest, needs_load: Callable[[Manifest, Checkpoint | None], bool]
    ) -> bool:
        """Take the window if no live worker holds it and it still needs loading."""
        key, me, lease = manifest.key, self.config.worker_id, self.config.lease_seconds

        def attempt(conn: Connection) -> tuple[bool, Checkpoint | None, str | None]:
            _ensure(conn, manifest)
            ok = claim_window(conn, key, me, lease)
            cp = get_checkpoint(conn, key)
            holder = cp.lease_owner if cp else None
            if not ok and holder is not None and local_process_gone(holder):
                ok = take_over_window(conn, key, me, holder, lease)  # a dead process here
                taken = holder if ok else None
            else:
                taken = None
            if ok and not needs_load(manifest, cp):
                release_window(conn, key, me)  # another loader finished it meanwhile
                return False, cp, None
            return ok, cp, taken if ok else holder

        try:
            ok, cp, other = run_transaction(self.engine, attempt)
        except SQLAlchemyError as e:
            raise self._db(e, f"claiming {key}") from None
        if ok:
            if other is not None:
                log.warning("%s: taken over from %s (a dead process here)", key, other)
            with self._lock:
                self.held.add(key)
            return True
        if other is not None:
            with self._lock:
                self.skipped_held += 1
            until = cp.lease_expires_utc.isoformat() if cp and cp.lease_expires_utc else "?"
            log.info("%s: held by %s until %s, skipped", key, other, until)
        return False

    def done(self, keys: Iterable[WindowKey]) -> None:
        """Forget windows whose lease a transaction released (or another worker took)."""
        with self._lock:
            self.held.difference_update(keys)

    def _beat(self) -> None:
        with self._lock:
            keys = sorted(self.held)
        me, lease = self.config.worker_id, self.config.lease_seconds
        ttl = self.interval * LIVE_BEATS

        def attempt(conn: Connection) -> None:
            heartbeat(conn, me, KIND_LOAD, ttl)
            for key in keys:
                renew_window(conn, key, me, lease)

        try:
            run_transaction(self.engine, attempt)
        except SQLAlchemyError as e:
            raise self._db(e, "renewing leases") from None

    def _renew_forever(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat()
            except DatabaseError as e:
                # The write transactions fail the run if the database is gone; a missed
                # renewal only risks a takeover that keep_leases then detects.
                log.warning("lease renewal failed: %s", e)

    def close(self) -> None:
        """Stop renewing, release what is still held, remove the worker row."""
        self._stop.set()
        self._thread.join()
        with self._lock:
            keys = sorted(self.held)
            self.held.clear()

        def leave(conn: Connection) -> None:
            release_leases(conn, keys, self.config)
            unregister(conn, self.config.worker_id)

        try:
            run_transaction(self.engine, leave)
        except SQLAlchemyError as e:
            log.warning("%s (the leases expire by themselves)", self._db(e, "releasing leases"))
