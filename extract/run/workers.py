"""Several extractors on one backfill: window leases and one shared API budget.

Coordination goes through the database the backfill already uses, with no coordinator
process of our own:

- **Leases.** Before a window is touched, :meth:`Coordinator.claim` creates its checkpoint
  row if needed and takes the lease with ONE conditional UPDATE that matches only an
  unclaimed row, an expired lease or our own (:func:`schemas.checkpoints.claim_window`).
  Exactly one worker wins; the others skip the window this run ("held by W until T").
  The lease is renewed after every page (by the same UPDATE that saves the page's
  checkpoint) and at every heartbeat and released when the window ends, so it expires
  only when its worker died or stalled: then the next worker to reach the window takes
  it over and resumes from the pages already archived. A
  holder that is a dead process of this very host (default ``hostname:pid`` ids) is
  taken over at once, so rerunning a killed command never waits for its old leases.
- **One API budget.** Every extractor registers in ``kalshi_worker`` and heartbeats; its
  throttle runs at the key's budget divided by the number of live extractors, updated at
  every beat. N processes started with the same ``--rps``/``--tier`` (the KEY's budget)
  therefore stay under it together, and speed up when some finish. Between a start and
  the first beat that sees the others, the 429 backoff absorbs any overshoot.

Every checkpoint write of a window goes through :meth:`Coordinator.save`: one UPDATE that
matches only while we hold the lease, so a worker that stalled past its lease never
overwrites the new holder's state (it gets LeaseLostError instead). Lease and heartbeat
times are the database server's (:mod:`schemas.dbclock`), not this host's.

The database calls run in worker threads (``asyncio.to_thread``): a slow statement, a
lock wait (SQLite's busy timeout, InnoDB's lock wait) or a retry's sleep then holds up
only the window that made it, never the event loop, the other windows or the
heartbeat. :func:`budget_share` and :func:`heartbeat_interval` are pure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from extract.api.throttle import Throttle
from extract.errors import LeaseLostError
from schemas.archive import WindowKey
from schemas.checkpoints import (
    Checkpoint,
    claim_window,
    ensure_checkpoint,
    get_checkpoint,
    release_window,
    renew_window,
    take_over_window,
    window_columns,
)
from schemas.core import CheckpointStatus
from schemas.db import run_transaction, translate_db_error
from schemas.errors import DatabaseError
from schemas.processes import KIND_EXTRACT, local_process_gone
from schemas.workers import count_live, heartbeat, prune_workers, unregister

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Longest pause between two heartbeats (shorter leases beat more often).
MAX_HEARTBEAT_S = 5.0
#: A worker counts as live for this many heartbeat intervals after its last beat.
LIVE_BEATS = 3


def heartbeat_interval(lease_seconds: float) -> float:
    """Seconds between beats: at least three renewals fit in one lease."""
    return min(MAX_HEARTBEAT_S, lease_seconds / 3.0)


def budget_share(key_rps: float, live_workers: int) -> float:
    """This process's requests/s when ``live_workers`` extractors share a ``key_rps`` budget."""
    return key_rps / max(1, live_workers)


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to take a window."""

    ok: bool
    """True: the window is ours until we release it (or stall past the lease)."""
    held_by: str | None = None
    """Not ok: the live worker holding it."""
    until: datetime | None = None
    """Not ok: when that worker's lease expires unless renewed."""
    taken_over_from: str | None = None
    """Ok: the worker whose expired lease we took (it died or stalled mid-window)."""


