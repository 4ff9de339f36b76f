"""One window's pages, read from the archive or fetched, each checked before it is used.

:class:`WindowPages` answers the request loop of :class:`~extract.run.window_job.WindowJob`
one question, page by page: where does the answer to this request come from? From the
archive when it holds a page that still passes every check (else the page is moved to
the quarantine and fetched again); from the server otherwise, checked against the route
and the value contract before it is written, and kept under ``_rejected/`` when it is
refused; and it looks a market up on the live tier. Its own module because this is the
window's whole dealing with the archive and the server, request by request, while the
job decides which requests to make, what the pages show about the markets, and when the
window is done.

A full page is milliseconds of CPU to check (:func:`schemas.candle_pages.read_candle_page`)
and to gzip: both run in :func:`page_pool`, a thread a core, so the event loop only talks
HTTP and keeps the token bucket's pace while both cores check and compress.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import orjson

from extract.api.client import ApiResponse, KalshiClient, RequestStats
from extract.errors import (
    BadPageError,
    ContractError,
    HttpStatusError,
    NoProgressError,
    ValueContractError,
)
from extract.plan.paginator import Step
from extract.routes.base import CandleRoute, Page, Pager, RouteRequest
from schemas.archive import ArchiveStore, PageEnvelope, WindowKey
from schemas.checkpoints import Checkpoint
from schemas.crashpoints import EXTRACT_PAGE_AFTER_WRITE, EXTRACT_PAGE_BEFORE_WRITE, crashpoint
from schemas.errors import CorruptArchiveError

log = logging.getLogger(__name__)


def _tentative(env: PageEnvelope, step: Step, tentative_from: int | None, grace_s: int) -> bool:
    """Whether an archived page may lack candles published after it was fetched.

    Candles can be published a little late (``kalshi-api.md``): a page that covered the
    end of a window that was not final then (``tentative_from``: the previous extent's
    end minus the grace period), or that was fetched less than the grace period after
    the end of its range, is fetched again instead of reused.
    """
    if tentative_from is not None and step.covered_end > tentative_from:
        return True
    return env.retrieved_at_utc.timestamp() < step.covered_end + grace_s


@functools.cache
def page_pool() -> ThreadPoolExecutor:
    """The process's pool for page CPU work (checks, gzip): one thread a core it may use.

    Polars, ISA-L and the byte counts release the GIL, so the threads run beside the
    event loop; more threads than cores would only queue for them.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return ThreadPoolExecutor(max_workers=max(2, cores or 2), thread_name_prefix="extract-page")


