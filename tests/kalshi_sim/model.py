"""The simulated world: series, events, markets and their candles, as ground truth.

Pure and deterministic from ``SimConfig``: the only state is the simulated ``now``,
an optional cutoff override and the markets hidden from both tiers, which tests move
with ``set_now``/``set_cutoff``/``hide_market``.
Nothing is built eagerly: events and markets are derived from their ticker on
demand, candles are generated per market on first use and kept in small LRU
caches, so a 12-month world costs only what a test actually reads.

Decisions where the spec and notes leave room (see also ``server.py``):
- A market is *historical* when it is settled (``settlement_ts <= now``) and its
  ``settlement_ts`` is before the cutoff. Markets of one event settle a few
  minutes apart, so a cutoff can split an event.
- A *hidden* market (``hide_market``) is on neither tier: no live route and no
  historical route serves or lists it. Kalshi does not document such a state; it
  stands for an API that lost a market, which a backfill must not paper over. Its
  ground truth (``candles``, ``market_infos``) is unchanged.
- Market summary prices (``yes_bid_dollars``, ``volume_fp``, ...) are synthetic
  and not derived from the candles: the backfill does not keep them.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any, Generic, Literal, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

import numpy as np

from .candles import (
    MICRO,
    Candle,
    CandleParams,
    Series,
    aggregate,
    fmt_count,
    fmt_dollars,
    generate_minutes,
    live_candles,
    period_end,
    synthetic_before,
    to_historical,
)
from .config import SeriesSpec, SimConfig

PERIODS = (1, 60, 1440)
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
EventStatus = Literal["unopened", "open", "closed", "settled"]

K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A small thread-safe LRU (the server thread and a test thread share a world)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        value = make()
        with self._lock:
            self._data[key] = value
            while len(self._data) > self._size:
                self._data.popitem(last=False)
        return value


def iso(ts: int) -> str:
    """Unix seconds to the API's ISO-8601 UTC form, ``2025-11-21T04:59:00Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_ticker_for(series: str, day: date) -> str:
    """``KXHIGHNY`` + 2025-11-20 -> ``KXHIGHNY-25NOV20`` (a daily series' event)."""
    return f"{series}-{day.year % 100:02d}{MONTHS[day.month - 1]}{day.day:02d}"


class Slot(NamedTuple):
    """When an event is: its local date (a monthly event's: the month's last day) and,
    for an hourly event, the local hour whose temperature it is about."""

    day: date
    hour: int | None = None


def month_end(day: date) -> date:
    """The last day of ``day``'s month."""
    nxt = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def event_code(spec: SeriesSpec, slot: Slot) -> str:
    """The date part of an event ticker: ``25NOV20``, ``25NOV2014`` (hourly), ``25NOV``
    (monthly)."""
    d = slot.day
    month = f"{d.year % 100:02d}{MONTHS[d.month - 1]}"
    if spec.cadence == "monthly":
        return month
    if spec.cadence == "hourly":
        return f"{month}{d.day:02d}{slot.hour:02d}"
    return f"{month}{d.day:02d}"


def parse_slot(spec: SeriesSpec, code: str) -> Slot | None:
    """The slot an event code names for ``spec``'s cadence, or None."""
    size = {"daily": 7, "hourly": 9, "monthly": 5}[spec.cadence]
    if len(code) != size or code[2:5] not in MONTHS or not (code[:2] + code[5:]).isdigit():
        return None
    year, month = 2000 + int(code[:2]), MONTHS.index(code[2:5]) + 1
    try:
        if spec.cadence == "monthly":
            return Slot(month_end(date(year, month, 1)))
        day = date(year, month, int(code[5:7]))
    except ValueError:
        return None
    if spec.cadence == "hourly":
        hour = int(code[7:])
        return Slot(day, hour) if hour in spec.hours else None
    return Slot(day)


def _num(v: float) -> str:
    """Strike for a ticker: 52 -> ``52``, 50.5 -> ``50.5``, 0.25 -> ``0.25``."""
    return f"{v:g}"


# Climate of each city's daily high (annual mean, seasonal amplitude), in F.
_CLIMATE = {
    "New York City": (62.0, 19.0),
    "Chicago": (59.0, 24.0),
    "Miami": (84.0, 6.0),
    "Austin": (81.0, 15.0),
    "Denver": (64.0, 22.0),
    "Los Angeles": (74.0, 6.0),
    "Honolulu": (84.0, 3.0),
}
_RAIN_THRESHOLDS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0)


