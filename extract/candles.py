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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from extract.client import KalshiClient, RequestStats
from extract.config import ExtractConfig
from extract.errors import (
    LeaseLostError,
)
from extract.historical import CutoffTracker
from extract.plan import (
    Evidence,
    RequestTally,
    RouteChoice,
    WindowShape,
    choose_routes,
)
from extract.progress import Progress, Snapshot
from extract.routes.choice import RouteChooser
from extract.routes.event import EventRoute
from extract.routes.historical import HistoricalRoute
from extract.routing import (
    Route,
    route_markets,
)
from extract.window_job import WindowJob
from extract.windows import (
    EventTimes,
    MarketTimes,
    SkipReason,
    Window,
    plan_window,
)
from extract.workers import Coordinator
from schemas.archive import (
    ArchiveStore,
    WindowKey,
    open_archive,
)
from schemas.checkpoints import Checkpoint, dt_to_ts
from schemas.db import make_engine, translate_db_error
from schemas.errors import (
    ApiError,
    ArchiveError,
    CorruptArchiveError,
    InputError,
    KalshiBackfillError,
)
from schemas.tables import CheckpointStatus, kalshi_event, kalshi_market

log = logging.getLogger(__name__)


# --- the plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedWindow:
    """One event of the run with its window (or the reason it has none)."""

    key: WindowKey
    window: Window | SkipReason
    markets: tuple[MarketTimes, ...] = ()
    """The event's markets as stored (with settlement and tier): what routing reads."""


def load_event_times(engine: Engine, config: ExtractConfig) -> list[EventTimes]:
    """The selected events of the series, with their markets, from the database."""
    e, m = kalshi_event.c, kalshi_market.c
    stmt = select(e.event_ticker, e.trade_start_utc, e.trade_end_utc).where(
        e.series_ticker == config.series
    )
    if config.event is not None:
        stmt = stmt.where(e.event_ticker == config.event)
    if config.date_from is not None:
        stmt = stmt.where(e.event_date >= config.date_from)
    if config.date_to is not None:
        stmt = stmt.where(e.event_date <= config.date_to)
    try:
        with engine.connect() as conn:
            events = conn.execute(stmt.order_by(e.event_ticker)).all()
            mstmt = (
                select(
                    m.event_ticker,
                    m.market_ticker,
                    m.open_time_utc,
                    m.close_time_utc,
                    m.settlement_ts_utc,
                    m.is_historical,
                )
                .where(m.series_ticker == config.series)
                .order_by(m.market_ticker)
            )
            if config.event is not None:
                mstmt = mstmt.where(m.event_ticker == config.event)
            markets: dict[str, list[MarketTimes]] = {}
            for r in conn.execute(mstmt):
                markets.setdefault(r.event_ticker, []).append(
                    MarketTimes(
                        r.market_ticker,
                        None if r.open_time_utc is None else dt_to_ts(r.open_time_utc),
                        None if r.close_time_utc is None else dt_to_ts(r.close_time_utc),
                        None if r.settlement_ts_utc is None else dt_to_ts(r.settlement_ts_utc),
                        bool(r.is_historical),
                    )
                )
    except SQLAlchemyError as err:
        raise translate_db_error(err, config.db_url, "reading events") from None
    return [
        EventTimes(
            r.event_ticker,
            None if r.trade_start_utc is None else dt_to_ts(r.trade_start_utc),
            None if r.trade_end_utc is None else dt_to_ts(r.trade_end_utc),
            tuple(markets.get(r.event_ticker, ())),
        )
        for r in events
    ]


def plan_run(events: Sequence[EventTimes], config: ExtractConfig) -> list[PlannedWindow]:
    """Every selected event's window as of ``config.current_time()``; pure."""
    now_ts = int(config.current_time().timestamp())
    return [
        PlannedWindow(
            config.window_key(ev.event_ticker),
            plan_window(ev, config.window_policy, config.period, now_ts, config.final_grace_s),
            ev.markets,
        )
        for ev in events
    ]


def select_events(engine: Engine, config: ExtractConfig) -> list[EventTimes]:
    """The events to plan, or an InputError that says what to do."""
    events = load_event_times(engine, config)
    if events:
        return events
    if config.event is not None:
        raise InputError(
            f"event {config.event} is not in kalshi_event: "
            f"run `extract events --series {config.series}` first"
        )
    if config.date_from is not None or config.date_to is not None:
        raise InputError(
            f"no events of {config.series} between {config.date_from or '…'} "
            f"and {config.date_to or '…'} in kalshi_event"
        )
    raise InputError(
        f"no events for series {config.series} in the database: "
        f"run `extract events --series {config.series}` first"
    )


def planned_requests(p: PlannedWindow, period: int, cutoff_ts: int | None) -> tuple[int, int]:
    """(live, historical) requests a window should take, routing by ``cutoff_ts``; pure.

    Each route's own estimate: the event route's pages over the live markets (an upper
    bound whether its cap counts requested candidates or returned candles, see
    :func:`~extract.routes.event.event_requests`), the historical chunks of each
    historical market (exact).
    """
    w = p.window
    if isinstance(w, SkipReason):
        return 0, 0
    routes = route_markets(p.markets, cutoff_ts)
    live = [
        m.market_ticker for m in w.markets if routes.get(m.market_ticker) is not Route.HISTORICAL
    ]
    hist = [m.market_ticker for m in w.markets if routes.get(m.market_ticker) is Route.HISTORICAL]
    n_live = EventRoute(p.key).estimate(w, live, period) if live else 0
    return n_live, HistoricalRoute(p.key).estimate(w, hist, period)


