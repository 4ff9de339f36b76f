"""Packed batch requests at run time: what a window takes from the run's plan, and the
pages a group of windows shares, each fetched once.

The run plans every batch request up front (:mod:`extract.plan.runplan`); a request that
carries several windows' markets links those windows into a **group**, which one worker
runs at once (:mod:`extract.run.candles`). Each window of the group is still leased,
checkpointed and completed on its own (:class:`~extract.run.window_job.WindowJob`); what
they share is :class:`SharedPages`: the first window to need a packed page reads it back
from the archive or fetches it (checked, then written once under ``_packed/``), and the
others await that same page. Each window then takes only its own markets from it
(:meth:`~extract.routes.base.Page.only`) and names the page in its manifest.

A window killed halfway finds, on the rerun, the packed pages already archived (their
file is named by the request, :func:`schemas.archive.packed_page_path`) and fetches
only the missing ones; a window already complete is skipped whatever its group does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from extract.plan.auto import WindowRoutes
from extract.plan.caps import BatchRequest
from extract.plan.packing import Pack
from extract.routes.base import Page


class SharedPages:
    """The packed pages of one group of windows: each loaded once, handed to every window.

    ``load`` (the first asker's) reads the page back from the archive or fetches and
    archives it; a failure is every asker's failure (each window then fails with the
    reason). The pages live as long as the group runs.
    """

    def __init__(self) -> None:
        self._pages: dict[BatchRequest, asyncio.Future[Page]] = {}

    async def page(
        self, request: BatchRequest, load: Callable[[], Awaitable[Page]]
    ) -> tuple[Page, bool]:
        """The page of ``request``, and whether this call loaded it."""
        pending = self._pages.get(request)
        if pending is not None:
            return await asyncio.shield(pending), False
        future: asyncio.Future[Page] = asyncio.get_running_loop().create_future()
        self._pages[request] = future
        try:
            page = await load()
        except Exception as e:
            future.set_exception(e)
            future.exception()  # retrieved: the other askers, if any, raise it themselves
            raise
        except BaseException:
            future.cancel()
            raise
        future.set_result(page)
        return page, True


@dataclass(frozen=True)
class WindowPacking:
    """What the run's plan says about one window's batch requests."""

    index: int
    """The window's index in the plan (a pack names its windows by index)."""
    routes: WindowRoutes
    """The routes planned for it; kept when it shares a request (its group counts on it)."""
    offered: tuple[str, ...]
    """The tickers its pieces were planned for (live, and historical where batch serves
    them); if its batch markets differ when it runs, it fetches them on its own."""
    packs: tuple[Pack, ...]
    shared: SharedPages = field(default_factory=SharedPages, compare=False)

    @property
    def is_shared(self) -> bool:
        return any(p.shared for p in self.packs)

    def own_requests(self) -> list[BatchRequest]:
        """Its requests that carry no other window's markets (kept in its folder)."""
        return [p.request for p in self.packs if not p.shared]

    def shared_packs(self) -> list[Pack]:
        return [p for p in self.packs if p.shared]
