"""``extract candles``: archive every raw candlestick page of the selected event windows.

Per window: plan it (pure, :mod:`extract.windows`), skip it if the archive already holds
it, else mark the checkpoint RUNNING, resume from the chain of pages already on disk
(:class:`~extract.paginator.Paginator`), fetch the missing pages one after another
(each checked, then written atomically), write the manifest last and mark EXTRACTED.
Windows run concurrently, sharing one client and so one rate budget. A window that fails
becomes FAILED with its reason; the others go on; the run reports it and exits non-zero.

Kill the process at any moment: pages are whole or absent, the manifest exists only once
every page does, and a rerun starts from the chain on disk, so nothing is fetched twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from extract.client import ApiResponse, KalshiClient, RequestStats
from extract.config import ExtractConfig
from extract.errors import BadPageError, NoProgressError, WrongEventError
from extract.paginator import Paginator
from extract.progress import Progress, Snapshot
from extract.windows import (
    EventTimes,
    MarketTimes,
    SkipReason,
    Window,
    expected_requests,
    plan_window,
)
from schemas.api import check_event_candles_page
from schemas.archive import (
    KIND_EVENT_CANDLES,
    PAGE_SUFFIX,
    ArchiveStore,
    Manifest,
    PageEnvelope,
    WindowKey,
    open_archive,
)
from schemas.checkpoints import Checkpoint, dt_to_ts, get_checkpoint, save_checkpoint
from schemas.crashpoints import (
    EXTRACT_AFTER_EXTRACTED,
    EXTRACT_AFTER_RUNNING,
    EXTRACT_BEFORE_EXTRACTED,
    EXTRACT_BEFORE_MANIFEST,
    EXTRACT_BEFORE_RUNNING,
    EXTRACT_BETWEEN_PAGES,
    EXTRACT_PAGE_AFTER_WRITE,
    EXTRACT_PAGE_BEFORE_WRITE,
    crashpoint,
)
from schemas.db import make_engine, translate_db_error
from schemas.errors import (
    ApiError,
    ArchiveError,
    CorruptArchiveError,
    FatalApiError,
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
                select(m.event_ticker, m.market_ticker, m.open_time_utc, m.close_time_utc)
                .where(m.series_ticker == config.series, m.is_historical.is_(False))
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
            plan_window(ev, config.window_policy, config.period, now_ts),
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


def dry_run_lines(plan: Sequence[PlannedWindow], config: ExtractConfig) -> list[str]:
    """The plan as text: one line per event and the expected requests and time."""
    lines: list[str] = []
    total = 0
    for p in plan:
        w = p.window
        if isinstance(w, SkipReason):
            lines.append(f"{p.key.event_ticker}: skip ({w.value})")
            continue
        n = expected_requests(w, config.period)
        total += n
        lines.append(
            f"{p.key.event_ticker}: {_iso(w.start_ts)} .. {_iso(w.end_ts)}"
            f"{'' if w.is_final else ' (open, not final)'}  {len(w.markets)} markets"
            f"  ~{n} requests"
        )
    rps = config.api.rate.rps
    lines.append(
        f"plan: {len(plan)} events, ~{total} candle requests at {rps:g} req/s "
        f"≈ {total / rps:.1f}s ({config.window_policy.value}, period {config.period})"
    )
    return lines


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
    candles: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    elapsed_s: float = 0.0
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
            f"pages: {self.pages}, candles: {self.candles}, requests: {self.requests}, "
            f"retries: {self.retries}, 429s: {self.throttled}, "
            f"elapsed: {self.elapsed_s:.1f}s, {rate:.1f} req/s",
        ]
        out.extend(f"FAILED {key}: {reason}" for key, reason in self.failures)
        return out


# --- one window -------------------------------------------------------------------------


@dataclass
class _WindowState:
    """The chain already on disk for a window, read back from the archive."""

    paginator: Paginator
    candle_keys: set[tuple[str, int]]
    per_market: dict[str, int]


def _page_file(start_ts: int) -> str:
    return f"{start_ts}{PAGE_SUFFIX}"


def _count(body: dict[str, object], keys: set[tuple[str, int]], per_market: dict[str, int]) -> None:
    """Add a page's candles to the window's distinct (market, end_period_ts) set."""
    page = check_event_candles_page(body)
    for ticker, candles in zip(page["market_tickers"], page["market_candlesticks"], strict=True):
        for c in candles:
            k = (ticker, c["end_period_ts"])
            if k not in keys:
                keys.add(k)
                per_market[ticker] = per_market.get(ticker, 0) + 1


def _archived_body(archive: ArchiveStore, key: WindowKey, rel: str, start_ts: int) -> Any:
    """The body of the archived page at ``rel`` if it is this window's page at ``start_ts``."""
    env = archive.read_page(rel)
    want = (KIND_EVENT_CANDLES, key.event_ticker, start_ts, key.period_interval)
    if (env.kind, env.event_ticker, env.start_ts, env.period_interval) != want:
        raise CorruptArchiveError(f"{rel}: envelope is for another request")
    return check_event_candles_page(env.body)