def dry_run_lines(
    plan: Sequence[PlannedWindow], config: ExtractConfig, cutoff_ts: int | None = None
) -> list[str]:
    """The plan as text: one line per event and the expected requests and time.

    Markets are routed by their stored tier (what ``extract events`` saw) and, when given,
    by ``cutoff_ts``; the dry run itself makes no request.
    """
    lines: list[str] = []
    total_live = total_hist = 0
    tally, evidence = RequestTally(), Evidence()
    for p in plan:
        w = p.window
        if isinstance(w, SkipReason):
            lines.append(f"{p.key.event_ticker}: skip ({w.value})")
            continue
        shape = window_shape(p, cutoff_ts)
        chosen = choose_routes(shape, config.route, evidence, may_probe=False)
        tally.add(shape, chosen)
        per_route = chosen.requests or {}
        n_hist = per_route.get("historical", 0)
        n_live = chosen.total - n_hist
        total_live += n_live
        total_hist += n_hist
        tiers = f" ({n_live} live, {n_hist} historical)" if n_hist else ""
        via = "" if config.route is RouteChoice.EVENT else f" [{_routes_text(per_route)}]"
        lines.append(
            f"{p.key.event_ticker}: {_iso(w.start_ts)} .. {_iso(w.end_ts)}"
            f"{'' if w.is_final else ' (open, not final)'}  {len(w.markets)} markets"
            f"  ~{n_live + n_hist} requests{tiers}{via}"
        )
    lines.extend(tally.lines(evidence))
    total = total_live + total_hist
    rps = config.api.rate.rps
    lines.append(
        f"plan: {len(plan)} events, ~{total} candle requests at {rps:g} req/s "
        f"≈ {total / rps:.1f}s ({config.window_policy.value}, period {config.period}; "
        f"{total_live} live, {total_hist} historical)"
    )
    return lines


def window_shape(p: PlannedWindow, cutoff_ts: int | None) -> WindowShape:
    """A planned window's markets by tier (stored flag, else ``cutoff_ts``) and its range."""
    w = p.window
    assert isinstance(w, Window)
    routes = route_markets(p.markets, cutoff_ts)
    hist = tuple(
        m.market_ticker for m in w.markets if routes.get(m.market_ticker) is Route.HISTORICAL
    )
    live = tuple(m.market_ticker for m in w.markets if m.market_ticker not in hist)
    return WindowShape(live, hist, w.start_ts, w.end_ts, p.key.period_interval)


def _routes_text(requests: Mapping[str, float]) -> str:
    return ", ".join(f"{r} {n}" for r, n in requests.items() if n) or "none"


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%MZ")


# --- the outcome ------------------------------------------------------------------------


@dataclass
class CandlesSummary:
    """What a run did; ``failures`` names each FAILED window and why."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    no_trade_window: int = 0
    no_markets: int = 0
    not_started: int = 0
    pages: int = 0
    live_pages: int = 0
    """Of ``pages``, those from the event route."""
    historical_pages: int = 0
    """Of ``pages``, those from the per-market historical route."""
    rerouted: int = 0
    """Markets that changed tier during the run (the cutoff moved, or a stale flag)."""
    candles: int = 0
    requests: int = 0
    """Candle requests (the cutoff reads are counted in ``cutoff_reads``)."""
    retries: int = 0
    throttled: int = 0
    cutoff: str = ""
    """The historical cutoff (``market_settled_ts``) the run routed by, last read."""
    cutoff_reads: int = 0
    held: int = 0
    """Windows another live worker holds (skipped this run: that worker finishes them)."""
    taken_over: int = 0
    """Windows whose previous worker's lease had expired (it died or stalled)."""
    lost: int = 0
    """Windows whose lease another worker took while we stalled (it finishes them)."""
    elapsed_s: float = 0.0
    route_requests: dict[str, int] = field(default_factory=dict)
    """Answered requests by route (``event``, ``batch``, ``historical``, ``lookup``)."""
    failures: list[tuple[str, str]] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)
    """With ``dry_run``: the plan, one line per event and a total (nothing was fetched)."""

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def lines(self) -> list[str]:
        rate = self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0
        out = [
            f"windows: {self.done} done, {self.skipped} skipped (already archived), "
            f"{self.failed} failed, {self.no_trade_window} without trade window, "
            f"{self.no_markets} without markets, {self.not_started} not started",
            f"pages: {self.pages} ({self.live_pages} live, {self.historical_pages} historical), "
            f"candles: {self.candles}, requests: {self.requests}, "
            f"retries: {self.retries}, 429s: {self.throttled}, "
            f"elapsed: {self.elapsed_s:.1f}s, {rate:.1f} req/s",
            f"historical cutoff: {self.cutoff or 'not read'} ({self.cutoff_reads} reads), "
            f"{self.rerouted} markets changed tier during the run",
        ]
        if self.route_requests and self.done:
            n = sum(self.route_requests.values())
            by_route = sorted(self.route_requests.items())
            out.append(
                f"requests per event: {n / self.done:.2f} over {self.done} windows "
                f"({_routes_text({r: round(k / self.done, 2) for r, k in by_route})})"
            )
        if self.held or self.taken_over or self.lost:
            out.append(
                f"leases: {self.held} held by other workers, {self.taken_over} taken over "
                f"from expired leases, {self.lost} lost to other workers"
            )
        out.extend(f"FAILED {key}: {reason}" for key, reason in self.failures)
        return out


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
        self.chooser = RouteChooser(config.route)
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
        if config.dry_run:
            return CandlesSummary(plan=dry_run_lines(plan, config))
        summary = await _execute(config, engine, archive, plan, client, progress)
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
        return _Run(config, engine, archive, c, len(todo), shown, CutoffTracker(c))

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
