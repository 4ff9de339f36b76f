"""``check-api``'s decisions, without I/O: which probe ranges to ask for, and what each
answer says about a point the spec leaves open.

Every rule reads only what came back (statuses, candle timestamps, ``adjusted_end_ts``)
against what was asked, so it can be tested with hand-made pages. A rule that cannot
decide says ``unknown`` rather than guess: ``check-api`` reports those as warnings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

UNKNOWN = "unknown"

#: The answers to each open point that the extractor handles (EXTRACT-CORE's decisions,
#: see the README's table): anything else observed makes ``check-api`` exit 1.
HANDLED: dict[str, frozenset[str]] = {
    "candle_fields": frozenset({"*_dollars/*_fp", "legacy_cents"}),
    "uncapped_adjusted_end_ts": frozenset({"end_ts", "last_candle", "zero", "absent"}),
    "market_tickers_scope": frozenset({"all_markets", "with_candles"}),
    "event_cap_counts": frozenset({"returned", "requested"}),
    "paging_direction": frozenset({"forward"}),
    "historical_over_cap": frozenset({"400", "truncated", "served"}),
    "batch_over_cap": frozenset({"400", "truncated", "served"}),
    "nested_markets_of_historical_event": frozenset({"absent", "empty", "listed"}),
    "batch_serves_historical": frozenset({"yes", "no"}),
}

#: What ``shared/kalshi-api.md`` (our reading of the spec) expects: "held" when observed.
EXPECTED: dict[str, str] = {
    "candle_fields": "*_dollars/*_fp",
    "uncapped_adjusted_end_ts": "end_ts",
    "market_tickers_scope": "all_markets",
    "event_cap_counts": "returned",
    "paging_direction": "forward",
    "historical_over_cap": "400",
    "batch_over_cap": "400",
    "nested_markets_of_historical_event": "absent",
    "batch_serves_historical": "no",
}


# --- probe ranges ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A request range ``[start_ts, end_ts]`` in unix seconds, at ``period`` minutes."""

    start_ts: int
    end_ts: int
    period: int = 1

    @property
    def periods(self) -> int:
        """Periods requested, counted as the servers' cap messages do: (end - start) / period."""
        return (self.end_ts - self.start_ts) // (self.period * 60)

    def params(self) -> dict[str, int]:
        return {"start_ts": self.start_ts, "end_ts": self.end_ts, "period_interval": self.period}


#: Candidates (markets x periods) of each probe that no cap may cut (``uncapped`` and
#: ``before_open``): a server whose event cap is as low as this still serves them whole.
#: Kalshi's cap is 5,000, but a server with a far smaller one (a few hundred) must not
#: turn the uncapped probe into a capped page, whose ``adjusted_end_ts`` would then be
#: misread as what uncapped pages say.
UNCAPPED_CANDIDATES = 120


@dataclass(frozen=True)
class EventProbes:
    """The four event-route requests, chosen from the event's live markets' window.

    - ``uncapped``: the last ``u`` minutes before the earliest close, with ``markets x u``
      at most :data:`UNCAPPED_CANDIDATES` so that no cap cuts them (candles there tell
      ``end_ts`` from ``last_candle``);
    - ``before_open``: ``u`` minutes ending before any market opens: no market has a
      candle, so a server that lists only markets with candles lists none;
    - ``cap_count``: mostly before the open, ending ``m`` minutes after it: markets x
      periods is twice the cap while the candles that can exist are at most half of it,
      so only a server counting REQUESTED candidates cuts it (before the open);
    - ``full``: the whole window, capped by either count when the markets trade enough.
    """

    uncapped: Span
    before_open: Span
    cap_count: Span
    full: Span
    requested_cut_ts: int
    """Where a server counting requested candidates must cut ``cap_count`` at the latest."""


def minute_floor(ts: int) -> int:
    return ts - ts % 60


