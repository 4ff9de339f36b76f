"""Configuration of the simulated Kalshi world and of the server that serves it.

Plain frozen dataclasses: a test builds one, hands it to ``SimServer`` or
``run_sim_in_thread``, and the same config always yields the same world (the seed
drives every random choice, the wall clock only the default ``now``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

SeriesKind = Literal["high", "low", "rain"]
Cadence = Literal["daily", "hourly", "monthly"]
#: Kalshi's category of the weather series (``GET /series?category=...``).
WEATHER = "Climate and Weather"

#: Every fault kind the server can inject (random or scripted).
FaultKind = Literal[
    "500",  # HTTP 500 with an ``{"error": ...}`` body
    "502",
    "503",
    "429",  # HTTP 429 exactly like the rate limiter's
    "reset",  # the connection is dropped without any response
    "slow",  # the answer comes after ``FaultConfig.slow_seconds``
    "truncated",  # status 200, JSON body cut in half (Content-Length matches the cut)
    "invalid_json",  # status 200, an HTML body labelled application/json
    "wrong_event",  # status 200, a valid page for another event / market
    "stuck_end",  # status 200, event candlesticks with adjusted_end_ts == start_ts
    "bad_price",  # status 200, one candle price served as "1.2500" (outside [0, 1] dollars)
    "number_value",  # status 200, one candle count served as a JSON number, not a string
]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "500",
    "502",
    "503",
    "429",
    "reset",
    "slow",
    "truncated",
    "invalid_json",
    "wrong_event",
    "stuck_end",
    "bad_price",
    "number_value",
)

SeriesListFilter = Literal["applied", "ignored"]
UncappedAdjustedEnd = Literal["end_ts", "last_candle", "zero", "absent"]
MarketTickersScope = Literal["all_markets", "with_candles"]
EventCapCounts = Literal["returned", "requested"]
PagingDirection = Literal["forward", "backward"]
Schedule = Literal["legacy", "weather"]
OverCap = Literal["400", "truncated", "served"]
NestedOfHistorical = Literal["absent", "empty", "listed"]

#: The switches that answer the points the spec leaves open (see ``server.py``), by
#: ``SimConfig`` field name; ``SimConfig.switches()`` reads them back.
SWITCHES: tuple[str, ...] = (
    "uncapped_adjusted_end",
    "market_tickers_scope",
    "event_cap_counts",
    "paging_direction",
    "publication_delay_s",
    "schedule",
    "sparse_market_rate",
    "historical_over_cap",
    "batch_over_cap",
    "batch_serves_historical",
    "historical_series_filter",
    "events_list_drops_historical",
    "nested_markets_of_historical_event",
    "series_list_filter",
)


@dataclass(frozen=True)
class SeriesSpec:
    """One simulated series: its city and zone, what its markets are about, how often.

    Event tickers follow the cadence: ``KXHIGHNY-25NOV20`` (daily, one event a local
    day), ``KXTEMPNYCH-25NOV2014`` (hourly: the temperature at 14:00 local, one event for
    each hour of ``hours``), ``KXRAINNYCM-25NOV`` (monthly). The schedule of each cadence
    is in ``model.py`` (``World._times``).
    """

    ticker: str
    tz: str
    """IANA zone of the city: every local time of the schedule is in it."""
    city: str
    kind: SeriesKind = "high"
    """``high``/``low``: a mutually exclusive temperature ladder; ``rain``: independent
    thresholds."""
    cadence: Cadence = "daily"
    category: str = WEATHER
    """What ``GET /series`` answers as the series' ``category`` (and filters on)."""
    tags: tuple[str, ...] = ()
    """The series' ``tags``; empty: one tag from the kind (``Temperature``, ``Rain``)."""
    title: str | None = None
    """The series' title; None: made from the kind, cadence and city."""
    hours: tuple[int, ...] = tuple(range(24))
    """Hourly cadence: the local hours that have an event each day."""

    def __post_init__(self) -> None:
        if not self.hours or any(not 0 <= h <= 23 for h in self.hours):
            raise ValueError("hours must be local hours 0-23, at least one")
        object.__setattr__(self, "hours", tuple(sorted(set(self.hours))))

    @property
    def series_tags(self) -> list[str]:
        """The ``tags`` served: the given ones, else one from the kind."""
        if self.tags:
            return list(self.tags)
        return ["Rain"] if self.kind == "rain" else ["Temperature"]


DEFAULT_SERIES: tuple[SeriesSpec, ...] = (
    SeriesSpec("KXHIGHNY", "America/New_York", "New York City"),
    SeriesSpec("KXHIGHCHI", "America/Chicago", "Chicago"),
    SeriesSpec("KXHIGHMIA", "America/New_York", "Miami"),
    SeriesSpec("KXHIGHAUS", "America/Chicago", "Austin"),
    SeriesSpec("KXHIGHDEN", "America/Denver", "Denver"),
    SeriesSpec("KXHIGHLAX", "America/Los_Angeles", "Los Angeles"),
    SeriesSpec("KXRAINNYC", "America/New_York", "New York City", "rain"),
)

