"""Who a worker is: its id, its kind, and whether a local process is still alive; pure.

Apart from :mod:`schemas.workers` (the ``kalshi_worker`` table's operations) so that the
stages' configs, which validate a worker id, import no database library.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from schemas.errors import InputError

KIND_EXTRACT = "extract"
KIND_LOAD = "load"


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
