"""``auto``'s choice of routes for a window, the floor under it, and the run's totals: pure.

The wall time of a backfill is its request count divided by the rate, so the choice of
route is an arithmetic question, answered here without I/O from three inputs: the
window (markets x periods), the caps (:mod:`extract.plan.caps`, which counts each route's
requests), and what the server has *shown* so far (:class:`Evidence`). Never from a
belief: an open point nobody has observed is priced at its worst case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from extract.config import RouteChoice
from extract.plan.caps import (
    BATCH_CANDLE_CAP,
    EVENT_CANDLE_CAP,
    batch_plan,
    ceil_div,
    event_requests,
    event_route_pages,
    historical_route_requests,
    requested_candles,
)
from extract.plan.tiers import HISTORICAL_CHUNK_CANDLES


class CapCounts(StrEnum):
    """What the event route's cap counts, as shown by a capped event page."""

    RETURNED = "returned"
    REQUESTED = "requested"
    UNKNOWN = "unknown"


class Answer(StrEnum):
    """An open yes/no point of the contract, as the server has answered it so far."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


# --- what the server has shown --------------------------------------------------------


@dataclass
class Evidence:
    """What the server has shown this run (and, when given, what ``check-api`` saw).

    Mutable and shared by the run's windows: each archived page can add to it, and each
    window is planned with what is known when it starts.
    """

    event_cap_counts: CapCounts = CapCounts.UNKNOWN
    batch_serves_historical: Answer = Answer.UNKNOWN
    candles_returned: int = 0
    """Candles received on pages that asked for :attr:`candles_requested` candidates."""
    candles_requested: int = 0

    def saw_page(self, returned: int, requested: int) -> None:
        """Count a page's candles against the candidates it asked for (the density)."""
        self.candles_returned += returned
        self.candles_requested += requested

    def expected_candles(self, candidates: int) -> int:
        """Candles ``candidates`` should return, at the density seen so far (all, if none)."""
        if self.candles_requested == 0:
            return candidates
        return min(candidates, ceil_div(candidates * self.candles_returned, self.candles_requested))

    def saw_event_cap(self, counts: CapCounts) -> None:
        if counts is not CapCounts.UNKNOWN:
            self.event_cap_counts = counts

    def saw_batch_historical(self, answer: Answer) -> None:
        """A yes is final (a served historical candle proves it); a no does not undo it."""
        if answer is Answer.YES or self.batch_serves_historical is Answer.UNKNOWN:
            self.batch_serves_historical = answer


def classify_capped_event_page(
    n_markets: int,
    start_ts: int,
    adjusted_end_ts: int,
    period: int,
    returned: int,
    cap: int = EVENT_CANDLE_CAP,
) -> CapCounts:
    """What the cap of a CAPPED event page (``adjusted_end_ts`` before the requested end)
    counted, from the page alone.

    ``returned`` is the candles on the page and ``n_markets`` the markets it asked for.
    A cap on requested candidates stops at ``n_markets x periods <= cap``; a cap on
    candles returned stops when the candles reach it (within one period's worth, as cuts
    fall on whole periods). The page says ``requested`` when it holds clearly fewer
    candles than the cap while its candidates fill it, ``returned`` when its candles
    fill the cap while its candidates overflow it, and ``unknown`` when both fit (a
    dense page cannot tell them apart).
    """
    if n_markets < 1 or adjusted_end_ts < start_ts:
        return CapCounts.UNKNOWN
    candidates = n_markets * requested_candles(start_ts, adjusted_end_ts, period)
    near_cap = returned > cap - n_markets
    fills_requested = cap - n_markets < candidates <= cap
    if fills_requested and not near_cap:
        return CapCounts.REQUESTED
    if near_cap and candidates > cap:
        return CapCounts.RETURNED
    return CapCounts.UNKNOWN


def batch_historical_answer(
    batch_candles: dict[str, int | None], historical_candles: dict[str, int]
) -> Answer:
    """Whether the batch route served historical markets, from one window's answers.

    ``batch_candles``: for each historical-tier market a batch request asked for, the
    candles the batch answers held for it (None: left out). ``historical_candles``: what
    the historical route then returned for those the batch did not serve. ``yes`` once a
    historical market got a candle from batch; ``no`` when one got none from batch but
    has candles on the historical route over the same range; else ``unknown`` (markets
    with no candles at all prove nothing). This is also the rule ``check-api`` reports
    as ``batch_serves_historical``.
    """
    if any(n for n in batch_candles.values()):
        return Answer.YES
    if any(historical_candles.get(t, 0) > 0 for t, n in batch_candles.items() if not n):
        return Answer.NO
    return Answer.UNKNOWN