class Coordinator:
    """This extractor's leases and its share of the API budget, for one run."""

    def __init__(
        self,
        engine: Engine,
        db_url: str,
        worker_id: str,
        lease_seconds: float,
        *,
        throttle: Throttle | None = None,
        key_rps: float | None = None,
    ) -> None:
        """``throttle``/``key_rps``: split ``key_rps`` among live extractors; None: don't."""
        self.engine = engine
        self.db_url = db_url
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.interval = heartbeat_interval(lease_seconds)
        self.throttle = throttle
        self.key_rps = key_rps
        self.live_workers = 1
        self.held: set[WindowKey] = set()
        self.lost: set[WindowKey] = set()

    async def _tx(self, what: str, work: Callable[[Connection], T]) -> T:
        """``work`` in its own short transaction (rerun after a lock conflict), in a thread."""
        return await asyncio.to_thread(self._tx_blocking, what, work)

    def _tx_blocking(self, what: str, work: Callable[[Connection], T]) -> T:
        try:
            return run_transaction(self.engine, work)
        except SQLAlchemyError as e:
            raise translate_db_error(e, self.db_url, what) from None

    # --- leases ---

    async def claim(self, key: WindowKey, start_ts: int, end_ts: int, is_final: bool) -> Claim:
        """Create the window's checkpoint if new and try to take its lease."""
        me, lease = self.worker_id, self.lease_seconds

        def attempt(conn: Connection) -> Claim:
            ensure_checkpoint(
                conn, key, window_start_ts=start_ts, window_end_ts=end_ts, is_final=is_final
            )
            before = get_checkpoint(conn, key)
            if claim_window(conn, key, me, lease):
                previous = before.lease_owner if before else None
                return Claim(True, taken_over_from=previous if previous != me else None)
            now = get_checkpoint(conn, key)
            holder = now.lease_owner if now else None
            # A killed process of this host: waiting for its lease would only delay a rerun.
            if (
                holder is not None
                and local_process_gone(holder)
                and take_over_window(conn, key, me, holder, lease)
            ):
                return Claim(True, taken_over_from=holder)
            return Claim(False, holder, now.lease_expires_utc if now else None)

        claim = await self._tx(f"claiming {key}", attempt)
        if claim.ok:
            self.held.add(key)
            self.lost.discard(key)
        return claim

    async def checkpoint(self, key: WindowKey) -> Checkpoint | None:
        """The window's stored checkpoint (read in a thread, like every call here)."""
        return await self._tx(f"reading the checkpoint of {key}", lambda c: get_checkpoint(c, key))

    async def save(
        self,
        key: WindowKey,
        status: CheckpointStatus | None = None,
        *,
        window: tuple[int, int, bool] | None = None,
        **progress: Any,
    ) -> None:
        """Save the window's checkpoint and extend our lease, in ONE conditional UPDATE.

        ``status``/``progress``: checkpoint columns (counters, resume cursor, last_error,
        ...); ``window``: its (start_ts, end_ts, is_final), when it may differ from the
        stored row. Written only while we hold the lease
        (:func:`schemas.checkpoints.renew_window`); LeaseLostError if another worker took
        the window meanwhile, with nothing written. Without columns it only renews.
        """
        if key in self.lost:
            raise LeaseLostError(f"{key}: lease lost to another worker")
        if window is not None:
            progress.update(window_columns(*window))
        me, lease = self.worker_id, self.lease_seconds
        what = f"saving the checkpoint of {key}" if progress else f"renewing the lease of {key}"
        if not await self._tx(
            what, lambda conn: renew_window(conn, key, me, lease, status=status, **progress)
        ):
            self.held.discard(key)
            self.lost.add(key)
            raise LeaseLostError(f"{key}: lease lost to another worker")

    async def release(self, key: WindowKey) -> None:
        """Give the window back (a no-op if another worker holds it now)."""
        self.held.discard(key)
        self.lost.discard(key)
        await self._tx(f"releasing {key}", lambda conn: release_window(conn, key, self.worker_id))

    # --- heartbeat and budget ---

    async def beat(self) -> None:
        """Refresh our row, renew every held lease, and resize our share of the budget."""
        ttl = self.interval * LIVE_BEATS
        keys = sorted(self.held)

        def attempt(conn: Connection) -> tuple[int, list[WindowKey]]:
            heartbeat(conn, self.worker_id, KIND_EXTRACT, ttl)
            lost = [
                k for k in keys if not renew_window(conn, k, self.worker_id, self.lease_seconds)
            ]
            return count_live(conn, KIND_EXTRACT), lost

        live, lost = await self._tx("heartbeat", attempt)
        for key in lost:
            if key in self.held:  # not released meanwhile
                log.warning("%s: lease lost to another worker (we stalled past it)", key)
                self.held.discard(key)
                self.lost.add(key)
        self._share(live)

    def _share(self, live: int) -> None:
        if self.throttle is None or self.key_rps is None:
            self.live_workers = live
            return
        share = budget_share(self.key_rps, live)
        if live != self.live_workers or share != self.throttle.nominal_rate:
            log.info(
                "API budget %g req/s shared by %d live extractor(s): %.3g req/s here",
                self.key_rps,
                live,
                share,
            )
        self.live_workers = live
        self.throttle.set_nominal_rate(share)

    async def _beat_forever(self, stop: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if stop.is_set():
                return
            try:
                await self.beat()
            except DatabaseError as e:
                # The windows' own checkpoint saves fail the run if the database is gone;
                # a missed beat only delays a share change or a renewal.
                log.warning("heartbeat failed: %s", e)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Coordinator]:
        """Register (and size the budget) before the first request; unregister at the end."""
        await self._tx("registering the worker", prune_workers)
        await self.beat()
        stop = asyncio.Event()
        task = asyncio.create_task(self._beat_forever(stop), name="extract-heartbeat")
        try:
            yield self
        finally:
            # Stop between beats and wait for a beat in flight: a beat runs in a thread,
            # which cancelling the task would not stop, and its UPDATE-then-INSERT landing
            # after the unregister below would leave this worker's row behind.
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # Best effort: a lease or a row left behind only expires a little later.
            keys = sorted(self.held)

            def leave(conn: Connection) -> None:
                for key in keys:
                    release_window(conn, key, self.worker_id)
                unregister(conn, self.worker_id)

            with contextlib.suppress(DatabaseError):
                await self._tx("unregistering the worker", leave)
