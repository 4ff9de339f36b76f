"""``extract candles``: archive every raw candlestick page of the selected event windows.

One run covers every selected series (``--series A,B`` or a ``--category``): one plan,
one client and so one rate budget, one progress bar, one summary with a line per series,
one exit code. A series with nothing to run (no events, no time zone for
TRADE_WINDOW_ONLY) is named once and the others run; a line is logged as each series
finishes, the per-window lines go to the log file (:func:`schemas.logs.log_detail`).

Per window: plan it (pure, :mod:`extract.plan.windows`), skip it if the archive already holds
it, else mark the checkpoint RUNNING, reuse the pages already on disk, fetch the missing
ones through the window's routes (:mod:`extract.routes`: each page checked against the
contract, then written atomically; a refused page is kept under ``_rejected/``), write
the manifest last and mark EXTRACTED.
Windows run concurrently, sharing one client and so one rate budget. A window that fails
becomes FAILED with its reason; the others go on; the run reports it and exits non-zero.

Markets are routed one by one (:mod:`extract.plan.tiers`) by the cutoff read at the start of
the run: a market settled before it is fetched from
``/historical/markets/{ticker}/candlesticks`` in bounded chunks (pages under
``markets/{ticker}/``), the others from the event route. A live page that lacks a market
is weighed (:func:`~extract.plan.tiers.absent_market_action`): a market the cutoff (re-read
when the market settled near it) says could have moved is fetched from the historical
route over the whole window; one merely without candles there costs nothing; one absent
from every page is looked up (``GET /markets/{ticker}``). A historical 404 sends a market
back to the event route. Candles of a minute fetched on both routes are the same values:
load keeps one.

``--route`` picks the route of the live markets (:mod:`extract.plan.auto`,
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
from dataclasses import replace

from sqlalchemy import Engine

from extract.api.client import KalshiClient, RequestStats
from extract.check.report import checked_evidence
from extract.config import ExtractConfig, RouteChoice
from extract.errors import (
    LeaseLostError,
)
from extract.events.historical import CutoffTracker
from extract.events.series import resolve_config
from extract.plan.auto import Answer, Evidence
from extract.plan.runplan import RunPlan
from extract.plan.selection import PlannedWindow, dry_run, plan_run, run_plan, select_events
from extract.plan.tiers import Route, route_markets
from extract.plan.windows import (
    MarketTimes,
    SkipReason,
    Window,
)
from extract.routes.choice import MAX_PROBES
from extract.run.context import RunContext, archived
from extract.run.outcome import CandlesSummary
from extract.run.packs import SharedPages, WindowPacking
from extract.run.progress import Progress
from extract.run.window_job import WindowJob
from extract.run.workers import Coordinator
from schemas.archive import (
    PACKED_DIR,
    ArchiveStore,
    WindowKey,
    open_archive,
)
from schemas.core import CheckpointStatus
from schemas.db import make_engine
from schemas.errors import (
    ApiError,
    ArchiveError,
    KalshiBackfillError,
)
from schemas.logs import log_detail

log = logging.getLogger(__name__)


# --- one window ----------------------------------------------------------------------


async def extract_window(
    run: RunContext,
    key: WindowKey,
    window: Window,
    markets: Sequence[MarketTimes] = (),
    packing: WindowPacking | None = None,
) -> None:
    """Extract one window; failures become a FAILED checkpoint, never an exception.

    ``packing``: its batch requests in the run's plan (shared with its group's windows).
    """
    stats = RequestStats()
    tally = run.summary.tally(key.series_ticker)
    if not await run.claim(key, window):
        tally.held += 1
        run.window_finished(key)
        return
    try:
        if await run.already_archived(key, window):
            run.summary.skipped += 1
            tally.skipped += 1
            log.debug("%s: already archived, skipped", key)
            return
        job = WindowJob(run, key, window, markets, stats, packing)
        await job.run()
        run.summary.done += 1
        tally.done += 1
        tally.candles += job.archived_candles()
    except (ApiError, ArchiveError) as e:
        try:  # FAILED only while the window is ours: a new holder's state stays
            await run.save(key, window, CheckpointStatus.FAILED, last_error=str(e))
        except LeaseLostError as lost:
            run.summary.lost += 1
            tally.held += 1
            log.warning("%s (our attempt failed: %s); it finishes the window", lost, e)
        else:
            run.summary.failed += 1
            tally.failed += 1
            run.summary.failures.append((str(key), str(e)))
            log.error("%s: FAILED: %s", key, e)  # noqa: TRY400 (the reason is the message)
    except LeaseLostError as e:
        run.summary.lost += 1
        tally.held += 1
        log.warning("%s; it finishes the window", e)
    finally:
        tally.requests += stats.requests
        await run.leases().release(key)
        run.window_finished(key)


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
            # Packed pages have no single owner: a killed writer's temporary file there
            # is removed once its process is gone (window folders: by their holder).
            removed = archive.remove_dead_writers_temp_files(PACKED_DIR)
            if removed:
                log.info("removed %d temporary files a killed run left in %s/", removed, PACKED_DIR)
        if client is not None:
            return await _run(config, engine, archive, client, progress, started)
        async with KalshiClient(config.api, concurrency=config.concurrency) as own:
            return await _run(config, engine, archive, own, progress, started)
    finally:
        if own_engine:
            engine.dispose()


async def _run(
    config: ExtractConfig,
    engine: Engine,
    archive: ArchiveStore,
    client: KalshiClient,
    progress: Progress | None,
    started: float,
) -> CandlesSummary:
    """Resolve the series, plan, then run (or print) the plan."""
    config = await resolve_config(config, client, archive, engine)
    selection = select_events(engine, config)
    for series, why in selection.left_out:
        log.warning("%s", why if why.startswith(series) else f"{series}: {why}")
    plan = plan_run(selection.events, config)
    evidence = _evidence(archive, config)
    if config.dry_run:
        shown = dry_run(plan, config, evidence=evidence, left_out=selection.left_out)
        if shown.several:
            for line in shown.events:
                log_detail(log, "plan: %s", line)
        return CandlesSummary(plan=shown.lines(), left_out=list(selection.left_out))
    summary = await _execute(config, engine, archive, plan, evidence, client, progress)
    summary.left_out = list(selection.left_out)
    summary.elapsed_s = time.monotonic() - started
    return summary  # the caller shows it (the CLI prints it once, as text or JSON)


def _evidence(archive: ArchiveStore, config: ExtractConfig) -> Evidence:
    """The route evidence of the newest ``check-api`` report of the first series that has
    one: what it tells (the event cap's counting, whether batch serves historical
    markets) is about the server, not the series."""
    for series in config.series:
        evidence = checked_evidence(archive, series, config.api.base_url)
        if evidence != Evidence():
            return evidence
    return Evidence()


async def _execute(
    config: ExtractConfig,
    engine: Engine,
    archive: ArchiveStore,
    plan: Sequence[PlannedWindow],
    evidence: Evidence,
    client: KalshiClient,
    progress: Progress | None,
) -> CandlesSummary:
    todo = [p for p in plan if isinstance(p.window, Window)]
    skipped = [(p.key, p.window) for p in plan if isinstance(p.window, SkipReason)]
    counts = {reason: 0 for reason in SkipReason}
    tallies = CandlesSummary()
    for p in todo:
        tallies.tally(p.key.series_ticker).windows += 1
    for key, reason in skipped:
        counts[reason] += 1
        tallies.tally(key.series_ticker).without_window += 1
        if reason is SkipReason.NOT_STARTED:  # an event yet to open: expected, no warning
            log_detail(log, "%s: skipped: %s", key, reason.value)
        else:
            log.warning("%s: skipped: %s", key, reason.value)

    async def work(run: RunContext) -> CandlesSummary:
        # The plan routes markets by the cutoff; a rerun with nothing left asks nothing.
        left = [
            p
            for p in todo
            if not (isinstance(p.window, Window) and archived(archive, p.key, p.window))
        ]
        cutoff_ts = (await run.cutoff.ensure()).market_settled_ts if left else None
        done = await _learn_batch_historical(run, todo, cutoff_ts)
        windows, routes = run_plan(todo, config, run.chooser.evidence, cutoff_ts)
        groups = [
            [(windows[i], _packing(routes, i)) for i in g if windows[i].key not in done]
            for g in routes.groups()
        ]
        shared = sum(p.shared for p in routes.packs)
        if shared:
            log.info(
                "%d batch requests carry the markets of several windows (%d windows in %d groups)",
                shared,
                sum(len(g) for g in groups if len(g) > 1),
                sum(len(g) > 1 for g in groups),
            )
        queue: asyncio.Queue[tuple[list[Item], bool]] = asyncio.Queue()
        for group in groups:
            if group:
                queue.put_nowait((group, False))

        async def worker() -> None:
            while True:
                try:
                    group, retry = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if not await _run_group(run, group, retry):
                    queue.put_nowait((group, True))

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(config.concurrency, max(1, queue.qsize()))):
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

    run = RunContext(
        config,
        engine,
        archive,
        client,
        len(todo),
        progress or Progress(),
        CutoffTracker(client),
        evidence,
    )
    run.summary.series = {s: tallies.tally(s) for s in config.series if s in tallies.series}
    run.start_series({s: t.windows for s, t in run.summary.series.items()})
    summary = await _coordinated(config, engine, run, work)
    summary.no_trade_window = counts[SkipReason.NO_TRADE_WINDOW]
    summary.no_markets = counts[SkipReason.NO_MARKETS]
    summary.not_started = counts[SkipReason.NOT_STARTED]
    return summary


Item = tuple[PlannedWindow, WindowPacking | None]
"""A window of the run and its batch requests in the run's plan."""


