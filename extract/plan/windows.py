"""Which time range of an event to fetch: pure window math, no I/O.

FULL_MARKET_WINDOW spans the event's markets, from the earliest open to the latest close;
TRADE_WINDOW_ONLY is the event's as-of trade window. A window that has not ended yet ends
at the current minute and is not final: a later run extends it, fetching its last pages
again (the boundary candle still forming now, and candles published late). A window is
final only a grace period after its end, so candles of a just-closed market published a
little late are still fetched.

For periods longer than a minute the final end is rounded up to the period boundary, so
the candle of the period holding the close (which ends after it) is inside the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas.archive import ManifestMarket
from schemas.core import WindowPolicy


class SkipReason(StrEnum):
    """Why an event has no window to fetch (each is counted and logged, never silent)."""

    NO_TRADE_WINDOW = "no trade window"
    NO_MARKETS = "no markets with open and close times"
    NOT_STARTED = "window has not started yet"


@dataclass(frozen=True)
class MarketTimes:
    """A market's life as stored in kalshi_market (unix seconds; None when unknown)."""

    market_ticker: str
    open_ts: int | None
    close_ts: int | None
    settlement_ts: int | None = None
    """When it settled (None while unsettled or unknown): routes it live or historical."""
    is_historical: bool = False
    """The sync saw it on the historical tier (``kalshi_market.is_historical``)."""


@dataclass(frozen=True)
class EventTimes:
    """What window planning needs about one event."""

    event_ticker: str
    trade_start_ts: int | None
    trade_end_ts: int | None
    markets: tuple[MarketTimes, ...]


@dataclass(frozen=True)
class Window:
    """The range to fetch, inclusive, and the markets with their bounds clipped to it."""

    start_ts: int
    end_ts: int
    is_final: bool
    markets: tuple[ManifestMarket, ...]

    @property
    def minutes(self) -> int:
        return max(0, (self.end_ts - self.start_ts) // 60)


def floor_minute(ts: int) -> int:
    return ts - ts % 60


def ceil_period(ts: int, period: int) -> int:
    """``ts`` rounded up to the next multiple of ``period`` minutes (UTC-aligned)."""
    step = period * 60
    return -(-ts // step) * step


def plan_window(
    event: EventTimes, policy: WindowPolicy, period: int, now_ts: int, grace_s: int = 0
) -> Window | SkipReason:
    """The event's window under ``policy`` as of ``now_ts``, or why there is none.

    The window is final only ``grace_s`` after its end (late candles): until then it ends
    at its end or now, whichever comes first, and is not final.
    """
    known = [m for m in event.markets if m.open_ts is not None and m.close_ts is not None]
    if policy is WindowPolicy.TRADE_WINDOW_ONLY:
        if event.trade_start_ts is None or event.trade_end_ts is None:
            return SkipReason.NO_TRADE_WINDOW
        start, natural_end = event.trade_start_ts, event.trade_end_ts
    else:
        if not known:
            return SkipReason.NO_MARKETS
        start = min(m.open_ts for m in known if m.open_ts is not None)
        natural_end = max(m.close_ts for m in known if m.close_ts is not None)
    final_end = ceil_period(natural_end, period)
    now_minute = floor_minute(now_ts)
    if start >= now_minute:
        return SkipReason.NOT_STARTED
    is_final = final_end + grace_s <= now_minute
    end = min(final_end, now_minute)
    markets = tuple(
        ManifestMarket(m.market_ticker, max(m.open_ts, start), min(m.close_ts, end))
        for m in sorted(known, key=lambda m: m.market_ticker)
        if m.open_ts is not None
        and m.close_ts is not None
        and m.open_ts <= end
        and m.close_ts >= start
    )
    if not markets:
        return SkipReason.NO_MARKETS
    return Window(start, end, is_final, markets)
