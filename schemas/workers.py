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

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, case, delete, func, insert, select, update

from schemas.dbclock import db_after, db_now
from schemas.tables import kalshi_worker

_w = kalshi_worker
#: Rows of processes gone this long are deleted by the next registration.
PRUNE_AFTER = timedelta(days=1)


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
