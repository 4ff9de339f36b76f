"""Live or historical: which tier serves each market, and how a historical fetch is cut.

Kalshi keeps about three months of settled markets live. A market that settled before
the cutoff's ``market_settled_ts`` is served only by ``/historical/markets/{ticker}/...``
(the live event route leaves it out of its answer), so a multi-month backfill must route
each market, not each event: one event can have markets on both sides of the cutoff.

Everything here is pure (no I/O, no clock), so the decisions are unit-tested without HTTP:
- :func:`route_market`: the tier of one market, from what the sync stored and the cutoff;
- :func:`historical_chunks`: the requests of one historical market over a window;
- :func:`may_cross_cutoff` and :func:`absent_market_action`: what a live market that a
  page left out calls for (no request, the historical route, or a lookup), from the
  cutoff and what the pages showed;
- :func:`needs_historical_lookup`: which events ``extract events`` must list on
  ``GET /historical/markets`` because ``with_nested_markets`` may have left markets out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from extract.errors import BadPageError
from extract.plan.paginator import PageRequest
from extract.plan.windows import MarketTimes

#: Candles per historical request at most. The historical route has no cap and no
#: ``adjusted_end_ts`` (the spec's response carries neither), so the client bounds each
#: response itself: 5,000 candles is the live route's documented cap, so a historical
#: page is never bigger than a live one, and a killed run resumes page by page.
HISTORICAL_CHUNK_CANDLES = 5000


class Route(StrEnum):
    """The tier a market's candles come from (the values of ``ManifestMarket.route``)."""

    LIVE = "live"
    HISTORICAL = "historical"


@dataclass(frozen=True)
class Cutoff:
    """``GET /historical/cutoff``: markets settled before ``market_settled_ts`` are historical."""

    market_settled_ts: int
    """Unix seconds."""

    @classmethod
    def from_body(cls, body: Any) -> Cutoff:
        """Parse the response; a body without a usable ``market_settled_ts`` is a bad page."""
        value = body.get("market_settled_ts") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise BadPageError("historical cutoff: market_settled_ts is not a date-time string")
        try:
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as e:
            raise BadPageError(f"historical cutoff: invalid market_settled_ts {value!r}") from e
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
        return cls(int(ts.timestamp()))

    def __str__(self) -> str:
        return datetime.fromtimestamp(self.market_settled_ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def settled_at(market: MarketTimes) -> int | None:
    """When the market settled: ``settlement_ts``, else its close (settlement follows it)."""
    return market.settlement_ts if market.settlement_ts is not None else market.close_ts


def route_market(market: MarketTimes, cutoff_ts: int | None) -> Route:
    """HISTORICAL if the sync saw the market historical or it settled before the cutoff.

    The historical tier is terminal (the cutoff only moves forward), so a stored
    ``is_historical`` flag stays true whatever the cutoff says; ``cutoff_ts=None`` (the
    dry run, which makes no request) routes by the stored flag alone.
    """
    if market.is_historical:
        return Route.HISTORICAL
    when = settled_at(market)
    if cutoff_ts is not None and when is not None and when < cutoff_ts:
        return Route.HISTORICAL
    return Route.LIVE


def route_markets(markets: Iterable[MarketTimes], cutoff_ts: int | None) -> dict[str, Route]:
    """Ticker → route for every market of a window."""
    return {m.market_ticker: route_market(m, cutoff_ts) for m in markets}


def historical_chunks(
    start_ts: int, end_ts: int, period: int, max_candles: int = HISTORICAL_CHUNK_CANDLES
) -> list[PageRequest]:
    """The requests covering ``[start_ts, end_ts]``, each holding at most ``max_candles``.

    Both ends of a request are inclusive and candles end on period boundaries, so a span
    of ``(max_candles - 1)`` periods holds at most ``max_candles`` candles; the next
    request starts one second after the previous end, so no candle comes twice. The
    starts depend only on the window, so a rerun finds the pages it already archived.
    """
    if max_candles < 1:
        raise ValueError("max_candles must be at least 1")
    if end_ts < start_ts:
        raise ValueError(f"window ends ({end_ts}) before it starts ({start_ts})")
    span = (max_candles - 1) * period * 60
    out: list[PageRequest] = []
    start = start_ts
    while True:
        end = min(start + span, end_ts)
        out.append(PageRequest(start, end))
        if end >= end_ts:
            return out
        start = end + 1


def historical_requests(
    markets: Sequence[tuple[int, int]], period: int, max_candles: int = HISTORICAL_CHUNK_CANDLES
) -> int:
    """Requests the historical route takes for markets given as (start_ts, end_ts) spans."""
    return sum(len(historical_chunks(s, e, period, max_candles)) for s, e in markets)


def needs_historical_lookup(
    strike_ts: int | None,
    nested_markets: int,
    cutoff_ts: int,
    stored: Mapping[str, bool] | None = None,
) -> bool:
    """Whether ``extract events`` must list this event's markets on the historical tier.

    A market settles after its event's close (``strike_date``), so an event whose strike
    date is at or after the cutoff cannot have a market settled before it: such events
    need no extra request. An event with no nested market at all, or no strike date, is
    looked up. ``stored`` (ticker → stored ``is_historical``) skips an event already
    known to be wholly historical and absent from the live listing: the historical tier
    is terminal, so a second lookup would only repeat the first.
    """
    if stored and nested_markets == 0 and all(stored.values()):
        return False
    if nested_markets == 0 or strike_ts is None:
        return True
    return strike_ts < cutoff_ts


#: How far past the cutoff last read a market's settlement may lie and still have moved to
#: the historical tier during the run. Kalshi moves the cutoff forward about as time
#: passes (seen two months behind); a market settled more than this after it is live
#: without a second look, so sparse markets far from the cutoff cost no cutoff read.
CUTOFF_WATCH_S = 31 * 86_400


def may_cross_cutoff(market: MarketTimes, cutoff_ts: int, now_ts: int) -> bool:
    """Whether ``market`` may have moved past a cutoff read as ``cutoff_ts``: it settled
    (its settlement, else its close, is past) within :data:`CUTOFF_WATCH_S` of it."""
    when = settled_at(market)
    return when is not None and when <= now_ts and when < cutoff_ts + CUTOFF_WATCH_S


class Absence(StrEnum):
    """What a live market that an event (or batch) page left out calls for."""

    SPARSE = "sparse"
    """Nothing: it has no candle where it was left out (the server lists only markets
    with candles, and the market is still live by the cutoff)."""
    HISTORICAL = "historical"
    """Fetch it from the historical route (the cutoff says it could have moved there)."""
    LOOKUP = "lookup"
    """Ask ``GET /markets/{ticker}`` whether the live tier still knows it."""


def absent_market_action(
    *, listed_somewhere: bool, could_have_moved: bool, lists_every_market: bool
) -> Absence:
    """The cheapest action the evidence allows for a live market some page left out.

    - ``could_have_moved`` (it settled before the cutoff, re-read after the page): the
      historical route, one request a chunk (a 404 there falls back to a lookup);
    - listed on another page of the window, and the server has not shown that it lists
      markets without candles (``lists_every_market``): SPARSE, no request. A page lists
      only the markets with candles in its range, and this market is live;
    - otherwise (absent from every page, or the server lists every market yet left it
      out): LOOKUP, one request, so a market gone from both tiers fails the window
      instead of silently missing.

    So a sparse market costs nothing where it shows up at least once, and one request
    per window where it has no candle at all.
    """
    if could_have_moved:
        return Absence.HISTORICAL
    if listed_somewhere and not lists_every_market:
        return Absence.SPARSE
    return Absence.LOOKUP
