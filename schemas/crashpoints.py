"""Named crash points: deterministic SIGKILLs for the survival tests, free in production.

The stages call :func:`crashpoint` at the moments where a kill is most likely to break
an invariant (a page half written, a checkpoint about to change, a staging table filled
but not merged...). Nothing happens unless the environment variable ``KALSHI_CRASHPOINT``
holds a plan such as ``extract.page.after_write:3`` or ``a:1,b:2``: then the N-th time the
process reaches that point it kills itself with SIGKILL, exactly as ``kill -9`` or the
OOM killer would (no ``finally``, no ``atexit``, no flush). A test runs a stage as a
subprocess with a plan, reruns it without one, and compares with an uninterrupted run.

``KALSHI_CRASHPOINT_TRACE`` names a file to which every point reached is appended, one
name a line: the tests use it to know how often each point is reached in a full run.

The environment is read once per process; with neither variable set a call costs one
attribute test and one dict lookup.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass, field

ENV_PLAN = "KALSHI_CRASHPOINT"
ENV_TRACE = "KALSHI_CRASHPOINT_TRACE"

# --- the points the stages call (tests import these names instead of retyping them) ---

#: Inside an atomic local write: the temporary file is complete, the rename not done.
ARCHIVE_BEFORE_RENAME = "archive.write.before_rename"
EXTRACT_BEFORE_RUNNING = "extract.checkpoint.before_running"
EXTRACT_AFTER_RUNNING = "extract.checkpoint.after_running"
EXTRACT_PAGE_BEFORE_WRITE = "extract.page.before_write"
EXTRACT_PAGE_AFTER_WRITE = "extract.page.after_write"
#: Between pages: the page and its RUNNING checkpoint update are both stored.
EXTRACT_BETWEEN_PAGES = "extract.page.between"
EXTRACT_BEFORE_MANIFEST = "extract.manifest.before_write"
#: The manifest is written, the checkpoint still says RUNNING.
EXTRACT_BEFORE_EXTRACTED = "extract.checkpoint.before_extracted"
EXTRACT_AFTER_EXTRACTED = "extract.checkpoint.after_extracted"
LOAD_STAGE_FILLED = "load.stage.filled"
LOAD_BEFORE_MERGE = "load.merge.before"
LOAD_AFTER_MERGE = "load.merge.after"
#: Rows and stats written, checkpoint not yet SUCCESS (same transaction).
LOAD_BEFORE_SUCCESS = "load.checkpoint.before_success"
#: SUCCESS written in the transaction, COMMIT not yet sent.
LOAD_BEFORE_COMMIT = "load.commit.before"
LOAD_AFTER_COMMIT = "load.commit.after"

EXTRACT_POINTS: tuple[str, ...] = (
    ARCHIVE_BEFORE_RENAME,
    EXTRACT_BEFORE_RUNNING,
    EXTRACT_AFTER_RUNNING,
    EXTRACT_PAGE_BEFORE_WRITE,
    EXTRACT_PAGE_AFTER_WRITE,
    EXTRACT_BETWEEN_PAGES,
    EXTRACT_BEFORE_MANIFEST,
    EXTRACT_BEFORE_EXTRACTED,
    EXTRACT_AFTER_EXTRACTED,
)
LOAD_POINTS: tuple[str, ...] = (
    LOAD_STAGE_FILLED,
    LOAD_BEFORE_MERGE,
    LOAD_AFTER_MERGE,
    LOAD_BEFORE_SUCCESS,
    LOAD_BEFORE_COMMIT,
    LOAD_AFTER_COMMIT,
)


@dataclass
class _State:
    plan: dict[str, int]
    trace: str | None
    seen: dict[str, int] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.plan) or self.trace is not None


def parse_plan(text: str) -> dict[str, int]:
    """``"a:1,b:2"`` → ``{"a": 1, "b": 2}``; raises ValueError on anything else."""
    plan: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, count = item.rpartition(":")
        if not sep or not name or not count.isdigit() or int(count) < 1:
            raise ValueError(f"{ENV_PLAN}: expected name:N[,name:N...], got {item!r}")
        plan[name] = int(count)
    return plan


_state: _State | None = None
#: The loader reaches its points from two writer threads: each hit must be counted once.
_lock = threading.Lock()


def _load() -> _State:
    global _state
    _state = _State(parse_plan(os.environ.get(ENV_PLAN, "")), os.environ.get(ENV_TRACE) or None)
    return _state


def crashpoint(name: str) -> None:
    """SIGKILL this process if the plan says this is the moment; otherwise do nothing."""
    state = _state or _load()
    if not state.active:
        return
    with _lock:
        n = state.seen[name] = state.seen.get(name, 0) + 1
        if state.trace is not None:
            with open(state.trace, "a", encoding="utf-8") as fh:
                fh.write(f"{name}\n")
    if state.plan.get(name) == n:
        os.kill(os.getpid(), signal.SIGKILL)


def reset_for_tests() -> None:
    """Forget the cached environment (in-process unit tests change it)."""
    global _state
    _state = None
