"""Typed, frozen configuration of the extract stage; the CLI only builds these.

Everything a run depends on is here, so a test builds an :class:`ExtractConfig` and calls
the library exactly as the command line does. Validation happens on construction: a bad
ticker, date range, URL or rate fails before any request or file is touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.archive import WindowKey
from schemas.core import (
    DEFAULT_ARCHIVE_DIR,
    DEFAULT_DATABASE_URL,
    DEFAULT_LEASE_SECONDS,
    PERIODS,
    WindowPolicy,
)
from schemas.errors import ConfigError, InputError
from schemas.processes import default_worker_id, validate_worker
from schemas.secrets import SECRET, URL, safe_repr
from schemas.tickers import validate_event_ticker, validate_series_ticker

DEFAULT_API_BASE = "https://api.elections.kalshi.com/trade-api/v2"

# --- rate limits ---------------------------------------------------------------------


class RouteChoice(StrEnum):
    """``extract candles --route``: which route fetches a window's live markets."""

    EVENT = "event"
    BATCH = "batch"
    AUTO = "auto"


@dataclass(frozen=True)
class RateLimit:
    """A Kalshi-shaped read budget: ``rps`` requests/s, a bucket of ``burst_seconds``."""

    rps: float
    """Sustained reads per second the client allows itself."""
    burst_seconds: float
    """How many seconds of budget the bucket holds (the burst after idling)."""

    def __post_init__(self) -> None:
        if not self.rps > 0 or not self.burst_seconds > 0:
            raise InputError(f"rate must be positive, got {self.rps} req/s")


#: Kalshi's read tiers (notes, "Rate limits"): Basic/Advanced hold two seconds, higher one.
TIERS: dict[str, RateLimit] = {
    "basic": RateLimit(20, 2.0),
    "advanced": RateLimit(30, 2.0),
    "expert": RateLimit(60, 1.0),
    "premier": RateLimit(100, 1.0),
    "paragon": RateLimit(200, 1.0),
    "prime": RateLimit(400, 1.0),
    "prestige": RateLimit(1000, 1.0),
}
#: Unsigned requests: Kalshi documents no limit. A public client measured 8-12 % of candle
#: requests answered 429 at 10 req/s and 1 in 1,344 at 4 req/s (``kalshi-api.md``): 5/s.
UNSIGNED_RATE = RateLimit(5, 2.0)


def choose_rate(rps: float | None, tier: str | None, signed: bool) -> RateLimit:
    """``--rps`` wins, then ``--tier``; else Basic for a signed client, 5/s unsigned."""
    if rps is not None and tier is not None:
        raise InputError("give either --rps or --tier, not both")
    if rps is not None:
        return RateLimit(rps, 2.0 if rps <= TIERS["advanced"].rps else 1.0)
    if tier is not None:
        try:
            return TIERS[tier.lower()]
        except KeyError:
            raise InputError(f"unknown tier {tier!r}: one of {', '.join(TIERS)}") from None
    return TIERS["basic"] if signed else UNSIGNED_RATE


# --- the as-of trade window ----------------------------------------------------------

#: IANA zone of each weather series' city (the event date is a local calendar date).
SERIES_TIMEZONES: dict[str, str] = {
    "KXHIGHNY": "America/New_York",
    "KXHIGHCHI": "America/Chicago",
    "KXHIGHMIA": "America/New_York",
    "KXHIGHAUS": "America/Chicago",
    "KXHIGHDEN": "America/Denver",
    "KXHIGHLAX": "America/Los_Angeles",
    "KXHIGHPHIL": "America/New_York",
    "KXRAINNYC": "America/New_York",
    "KXRAINCHI": "America/Chicago",
    "KXRAINMIA": "America/New_York",
    "KXRAINAUS": "America/Chicago",
    "KXRAINDEN": "America/Denver",
    "KXRAINLAX": "America/Los_Angeles",
    "KXRAINSEA": "America/Los_Angeles",
    "KXSNOWNYC": "America/New_York",
    "KXSNOWCHI": "America/Chicago",
    "KXSNOWDEN": "America/Denver",
    "KXSNOWBOS": "America/New_York",
}

