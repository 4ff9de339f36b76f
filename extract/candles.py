"""``extract candles``: archive every raw candlestick page of the selected event windows.

Per window: plan it (pure, :mod:`extract.windows`), skip it if the archive already holds
it, else mark the checkpoint RUNNING, reuse the pages already on disk, fetch the missing
ones through the window's routes (:mod:`extract.routes`: each page checked against the
contract, then written atomically; a refused page is kept under ``_rejected/``), write
the manifest last and mark EXTRACTED.
Windows run concurrently, sharing one client and so one rate budget. A window that fails
becomes FAILED with its reason; the others go on; the run reports it and exits non-zero.

Markets are routed one by one (:mod:`extract.routing`) by the cutoff read at the start of
the run: a market settled before it is fetched from
``/historical/markets/{ticker}/candlesticks`` in bounded chunks (pages under
``markets/{ticker}/``), the others from the event route. A live page that lacks a market
is weighed (:func:`~extract.routing.absent_market_action`): a market the cutoff (re-read
when the market settled near it) says could have moved is fetched from the historical
route over the whole window; one merely without candles there costs nothing; one absent
from every page is looked up (``GET /markets/{ticker}``). A historical 404 sends a market
back to the event route. Candles of a minute fetched on both routes are the same values:
load keeps one.

``--route`` picks the route of the live markets (:mod:`extract.plan`,
:class:`~extract.routes.choice.RouteChooser`): the event route, or the batch route
(``GET /markets/candlesticks``, planned under its caps; historical markets join it once
the server has shown that it serves them), or per window the cheaper of the two by what
the server has shown (``auto``).

A window is final only ``final_grace`` after its markets close; until then a rerun
fetches again the pages that may lack candles published late.

Kill the process at any moment: pages are whole or absent, the manifest exists only once
every page does, and a rerun starts from the chain on disk, so nothing final is fetched
twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import Engine

from extract.check_report import checked_evidence
from extract.client import KalshiClient, RequestStats
from extract.config import ExtractConfig
from extract.errors import (
    LeaseLostError,
)
from extract.historical import CutoffTracker
from extract.outcome import CandlesSummary
from extract.plan import Evidence
from extract.progress import Progress, Snapshot
from extract.routes.choice import RouteChooser
from extract.selection import PlannedWindow, dry_run_lines, plan_run, select_events
from extract.window_job import WindowJob
from extract.windows import (
    MarketTimes,
    SkipReason,
    Window,
)
from extract.workers import Coordinator
from schemas.archive import (
    ArchiveStore,
    WindowKey,
    open_archive,
)
from schemas.checkpoints import Checkpoint
from schemas.db import make_engine
from schemas.errors import (
    ApiError,
    ArchiveError,
    CorruptArchiveError,
    KalshiBackfillError,
)
from schemas.tables import CheckpointStatus

log = logging.getLogger(__name__)


# --- the run: windows, leases, checkpoints ----------------------------------------------


class _Run:
    """State shared by the windows of one run."""

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
        self.chooser = RouteChooser(config.route, evidence)
        self.started = time.monotonic()
        self.coord: Coordinator | None = None
        """Leases and the budget share; set by ``_execute`` for the run's duration."""

    def tick(self, force: bool = False) -> None:
        self.progress.update(
            Snapshot(
                self.finished,
                self.total,
                self.summary.pages,
                self.client.stats.requests,
                self.client.stats.throttled,
                time.monotonic() - self.started,
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
        if manifest is None or (
            manifest.window_start_ts,
            manifest.window_end_ts,
            manifest.is_final,
        ) != (window.start_ts, window.end_ts, window.is_final):
            return False
        if {m.market_ticker for m in window.markets} - {m.market_ticker for m in manifest.markets}:
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

    async def window(
        self, key: WindowKey, window: Window, markets: Sequence[MarketTimes] = ()
    ) -> None:
        """Extract one window; failures become a FAILED checkpoint, never an exception."""
        stats = RequestStats()
        if not await self.claim(key, window):
            self.finished += 1
            self.tick()
            return
        try:
            if await self.already_archived(key, window):
                self.summary.skipped += 1
                log.debug("%s: already archived, skipped", key)
                return
            await WindowJob(self, key, window, markets, stats).run()
            self.summary.done += 1
        except (ApiError, ArchiveError) as e:
            try:  # FAILED only while the window is ours: a new holder's state stays
                await self.save(key, window, CheckpointStatus.FAILED, last_error=str(e))
            except LeaseLostError as lost:
                self.summary.lost += 1
                log.warning("%s (our attempt failed: %s); it finishes the window", lost, e)
            else:
                self.summary.failed += 1
                self.summary.failures.append((str(key), str(e)))
                log.error("%s: FAILED: %s", key, e)  # noqa: TRY400 (the reason is the message)
        except LeaseLostError as e:
            self.summary.lost += 1
            log.warning("%s; it finishes the window", e)
        finally:
            await self.leases().release(key)
            self.finished += 1
            self.tick()

    async def claim(self, key: WindowKey, window: Window) -> bool:
        """Take the window's lease; False (logged, counted) when another worker holds it."""
        claim = await self.leases().claim(key, window.start_ts, window.end_ts, window.is_final)
        if not claim.ok:
            self.summary.held += 1
            until = claim.until.isoformat() if claim.until else "?"
            log.info("%s: held by %s until %s, skipped", key, claim.held_by, until)
        elif claim.taken_over_from is not None:
            self.summary.taken_over += 1
            log.warning("%s: taken over from %s (its lease expired)", key, claim.taken_over_from)
        return claim.ok


# --- the stage --------------------------------------------------------------------------


async def run_candles(
    config: ExtractConfig,
    *,
    engine: Engine | None = None,
    client: KalshiClient | None = None,
    progress: Progress | None = None,
) -> CandlesSummary:
    """Extract the selected windows; see the module docstring. Never raises for a window.

    Raises InputError/ConfigError/ArchiveError/DatabaseError for problems of the run as a
    whole (nothing to do, bad input, unwritable archive, unreachable database).
    """
    started = time.monotonic()
    own_engine = engine is None
    engine = engine or make_engine(config.db_url)
    try:
        archive = open_archive(config.archive_dir)
        if config.dry_run:
            archive.check_version()
        else:
            archive.ensure_writable()
        plan = plan_run(select_events(engine, config), config)
        evidence = checked_evidence(archive, config.series, config.api.base_url)
        if config.dry_run:
            return CandlesSummary(plan=dry_run_lines(plan, config, evidence=evidence))
        summary = await _execute(config, engine, archive, plan, evidence, client, progress)
        summary.elapsed_s = time.monotonic() - started
        return summary  # the caller shows it (the CLI prints it once, as text or JSON)
    finally:
        if own_engine:
            engine.dispose()


async def _execute(
    config: ExtractConfig,
    engine: Engine,
    archive: ArchiveStore,
    plan: Sequence[PlannedWindow],
    evidence: Evidence,
    client: KalshiClient | None,
    progress: Progress | None,
) -> CandlesSummary:
    todo = [(p.key, p.window, p.markets) for p in plan if isinstance(p.window, Window)]
    skipped = [(p.key, p.window) for p in plan if isinstance(p.window, SkipReason)]
    counts = {reason: 0 for reason in SkipReason}
    for key, reason in skipped:
        counts[reason] += 1
        log.warning("%s: skipped: %s", key, reason.value)

    async def work(run: _Run) -> CandlesSummary:
        queue: asyncio.Queue[tuple[WindowKey, Window, tuple[MarketTimes, ...]]] = asyncio.Queue()
        for item in todo:
            queue.put_nowait(item)

        async def worker() -> None:
            while True:
                try:
                    key, window, markets = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await run.window(key, window, markets)

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(config.concurrency, max(1, len(todo)))):
                    tg.create_task(worker())
        except* KalshiBackfillError as group:
            # A problem of the whole run (the database went away): one clear error.
            raise _first(group) from None
        run.tick(force=True)
        run.progress.close()
        s = run.summary
        spent = run.cutoff.stats
        s.requests = run.client.stats.requests - spent.requests
        s.retries = run.client.stats.retries - spent.retries
        s.throttled = run.client.stats.throttled
        s.cutoff = str(run.cutoff.current or "")
        s.cutoff_reads = run.cutoff.reads
        return s

    def new_run(c: KalshiClient) -> _Run:
        return _Run(config, engine, archive, c, len(todo), shown, CutoffTracker(c), evidence)

    shown = progress or Progress()
    if client is not None:
        summary = await _coordinated(config, engine, new_run(client), work)
    else:
        async with KalshiClient(config.api, concurrency=config.concurrency) as own:
            summary = await _coordinated(config, engine, new_run(own), work)
    summary.no_trade_window = counts[SkipReason.NO_TRADE_WINDOW]
    summary.no_markets = counts[SkipReason.NO_MARKETS]
    summary.not_started = counts[SkipReason.NOT_STARTED]
    return summary


async def _coordinated(
    config: ExtractConfig,
    engine: Engine,
    run: _Run,
    work: Callable[[_Run], Awaitable[CandlesSummary]],
) -> CandlesSummary:
    """``work(run)`` registered, heartbeating and leasing windows (:mod:`extract.workers`)."""
    run.coord = Coordinator(
        engine,
        config.db_url,
        config.worker_id,
        config.lease_seconds,
        throttle=run.client.throttle if config.shared_budget else None,
        key_rps=config.api.rate.rps,
    )
    async with run.coord.running():
        return await work(run)


def _first(group: BaseExceptionGroup[KalshiBackfillError]) -> KalshiBackfillError:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, KalshiBackfillError)
    return leaf