def read_chain(archive: ArchiveStore, key: WindowKey, window: Window) -> _WindowState:
    """Follow the archived pages from the window start, as a rerun resumes.

    A page that cannot be read, or is not the page this request would have produced, is
    moved to the quarantine and the chain stops there, so exactly that page is fetched
    again. A page that would not advance ends the chain too (it is then refetched).
    """
    pager = Paginator(window.start_ts, window.end_ts)
    keys: set[tuple[str, int]] = set()
    per_market: dict[str, int] = {}
    while not pager.finished:
        cursor = pager.cursor
        rel = key.page_path(cursor)
        if not archive.exists(rel):
            break
        try:
            body = _archived_body(archive, key, rel, cursor)
        except (CorruptArchiveError, FatalApiError) as e:
            moved = archive.move_to_quarantine(rel)
            log.warning("%s: unusable archived page quarantined to %s (%s)", key, moved, e)
            break
        try:
            pager.advance(cursor, body["adjusted_end_ts"])
        except NoProgressError:
            break
        _count(dict(body), keys, per_market)
    return _WindowState(pager, keys, per_market)


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
    ) -> None:
        self.config = config
        self.engine = engine
        self.archive = archive
        self.client = client
        self.summary = CandlesSummary()
        self.total = total
        self.finished = 0
        self.progress = progress
        self.started = time.monotonic()

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

    def save(
        self, key: WindowKey, window: Window, status: CheckpointStatus, **fields: object
    ) -> None:
        try:
            with self.engine.begin() as conn:
                save_checkpoint(
                    conn,
                    key,
                    status=status,
                    window_start_ts=window.start_ts,
                    window_end_ts=window.end_ts,
                    is_final=window.is_final,
                    **fields,
                )
        except SQLAlchemyError as e:
            raise translate_db_error(e, self.config.db_url, f"saving checkpoint of {key}") from None

    def checkpoint(self, key: WindowKey) -> Checkpoint | None:
        try:
            with self.engine.connect() as conn:
                return get_checkpoint(conn, key)
        except SQLAlchemyError as e:
            raise translate_db_error(
                e, self.config.db_url, f"reading checkpoint of {key}"
            ) from None

    def already_archived(self, key: WindowKey, window: Window) -> bool:
        """True when the manifest already covers exactly this window (only load is left).

        A checkpoint left RUNNING by a kill after the manifest was written is set to
        EXTRACTED; a SUCCESS (or EXTRACTED) checkpoint of the same window stays as it is.
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
        cp = self.checkpoint(key)
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
            self.save(
                key,
                window,
                CheckpointStatus.EXTRACTED,
                extracted_at_utc=manifest.completed_at_utc,
                resume_cursor_ts=window.end_ts,
                pages_archived=len(manifest.pages),
                last_error=None,
            )
        return True

    async def window(self, key: WindowKey, window: Window) -> None:
        """Extract one window; failures become a FAILED checkpoint, never an exception."""
        stats = RequestStats()
        try:
            if self.already_archived(key, window):
                self.summary.skipped += 1
                log.debug("%s: already archived, skipped", key)
                return
            await self._extract(key, window, stats)
            self.summary.done += 1
        except (ApiError, ArchiveError) as e:
            self.summary.failed += 1
            self.summary.failures.append((str(key), str(e)))
            log.error("%s: FAILED: %s", key, e)  # noqa: TRY400 (the reason is the message)
            self.save(key, window, CheckpointStatus.FAILED, last_error=str(e))
        finally:
            self.finished += 1
            self.tick()

    async def _extract(self, key: WindowKey, window: Window, stats: RequestStats) -> None:
        previous = self.checkpoint(key)
        base_requests = previous.requests if previous else 0
        base_retries = previous.retries if previous else 0
        removed = self.archive.remove_stray_temp_files(key.dir)
        if removed:
            log.info("%s: removed %d temporary files left by a killed run", key, removed)
        state = read_chain(self.archive, key, window)
        pager = state.paginator
        crashpoint(EXTRACT_BEFORE_RUNNING)
        self.save(
            key,
            window,
            CheckpointStatus.RUNNING,
            resume_cursor_ts=pager.cursor,
            pages_archived=len(pager.chain),
            candles_archived=len(state.candle_keys),
            last_error=None,
        )
        crashpoint(EXTRACT_AFTER_RUNNING)
        resumed = len(pager.chain)
        series, event, period = key.series_ticker, key.event_ticker, key.period_interval
        path = f"/series/{series}/events/{event}/candlesticks"
        prefix = event + "-"

        while (req := pager.next_request()) is not None:
            params = {"start_ts": req.start_ts, "end_ts": req.end_ts, "period_interval": period}

            def check(resp: ApiResponse, start: int = req.start_ts) -> None:
                try:
                    page = check_event_candles_page(resp.body)
                except FatalApiError as e:
                    raise BadPageError(str(e)) from e
                strangers = [t for t in page["market_tickers"] if not t.startswith(prefix)]
                if strangers:
                    raise WrongEventError(
                        f"page for {event} names markets of another event: {strangers[:3]}"
                    )
                pager.check(start, page["adjusted_end_ts"])

            resp = await self.client.get_json(path, params, check=check, scope=stats)
            envelope = PageEnvelope(
                kind=KIND_EVENT_CANDLES,
                series_ticker=series,
                event_ticker=event,
                market_ticker=None,
                period_interval=period,
                window_policy=key.window_policy,
                path=resp.path,
                params=dict(params),
                status=resp.status,
                retrieved_at_utc=resp.retrieved_at,
                body=resp.body,
            )
            crashpoint(EXTRACT_PAGE_BEFORE_WRITE)
            self.archive.write_page(key.page_path(req.start_ts), envelope)
            crashpoint(EXTRACT_PAGE_AFTER_WRITE)
            pager.advance(req.start_ts, resp.body["adjusted_end_ts"])
            _count(resp.body, state.candle_keys, state.per_market)
            self.summary.pages += 1
            self.save(
                key,
                window,
                CheckpointStatus.RUNNING,
                resume_cursor_ts=pager.cursor,
                pages_archived=len(pager.chain),
                requests=base_requests + stats.requests,
                retries=base_retries + stats.retries,
                candles_archived=len(state.candle_keys),
            )
            crashpoint(EXTRACT_BETWEEN_PAGES)
            self.tick()

        manifest = Manifest(
            key=key,
            window_start_ts=window.start_ts,
            window_end_ts=window.end_ts,
            is_final=window.is_final,
            markets=window.markets,
            pages=tuple(_page_file(start) for start, _ in pager.chain),
        )
        crashpoint(EXTRACT_BEFORE_MANIFEST)
        self.archive.write_manifest(manifest)
        crashpoint(EXTRACT_BEFORE_EXTRACTED)
        self.save(
            key,
            window,
            CheckpointStatus.EXTRACTED,
            resume_cursor_ts=pager.cursor,
            pages_archived=len(pager.chain),
            requests=base_requests + stats.requests,
            retries=base_retries + stats.retries,
            candles_archived=len(state.candle_keys),
            extracted_at_utc=manifest.completed_at_utc,
            last_error=None,
        )
        crashpoint(EXTRACT_AFTER_EXTRACTED)
        self.summary.candles += len(state.candle_keys)
        per_market = ", ".join(f"{t}={n}" for t, n in sorted(state.per_market.items()))
        log.info(
            "%s: %d markets in the response (%s); %d pages (%d resumed), %d requests, %d retries%s",
            key,
            len(state.per_market),
            per_market or "no candles",
            len(pager.chain),
            resumed,
            stats.requests,
            stats.retries,
            "" if window.is_final else " (open: not final)",
        )


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
        for line in summary.lines():
            (log.error if line.startswith("FAILED") else log.info)("%s", line)
        return summary
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
    todo = [(p.key, p.window) for p in plan if isinstance(p.window, Window)]
    skipped = [(p.key, p.window) for p in plan if isinstance(p.window, SkipReason)]
    counts = {reason: 0 for reason in SkipReason}
    for key, reason in skipped:
        counts[reason] += 1
        log.warning("%s: skipped: %s", key, reason.value)

    async def work(run: _Run) -> CandlesSummary:
        queue: asyncio.Queue[tuple[WindowKey, Window]] = asyncio.Queue()
        for item in todo:
            queue.put_nowait(item)

        async def worker() -> None:
            while True:
                try:
                    key, window = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await run.window(key, window)

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
        s.requests = run.client.stats.requests
        s.retries = run.client.stats.retries
        s.throttled = run.client.stats.throttled
        return s

    progress = progress or Progress()
    if client is not None:
        summary = await work(_Run(config, engine, archive, client, len(todo), progress))
    else:
        async with KalshiClient(config.api, concurrency=config.concurrency) as own:
            summary = await work(_Run(config, engine, archive, own, len(todo), progress))
    summary.no_trade_window = counts[SkipReason.NO_TRADE_WINDOW]
    summary.no_markets = counts[SkipReason.NO_MARKETS]
    summary.not_started = counts[SkipReason.NOT_STARTED]
    return summary


def _first(group: BaseExceptionGroup[KalshiBackfillError]) -> KalshiBackfillError:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, KalshiBackfillError)
    return leaf