#: A category backfill's world: daily highs and lows, an hourly and a monthly series, a
#: city outside the extractor's zone table (Honolulu: none of Kalshi's weather cities,
#: and an offset no table city has), and a series of another category that a category
#: filter must leave out. Tests take a few of these; every one is a plain SeriesSpec.
CATEGORY_SERIES: tuple[SeriesSpec, ...] = (
    SeriesSpec("KXHIGHNY", "America/New_York", "New York City"),
    SeriesSpec("KXHIGHCHI", "America/Chicago", "Chicago"),
    SeriesSpec("KXLOWTNYC", "America/New_York", "New York City", "low"),
    SeriesSpec("KXTEMPNYCH", "America/New_York", "New York City", cadence="hourly"),
    SeriesSpec("KXRAINNYCM", "America/New_York", "New York City", "rain", cadence="monthly"),
    SeriesSpec("KXHIGHTHNL", "Pacific/Honolulu", "Honolulu"),
    SeriesSpec(
        "KXINXD",
        "America/New_York",
        "New York City",
        category="Financials",
        tags=("S&P",),
        title="S&P 500 daily close",
    ),
)


def _utc_minute_now() -> datetime:
    """Wall clock rounded down to the minute, so candles end on whole minutes."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


@dataclass(frozen=True)
class FaultConfig:
    """Random fault probabilities (each in [0, 1], summing to at most 1).

    One uniform draw per eligible request (a request whose path contains one of
    ``routes``) picks at most one fault, from a ``random.Random`` seeded by the world
    seed, so the sequence of faults is reproducible for a sequential client.
    """

    p_500: float = 0.0
    p_502: float = 0.0
    p_503: float = 0.0
    p_429: float = 0.0
    p_reset: float = 0.0
    p_slow: float = 0.0
    p_truncated: float = 0.0
    p_invalid_json: float = 0.0
    p_wrong_event: float = 0.0
    p_stuck_end: float = 0.0
    p_bad_price: float = 0.0
    p_number_value: float = 0.0
    slow_seconds: float = 5.0
    """How long a ``slow`` answer sleeps before it is served normally."""
    force_429_every: int | None = None
    """Every N-th eligible request answers 429 (counted per server, after scripts)."""
    routes: tuple[str, ...] = ("/candlesticks",)
    """Random faults only hit paths containing one of these substrings."""

    def probabilities(self) -> tuple[tuple[FaultKind, float], ...]:
        """The (kind, probability) bands in the fixed order used by the draw."""
        return (
            ("500", self.p_500),
            ("502", self.p_502),
            ("503", self.p_503),
            ("429", self.p_429),
            ("reset", self.p_reset),
            ("slow", self.p_slow),
            ("truncated", self.p_truncated),
            ("invalid_json", self.p_invalid_json),
            ("wrong_event", self.p_wrong_event),
            ("stuck_end", self.p_stuck_end),
            ("bad_price", self.p_bad_price),
            ("number_value", self.p_number_value),
        )

    def __post_init__(self) -> None:
        probs = [p for _, p in self.probabilities()]
        if any(p < 0 or p > 1 for p in probs) or sum(probs) > 1 + 1e-9:
            raise ValueError("fault probabilities must be in [0, 1] and sum to <= 1")
        if self.force_429_every is not None and self.force_429_every < 1:
            raise ValueError("force_429_every must be >= 1")


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes the simulated world and server.

    ``first_date``/``last_date`` default (when None) to ``now - 119 days`` and
    ``now + 1 day``: with the default 90-day cutoff that gives historical, live
    settled, open and not-yet-open events. ``__post_init__`` fills them in, so after
    construction they are always dates.
    """

    seed: int = 0
    series: tuple[SeriesSpec, ...] = DEFAULT_SERIES
    first_date: date | None = None
    """Date of the first event (local calendar date of the series), inclusive."""
    last_date: date | None = None
    """Date of the last event, inclusive."""
    now: datetime = field(default_factory=_utc_minute_now)
    """The simulated present (tz-aware). Candles never end after it."""
    markets_per_event: int = 6
    candle_cap: int = 5000
    """Aggregate cap of the event candlesticks route, summed over the event's markets."""
    batch_candle_cap: int = 10_000
    """Cap of ``GET /markets/candlesticks`` over all requested markets."""
    batch_max_tickers: int = 100
    historical_cutoff_days: float = 90.0
    """Markets settled before ``now - this`` are historical (unless a cutoff is set)."""
    rate_limit_rps: float | None = None
    """Requests per second of the token bucket; None = unlimited."""
    burst_seconds: float = 2.0
    """Bucket capacity in seconds of budget (Basic/Advanced tiers hold 2 s)."""
    missing_minute_rate: float = 0.05
    """Share of minutes (outside the maintenance pause) with no candle at all."""
    no_trade_rate: float = 0.6
    """Share of served minutes without trades (``price`` holds only previous_dollars)."""
    null_book_rate: float = 0.0
    """Opt-in, breaks the spec: share of minutes with null yes_bid/yes_ask OHLC."""
    subcent_market_rate: float = 0.25
    """Share of markets quoted below a cent (0.0001 or 0.000001 ticks)."""
    legacy_fields: bool = False
    """Also emit the pre-March-2026 integer-cent twins and integer volume/open_interest."""
    open_jitter_rate: float = 0.3
    """Share of markets whose open_time is 1-7 minutes after 10:00 local."""
    faults: FaultConfig = field(default_factory=FaultConfig)

    # --- switches: one answer per point the spec leaves open (see SWITCHES) ---------
    uncapped_adjusted_end: UncappedAdjustedEnd = "end_ts"
    """``adjusted_end_ts`` of an event page that was NOT capped: the requested end_ts,
    the largest end_period_ts served (start_ts if none), 0, or no key at all."""
    market_tickers_scope: MarketTickersScope = "all_markets"
    """Event pages list every live market, or only those with a candle in the page."""
    event_cap_counts: EventCapCounts = "returned"
    """The event cap counts candles returned, or candidates requested (live markets x
    periods in the range; over the cap the range is cut at whole periods)."""
    paging_direction: PagingDirection = "forward"
    """``backward``: a capped event page holds the candles nearest end_ts and its
    adjusted_end_ts is the earliest of them (outside [start_ts, adjusted_end_ts])."""
    publication_delay_s: int = 0
    """A candle ending at t is served only once now >= t + this (late last candles)."""
    schedule: Schedule = "legacy"
    """``legacy``: open 10:00 local the day before, close 23:59 local. ``weather`` (the
    recorded 2026 answers): open 14:00Z the day before, close at 23:59 local STANDARD
    time, also in summer (04:59Z Eastern, 05:59Z Central ...)."""
    sparse_market_rate: float = 0.0
    """Share of illiquid markets: candles only in a few rare bursts."""
    market_candle_cap: int = 5000
    """Requested-candle cap of the per-market live and historical routes."""
    historical_over_cap: OverCap = "400"
    """Per-market live and historical routes over ``market_candle_cap`` requested: the
    real 400, a page cut to the first ``market_candle_cap`` periods, or everything."""
    batch_over_cap: OverCap = "400"
    """Batch route over ``batch_candle_cap`` requested (tickers x periods): the real
    400, a page cut at whole timestamps to the cap, or everything."""
    batch_serves_historical: bool = False
    """The batch route also answers for historical markets (live-shaped candles)."""
    historical_series_filter: bool = True
    """False: ``GET /historical/markets?series_ticker=`` answers 400."""
    events_list_drops_historical: bool = False
    """True: ``GET /events`` leaves out events whose markets are all historical."""
    nested_markets_of_historical_event: NestedOfHistorical = "absent"
    """With ``with_nested_markets``, an all-historical event has no ``markets`` key,
    ``"markets": []``, or its historical markets listed anyway."""
    series_list_filter: SeriesListFilter = "applied"
    """``GET /series`` applies its ``category``/``tags`` filters, or ignores them and
    answers every series (a server that does not know them)."""

    def switches(self) -> dict[str, object]:
        """Every open-point switch and its value, in ``SWITCHES`` order."""
        return {name: getattr(self, name) for name in SWITCHES}

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("SimConfig.now must be timezone-aware")
        object.__setattr__(self, "now", self.now.astimezone(UTC))
        today = self.now.date()
        if self.last_date is None:
            object.__setattr__(self, "last_date", today + timedelta(days=1))
        if self.first_date is None:
            object.__setattr__(self, "first_date", today - timedelta(days=119))
        assert self.first_date is not None and self.last_date is not None
        if self.first_date > self.last_date:
            raise ValueError("first_date must be on or before last_date")
        if self.markets_per_event < 2:
            raise ValueError("markets_per_event must be >= 2 (two tails)")
        if self.candle_cap < 2 * self.markets_per_event:
            # With whole-timestamp cuts a smaller cap could return one timestamp per
            # page forever (the next page starts at adjusted_end_ts): no progress.
            raise ValueError("candle_cap must be >= 2 * markets_per_event")
        if self.rate_limit_rps is not None and self.rate_limit_rps <= 0:
            raise ValueError("rate_limit_rps must be > 0 or None")
        if self.publication_delay_s < 0:
            raise ValueError("publication_delay_s must be >= 0")
        if self.market_candle_cap < 1:
            raise ValueError("market_candle_cap must be >= 1")
        tickers = [s.ticker for s in self.series]
        if len(set(tickers)) != len(tickers) or any("-" in t for t in tickers):
            raise ValueError("series tickers must be unique and contain no '-'")
        for rate in (
            self.missing_minute_rate,
            self.no_trade_rate,
            self.null_book_rate,
            self.subcent_market_rate,
            self.open_jitter_rate,
            self.sparse_market_rate,
        ):
            if not 0 <= rate <= 1:
                raise ValueError("rates must be in [0, 1]")

    @property
    def dates(self) -> tuple[date, date]:
        """(first_date, last_date), typed as dates (always set after construction)."""
        assert self.first_date is not None and self.last_date is not None
        return self.first_date, self.last_date
