"""Typed, frozen configuration of the extract stage; the CLI only builds these.

Everything a run depends on is here, so a test builds an :class:`ExtractConfig` and calls
the library exactly as the command line does. Validation happens on construction: a bad
ticker, date range, URL or rate fails before any request or file is touched.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
from schemas.series import SeriesSelection
from schemas.tickers import validate_event_ticker, validate_series_ticker

if TYPE_CHECKING:
    from schemas.archive import WindowKey

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


# --- time zones of the series --------------------------------------------------------------

#: The zone table shipped with the package: ``SERIES = "Zone/Name"`` lines (TOML), each
#: weather series' city. Users extend it with ``--series-tz`` or ``--series-tz-file``.
ZONES_FILE = "series_zones.toml"


def check_zone(name: str, series: str) -> str:
    """``name`` if IANA knows it (the tz database zoneinfo reads), else one InputError line."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"unknown time zone {name!r} for {series}: expected an IANA name "
            "such as America/Chicago"
        ) from None
    return name


def read_zone_file(text: str, where: str) -> dict[str, str]:
    """SERIES → zone from a zone file (``KXHIGHNY = "America/New_York"``, TOML): every
    ticker and zone checked, so a typo is refused here rather than met mid-run."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f'{where}: not a zone file (SERIES = "Zone/Name" lines): {e}') from None
    out: dict[str, str] = {}
    for series, zone in doc.items():
        validate_series_ticker(series)
        if not isinstance(zone, str):
            raise InputError(f"{where}: {series} = {zone!r}: expected a zone name in quotes")
        out[series] = check_zone(zone, series)
    return out


@functools.cache
def builtin_zones() -> Mapping[str, str]:
    """The shipped table (:data:`ZONES_FILE`), read once."""
    text = resources.files("extract").joinpath(ZONES_FILE).read_text(encoding="utf-8")
    return MappingProxyType(read_zone_file(text, f"extract/{ZONES_FILE}"))


def zones_file(path: str | Path) -> dict[str, str]:
    """A user's zone file (``--series-tz-file``), in the shipped table's format."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read --series-tz-file {path}: {e.strerror}") from None
    return read_zone_file(text, str(path))


def parse_zone_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``--series-tz SERIES=ZONE`` values (each may hold several, comma-separated) as a
    mapping; a malformed pair, an unknown zone or a series given twice is an InputError."""
    out: dict[str, str] = {}
    for value in pairs:
        for pair in (p.strip() for p in value.split(",")):
            if not pair:
                continue
            series, sep, zone = (part.strip() for part in pair.partition("="))
            if not sep or not series or not zone or "=" in zone:
                raise InputError(
                    f"invalid --series-tz {pair!r}: expected SERIES=ZONE, "
                    "like KXHIGHTHNL=Pacific/Honolulu"
                )
            validate_series_ticker(series)
            if series in out:
                raise InputError(f"series {series} is given twice in --series-tz")
            out[series] = check_zone(zone, series)
    return out


def series_timezone(series: str, zones: Mapping[str, str] | None = None) -> ZoneInfo | None:
    """The series' zone: ``zones`` (the user's), else the shipped table; None if neither.

    No zone is guessed: a wrong one would fill as-of trade windows wrongly, and a stored
    window is never overwritten. A series without one is still backfilled with
    FULL_MARKET_WINDOW; TRADE_WINDOW_ONLY skips it, saying so.
    """
    name = (zones or {}).get(series) or builtin_zones().get(series)
    return None if name is None else ZoneInfo(name)


def no_zone_hint(series: str) -> str:
    """The one line that names a series without a zone and what to do."""
    return f"{series}: no time zone: give --series-tz {series}=ZONE"


# --- the as-of trade window ----------------------------------------------------------

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

    series: tuple[str, ...] = ()
    """Series tickers whose events are synced or extracted, in order (``("KXHIGHNY",)``;
    a single ticker may be given as a plain string: it becomes a one-ticker tuple)."""
    category: str | None = None
    """Instead of ``series``: every series of this category (``GET /series``), resolved
    when the run starts (:func:`extract.events.series.resolve_config`)."""
    tags: tuple[str, ...] = ()
    """With or instead of ``category``: only series with one of these tags."""
    db_url: str = field(default=DEFAULT_DATABASE_URL, metadata=URL)
    """SQLAlchemy URL of the database holding events, markets and checkpoints."""
    archive_dir: str | Path = DEFAULT_ARCHIVE_DIR
    """Root of the raw page archive."""
    api: ApiConfig = field(default_factory=ApiConfig)
    """Connection, rate and retry settings."""
    event: str | None = None
    """Only this event (of one of the series; must already be in kalshi_event)."""
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
    series_tz: Mapping[str, str] = field(default_factory=dict)
    """SERIES → IANA zone, over the shipped table (:func:`builtin_zones`): what
    ``--series-tz`` and ``--series-tz-file`` gave."""
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
        series = (self.series,) if isinstance(self.series, str) else tuple(self.series)
        tags = (self.tags,) if isinstance(self.tags, str) else tuple(self.tags)
        selection = SeriesSelection.parse(series, self.category, tags)
        if selection.empty:
            raise InputError("give --series (e.g. --series KXHIGHNY,KXHIGHCHI) or --category")
        object.__setattr__(self, "series", selection.tickers)
        object.__setattr__(self, "category", selection.category)
        object.__setattr__(self, "tags", selection.tags)
        validate_worker(self.worker_id, self.lease_seconds)
        if self.event is not None:
            validate_event_ticker(self.event)
            if series and not any(self.event.startswith(t + "-") for t in series):
                raise InputError(f"event {self.event} is not of series {', '.join(series)}")
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
        for ticker, zone in self.series_tz.items():  # fail early on a bad zone name
            validate_series_ticker(ticker)
            check_zone(zone, ticker)
        object.__setattr__(self, "series_tz", MappingProxyType(dict(self.series_tz)))

    def zone(self, series: str) -> ZoneInfo | None:
        """The series' local zone, or None (see :func:`series_timezone`)."""
        return series_timezone(series, self.series_tz)

    @property
    def selection(self) -> SeriesSelection:
        """The series asked for: tickers, or a category (and tags) still to resolve."""
        return SeriesSelection(self.series, self.category, self.tags)

    def with_series(self, series: Sequence[str]) -> ExtractConfig:
        """This run's settings for ``series`` (a category resolved, or one series of a run)."""
        return replace(self, series=tuple(series), category=None, tags=())

    @property
    def final_grace_s(self) -> int:
        """:attr:`final_grace_minutes` in seconds."""
        return self.final_grace_minutes * 60

    def current_time(self) -> datetime:
        """``now`` if set, else the wall clock (UTC)."""
        return self.now if self.now is not None else datetime.now(UTC)

    def window_key(self, event_ticker: str, series: str | None = None) -> WindowKey:
        """The archive/checkpoint key of one event window of this run; ``series`` defaults
        to the run's series whose ticker starts the event's (``KXHIGHNY-25NOV20``)."""
        if series is None:
            series = next((s for s in self.series if event_ticker.startswith(s + "-")), None)
            if series is None:
                raise InputError(f"event {event_ticker} is not of series {', '.join(self.series)}")
        from schemas.archive import WindowKey  # the archive's modules: not for -h (start-up)

        return WindowKey(series, event_ticker, self.period, self.window_policy)