def _what(spec: SeriesSpec) -> str:
    """What a series' markets are about, for titles."""
    if spec.kind == "rain":
        return "Rain this month" if spec.cadence == "monthly" else "Rain"
    if spec.cadence == "hourly":
        return "Temperature at the hour"
    return "Lowest temperature" if spec.kind == "low" else "Highest temperature"


class _Strike(NamedTuple):
    suffix: str
    strike_type: str
    floor: float | None
    cap: float | None
    yes_sub_title: str
    result_yes: bool
    expiration_value: str


@dataclass(frozen=True)
class MarketInfo:
    """Static facts of one market (timestamps are unix seconds)."""

    ticker: str
    event_ticker: str
    series_ticker: str
    open_ts: int
    close_ts: int
    settlement_ts: int
    latest_expiration_ts: int
    strike_type: str
    floor_strike: float | None
    cap_strike: float | None
    yes_sub_title: str
    result_yes: bool
    expiration_value: str
    tick: int
    start_prob: float


@dataclass(frozen=True)
class EventInfo:
    """Static facts of one event and its markets."""

    event_ticker: str
    series: SeriesSpec
    day: date
    """The local date it is about (a monthly event's: the month's last day)."""
    close_ts: int
    markets: tuple[MarketInfo, ...]
    hour: int | None = None
    """An hourly event's local hour."""

    @property
    def open_ts(self) -> int:
        return min(m.open_ts for m in self.markets)

    @property
    def settlement_ts(self) -> int:
        return max(m.settlement_ts for m in self.markets)


@dataclass(frozen=True)
class EventCandles:
    """What the event candlesticks route answers (before serialization)."""

    market_tickers: list[str]
    market_candlesticks: list[list[Candle]]
    adjusted_end_ts: int
    capped: bool = False
    """Whether the cap cut the page (truth for tests; not served)."""
    omit_adjusted_end: bool = False
    """Serve no ``adjusted_end_ts`` key (``uncapped_adjusted_end="absent"``); the field
    then holds the requested end_ts, which the page covers."""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "market_tickers": self.market_tickers,
            "market_candlesticks": self.market_candlesticks,
        }
        if not self.omit_adjusted_end:
            out["adjusted_end_ts"] = self.adjusted_end_ts
        return out


def cut_by_cap(
    per_market: list[list[Candle]], cap: int, backward: bool = False
) -> tuple[list[list[Candle]], int | None]:
    """Keep whole timestamps while the total stays <= ``cap``.

    Forward (default) keeps the earliest timestamps and returns the last kept one;
    ``backward`` keeps the latest and returns the earliest kept one. None when
    nothing had to be cut. At least one timestamp is always kept, so a page always
    has data when the range has any.
    """
    total = sum(len(c) for c in per_market)
    if total <= cap:
        return per_market, None
    ts = np.array([c["end_period_ts"] for cs in per_market for c in cs], dtype=np.int64)
    uniq, counts = np.unique(ts, return_counts=True)
    if backward:
        fits = np.flatnonzero(np.cumsum(counts[::-1]) <= cap)
        first = int(uniq[::-1][fits[-1]] if fits.size else uniq[-1])
        return [[c for c in cs if c["end_period_ts"] >= first] for cs in per_market], first
    fits = np.flatnonzero(np.cumsum(counts) <= cap)
    last = int(uniq[fits[-1]] if fits.size else uniq[0])
    return [[c for c in cs if c["end_period_ts"] <= last] for cs in per_market], last


