"""Who is working on the backfill: the ``kalshi_worker`` rows both stages keep.

Each extractor and loader process registers a row and refreshes its heartbeat every few
seconds; a row whose ``expires_utc`` passed belongs to a process that died or stopped.
Extractors count the live extractors to split one API key's budget between them
(:mod:`extract.run.workers`), and ``load status`` lists the rows. Like the leases in
:mod:`schemas.checkpoints`, this uses only plain INSERT/UPDATE/DELETE/SELECT, so it runs
the same on SQLite, MariaDB, MySQL and TiDB. Every function takes a Connection: the
caller runs each in its own short transaction. Heartbeat and expiry times are the
database server's (:mod:`schemas.dbclock`), so hosts with skewed clocks count each other
right.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, case, delete, func, insert, select, update

from schemas.dbclock import db_after, db_now
from schemas.errors import InputError
from schemas.tables import kalshi_worker

_w = kalshi_worker
KIND_EXTRACT = "extract"
KIND_LOAD = "load"
#: Rows of processes gone this long are deleted by the next registration.
PRUNE_AFTER = timedelta(days=1)


def default_worker_id() -> str:
    """``hostname:pid``: unique among live processes of one backfill, readable in status."""
    return f"{socket.gethostname()}:{os.getpid()}"


def local_process_gone(
    worker_id: str,
    *,
    hostname: str | None = None,
    alive: Callable[[int], bool] | None = None,
) -> bool:
    """True when ``worker_id`` is a default id of THIS host whose process no longer exists.

    Its leases can then be taken at once instead of after they expire, so rerunning a
    killed command on the same host resumes right away. Any doubt answers False (another
    host, a custom id, a live or reused pid): the lease then simply runs out.
    """
    host, sep, pid_text = worker_id.rpartition(":")
    if not sep or host != (hostname or socket.gethostname()) or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid() or pid <= 1:
        return False
    return not (alive or pid_alive)(pid)


MAX_WORKER_ID_CHARS = 128  # kalshi_backfill_checkpoint.lease_owner, kalshi_worker.worker_id


def validate_worker(worker_id: str, lease_seconds: float) -> None:
    """Refuse a worker id the tables cannot hold, or a lease too short to renew in time."""
    if not worker_id or len(worker_id) > MAX_WORKER_ID_CHARS or not worker_id.isprintable():
        raise InputError(f"--worker-id must be 1 to {MAX_WORKER_ID_CHARS} printable characters")
    if not lease_seconds >= 1:
        raise InputError(f"--lease-seconds must be at least 1, got {lease_seconds:g}")


def pid_alive(pid: int) -> bool:
    """True while a process ``pid`` exists on this host (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


@dataclass(frozen=True)
class WorkerRow:
    """One registered process."""

    worker_id: str
    kind: str
    started_at_utc: datetime
    heartbeat_utc: datetime
    expires_utc: datetime
    live_by_server: bool | None = None
    """Whether its heartbeat was live by the database's clock when the row was read
    (:func:`list_workers`); None for a row built by hand."""

    def live(self, now: datetime) -> bool:
        """Live by the database's clock when read (so a status host's skew does not
        matter); a row built by hand compares ``expires_utc`` with ``now``."""
        if self.live_by_server is not None:
            return self.live_by_server
        return self.expires_utc > now


def heartbeat(conn: Connection, worker_id: str, kind: str, ttl_seconds: float) -> None:
    """Register ``worker_id`` or refresh its heartbeat; it counts as live for ``ttl_seconds``.

    ``started_at_utc`` is set by the first call only, so status shows the process's age.
    An UPDATE, then an INSERT when no row matched: worker ids are unique among live
    processes, so nobody else inserts the same row, and the SQL is the same everywhere.
    """
    beat = {"kind": kind, "heartbeat_utc": db_now(), "expires_utc": db_after(ttl_seconds)}
    result = conn.execute(update(_w).where(_w.c.worker_id == worker_id).values(beat))
    if result.rowcount == 0:
        conn.execute(insert(_w).values(worker_id=worker_id, started_at_utc=db_now(), **beat))


def unregister(conn: Connection, worker_id: str) -> None:
    """Remove the row at a clean exit: the others' budget shares grow at their next beat."""
    conn.execute(delete(_w).where(_w.c.worker_id == worker_id))


def prune_workers(conn: Connection) -> int:
    """Delete rows of processes that died long ago (their kill left the row behind)."""
    old = db_after(-PRUNE_AFTER.total_seconds())
    return int(conn.execute(delete(_w).where(_w.c.expires_utc < old)).rowcount)


def count_live(conn: Connection, kind: str) -> int:
    """Processes of ``kind`` whose heartbeat has not expired (by the database's clock)."""
    stmt = (
        select(func.count()).select_from(_w).where(_w.c.kind == kind, _w.c.expires_utc > db_now())
    )
    return int(conn.execute(stmt).scalar_one())


def list_workers(conn: Connection) -> list[WorkerRow]:
    """Every registered process (live or not), oldest first."""
    live = case((_w.c.expires_utc > db_now(), 1), else_=0).label("live_by_server")
    stmt = select(_w, live).order_by(_w.c.started_at_utc, _w.c.worker_id)
    return [
        WorkerRow(
            r.worker_id,
            r.kind,
            r.started_at_utc,
            r.heartbeat_utc,
            r.expires_utc,
            bool(r.live_by_server),
        )
        for r in conn.execute(stmt)
    ]
