"""What one bench run measures, and on what: sizes, the simulated worlds, the database.

Every simulated world is pinned (seed, ``now``, dates), so the same sizes always give the
same candles: the load archive is cached under ``data/bench/archive-<hash>/`` and reused
while its world, and the archive format, stay the same.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path

from sqlalchemy.engine import make_url

from schemas.archive import ARCHIVE_VERSION
from schemas.secrets import URL, safe_repr
from tests.kalshi_sim import SimConfig
from tests.kalshi_sim.config import DEFAULT_SERIES, SeriesSpec

DEFAULT_DB_URL = "mysql+pymysql://root@127.0.0.1:3306/kalshi_bench"
DEFAULT_OUT_DIR = Path("data/bench")

SEED = 20251201
#: The simulated present: every bench event closed well before it, so every window is
#: final and the worlds do not depend on the wall clock.
SIM_NOW = datetime(2025, 12, 1, tzinfo=UTC)
LAST_EVENT_DAY = SIM_NOW.date() - timedelta(days=2)
#: No market is historical: the extractor archives the live event route only.
NO_CUTOFF_DAYS = 10_000.0

LOAD_SERIES = "KXHIGHNY"
RATE_SERIES = "KXHIGHDEN"
MEMORY_SERIES = "KXHIGHCHI"

#: The extract step's series: full pages (see :func:`full_page_world`).
FULL_PAGE_SERIES = "KXHIGHNY"
#: Kalshi's Basic tier: 20 reads/s, a bucket of two seconds (a burst of 40 after idling).
RATE_BUDGET_RPS = 20.0
RATE_BURST_S = 2.0
#: A smaller aggregate cap than Kalshi's 5,000 makes ~14 pages per event, so the rate run
#: is long enough in requests while the simulator stays far below a core at 20 req/s.
RATE_CANDLE_CAP = 1000
#: What the bulk extractions (load archive, memory runs) ask for: no client-side limit
#: worth the name; the simulator serves them unthrottled.
BULK_RPS = 1000.0


class BenchError(Exception):
    """The bench cannot run or a step failed; the message says which and where to look."""


@dataclass(frozen=True)
class Sizes:
    """How much each step does (``--quick`` and the smoke test shrink these)."""

    load_events: int
    """Events in the load archive: ~13,000 one-minute candles each (6 markets × ~38 h)."""
    rate_days: int
    """Event days the follow step fetches: ~14 pages an event at the reduced cap."""
    rate_warmup_s: float
    """Seconds after the first request that are not "steady" (the burst is spent)."""
    mem_short_days: int
    """Days of the short memory range (a month in the full run)."""
    mem_long_days: int
    """Days of the long memory range (a year in the full run)."""
    mem_markets: int
    """Markets per event in the memory world (6, as Kalshi's weather events)."""
    requests_days: int = 365
    """Events of the requests-vs-floor backfill (12 months; the last ~60 days live)."""
    reads_short_days: int = 30
    """Days of the short read range (export speed, grid and coverage memory)."""
    reads_days: int = 365
    """Days of the reads database (two series, 6-market events: ~10M candles a year)."""
    page_days: int = 150
    """Events of the extract step (full pages): the last two thirds live, 2 batch pages
    an event, the first third historical, 6 pages an event (~3 requests an event)."""
    series_days: int = 30
    """Days of the five-series run (rate across series, memory of five against one)."""

    def __post_init__(self) -> None:
        if (
            min(
                self.load_events,
                self.rate_days,
                self.page_days,
                self.mem_short_days,
                self.series_days,
            )
            < 1
        ):
            raise BenchError("sizes must be positive")
        if self.mem_long_days < self.mem_short_days:
            raise BenchError("the long memory range must be at least the short one")
        if not 1 <= self.reads_short_days <= self.reads_days:
            raise BenchError("the short read range must be within the reads database's days")
        if self.mem_markets < 2:
            raise BenchError("the simulator needs at least 2 markets per event")


PRESETS: dict[str, Sizes] = {
    # ~1.04M candles; extract ~2M candles in ~500 full pages (25 s at 20/s); a month
    # against a year.
    "full": Sizes(80, 90, 5.0, 30, 365, 6),
    # ~210k candles; ~200 full pages (10 s); a week against a month.
    "quick": Sizes(
        16,
        20,
        3.0,
        7,
        30,
        6,
        requests_days=120,
        reads_short_days=7,
        reads_days=30,
        page_days=60,
        series_days=10,
    ),
}


@dataclass(frozen=True)
class BenchConfig:
    """One run: which preset, the sizes after overrides, where results and data go."""

    mode: str
    sizes: Sizes
    db_url: str = field(default=DEFAULT_DB_URL, metadata=URL)
    out_dir: Path = DEFAULT_OUT_DIR
    keep_reads_db: bool = True
    """Keep the reads database for the next run (the smoke test drops it)."""

    __repr__ = safe_repr  # the database password is masked

    def __post_init__(self) -> None:
        check_bench_db_url(self.db_url)

    @property
    def db_name(self) -> str:
        name = make_url(self.db_url).database
        assert name is not None
        return name

    @property
    def server_url(self) -> str:
        """The same server without a database (to create and drop the bench's own)."""
        return make_url(self.db_url).set(database="").render_as_string(hide_password=False)


def check_bench_db_url(url: str) -> None:
    """The bench DROPS and recreates its database: refuse any name without ``bench``."""
    try:
        parsed = make_url(url)
    except Exception as e:
        raise BenchError(f"invalid --db URL: {e}") from None
    if parsed.get_backend_name() not in ("mysql", "mariadb"):
        raise BenchError("--db must be a MySQL/MariaDB URL (mysql+pymysql://...)")
    name = parsed.database or ""
    if "bench" not in name or not name.replace("_", "").isalnum():
        raise BenchError(
            f"--db database {name!r}: the bench drops and recreates it, so its name must "
            "contain 'bench' (letters, digits and _ only)"
        )


def env_db_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB_URL)