def _packing(plan: RunPlan, i: int) -> WindowPacking | None:
    """Window ``i``'s part of the plan's packed requests (None: it plans its own)."""
    packs = plan.packs_of(i)
    if not packs:
        return None
    offered = sorted(
        {t for p in packs for piece in p.pieces if piece.window == i for t in piece.request.tickers}
    )
    return WindowPacking(i, plan.routes[i], tuple(offered), packs)


async def _run_group(run: RunContext, group: Sequence[Item], retry: bool) -> bool:
    """Extract a group of windows at once, their shared pages loaded once; False when the
    group's first window is held by another extractor (the caller retries it later).

    Several extractors on one backfill take groups in the same order: the one that finds
    a group started by another defers it to the end of its queue, by when the other has
    archived the shared pages; so a shared page is rarely fetched twice. On the retry
    each window is claimed as usual (a window still held is skipped).
    """
    first, _ = group[0]
    shares = any(p is not None and p.is_shared for _, p in group)
    if shares and len(group) > 1 and not retry:
        w = first.window
        assert isinstance(w, Window)
        if not await run.claim(first.key, w, quiet=True):
            return False
    pages = SharedPages()
    async with asyncio.TaskGroup() as tg:
        for p, packing in group:
            assert isinstance(p.window, Window)
            mine = None if packing is None else replace(packing, shared=pages)
            tg.create_task(extract_window(run, p.key, p.window, p.markets, mine))
    return True