_OFFSET_RE = re.compile(r"^([+-]?\d{1,3})d(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class DayOffset:
    """A local wall-clock time relative to the event date: ``-1d10:00`` = 10:00 the day before."""

    days: int
    """Whole days added to the event date (negative = before)."""
    at: time
    """Local wall-clock time on that day."""

    @classmethod
    def parse(cls, text: str) -> DayOffset:
        m = _OFFSET_RE.match(text.strip())
        if not m or int(m.group(2)) > 23 or int(m.group(3)) > 59:
            raise InputError(f"invalid day offset {text!r}: expected like -1d10:00 or 0d16:00")
        return cls(int(m.group(1)), time(int(m.group(2)), int(m.group(3))))

    def resolve(self, event_date: date, tz: ZoneInfo) -> datetime:
        """The UTC instant; zoneinfo applies the offset in force that day (DST-correct)."""
        day = event_date + timedelta(days=self.days)
        return datetime.combine(day, self.at, tzinfo=tz).astimezone(UTC)

    def __str__(self) -> str:
        return f"{self.days}d{self.at:%H:%M}"


@dataclass(frozen=True)
class AsOfPolicy:
    """How a trade window is filled when the API gives none (the window is then kept as-of)."""

    trade_start: DayOffset = field(default_factory=lambda: DayOffset(-1, time(10, 0)))
    """Start of trading relative to the event date, local time (default 10:00 the day before)."""
    trade_end: DayOffset = field(default_factory=lambda: DayOffset(0, time(16, 0)))
    """End of trading relative to the event date, local time (default 16:00 on the day)."""

    def window(self, event_date: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """(start, end) in UTC for an event on the local date ``event_date``."""
        start, end = (
            self.trade_start.resolve(event_date, tz),
            self.trade_end.resolve(event_date, tz),
        )
        if end <= start:
            raise InputError(f"trade window {self.trade_start}..{self.trade_end} is empty")
        return start, end


def series_timezone(series: str, override: str | None = None) -> ZoneInfo:
    """The series' zone: ``override``, else the built-in table.

    A series the table does not know needs ``--series-tz``: guessing a zone would fill
    its as-of trade windows wrongly, and a stored window is never overwritten.
    """
    name = override or SERIES_TIMEZONES.get(series)
    if name is None:
        raise InputError(
            f"series {series} has no built-in time zone: give --series-tz "
            "(the IANA zone of its event dates, e.g. America/Chicago)"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone {name!r} (expected an IANA name)") from None


# --- the API connection ---------------------------------------------------------------


def redact_api_base(url: str) -> str:
    """``url`` with the password of any ``user:password@`` part replaced by ``***``."""
    return re.sub(r"(//[^/@:]*):[^/@]*@", r"\1:***@", url)


def validate_api_base(url: str) -> str:
    """Return the base URL without a trailing slash, or raise ConfigError in one line."""
    parts = urlsplit(url.strip())
    shown = redact_api_base(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"invalid API base URL {shown!r}: expected http(s)://host/path, like {DEFAULT_API_BASE}"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"invalid API base URL {shown!r}: no query string or fragment")
    return url.strip().rstrip("/")


@dataclass(frozen=True)
class Credentials:
    """An API key for signed requests. ``repr`` shows neither the key id nor the key's path."""

    key_id: str = field(metadata=SECRET)
    """KALSHI-ACCESS-KEY header value."""
    private_key_path: Path = field(metadata=SECRET)
    """PEM file of the RSA private key (read once per run, never logged)."""

    __repr__ = safe_repr


@dataclass(frozen=True)
class ApiConfig:
    """How to talk to Kalshi: where, how fast, how patiently."""

    base_url: str = field(default=DEFAULT_API_BASE, metadata=URL)
    """Base URL up to and including ``/trade-api/v2``."""
    rate: RateLimit = UNSIGNED_RATE
    """Client-side token bucket shared by every concurrent request of the run."""
    timeout_s: float = 30.0
    """Total time allowed for one request (connect + answer), in seconds."""
    max_retries: int = 6
    """Retries after the first attempt for a retriable failure (429, 5xx, reset, bad body)."""
    backoff_base_s: float = 0.5
    """First backoff ceiling; doubles each retry, with full jitter."""
    backoff_max_s: float = 30.0
    """Upper bound of one backoff sleep."""
    credentials: Credentials | None = None
    """Sign requests with this key (RSA-PSS), or send them unsigned."""

    __repr__ = safe_repr  # a user:password@ in the base URL is masked

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", validate_api_base(self.base_url))
        if not self.timeout_s > 0:
            raise InputError("--timeout must be positive")
        if self.max_retries < 0:
            raise InputError("--max-retries must be 0 or more")
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            raise InputError("backoff bounds must satisfy 0 <= base <= max")

    @property
    def base_path(self) -> str:
        """The URL path of the base (``/trade-api/v2``): request paths are archived under it."""
        return urlsplit(self.base_url).path.rstrip("/")


# --- finality ---------------------------------------------------------------------------

#: Minutes after its markets close before a window is final (``--final-grace``). Candles
#: of a just-closed market may be published a little late; until the grace has passed
#: the window stays not final and its last pages are fetched again by the next run.
DEFAULT_FINAL_GRACE_MINUTES = 60

# --- several workers ------------------------------------------------------------------

# --- the stage --------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractConfig:
    """One extract run (``events`` or ``candles``): built by the CLI or by a test."""

    series: str
    """Series ticker whose events are synced or extracted (``KXHIGHNY``)."""
    db_url: str = field(default=DEFAULT_DATABASE_URL, metadata=URL)
    """SQLAlchemy URL of the database holding events, markets and checkpoints."""
    archive_dir: str | Path = DEFAULT_ARCHIVE_DIR
    """Root of the raw page archive."""
    api: ApiConfig = field(default_factory=ApiConfig)
    """Connection, rate and retry settings."""
    event: str | None = None
    """Only this event (must already be in kalshi_event)."""
    date_from: date | None = None
    """Only events whose local event date is on or after this day."""
    date_to: date | None = None
    """Only events whose local event date is on or before this day."""
    window_policy: WindowPolicy = WindowPolicy.FULL_MARKET_WINDOW
    """FULL_MARKET_WINDOW (market open to close) or TRADE_WINDOW_ONLY (the as-of window)."""
    period: int = 1
    """Candle period in minutes (1, 60 or 1440)."""
    concurrency: int = 4
    """Event windows fetched at once; they share one rate budget."""
    dry_run: bool = False
    """Print the plan and the expected request count; call no candle endpoint."""
    as_of: AsOfPolicy = field(default_factory=AsOfPolicy)
    """How ``events`` fills an empty trade window."""
    series_tz: str | None = None
    """IANA zone overriding :data:`SERIES_TIMEZONES` for this series."""
    now: datetime | None = None
    """The present, for tests against a simulated clock; None = the wall clock."""
    worker_id: str = field(default_factory=default_worker_id)
    """This process in window leases and ``kalshi_worker`` (default ``hostname:pid``)."""
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    """A claimed window stays ours this long without renewal: a killed worker's window
    is taken over by another once it passes. Renewed after every page and every
    heartbeat, so it only needs to exceed the longest stall (a request with its retries)."""
    final_grace_minutes: int = DEFAULT_FINAL_GRACE_MINUTES
    """A window is final only this long after its markets close (late candles); before,
    it is archived as not final and the next run fetches its last pages again."""
    shared_budget: bool = True
    """``api.rate`` is the budget of the API KEY, split evenly among the live extractors
    (``kalshi_worker``). False: it is this process's own rate (split it by hand)."""
    route: RouteChoice = RouteChoice.AUTO
    """Which route fetches the live markets (``candles --route``): ``event``, ``batch``,
    or ``auto`` (per window, the fewest requests by what the server has shown;
    :mod:`extract.plan.auto`)."""

    __repr__ = safe_repr  # the database password is masked

    def __post_init__(self) -> None:
        validate_series_ticker(self.series)
        validate_worker(self.worker_id, self.lease_seconds)
        if self.event is not None:
            validate_event_ticker(self.event)
            if not self.event.startswith(self.series + "-"):
                raise InputError(f"event {self.event} is not of series {self.series}")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise InputError(f"--from {self.date_from} is after --to {self.date_to}")
        if self.period not in PERIODS:
            raise InputError(f"period {self.period} is not one of 1, 60, 1440")
        if self.concurrency < 1:
            raise InputError("--concurrency must be at least 1")
        if self.final_grace_minutes < 0:
            raise InputError("--final-grace must be 0 or more minutes")
        if self.now is not None and self.now.tzinfo is None:
            raise InputError("now must be timezone-aware")
        object.__setattr__(self, "window_policy", WindowPolicy(self.window_policy))
        object.__setattr__(self, "route", RouteChoice(self.route))
        if self.series_tz is not None:
            series_timezone(self.series, self.series_tz)  # fail early on a bad zone name

    @property
    def tz(self) -> ZoneInfo:
        """The series' local zone (InputError for a series without one: see --series-tz)."""
        return series_timezone(self.series, self.series_tz)

    @property
    def final_grace_s(self) -> int:
        """:attr:`final_grace_minutes` in seconds."""
        return self.final_grace_minutes * 60

    def current_time(self) -> datetime:
        """``now`` if set, else the wall clock (UTC)."""
        return self.now if self.now is not None else datetime.now(UTC)

    def window_key(self, event_ticker: str) -> WindowKey:
        """The archive/checkpoint key of one event window of this run."""
        return WindowKey(self.series, event_ticker, self.period, self.window_policy)
