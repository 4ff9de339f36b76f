"""The run's route choice: what the server has shown, and one batch probe at a time.

:mod:`extract.plan.auto` prices the routes of a window (pure); this keeps the run's
:class:`~extract.plan.auto.Evidence` up to date from every page the run takes (fetched or
reused from the archive: both are what the server said) and serializes the one
experiment the choice needs: whether the batch route serves historical markets. While
that is unknown, one window at a time (``auto`` or ``batch``) asks batch for its
historical markets; windows that would need the answer wait for it instead of asking
too. After :data:`MAX_PROBES` windows that could not tell (no candles on either
route), historical markets go to their own route without asking again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from extract.config import RouteChoice
from extract.plan.auto import (
    Answer,
    Evidence,
    WindowRoutes,
    WindowShape,
    batch_historical_answer,
    choose_routes,
    classify_capped_event_page,
)
from extract.plan.caps import requested_candles
from extract.routes.base import Page, RouteRequest

MAX_PROBES = 3


class RouteChooser:
    """One per run: ``--route``, the evidence, and the batch probe's lock."""

    def __init__(self, choice: RouteChoice, evidence: Evidence | None = None) -> None:
        self.choice = choice
        self.evidence = evidence if evidence is not None else Evidence()
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
        """The window's routes; a probing window holds the probe until its body ends."""
        if not self._needs_answer(shape):
            yield choose_routes(shape, self.choice, self.evidence, may_probe=False)
            return
        async with self._probe:
            probe = self._needs_answer(shape)
            if probe:
                self.probes += 1
            yield choose_routes(shape, self.choice, self.evidence, may_probe=probe)

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
