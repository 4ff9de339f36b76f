"""The run context: what every window of one ``extract candles`` run shares.

Its own module so that the run (:mod:`extract.run.candles`, which makes one and hands
each window to a :class:`~extract.run.window_job.WindowJob`) and the window job (which
writes checkpoints and counts through it) both depend on it, and not on each other.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine

from extract.api.client import ApiResponse, KalshiClient
from extract.config import ExtractConfig
from extract.events.historical import CutoffTracker
from extract.plan.auto import BatchProbe, Evidence
from extract.plan.caps import BatchRequest
from extract.plan.windows import Window
from extract.routes.batch import BATCH_PATH, check_batch_page
from extract.routes.choice import RouteChooser
from extract.run.outcome import CandlesSummary
from extract.run.progress import Progress, Snapshot
from extract.run.workers import Coordinator
from schemas.archive import ArchiveStore, Manifest, WindowKey
from schemas.checkpoints import Checkpoint
from schemas.core import CheckpointStatus
from schemas.errors import ApiError, CorruptArchiveError
from schemas.logs import log_detail

log = logging.getLogger(__name__)


def covers(manifest: Manifest, window: Window) -> bool:
    """Whether an archived window is this one: the same extent, and every market of it
    (a manifest written before some historical markets were known does not cover it)."""
    extent = (manifest.window_start_ts, manifest.window_end_ts, manifest.is_final)
    if extent != (window.start_ts, window.end_ts, window.is_final):
        return False
    return not {m.market_ticker for m in window.markets} - manifest.market_tickers


def archived(archive: ArchiveStore, key: WindowKey, window: Window) -> bool:
    """Whether the archive already holds this window complete (read only, no checkpoint:
    :meth:`RunContext.already_archived` decides, this only tells the run what is left)."""
    try:
        manifest = archive.manifest_for(key)
    except CorruptArchiveError:
        return False
    return manifest is not None and covers(manifest, window)


class RunContext:
    """What the windows of one run share: the config, the engine, the archive, the client
    (and so the rate budget), the summary, the progress, the cutoff, the route chooser,
    and the leases every checkpoint read and write goes through."""

    def __init__(
        self,
        config: ExtractConfig,
        engine: Engine,
        archive: ArchiveStore,
        client: KalshiClient,
        total: int,
        progress: Progress,
        cutoff: CutoffTracker,
        evidence: Evidence,
    ) -> None:
        self.config = config
        self.engine = engine
        self.archive = archive
        self.client = client
        self.summary = CandlesSummary()
        self.total = total
        self.finished = 0
        self.progress = progress
        self.cutoff = cutoff
        self.chooser = RouteChooser(config.route, evidence, self.ask_batch)
        self.started = time.monotonic()
        self.coord: Coordinator | None = None
        """Leases and the budget share; set by ``_execute`` for the run's duration."""
        self.left: dict[str, int] = {}
        """Windows not finished yet, by series (:meth:`start_series`)."""

    def start_series(self, windows: dict[str, int]) -> None:
        """The windows each series has to run: a line is logged as each one finishes."""
        self.left = dict(windows)

    def window_finished(self, key: WindowKey) -> None:
        """Count a finished window (whatever its outcome); the series' line when it was its
        last one (a run of several series: with one, the summary says it all)."""
        self.finished += 1
        series = key.series_ticker
        left = self.left.get(series, 0) - 1
        self.left[series] = left
        if left == 0 and len(self.left) > 1:
            log.info("%s", self.summary.tally(series).line(series))
        self.tick()

    async def ask_batch(self, probe: BatchProbe) -> int | None:
        """Send the route chooser's one-market question to batch: the candles it returned
        for the market (0 when it refused it), or None when it could not be asked.

        Not archived: hourly candles answer a question about the server, they are not
        the window's data (its pages are fetched at the window's period by its routes).
        """
        req = BatchRequest((probe.ticker,), probe.start_ts, probe.end_ts)

        def check(resp: ApiResponse) -> None:
            if resp.status == 200:
                check_batch_page(resp.raw, req.tickers)  # a broken body is retried

        try:
            resp = await self.client.get_json(
                BATCH_PATH, req.params(probe.period), check=check, accept=frozenset({400, 404})
            )
        except ApiError as e:
            log.warning("could not ask batch about %s: %s", probe.ticker, e)
            return None
        counts = self.summary.route_requests
        counts["probe"] = counts.get("probe", 0) + 1
        if resp.status != 200:
            return 0
        return check_batch_page(resp.raw, req.tickers).returned

    def tick(self, force: bool = False) -> None:
        self.progress.update(
            Snapshot(
                self.finished,
                self.total,
                self.summary.pages,
                self.client.stats.requests,
                self.client.stats.throttled,
                time.monotonic() - self.started,
                sum(1 for n in self.left.values() if n <= 0),
                len(self.left),
            ),
            force=force,
        )

    def leases(self) -> Coordinator:
        """The run's coordinator: every checkpoint read and write goes through it."""
        assert self.coord is not None, "a run's windows are extracted under its Coordinator"
        return self.coord

    async def save(
        self, key: WindowKey, window: Window, status: CheckpointStatus, **fields: object
    ) -> None:
        """Write the window's checkpoint, only while we hold its lease (else LeaseLostError).

        One conditional UPDATE, in a thread (:meth:`Coordinator.save`): a worker that
        stalled past its lease never overwrites the state of the one that took it over.
        """
        extent = (window.start_ts, window.end_ts, window.is_final)
        await self.leases().save(key, status, window=extent, **fields)

    async def checkpoint(self, key: WindowKey) -> Checkpoint | None:
        return await self.leases().checkpoint(key)

    async def already_archived(self, key: WindowKey, window: Window) -> bool:
        """True when the manifest already covers exactly this window (only load is left).

        A manifest that lacks a market of the window (written before its historical
        markets were known) does not cover it. A checkpoint left RUNNING by a kill after
        the manifest was written is set to EXTRACTED; a SUCCESS (or EXTRACTED) checkpoint
        of the same window stays as it is.
        """
        try:
            manifest = self.archive.manifest_for(key)
        except CorruptArchiveError as e:
            moved = self.archive.move_to_quarantine(key.manifest_path)
            log.warning("%s: unreadable manifest quarantined to %s (%s)", key, moved, e)
            return False
        if manifest is None or not covers(manifest, window):
            return False
        missing = [p for p in manifest.packed_pages if not self.archive.exists(p)]
        if missing:
            # Another window's load quarantined a packed page this one shares: refetch.
            log.warning("%s: packed page %s is missing: extracted again", key, missing[0])
            return False
        cp = await self.checkpoint(key)
        same = cp is not None and (cp.window_start_ts, cp.window_end_ts) == (
            window.start_ts,
            window.end_ts,
        )
        if (
            not same
            or cp is None
            or cp.status
            not in (
                CheckpointStatus.SUCCESS,
                CheckpointStatus.EXTRACTED,
            )
        ):
            await self.save(
                key,
                window,
                CheckpointStatus.EXTRACTED,
                extracted_at_utc=manifest.completed_at_utc,
                resume_cursor_ts=window.end_ts,
                pages_archived=len(manifest.pages),
                last_error=None,
            )
        return True

    async def claim(self, key: WindowKey, window: Window, *, quiet: bool = False) -> bool:
        """Take the window's lease; False (logged, counted) when another worker holds it.

        ``quiet``: a held window is neither logged nor counted (the caller tries again).
        """
        claim = await self.leases().claim(key, window.start_ts, window.end_ts, window.is_final)
        if not claim.ok and quiet:
            return False
        if not claim.ok:
            self.summary.held += 1
            until = claim.until.isoformat() if claim.until else "?"
            log_detail(log, "%s: held by %s until %s, skipped", key, claim.held_by, until)
        elif claim.taken_over_from is not None:
            self.summary.taken_over += 1
            log.warning("%s: taken over from %s (its lease expired)", key, claim.taken_over_from)
        return claim.ok