# --- one window: the choice and the floor ---------------------------------------------


Cost = int | Fraction
"""Requests: whole for a window alone, a fraction for its share of packed requests."""


@dataclass(frozen=True)
class WindowRoutes:
    """Which route fetches which of a window's markets, and what that costs."""

    event: tuple[str, ...]
    """Live markets fetched on the event route."""
    batch: tuple[str, ...]
    """Markets fetched on the batch route (live, and historical when batch serves them)."""
    historical: tuple[str, ...]
    """Historical markets fetched on the per-market historical route."""
    probe: bool = False
    """The batch requests also ask for historical markets to learn whether it serves them."""
    requests: dict[str, Cost] | None = None
    """Planned requests per route (``event``, ``batch``, ``historical``); a window whose
    batch requests are packed with other windows' counts its share of them."""
    asked: str | None = None
    """A historical market of the window that batch was asked about alone
    (:class:`BatchProbe`) and gave no candle: what the historical route returns for it
    answers the question (a candle there: batch does not serve historical markets)."""

    @property
    def total(self) -> Cost:
        return sum((self.requests or {}).values())


@dataclass(frozen=True)
class WindowShape:
    """What the arithmetic needs about one window: its markets by tier and its range."""

    live: tuple[str, ...]
    historical: tuple[str, ...]
    start_ts: int
    end_ts: int
    period: int

    @property
    def periods(self) -> int:
        return requested_candles(self.start_ts, self.end_ts, self.period)


def event_cost(shape: WindowShape, n_markets: int, evidence: Evidence) -> int:
    """The event route's pages for ``n_markets`` live markets, priced by the evidence.

    ``requested`` and ``unknown``: the route's own bound
    (:func:`~extract.plan.caps.event_requests`: exact for a requested-count cap, the
    worst case of a returned-count one). ``returned``: the candles the candidates should
    hold at the density the run has seen.
    """
    if evidence.event_cap_counts is not CapCounts.RETURNED:
        return event_requests(n_markets, shape.start_ts, shape.end_ts, shape.period)
    candles = evidence.expected_candles(n_markets * shape.periods)
    return event_route_pages(n_markets, candles, shape.periods)


def choose_routes(
    shape: WindowShape,
    choice: RouteChoice,
    evidence: Evidence,
    *,
    may_probe: bool = True,
    batch_share: Fraction | None = None,
) -> WindowRoutes:
    """The routes of one window (see the module docstring and :class:`RouteChoice`).

    ``batch_share``: what the window's markets cost on the batch route when its requests
    are packed with other windows' (:mod:`extract.plan.runplan`); None: its own plan.

    Historical markets, under ``batch`` and ``auto``: on the batch route once it has been
    shown to serve them, on the historical route once shown not to; while unknown, a
    window allowed to (``may_probe``: one at a time) asks batch for them, and any it
    leaves out falls back to the historical route. ``event`` keeps today's routes.
    Live markets, under ``auto``: the batch plan (exact: its cap counts requested
    candles) against :func:`event_cost`; a tie goes to the event route.
    """
    live, hist = tuple(sorted(shape.live)), tuple(sorted(shape.historical))
    if choice is RouteChoice.EVENT:
        return WindowRoutes(
            live,
            (),
            hist,
            requests=_costs(shape, len(live), (), len(hist), evidence),
        )
    served = evidence.batch_serves_historical
    probe = bool(hist) and served is Answer.UNKNOWN and may_probe
    hist_in_batch = hist if (served is Answer.YES or probe) else ()
    hist_alone = () if hist_in_batch else hist
    options = [WindowRoutes((), live + hist_in_batch, hist_alone, probe)]
    if choice is RouteChoice.AUTO and live:
        options.append(WindowRoutes(live, hist_in_batch, hist_alone, probe))
    priced = [
        WindowRoutes(
            o.event,
            o.batch,
            o.historical,
            o.probe,
            _costs(shape, len(o.event), o.batch, len(o.historical), evidence),
        )
        for o in options
    ]
    if batch_share is not None:
        first = priced[0]
        priced[0] = WindowRoutes(
            first.event,
            first.batch,
            first.historical,
            first.probe,
            {**(first.requests or {}), "batch": batch_share},
        )
    # min keeps the first of equals: order the event option first for the tie rule.
    return min(reversed(priced), key=lambda o: o.total)