def event_probes(opens: list[int], closes: list[int], cap: int, now_ts: int) -> EventProbes:
    """The event probes for markets opening at ``opens`` and closing at ``closes``."""
    n = len(opens)
    first_open = minute_floor(min(opens))
    end = minute_floor(min(max(closes), now_ts))
    last_common = minute_floor(min(min(closes), now_ts))
    u = max(2, min(60, UNCAPPED_CANDIDATES // n - 1))  # u + 1 period ends a market
    uncapped = Span(last_common - u * 60, last_common)
    before_open = Span(first_open - (u + 1) * 60, first_open - 60)
    per_market = cap // n  # periods a requested-count cap lets through
    m = max(1, per_market // 2)
    cap_start = first_open - 2 * (per_market + 1) * 60
    cap_count = Span(cap_start, first_open + m * 60)
    return EventProbes(
        uncapped=uncapped,
        before_open=before_open,
        cap_count=cap_count,
        full=Span(first_open, end),
        requested_cut_ts=cap_start + (per_market + 1) * 60,
    )


def over_cap_span(reference: Span, cap: int) -> Span:
    """A range holding ``reference`` in its middle, over ``cap`` requested periods, wide
    enough that a server keeping only the first (or the last) ``cap`` periods cuts into
    ``reference``: the cut then shows as candles missing from the reference."""
    p = reference.period * 60
    length = reference.periods
    side = max(0, cap - length) + max(1, length // 4) + 1
    return Span(reference.start_ts - side * p, reference.end_ts + side * p, reference.period)


def batch_over_cap_span(window: Span, markets: int, cap: int) -> Span:
    """The window (widened backwards when needed) so that markets x periods is over ``cap``."""
    periods = max(window.periods + 1, cap // markets + 2)
    return Span(window.end_ts - periods * window.period * 60, window.end_ts, window.period)


# --- reading pages ----------------------------------------------------------------------------


def event_page_candles(body: Any) -> dict[str, list[dict[str, Any]]]:
    """``market_tickers`` → candles of an event page ({} for a body of another shape)."""
    if not isinstance(body, dict):
        return {}
    tickers, lists = body.get("market_tickers"), body.get("market_candlesticks")
    if not isinstance(tickers, list) or not isinstance(lists, list):
        return {}
    return {
        str(t): [c for c in cs if isinstance(c, dict)] if isinstance(cs, list) else []
        for t, cs in zip(tickers, lists, strict=False)
    }


def batch_page_candles(body: Any) -> dict[str, list[dict[str, Any]]]:
    """``market_ticker`` → candles of a batch page."""
    if not isinstance(body, dict) or not isinstance(body.get("markets"), list):
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for m in body["markets"]:
        if isinstance(m, dict) and isinstance(m.get("candlesticks"), list):
            out[str(m.get("market_ticker"))] = [c for c in m["candlesticks"] if isinstance(c, dict)]
    return out


def candle_keys(by_market: Mapping[str, Iterable[dict[str, Any]]]) -> set[tuple[str, int]]:
    """(market, end_period_ts) of every candle."""
    return {
        (t, c["end_period_ts"])
        for t, cs in by_market.items()
        for c in cs
        if isinstance(c.get("end_period_ts"), int)
    }


def candle_ends(by_market: Mapping[str, Iterable[dict[str, Any]]]) -> list[int]:
    return sorted(ts for _, ts in candle_keys(by_market))


# --- the rules ------------------------------------------------------------------------------


def candle_fields(candles: Iterable[dict[str, Any]]) -> str:
    """``*_dollars/*_fp`` (the live contract), ``legacy_cents`` (integer cents only, read
    by the loader too), or ``other: ...`` naming what came instead."""
    shapes: set[str] = set()
    for c in candles:
        bid = c.get("yes_bid") if isinstance(c.get("yes_bid"), dict) else {}
        assert isinstance(bid, dict)
        dollars = [v for k, v in bid.items() if k.endswith("_dollars")]
        counts = [c[k] for k in ("volume_fp", "open_interest_fp") if k in c]
        if dollars or counts:
            if all(v is None or isinstance(v, str) for v in [*dollars, *counts]):
                shapes.add("*_dollars/*_fp")
            else:
                shapes.add("other: numbers where the contract has strings")
        elif isinstance(bid.get("open"), int) or isinstance(c.get("volume"), int):
            shapes.add("legacy_cents")
        else:
            shapes.add(f"other: keys {sorted(c)}")
    if not shapes:
        return UNKNOWN
    others = sorted(s for s in shapes if s.startswith("other"))
    if others:
        return others[0]
    return "*_dollars/*_fp" if "*_dollars/*_fp" in shapes else "legacy_cents"


def uncapped_adjusted_end(body: Any, span: Span) -> str:
    """What an uncapped page says in ``adjusted_end_ts``: ``end_ts`` | ``last_candle`` |
    ``zero`` | ``absent`` | ``other``; ``end_ts?`` when the last candle ends at end_ts
    (both readings agree: :func:`resolve_uncapped` decides with a second page)."""
    if not isinstance(body, dict):
        return UNKNOWN
    if "adjusted_end_ts" not in body:
        return "absent"
    adjusted = body["adjusted_end_ts"]
    if not isinstance(adjusted, int) or isinstance(adjusted, bool):
        return "other"
    if adjusted == 0:
        return "zero"
    ends = candle_ends(event_page_candles(body))
    last = ends[-1] if ends else span.start_ts
    if adjusted == span.end_ts:
        return "end_ts?" if last == span.end_ts else "end_ts"
    if adjusted == last:
        return "last_candle"
    return "other"


def resolve_uncapped(first: str, second: str) -> str:
    """Combine the uncapped page with candles (``first``) and the one without (``second``)."""
    if first != "end_ts?":
        return first
    if second == "last_candle":
        return "last_candle"
    return "end_ts"


def market_tickers_scope(body: Any, live: Iterable[str]) -> str:
    """``all_markets`` | ``with_candles`` | ``unknown`` from a page where some live market
    has no candle (otherwise both readings list the same markets)."""
    by_market = event_page_candles(body)
    live_set = set(live)
    listed = set(by_market)
    with_candles = {t for t, cs in by_market.items() if cs}
    if not live_set or with_candles == live_set:
        return UNKNOWN
    if listed == live_set:
        return "all_markets"
    if listed == with_candles:
        return "with_candles"
    return UNKNOWN


def event_cap_counts(body: Any, probes: EventProbes) -> str:
    """``requested`` when the page over the cap in candidates but not in candles was cut
    where a requested-count cap cuts; ``returned`` when it was served past that point."""
    if not isinstance(body, dict):
        return UNKNOWN
    span = probes.cap_count
    ends = candle_ends(event_page_candles(body))
    if ends and ends[-1] > probes.requested_cut_ts:
        return "returned"
    adjusted = body.get("adjusted_end_ts")
    if not isinstance(adjusted, int) or isinstance(adjusted, bool) or adjusted == 0:
        return "returned"  # no cut announced (zero and absent only mark uncapped pages)
    if adjusted >= span.end_ts:
        return "returned"
    if span.start_ts < adjusted <= probes.requested_cut_ts:
        return "requested"
    return UNKNOWN


#: What ``uncapped_adjusted_end_ts`` may say for :func:`paging_direction` to take any
#: ``adjusted_end_ts`` strictly inside the range as a cut: an uncapped page then never
#: says such a value (it says ``end_ts``, 0, or nothing).
UNCAPPED_NEVER_INSIDE = frozenset({"end_ts", "zero", "absent"})


def paging_direction(
    body: Any,
    span: Span,
    cap: int,
    requested_cap: bool,
    uncapped: str = UNKNOWN,
    elsewhere: Iterable[tuple[str, int]] = (),
) -> str:
    """``forward`` (a capped page's candles lie in [start_ts, adjusted_end_ts]) |
    ``backward`` (candles after adjusted_end_ts) | ``unknown`` (no cut could be shown).

    Candles after an ``adjusted_end_ts`` inside the range can only be a backward cut.
    Otherwise the page is a forward cut when something shows it was cut at all:

    - ``uncapped`` (this run's ``uncapped_adjusted_end_ts``) is ``end_ts``, ``zero`` or
      ``absent``: an uncapped page never says a value inside the range, whatever its
      candle count (a server with a cap far below 5,000 is read right);
    - otherwise (``last_candle``: an uncapped page says its last candle's end, which
      looks like a forward cut; or unknown), the page needs its own proof: a cap on
      requested candidates (``requested_cap``), candles over half the cap (an uncapped
      page of a ``last_candle`` server would end at the range's last candle, far from
      such a count only by chance), or a candle of the page's markets that another page
      of the run served (``elsewhere``) after ``adjusted_end_ts`` in the range and that
      this page left out.
    """
    if not isinstance(body, dict):
        return UNKNOWN
    adjusted = body.get("adjusted_end_ts")
    if not isinstance(adjusted, int) or isinstance(adjusted, bool):
        return UNKNOWN
    if not span.start_ts < adjusted < span.end_ts:
        return UNKNOWN  # not a cut: end_ts, zero, or nothing to page
    by_market = event_page_candles(body)
    ends = candle_ends(by_market)
    if any(ts > adjusted for ts in ends):
        return "backward"
    if not ends:
        return UNKNOWN
    if uncapped in UNCAPPED_NEVER_INSIDE:
        return "forward"
    total = sum(len(cs) for cs in by_market.values())
    if requested_cap or total > cap // 2:
        return "forward"
    if any(adjusted < ts <= span.end_ts for _, ts in elsewhere):
        return "forward"
    return UNKNOWN


def over_cap(status: int | None, body: Any, reference: set[tuple[str, int]], batch: bool) -> str:
    """``400`` | ``truncated`` (candles of the reference missing) | ``served`` | ``unknown``."""
    if status == 400:
        return "400"
    if status != 200 or not reference:
        return UNKNOWN
    got = candle_keys(batch_page_candles(body) if batch else _market_page(body))
    return "served" if reference <= got else "truncated"


def _market_page(body: Any) -> dict[str, list[dict[str, Any]]]:
    if not isinstance(body, dict) or not isinstance(body.get("candlesticks"), list):
        return {}
    ticker = str(body.get("ticker"))
    return {ticker: [c for c in body["candlesticks"] if isinstance(c, dict)]}


def market_page_candles(body: Any) -> dict[str, list[dict[str, Any]]]:
    """``ticker`` → candles of a per-market (live or historical) page."""
    return _market_page(body)


def batch_serves_historical(
    status: int | None, body: Any, ticker: str, had_candles: bool | None
) -> str:
    """``yes`` (the batch answer holds the historical market's candles) | ``no`` | ``unknown``."""
    if status in (400, 404):
        return "no"
    if status != 200 or not isinstance(body, dict):
        return UNKNOWN
    candles = batch_page_candles(body).get(ticker)
    if candles:
        return "yes"
    if had_candles:
        return "no"  # the historical route has candles there; batch gave none
    return UNKNOWN


def nested_markets_of_historical_event(
    events: Iterable[dict[str, Any]], historical: Mapping[str, set[str]]
) -> tuple[str, str | None]:
    """How the nested events listing shows an event whose markets are all historical:
    ``absent`` (no ``markets`` key) | ``empty`` | ``listed``; with the event it read."""
    for ev in events:
        ticker = ev.get("event_ticker")
        if not isinstance(ticker, str) or ticker not in historical:
            continue
        if "markets" not in ev:
            return "absent", ticker
        markets = ev["markets"]
        if markets == []:
            return "empty", ticker
        listed = {m.get("ticker") for m in markets if isinstance(m, dict)}
        if listed and listed <= historical[ticker]:
            return "listed", ticker
    return UNKNOWN, None