async def _learn_batch_historical(
    run: RunContext, todo: Sequence[PlannedWindow], cutoff_ts: int | None
) -> set[WindowKey]:
    """Before packing, learn whether batch serves historical markets (it decides which
    markets the packed requests carry): the first final windows with historical markets
    are extracted one at a time, each asking batch for them
    (:class:`~extract.routes.choice.RouteChooser`), until the answer is known or
    :data:`~extract.routes.choice.MAX_PROBES` windows could not tell. Returns the
    windows extracted here. Nothing to learn with ``--route event``, with the answer
    given by a ``check-api`` report, or without historical markets.
    """
    done: set[WindowKey] = set()
    chooser = run.chooser
    if run.config.route is RouteChoice.EVENT:
        return done
    for p in todo:
        w = p.window
        if chooser.evidence.batch_serves_historical is not Answer.UNKNOWN:
            break
        if chooser.probes >= MAX_PROBES:
            break
        if not isinstance(w, Window) or not w.is_final or run.archive.exists(p.key.manifest_path):
            continue
        tiers = route_markets(p.markets, cutoff_ts)
        if not any(tiers.get(m.market_ticker) is Route.HISTORICAL for m in w.markets):
            continue
        await extract_window(run, p.key, w, p.markets)
        done.add(p.key)
    return done


async def _coordinated(
    config: ExtractConfig,
    engine: Engine,
    run: RunContext,
    work: Callable[[RunContext], Awaitable[CandlesSummary]],
) -> CandlesSummary:
    """``work(run)`` registered, heartbeating and leasing windows (:mod:`extract.run.workers`)."""
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