def _costs(
    shape: WindowShape, n_event: int, batch: Sequence[str], n_hist: int, evidence: Evidence
) -> dict[str, Cost]:
    s, e, p = shape.start_ts, shape.end_ts, shape.period
    return {
        "event": event_cost(shape, n_event, evidence),
        "batch": len(batch_plan(batch, s, e, p)) if batch else 0,
        "historical": historical_route_requests(n_hist, s, e, p),
    }


# --- asking batch about one historical market ------------------------------------------

#: The period of :class:`BatchProbe`: an hourly candle exists wherever a minute of the
#: hour has one, so one request of a window's hours (about 40 candidates for a weather
#: window) sees any candle the market has there.
PROBE_PERIOD = 60


@dataclass(frozen=True)
class BatchProbe:
    """One batch request for ONE historical market over its window, at hourly periods.

    Why this range: a short range of minutes may hold no candle of an illiquid market,
    and a market with no candle there cannot answer "no". Over the whole window (widened
    to whole hours, so that the hour holding the window's last minute is asked too) the
    market has a candle unless it never traded nor moved a quote; and the historical
    route, which fetches that market over the same window anyway when batch leaves it
    out, shows whether it has: a candle there and none from batch means batch does not
    serve historical markets. A market without any candle cannot tell, and the next
    window asks again (at most :data:`extract.routes.choice.MAX_PROBES` windows).
    """

    ticker: str
    start_ts: int
    end_ts: int
    period: int = PROBE_PERIOD


def batch_probe(shape: WindowShape) -> BatchProbe:
    """The probe of a window with historical markets: the first of them, by ticker."""
    hour = PROBE_PERIOD * 60
    start = shape.start_ts // hour * hour
    return BatchProbe(sorted(shape.historical)[0], start, ceil_div(shape.end_ts, hour) * hour)


def probe_waste(probing: WindowRoutes, plain: WindowRoutes) -> Cost:
    """Requests a window's own probe (its historical markets in its batch requests) wastes
    when batch does not serve them: its event and batch requests with them, less those
    of its routes without them (the historical markets then take their own route either
    way). 0 when the window's batch requests have room for them; 2 for a weather event of
    six historical markets (6 x 2,340 = 14,040 candidates: two batch requests)."""
    spent = probing.requests or {}
    plain_costs = plain.requests or {}
    with_hist = spent.get("event", 0) + spent.get("batch", 0)
    return with_hist - plain_costs.get("event", 0) - plain_costs.get("batch", 0)


@dataclass(frozen=True)
class BatchShares:
    """A window's batch requests when packed with other windows' at best (the floor's
    side, :func:`extract.plan.packing.piece_shares`): for its live markets, its
    historical ones, and both together."""

    live: Fraction
    historical: Fraction
    both: Fraction


def window_floor(
    shape: WindowShape,
    batch_serves_historical: bool,
    event_candles: int | None = None,
    packed: BatchShares | None = None,
) -> Cost:
    """The fewest requests any route mix could need for this window at the caps.

    Each route's lower bound is its counted candles over its cap, rounded up:
    batch ``ceil(tickers x periods / 10,000)`` (over historical markets too when the
    server serves them there), historical ``ceil(periods / 5,000)`` a market, event
    ``ceil(event_candles / 5,000)`` where ``event_candles`` is what its cap counts for
    the live markets (candidates when None). With ``packed``, a batch request may also
    carry other windows' markets: the window's batch part is then the lower of its own
    requests and its share of packed ones (a fraction). The floor is the cheapest mix.
    """
    n_live, n_hist, n = len(shape.live), len(shape.historical), shape.periods
    counted = n_live * n if event_candles is None else event_candles
    event = ceil_div(counted, EVENT_CANDLE_CAP) if n_live else 0
    batch_live: Cost = ceil_div(n_live * n, BATCH_CANDLE_CAP)
    batch_both: Cost = ceil_div((n_live + n_hist) * n, BATCH_CANDLE_CAP)
    batch_hist: Cost = ceil_div(n_hist * n, BATCH_CANDLE_CAP)
    if packed is not None:
        batch_live = min(batch_live, packed.live)
        batch_both = min(batch_both, packed.both)
        batch_hist = min(batch_hist, packed.historical)
    hist_alone = n_hist * ceil_div(n, HISTORICAL_CHUNK_CANDLES)
    options: list[Cost] = [min(event, batch_live) + hist_alone]
    if batch_serves_historical and n_hist:
        options.append(batch_both)
        options.append(event + batch_hist)
    return min(options)