class WindowPages:
    """The pages of one window (``key``): reused from the archive, or fetched and kept.

    Requests go through the run's client (one rate budget), counted in the window's
    ``stats`` (its checkpoint's ``requests`` and ``retries``).
    """

    def __init__(
        self, archive: ArchiveStore, client: KalshiClient, key: WindowKey, stats: RequestStats
    ) -> None:
        self.archive = archive
        self.client = client
        self.key = key
        self.stats = stats

    # --- reuse: what the archive already holds -------------------------------------------

    def tentative_from(self, previous: Checkpoint | None, grace_s: int) -> int | None:
        """Where archived event pages stop being trusted: the end of the previous extent
        (checkpoint or manifest) when it was not final, minus the grace period."""
        ends: list[int] = []
        if previous is not None and not previous.is_final and previous.window_end_ts is not None:
            ends.append(previous.window_end_ts)
        try:
            manifest = self.archive.manifest_for(self.key)
        except CorruptArchiveError:
            manifest = None  # already_archived quarantines it
        if manifest is not None and not manifest.is_final:
            ends.append(manifest.window_end_ts)
        return min(ends) - grace_s if ends else None

    def archived(
        self, route: CandleRoute, req: RouteRequest
    ) -> tuple[RouteRequest, Page, PageEnvelope] | None:
        """The archived answer to ``req`` (as it was asked), or None to fetch it.

        An unreadable page, or one that no longer passes the page or value checks, is
        moved to the quarantine (never deleted) and fetched again.
        """
        archive, key = self.archive, self.key
        rel = self.path(route, req)
        if not archive.exists(rel):
            return None
        problem: str | None = None
        try:
            env = archive.read_page(rel, keep_raw=True)
            if not route.matches(env, req):
                return None  # another request's page (a shorter window's): fetch, overwrite
            asked = replace(req, params=dict(env.params), start_ts=env.start_ts, end_ts=env.end_ts)
            raw = env.raw_body if env.raw_body is not None else orjson.dumps(env.body)
            page = route.check(raw, asked)
        except (CorruptArchiveError, BadPageError) as e:
            problem = str(e)
        else:
            problem = page.problem
        if problem is not None:
            moved = archive.move_to_quarantine(rel)
            log.warning("%s: unusable archived page quarantined to %s (%s)", key, moved, problem)
            return None
        return asked, page, env

    def reuse_chain(
        self, route: CandleRoute, pager: Pager, tentative_from: int | None, grace_s: int
    ) -> Iterator[tuple[RouteRequest, Page]]:
        """Follow the archived pages of a chained route from the window start (no request).

        Yields each reused page once ``pager`` has advanced past it. The walk stops at the
        first page that is missing, unusable, would not advance, or may lack candles
        published late (:func:`_tentative`): that page is fetched again.
        """
        while (req := pager.next_request()) is not None:
            found = self.archived(route, req)
            if found is None:
                return
            asked, page, env = found
            try:
                step = pager.decide(asked, page)
            except (NoProgressError, ContractError):
                return
            if _tentative(env, step, tentative_from, grace_s):
                log.info(
                    "%s: page %s may lack late candles: fetched again", self.key, asked.start_ts
                )
                return
            pager.advance(asked, step)
            yield req, page

    def path(self, route: CandleRoute, req: RouteRequest) -> str:
        """The page's file from the archive root (a packed page lies outside the window)."""
        return route.file(req) if route.shared else f"{self.key.dir}/{route.file(req)}"

    # --- fetch: what the server sends -----------------------------------------------------

    async def fetch(
        self, route: CandleRoute, pager: Pager, req: RouteRequest
    ) -> tuple[ApiResponse, Page, Step] | None:
        """GET one page, checked before it is archived; None on a per-market 404.

        A page that breaks the shape or does not advance is retried; one that breaks the
        contract (values, paging) is refused: a copy goes under ``_rejected/`` and the
        window fails with the reason.
        """
        got: list[tuple[Page, Step]] = []
        loop = asyncio.get_running_loop()

        async def check(resp: ApiResponse) -> None:
            page = await loop.run_in_executor(page_pool(), route.check, resp.raw, req)
            try:
                if page.problem is not None:
                    raise ValueContractError(
                        f"values outside the contract in the {route.name} page "
                        f"{resp.path} start_ts={req.start_ts}: {page.problem}"
                    )
                step = pager.decide(req, page)
            except ContractError as e:
                e.response = resp
                raise
            got.append((page, step))

        try:
            resp = await self.client.get_json(
                req.path, req.params, check=check, scope=self.stats, parse=False
            )
        except HttpStatusError as e:
            if e.status == 404 and req.market_ticker is not None:
                return None
            raise
        except ContractError as e:
            if isinstance(e.response, ApiResponse):
                await self._reject(route, req, e.response)
            raise
        page, step = got[-1]
        return resp, page, step

    async def market_is_live(self, ticker: str) -> bool:
        """``GET /markets/{ticker}``: True if the live tier knows the market, False on 404.

        The window's one request that is not a page: it settles a market the live pages
        left out (:meth:`~extract.run.window_job.WindowJob._settle_absent`).
        """

        def check(resp: ApiResponse) -> None:
            body = resp.body
            if not isinstance(body, dict) or not isinstance(body.get("market"), dict):
                raise BadPageError(f"/markets/{ticker}: no 'market' object")

        try:
            await self.client.get_json(f"/markets/{ticker}", check=check, scope=self.stats)
        except HttpStatusError as e:
            if e.status == 404:
                return False
            raise
        return True

    # --- write: pages kept, and pages refused ---------------------------------------------

    def _envelope(self, route: CandleRoute, req: RouteRequest, resp: ApiResponse) -> PageEnvelope:
        key = self.key
        return PageEnvelope(
            kind=route.kind,
            series_ticker=None if route.shared else key.series_ticker,
            event_ticker=None if route.shared else key.event_ticker,
            market_ticker=req.market_ticker,
            period_interval=key.period_interval,
            window_policy=key.window_policy,
            path=resp.path,
            params=dict(req.params),
            status=resp.status,
            retrieved_at_utc=resp.retrieved_at,
            body=resp.body,
            raw_body=resp.raw,
        )

    async def write(self, route: CandleRoute, req: RouteRequest, resp: ApiResponse) -> None:
        """Write one fetched page, in its envelope, atomically to the window's folder."""
        envelope = self._envelope(route, req, resp)
        data = await asyncio.get_running_loop().run_in_executor(page_pool(), envelope.to_bytes)
        crashpoint(EXTRACT_PAGE_BEFORE_WRITE)
        # In a thread of its own: on object storage a write is a network round trip.
        rel = self.path(route, req)
        await asyncio.to_thread(self.archive.write_atomic, rel, data)
        crashpoint(EXTRACT_PAGE_AFTER_WRITE)

    async def _reject(self, route: CandleRoute, req: RouteRequest, resp: ApiResponse) -> None:
        """Keep a refused page under ``_rejected/`` so a user can see what the server sent."""
        envelope = self._envelope(route, req, resp)
        rel = self.path(route, req)
        where = await asyncio.to_thread(self.archive.write_rejected, rel, envelope)
        log.error("%s: refused page kept as %s", self.key, where)
