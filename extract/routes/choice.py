"""The run's route choice: what the server has shown, and one batch question at a time.

:mod:`extract.plan.auto` prices the routes of a window (pure); this keeps the run's
:class:`~extract.plan.auto.Evidence` up to date from every page the run takes (fetched or
reused from the archive: both are what the server said) and serializes the one
experiment the choice needs: whether the batch route serves historical markets.

While that is unknown, the first window with historical markets (``auto`` or ``batch``)
asks, and windows that would need the answer wait for it instead of asking too. It asks
the cheaper way: its own batch requests with its historical markets in them when they
have room (:func:`~extract.plan.auto.probe_waste` at most 1: no request is wasted when
batch serves them, at most one when it does not), else ONE batch request for one of them
over the window at hourly periods (:class:`~extract.plan.auto.BatchProbe`) before the
window is routed: a candle is a yes; none, and the historical route's candles for that
market settle it as a no. After :data:`MAX_PROBES` windows that could not tell (no
candles on either route), historical markets go to their own route without asking again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace

from extract.config import RouteChoice
from extract.plan.auto import (
    Answer,
    BatchProbe,
    Evidence,
    WindowRoutes,
    WindowShape,
    batch_historical_answer,
    batch_probe,
    choose_routes,
    classify_capped_event_page,
    probe_waste,
)
from extract.plan.caps import requested_candles
from extract.routes.base import Page, RouteRequest

log = logging.getLogger(__name__)

MAX_PROBES = 3

AskBatch = Callable[[BatchProbe], Awaitable[int | None]]
"""Sends a :class:`BatchProbe`: the candles batch returned for its market (0 when it
refused it, 400 or 404), or None when it could not be asked (retries spent)."""


class RouteChooser:
    """One per run: ``--route``, the evidence, and the batch question's lock."""

    def __init__(
        self,
        choice: RouteChoice,
        evidence: Evidence | None = None,
        ask_batch: AskBatch | None = None,
    ) -> None:
        self.choice = choice
        self.evidence = evidence if evidence is not None else Evidence()
        self.ask_batch = ask_batch
        """How to send a :class:`BatchProbe`; None: windows ask with their own requests."""
        self.probes = 0
        self._probe = asyncio.Lock()

    def _needs_answer(self, shape: WindowShape) -> bool:
        return (
            self.choice is not RouteChoice.EVENT
            and bool(shape.historical)
            and self.evidence.batch_serves_historical is Answer.UNKNOWN
            and self.probes < MAX_PROBES
        )

    @asynccontextmanager
    async def routes(self, shape: WindowShape) -> AsyncIterator[WindowRoutes]:
        """The window's routes. A window that asks holds the question until its body ends
        (its pages give the answer), unless a one-market probe already answered yes."""
        if not self._needs_answer(shape):
            yield choose_routes(shape, self.choice, self.evidence, may_probe=False)
            return
        await self._probe.acquire()
        held = True
        try:
            if not self._needs_answer(shape):  # answered while this window waited
                yield choose_routes(shape, self.choice, self.evidence, may_probe=False)
                return
            self.probes += 1
            probing = choose_routes(shape, self.choice, self.evidence, may_probe=True)
            plain = choose_routes(shape, self.choice, self.evidence, may_probe=False)
            got = None
            if self.ask_batch is not None and probe_waste(probing, plain) > 1:
                probe = batch_probe(shape)
                got = await self.ask_batch(probe)
                log.info(
                    "asked batch for historical market %s alone (%d-minute periods): %s",
                    probe.ticker,
                    probe.period,
                    "could not ask" if got is None else f"{got} candles",
                )
            if got is None:  # the window's own batch requests ask
                yield probing
            elif got:
                self.evidence.saw_batch_historical(Answer.YES)
                self._probe.release()
                held = False
                yield choose_routes(shape, self.choice, self.evidence, may_probe=False)
            else:  # none: the historical route's candles for it decide
                yield replace(plain, asked=batch_probe(shape).ticker)
        finally:
            if held:
                self._probe.release()

    def saw(self, route: str, req: RouteRequest, asked: Sequence[str], page: Page) -> None:
        """Learn from one accepted page of ``route`` that asked for ``asked`` markets."""
        period = int(req.params["period_interval"])
        if route == "event":
            end = page.adjusted_end_ts
            capped = end is not None and req.start_ts < end < req.end_ts
            covered = end if capped and end is not None else req.end_ts
            if capped and end is not None:
                counts = classify_capped_event_page(
                    len(asked), req.start_ts, end, period, page.returned
                )
                self.evidence.saw_event_cap(counts)
        elif route == "batch":
            covered = req.end_ts
        else:
            return
        self.evidence.saw_page(
            page.returned, len(asked) * requested_candles(req.start_ts, covered, period)
        )

    def saw_batch_historical(
        self, batch_candles: Mapping[str, int | None], historical_candles: Mapping[str, int]
    ) -> Answer:
        """Record what a window's batch answers showed about its historical markets."""
        answer = batch_historical_answer(dict(batch_candles), dict(historical_candles))
        self.evidence.saw_batch_historical(answer)
        return answer
