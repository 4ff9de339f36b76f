"""``load run --follow``: load windows as extract completes them, until extract is done.

Each pass is an ordinary run (:func:`load.run.loader.load_pass`): find the complete windows
not loaded yet, lease them, load them. Between passes the loader sleeps ``poll_s``. Leases
keep several loaders (followers or not) apart, as they keep extractors apart.

The loader stops when a pass finds nothing left (it loaded no window and no window was
held by another worker) and no extractor was alive (no unexpired ``kalshi_worker`` row
of kind ``extract``) when that pass STARTED: a window completed before the last
extractor's heartbeat expired was then seen by the pass. An extractor started at the
same time as the loader may not have registered yet, so this stop waits until an
extractor has been seen alive or ``START_GRACE_S`` have passed.

``idle_exit_s`` is the backstop: the loader also stops after that long without loading a
window, whatever the extractors do (an extractor alive but stuck, a window held by a
loader that never finishes it).

A window that fails is reported once, however many passes meet it again (its FAILED
checkpoint stays), and does not count as left to load; the run then ends with
LoadFailedError, after everything else was loaded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from load.config import LoadConfig
from load.errors import NoWindowsError
from load.run.outcome import LoadSummary
from schemas.archive import LocalArchive, open_archive
from schemas.db import make_engine, translate_db_error
from schemas.processes import KIND_EXTRACT
from schemas.workers import count_live

log = logging.getLogger(__name__)

#: How long a follower waits for an extractor started alongside it to register.
START_GRACE_S = 30.0

Pass = Callable[[LoadConfig, Engine], LoadSummary]
"""One ordinary load of what is pending now (``load.run.loader.load_pass``)."""


@dataclass
class FollowState:
    """What the follower has seen so far; :meth:`stop_reason` decides when it is done.

    Pure: the clock readings and the observations come from the caller.
    """

    started: float
    last_loaded: float
    seen_extractor: bool = False
    failures: dict[str, None] = field(default_factory=dict)
    """Each failure line once, in the order first met."""

    def stop_reason(
        self, now: float, *, extractor_alive: bool, part: LoadSummary, config: LoadConfig
    ) -> str | None:
        """Why to stop after a pass that started with ``extractor_alive``, or None."""
        self.seen_extractor = self.seen_extractor or extractor_alive
        if part.windows_loaded:
            self.last_loaded = now
        left = part.windows_loaded + part.windows_held
        settled = self.seen_extractor or now - self.started >= START_GRACE_S
        if not extractor_alive and not left and settled:
            return "no extractor is alive and no complete window is left"
        if config.idle_exit_s and now - self.last_loaded >= config.idle_exit_s:
            return f"no window loaded for {config.idle_exit_s:g} s (--idle-exit)"
        return None


def follow_windows(
    config: LoadConfig,
    one_pass: Pass,
    *,
    engine: Engine | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> LoadSummary:
    """Run ``one_pass`` until :class:`FollowState` says stop; the summary of every pass.

    The caller raises LoadFailedError when the summary counts failed windows.
    """
    once = replace(config, follow=False)
    own_engine = engine is None
    eng = make_engine(config.db_url) if engine is None else engine
    total = LoadSummary()
    now = clock()
    state = FollowState(started=now, last_loaded=now)
    log.info("load: following the archive until extract is done")
    try:
        while True:
            alive = _extractors_alive(eng, config)
            part = _pass(once, eng, one_pass)
            _merge(total, part, state)
            reason = state.stop_reason(clock(), extractor_alive=alive, part=part, config=config)
            if reason is not None:
                break
            sleep(config.poll_s)
    finally:
        if own_engine:
            eng.dispose()
    total.elapsed_s = clock() - state.started
    total.failures = list(state.failures)
    total.windows_failed = len(state.failures)
    log.info("load: stopped following: %s", reason)
    log.info("%s", total.line())
    return total


def _pass(config: LoadConfig, engine: Engine, one_pass: Pass) -> LoadSummary:
    """One pass; an archive with no complete window yet is an empty pass, not an error."""
    archive = open_archive(config.archive_dir)
    if isinstance(archive, LocalArchive) and not archive.root.is_dir():
        return LoadSummary()  # extract has not created it yet
    try:
        return one_pass(config, engine)
    except NoWindowsError:
        return LoadSummary()


def _extractors_alive(engine: Engine, config: LoadConfig) -> bool:
    try:
        with engine.connect() as conn:
            return count_live(conn, KIND_EXTRACT) > 0
    except SQLAlchemyError as e:
        raise translate_db_error(e, config.db_url, "counting live extractors") from e


def _merge(total: LoadSummary, part: LoadSummary, state: FollowState) -> None:
    """Add a pass to the run's summary; windows loaded earlier are not skipped again."""
    total.windows_loaded += part.windows_loaded
    total.rows += part.rows
    total.windows_held = part.windows_held
    total.windows_skipped = max(
        0, part.windows_skipped - (total.windows_loaded - part.windows_loaded)
    )
    total.writers = part.writers or total.writers
    for line in part.failures:
        state.failures.setdefault(line, None)