def period_ends(start_ts: int, end_ts: int, period: int) -> tuple[int, int]:
    """(first, count) of the period ends ``k * period * 60`` inside [start_ts, end_ts].

    What a route that caps *requested* candles counts per market: every period the
    range could hold a candle for, whether or not one exists.
    """
    p = period * 60
    first = -(-start_ts // p) * p
    last = end_ts // p * p
    return first, max(0, (last - first) // p + 1)


def cut_requested(
    per_market: list[list[Candle]],
    start_ts: int,
    end_ts: int,
    period: int,
    cap: int,
    backward: bool = False,
) -> tuple[list[list[Candle]], int | None]:
    """Cut the RANGE at whole periods so that markets x periods <= ``cap``.

    Returns the kept lists and the cut (the last period kept, or with ``backward``
    the first one), None when markets x periods already fit.
    """
    first, count = period_ends(start_ts, end_ts, period)
    markets = len(per_market)
    if markets * count <= cap:
        return per_market, None
    k = max(1, cap // markets)
    p = period * 60
    if backward:
        cut = first + (count - k) * p
        return [[c for c in cs if c["end_period_ts"] >= cut] for cs in per_market], cut
    cut = first + (k - 1) * p
    return [[c for c in cs if c["end_period_ts"] <= cut] for cs in per_market], cut


class World:
    """Ground truth for one ``SimConfig``; see the module docstring."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._now = config.now
        self._cutoff: datetime | None = None
        self._hidden: set[str] = set()
        self._events = _Lru[str, EventInfo | None](4096)
        self._minutes = _Lru[str, Series](512)
        self._candles = _Lru[tuple[str, int, int], tuple[list[int], list[Candle]]](96)
        self._series = {s.ticker: s for s in config.series}

    # --- time --------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The simulated present (UTC)."""
        return self._now

    @property
    def now_ts(self) -> int:
        return int(self._now.timestamp())

    def set_now(self, now: datetime) -> None:
        """Move the simulated present (tz-aware). A default cutoff moves with it."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self._now = now.astimezone(UTC)

    @property
    def cutoff(self) -> datetime:
        """``market_settled_ts``: the override, else ``now - historical_cutoff_days``."""
        if self._cutoff is not None:
            return self._cutoff
        return self._now - timedelta(days=self.config.historical_cutoff_days)

    @property
    def cutoff_ts(self) -> int:
        return int(self.cutoff.timestamp())

    def set_cutoff(self, cutoff: datetime | None) -> None:
        """Pin the cutoff (tz-aware), or None to go back to ``now - days``."""
        if cutoff is not None and cutoff.tzinfo is None:
            raise ValueError("cutoff must be timezone-aware")
        self._cutoff = None if cutoff is None else cutoff.astimezone(UTC)

    def hide_market(self, ticker: str, hidden: bool = True) -> None:
        """Take a market off both tiers (or, with ``hidden=False``, put it back)."""
        if self.market_info(ticker) is None:
            raise KeyError(ticker)
        if hidden:
            self._hidden.add(ticker)
        else:
            self._hidden.discard(ticker)

    # --- structure ---------------------------------------------------------------

    @property
    def series_tickers(self) -> list[str]:
        return list(self._series)

    def series_spec(self, ticker: str) -> SeriesSpec | None:
        return self._series.get(ticker)

    @cached_property
    def _days(self) -> list[date]:
        first, last = self.config.dates
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def slots(self, spec: SeriesSpec) -> list[Slot]:
        """The series' events in this world, oldest first: each day of the world (each
        hour of ``spec.hours`` for an hourly series), or each month the world touches."""
        if spec.cadence == "monthly":
            return sorted({Slot(month_end(d)) for d in self._days})
        if spec.cadence == "hourly":
            return [Slot(d, h) for d in self._days for h in spec.hours]
        return [Slot(d) for d in self._days]

    def _in_world(self, spec: SeriesSpec, slot: Slot) -> bool:
        first, last = self.config.dates
        if spec.cadence == "monthly":
            return slot.day >= first and slot.day.replace(day=1) <= last
        return first <= slot.day <= last

    def event_tickers(self, series: str | None = None) -> list[str]:
        """Event tickers, newest first (then by series, then latest hour first),
        optionally of one series."""
        specs = list(self._series.values()) if series is None else [self._series[series]]
        keyed = [
            (
                (-slot.day.toordinal(), i, -(slot.hour or 0)),
                f"{spec.ticker}-{event_code(spec, slot)}",
            )
            for i, spec in enumerate(specs)
            for slot in self.slots(spec)
        ]
        return [ticker for _, ticker in sorted(keyed)]

    def event_info(self, event_ticker: str) -> EventInfo | None:
        """The event, or None when the ticker is not in this world."""
        return self._events.get(event_ticker, lambda: self._build_event(event_ticker))

    def market_infos(self, event_ticker: str) -> tuple[MarketInfo, ...]:
        """All markets of an event (live and historical); KeyError if unknown."""
        ev = self.event_info(event_ticker)
        if ev is None:
            raise KeyError(event_ticker)
        return ev.markets

    def market_info(self, ticker: str) -> MarketInfo | None:
        parts = ticker.split("-")
        if len(parts) != 3:
            return None
        ev = self.event_info(f"{parts[0]}-{parts[1]}")
        if ev is None:
            return None
        return next((m for m in ev.markets if m.ticker == ticker), None)

    def neighbour(self, event_ticker: str) -> str:
        """Another event of the same series (the next one, else the previous one)."""
        ev = self.event_info(event_ticker)
        if ev is None:
            raise KeyError(event_ticker)
        tickers = self.event_tickers(ev.series.ticker)  # newest first
        i = tickers.index(event_ticker)
        return tickers[i - 1] if i > 0 else tickers[min(i + 1, len(tickers) - 1)]

    def _times(self, spec: SeriesSpec, slot: Slot) -> tuple[int, int, int]:
        """(markets' open, close, settlement base) of an event, unix seconds.

        - daily, ``legacy``: 10:00 local the day before to 23:59 local; ``weather`` (the
          recorded 2026 answers): 14:00Z the day before to 23:59 local STANDARD time,
          also in summer (04:59Z for New York);
        - hourly (the temperature at local hour H): H-2:00 to H:00 local, two hours;
        - monthly: as daily, from the day before the 1st to the month's last day (about
          30 days, 43,000 one-minute periods a market).
        Settlement: 10:00 local the next day (an hour after the close for hourly).
        """
        tz = ZoneInfo(spec.tz)
        day = slot.day
        if spec.cadence == "hourly":
            assert slot.hour is not None
            at = datetime(day.year, day.month, day.day, slot.hour, tzinfo=tz)
            close_ts = int(at.timestamp())
            return close_ts - 7200, close_ts, close_ts + 3600
        first = day.replace(day=1) if spec.cadence == "monthly" else day
        before = first - timedelta(days=1)
        nxt = day + timedelta(days=1)
        if self.config.schedule == "weather":
            noon = datetime(day.year, day.month, day.day, 12, tzinfo=tz)
            std = noon.utcoffset() - noon.dst()  # type: ignore[operator]
            open_base = int(
                datetime(before.year, before.month, before.day, 14, tzinfo=UTC).timestamp()
            )
            midnight = datetime(nxt.year, nxt.month, nxt.day, tzinfo=UTC) - std
            close_ts = int(midnight.timestamp()) - 60
        else:
            open_base = int(
                datetime(before.year, before.month, before.day, 10, tzinfo=tz).timestamp()
            )
            close_ts = int(datetime(day.year, day.month, day.day, 23, 59, tzinfo=tz).timestamp())
        settle_base = int(datetime(nxt.year, nxt.month, nxt.day, 10, tzinfo=tz).timestamp())
        return open_base, close_ts, settle_base

    def _build_event(self, event_ticker: str) -> EventInfo | None:
        series_t, _, code = event_ticker.partition("-")
        spec = self._series.get(series_t)
        slot = None if spec is None else parse_slot(spec, code)
        if spec is None or slot is None or not self._in_world(spec, slot):
            return None
        if f"{series_t}-{event_code(spec, slot)}" != event_ticker:
            return None
        rng = random.Random(f"{self.config.seed}:event:{event_ticker}")
        open_base, close_ts, settle_base = self._times(spec, slot)
        strikes = self._strikes(spec, slot.day, rng)
        n = len(strikes)
        cfg = self.config
        markets = []
        for i, (suffix, stype, floor, cap, sub, yes, value) in enumerate(strikes):
            jitter = rng.randint(1, 7) if rng.random() < cfg.open_jitter_rate else 0
            roll = rng.random()
            tick = 10_000
            if roll < cfg.subcent_market_rate:
                tick = 100 if roll < cfg.subcent_market_rate / 2 else 1
            base_p = 0.5 if yes else 1.0 / n
            markets.append(
                MarketInfo(
                    ticker=f"{event_ticker}-{suffix}",
                    event_ticker=event_ticker,
                    series_ticker=series_t,
                    open_ts=open_base + 60 * jitter,
                    close_ts=close_ts,
                    settlement_ts=settle_base + 60 * (3 * i + rng.randint(0, 2)),
                    latest_expiration_ts=close_ts + 7 * 86400,
                    strike_type=stype,
                    floor_strike=None if floor is None else float(floor),
                    cap_strike=None if cap is None else float(cap),
                    yes_sub_title=sub,
                    result_yes=yes,
                    expiration_value=value,
                    tick=tick,
                    start_prob=min(0.95, max(0.05, base_p + rng.gauss(0, 0.1))),
                )
            )
        return EventInfo(event_ticker, spec, slot.day, close_ts, tuple(markets), slot.hour)

    def _strikes(self, spec: SeriesSpec, day: date, rng: random.Random) -> list[_Strike]:
        """The event's strike ladder and outcome, from the seeded event RNG."""
        n = self.config.markets_per_event
        if spec.kind == "rain":
            if spec.cadence == "monthly":  # a month's total: inches, thresholds 1, 2, 3...
                rain = round(rng.expovariate(0.3), 2)
                ths = [float(t) for t in range(1, n + 1)]
            else:
                rain = 0.0 if rng.random() < 0.6 else round(rng.expovariate(2.0), 2)
                ths = list(_RAIN_THRESHOLDS)
            while len(ths) < n:
                ths.append(ths[-1] + 1.0)
            return [
                _Strike(
                    f"T{_num(t)}", "greater", t, None, f"Above {t:g} in", rain > t, f"{rain:.2f}"
                )
                for t in ths[:n]
            ]
        mean, amp = _CLIMATE.get(spec.city, (65.0, 15.0))
        if spec.kind == "low":
            mean -= 15.0
        seasonal = mean + amp * math.cos(2 * math.pi * (day.timetuple().tm_yday - 200) / 365)
        actual = round(seasonal + rng.gauss(0, 5))
        value = str(actual)
        lo = round(seasonal + rng.gauss(0, 2)) - (n - 2)
        top = lo + 2 * (n - 2)  # first temperature above the last bracket
        out = [_Strike(f"T{lo}", "less", None, lo, f"{lo - 1}° or below", actual < lo, value)]
        for f in range(lo, top, 2):
            yes = f <= actual <= f + 1
            out.append(
                _Strike(f"B{_num(f + 0.5)}", "between", f, f + 1, f"{f}° to {f + 1}°", yes, value)
            )
        up = top - 1
        out.append(_Strike(f"T{up}", "greater", up, None, f"{top}° or above", actual > up, value))
        return out

    # --- status ------------------------------------------------------------------

    def market_status(self, m: MarketInfo) -> str:
        """Spec enum: initialized -> active -> closed -> determined -> finalized."""
        now = self.now_ts
        if now < m.open_ts:
            return "initialized"
        if now < m.close_ts:
            return "active"
        if now < m.settlement_ts - 3600:
            return "closed"
        if now < m.settlement_ts:
            return "determined"
        return "finalized"

    def is_historical(self, m: MarketInfo) -> bool:
        """Settled before the cutoff: served only by the /historical routes."""
        if m.ticker in self._hidden:
            return False
        return m.settlement_ts <= self.now_ts and m.settlement_ts < self.cutoff_ts

    def is_live(self, m: MarketInfo) -> bool:
        """Served by the live routes: neither historical nor hidden."""
        return m.ticker not in self._hidden and not self.is_historical(m)

    def event_status(self, ev: EventInfo) -> EventStatus:
        now = self.now_ts
        if now < ev.open_ts:
            return "unopened"
        if now < ev.close_ts:
            return "open"
        if now < ev.settlement_ts:
            return "closed"
        return "settled"

    def live_markets(self, event_ticker: str) -> list[MarketInfo]:
        ev = self.event_info(event_ticker)
        return [] if ev is None else [m for m in ev.markets if self.is_live(m)]

    def historical_market_infos(
        self, event_ticker: str | None = None, series: str | None = None
    ) -> list[MarketInfo]:
        """Historical markets (oldest event first), optionally of one event or series."""
        if event_ticker is not None:
            ev = self.event_info(event_ticker)
            events = [] if ev is None else [ev]
        else:
            if series is not None and series not in self._series:
                return []
            tickers = reversed(self.event_tickers(series))
            events = [e for e in (self.event_info(t) for t in tickers) if e is not None]
        out: list[MarketInfo] = []
        for ev in events:
            if ev.markets[0].settlement_ts >= self.cutoff_ts:
                if series is not None and ev.open_ts > self.cutoff_ts:
                    break  # a series' later events open (and settle) later still
                continue
            out.extend(m for m in ev.markets if self.is_historical(m))
        return out

    # --- API-shaped objects ------------------------------------------------------

    def series(self, ticker: str) -> dict[str, Any] | None:
        """``Series`` object of ``GET /series/{ticker}`` and of the ``GET /series`` list."""
        spec = self._series.get(ticker)
        if spec is None:
            return None
        updated = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(
            days=random.Random(f"{self.config.seed}:series:{ticker}").randrange(300)
        )
        return {
            "ticker": ticker,
            "frequency": spec.cadence,
            "title": spec.title or f"{_what(spec)} in {spec.city}",
            "category": spec.category,
            "tags": spec.series_tags,
            "settlement_sources": [
                {"name": f"NWS climate report, {spec.city}", "url": "https://www.weather.gov/"}
            ],
            "contract_url": f"https://kalshi.example/contracts/{ticker}.pdf",
            "contract_terms_url": f"https://kalshi.example/terms/{ticker}.pdf",
            "fee_type": "quadratic",
            "fee_multiplier": 1.0,
            "additional_prohibitions": [],
            "last_updated_ts": iso(int(updated.timestamp())),
        }

    def series_list(
        self,
        category: str | None = None,
        tags: Sequence[str] = (),
        min_updated_ts: int | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /series``: the series of ``category`` having any of ``tags`` (each filter
        only when given), updated at or after ``min_updated_ts``, in ticker order."""
        out = []
        for ticker in sorted(self._series):
            spec, doc = self._series[ticker], self.series(ticker)
            assert doc is not None
            if category is not None and spec.category != category:
                continue
            if tags and not set(tags) & set(spec.series_tags):
                continue
            updated = int(datetime.fromisoformat(doc["last_updated_ts"]).timestamp())
            if min_updated_ts is not None and updated < min_updated_ts:
                continue
            out.append(doc)
        return out

    def event(self, event_ticker: str) -> dict[str, Any] | None:
        """``EventData`` (without ``markets``), or None if unknown."""
        ev = self.event_info(event_ticker)
        if ev is None:
            return None
        spec = ev.series
        when = f"{MONTHS[ev.day.month - 1].title()} {ev.day.day}, {ev.day.year}"
        prep = "on"
        if spec.cadence == "monthly":
            when, prep = f"{MONTHS[ev.day.month - 1].title()} {ev.day.year}", "in"
        elif ev.hour is not None:
            when = f"{when} at {ev.hour:02d}:00"
        return {
            "event_ticker": ev.event_ticker,
            "series_ticker": spec.ticker,
            "title": f"{_what(spec)} in {spec.city} {prep} {when}?",
            "sub_title": f"On {when}",
            "collateral_return_type": "binary",
            "mutually_exclusive": spec.kind != "rain",
            "category": spec.category,
            "strike_date": iso(ev.close_ts),
            "available_on_brokers": False,
            "settlement_sources": [
                {"name": f"NWS climate report, {spec.city}", "url": "https://www.weather.gov/"}
            ],
            "last_updated_ts": iso(ev.open_ts - 86400),
        }

    def series_events(self, series: str) -> list[dict[str, Any]]:
        """All events of a series (newest first), without markets."""
        if series not in self._series:
            return []
        return [e for e in (self.event(t) for t in self.event_tickers(series)) if e is not None]

    def market(self, ticker: str) -> dict[str, Any] | None:
        """``Market`` object of the live and historical routes, or None if unknown."""
        m = self.market_info(ticker)
        return None if m is None else self._market_json(m)

    def markets(self, event_ticker: str, include_historical: bool = True) -> list[dict[str, Any]]:
        """The event's ``Market`` objects (the live routes use include_historical=False)."""
        ev = self.event_info(event_ticker)
        if ev is None:
            return []
        return [self._market_json(m) for m in ev.markets if include_historical or self.is_live(m)]

    def _market_json(self, m: MarketInfo) -> dict[str, Any]:
        status = self.market_status(m)
        rng = random.Random(f"{self.config.seed}:summary:{m.ticker}")
        known = status in ("determined", "finalized")
        bid = rng.randrange(1, 90) * 10_000
        ask = bid + rng.randrange(1, 5) * 10_000
        vol = rng.randrange(0, 500_000)
        step = {10_000: "linear_cent", 100: "deci_cent"}.get(m.tick, "micro_cent")
        out: dict[str, Any] = {
            "ticker": m.ticker,
            "event_ticker": m.event_ticker,
            "market_type": "binary",
            "title": m.yes_sub_title,
            "subtitle": m.yes_sub_title,
            "yes_sub_title": m.yes_sub_title,
            "no_sub_title": m.yes_sub_title,
            "created_time": iso(m.open_ts - 2 * 86400),
            "updated_time": iso(m.open_ts - 2 * 86400),
            "open_time": iso(m.open_ts),
            "close_time": iso(m.close_ts),
            "expected_expiration_time": iso(m.settlement_ts - 3600),
            "expiration_time": iso(m.latest_expiration_ts),
            "latest_expiration_time": iso(m.latest_expiration_ts),
            "settlement_timer_seconds": 3600,
            "status": status,
            "notional_value_dollars": "1.0000",
            "yes_bid_dollars": fmt_dollars(bid),
            "yes_ask_dollars": fmt_dollars(ask),
            "no_bid_dollars": fmt_dollars(MICRO - ask),
            "no_ask_dollars": fmt_dollars(MICRO - bid),
            "yes_bid_size_fp": fmt_count(rng.randrange(0, 100_000)),
            "yes_ask_size_fp": fmt_count(rng.randrange(0, 100_000)),
            "last_price_dollars": fmt_dollars(bid),
            "previous_yes_bid_dollars": fmt_dollars(bid),
            "previous_yes_ask_dollars": fmt_dollars(ask),
            "previous_price_dollars": fmt_dollars(bid),
            "volume_fp": fmt_count(vol),
            "volume_24h_fp": fmt_count(vol // 3),
            "open_interest_fp": fmt_count(vol // 2),
            "liquidity_dollars": "0.0000",
            "result": ("yes" if m.result_yes else "no") if known else "",
            "can_close_early": True,
            "expiration_value": m.expiration_value if known else "",
            "rules_primary": f"If {m.yes_sub_title}, then the market resolves to Yes.",
            "rules_secondary": "Settles on the National Weather Service climate report.",
            "price_level_structure": step,
            "price_ranges": [{"start": "0.0000", "end": "1.0000", "step": fmt_dollars(m.tick)}],
            "strike_type": m.strike_type,
        }
        if m.floor_strike is not None:
            out["floor_strike"] = m.floor_strike
        if m.cap_strike is not None:
            out["cap_strike"] = m.cap_strike
        if known:
            out["settlement_value_dollars"] = "1.0000" if m.result_yes else "0.0000"
        if status == "finalized":
            out["settlement_ts"] = iso(m.settlement_ts)
        return out

    # --- candles -----------------------------------------------------------------

    def minutes(self, ticker: str) -> Series:
        """The market's whole-life 1-minute columns (not cut at ``now``)."""
        m = self.market_info(ticker)
        if m is None:
            raise KeyError(ticker)
        cfg = self.config
        params = CandleParams(
            ticker=m.ticker,
            open_ts=m.open_ts,
            close_ts=m.close_ts,
            tick=m.tick,
            result_yes=m.result_yes,
            start_prob=m.start_prob,
            seed=cfg.seed,
            missing_minute_rate=cfg.missing_minute_rate,
            no_trade_rate=cfg.no_trade_rate,
            null_book_rate=cfg.null_book_rate,
            sparse=self.is_sparse(ticker),
        )
        return self._minutes.get(ticker, lambda: generate_minutes(params))

    def is_sparse(self, ticker: str) -> bool:
        """Whether the market is illiquid (``sparse_market_rate``), seeded per ticker."""
        rate = self.config.sparse_market_rate
        return rate > 0 and random.Random(f"{self.config.seed}:sparse:{ticker}").random() < rate

    def _served(self, ticker: str, period: int) -> tuple[list[int], list[Candle]]:
        """(end_period_ts list, candle list) as served now; shared, do not mutate."""
        if period not in PERIODS:
            raise ValueError(f"period must be one of {PERIODS}")
        full = self.minutes(ticker)
        published = self.now_ts - self.config.publication_delay_s
        n_now = int(np.searchsorted(full.ts, published, side="right"))

        def build() -> tuple[list[int], list[Candle]]:
            series = aggregate(full.take(np.arange(n_now)), period)
            return series.ts.tolist(), live_candles(series, self.config.legacy_fields)

        return self._candles.get((ticker, period, n_now), build)

    def candles_in(
        self, ticker: str, period: int, start_ts: int | None = None, end_ts: int | None = None
    ) -> list[Candle]:
        """Live-shape candles with end_period_ts in [start_ts, end_ts] (shared objects)."""
        ts, candles = self._served(ticker, period)
        lo = 0 if start_ts is None else bisect.bisect_left(ts, start_ts)
        hi = len(ts) if end_ts is None else bisect.bisect_right(ts, end_ts)
        return candles[lo:hi]

    def candles(
        self, ticker: str, period: int = 1, start_ts: int | None = None, end_ts: int | None = None
    ) -> list[Candle]:
        """Ground truth: the market's candles exactly as the live routes serve them.

        Regardless of whether the market is historical now; cut at ``now`` (minus
        ``publication_delay_s``). A copy: callers may mutate it.
        """
        return _copy(self.candles_in(ticker, period, start_ts, end_ts))

    def historical_candles(
        self, ticker: str, period: int = 1, start_ts: int | None = None, end_ts: int | None = None
    ) -> list[Candle]:
        """Ground truth in the ``MarketCandlestickHistorical`` shape."""
        return [to_historical(c) for c in self.candles_in(ticker, period, start_ts, end_ts)]

    def latest_before(self, ticker: str, period: int, start_ts: int) -> Candle | None:
        """Synthetic ``include_latest_before_start`` candle, or None without history.

        Projected to the first period boundary at or after ``start_ts``.
        """
        before = self.candles_in(ticker, period, None, start_ts - 1)
        if not before:
            return None
        p = period * 60
        boundary = -(-start_ts // p) * p
        return synthetic_before(before[-1], boundary, self.config.legacy_fields)

    def event_candles(
        self, event_ticker: str, start_ts: int, end_ts: int, period: int, cap: int | None = None
    ) -> EventCandles:
        """Ground truth of the event candlesticks route (live markets only, capped).

        Follows the open-point switches: what the cap counts, which way a capped page
        pages, what an uncapped page says in ``adjusted_end_ts`` and which markets
        ``market_tickers`` lists.
        """
        cfg = self.config
        cap = cfg.candle_cap if cap is None else cap
        markets = self.live_markets(event_ticker)
        lists = [self.candles_in(m.ticker, period, start_ts, end_ts) for m in markets]
        backward = cfg.paging_direction == "backward"
        if cfg.event_cap_counts == "requested":
            kept, cut = cut_requested(lists, start_ts, end_ts, period, cap, backward)
        else:
            kept, cut = cut_by_cap(lists, cap, backward)
        adjusted: int
        if cut is not None and backward:
            served = [c["end_period_ts"] for cs in kept for c in cs]
            adjusted = min(served) if served else cut
        elif cut is not None:
            adjusted = cut
        elif cfg.uncapped_adjusted_end == "end_ts":
            adjusted = end_ts
        elif cfg.uncapped_adjusted_end == "last_candle":
            adjusted = max((c["end_period_ts"] for cs in kept for c in cs), default=start_ts)
        elif cfg.uncapped_adjusted_end == "zero":
            adjusted = 0
        else:
            adjusted = end_ts
        tickers = [m.ticker for m in markets]
        if cfg.market_tickers_scope == "with_candles":
            pairs = [(t, cs) for t, cs in zip(tickers, kept, strict=True) if cs]
            tickers, kept = [t for t, _ in pairs], [cs for _, cs in pairs]
        omit = cut is None and cfg.uncapped_adjusted_end == "absent"
        return EventCandles(tickers, kept, adjusted, capped=cut is not None, omit_adjusted_end=omit)

    def period_end(self, ts: int, period: int) -> int:
        """End of the UTC-aligned period of ``period`` minutes holding minute ``ts``."""
        return int(period_end(np.array([ts], dtype=np.int64), period * 60)[0])


def _copy(candles: Iterable[Candle]) -> list[Candle]:
    return [{k: (dict(v) if isinstance(v, dict) else v) for k, v in c.items()} for c in candles]