def days_back(days: int) -> tuple[date, date]:
    """(first, last) event days of a range of ``days`` days ending at LAST_EVENT_DAY."""
    return LAST_EVENT_DAY - timedelta(days=days - 1), LAST_EVENT_DAY


def load_world(sizes: Sizes) -> SimConfig:
    """The world whose events make the load archive (Kalshi's 5,000-candle cap)."""
    first, last = days_back(sizes.load_events)
    return SimConfig(
        seed=SEED,
        now=SIM_NOW,
        first_date=first,
        last_date=last,
        historical_cutoff_days=NO_CUTOFF_DAYS,
    )


def rate_world(sizes: Sizes) -> SimConfig:
    """The throttled world of the extract-rate run."""
    first, last = days_back(sizes.rate_days)
    return SimConfig(
        seed=SEED + 1,
        now=SIM_NOW,
        first_date=first,
        last_date=last,
        historical_cutoff_days=NO_CUTOFF_DAYS,
        candle_cap=RATE_CANDLE_CAP,
        rate_limit_rps=RATE_BUDGET_RPS,
        burst_seconds=RATE_BURST_S,
    )


def full_page_world(sizes: Sizes) -> SimConfig:
    """The throttled world of the extract step, with the pages real users get: Kalshi's
    weather schedule (a market open 39 hours, a candle in 95 % of its minutes), 6 markets
    an event, so a batch request fills its 10,000 requested candles (~6,600 returned,
    up to 4 MB of JSON) and a historical page holds one market's ~2,200 candles. The
    first third of the events is historical (settled before the cutoff)."""
    return throttled_weather_world(SEED + 3, sizes.page_days, live_share=Fraction(2, 3))


def throttled_weather_world(
    seed: int, days: int, *, live_share: Fraction, series: tuple[SeriesSpec, ...] | None = None
) -> SimConfig:
    """``days`` days of events on Kalshi's weather schedule, the newest ``live_share`` of
    them live and the rest historical, behind a Basic-tier token bucket (20 reads/s, two
    seconds of burst); ``series``: the simulator's default series when None."""
    first, last = days_back(days)
    return SimConfig(
        seed=seed,
        series=DEFAULT_SERIES if series is None else series,
        now=SIM_NOW,
        first_date=first,
        last_date=last,
        schedule="weather",
        historical_cutoff_days=max(2.0, (SIM_NOW.date() - last).days + float(days * live_share)),
        rate_limit_rps=RATE_BUDGET_RPS,
        burst_seconds=RATE_BURST_S,
    )


def memory_world(sizes: Sizes) -> SimConfig:
    """The world of the memory runs: long enough for the long range."""
    first, last = days_back(sizes.mem_long_days)
    return SimConfig(
        seed=SEED + 2,
        now=SIM_NOW,
        first_date=first,
        last_date=last,
        historical_cutoff_days=NO_CUTOFF_DAYS,
        markets_per_event=sizes.mem_markets,
    )


def archive_hash(world: SimConfig) -> str:
    """Names the cached archive: changes with the world or the archive format version."""
    text = f"v{ARCHIVE_VERSION}|{LOAD_SERIES}|{world!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def with_overrides(sizes: Sizes, **overrides: object) -> Sizes:
    """``sizes`` with every non-None override applied (validated again)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(sizes, **given)  # type: ignore[arg-type]
