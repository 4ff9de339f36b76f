"""A series outside the built-in zone table needs ``--series-tz`` (issue 15 item 8).

Its as-of trade windows are stored once and never overwritten, so a guessed zone would
stay wrong for good: ``extract events`` refuses (exit 2, one line) instead of guessing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from extract.cli import main
from extract.config import ExtractConfig, series_timezone
from schemas.db import make_engine
from schemas.errors import InputError
from schemas.tables import kalshi_event
from tests.kalshi_sim import SeriesSpec, SimConfig, run_sim_in_thread

#: Seattle: a weather city with no entry in extract.config.SERIES_TIMEZONES.
SEATTLE = SeriesSpec("KXHIGHSEA", "America/Los_Angeles", "Seattle")
SIM = SimConfig(
    seed=11,
    series=(SEATTLE,),
    now=datetime(2025, 11, 20, 15, 0, tzinfo=UTC),
    first_date=date(2025, 11, 9),
    last_date=date(2025, 11, 11),
    markets_per_event=2,
    historical_cutoff_days=3650,
)


def _events(db: str, base: str, *extra: str) -> Result:
    args = ["events", "--series", "KXHIGHSEA", "--db", db, "--api-base", base, *extra]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def test_unknown_series_without_series_tz_exits_2_and_stores_nothing(sqlite_url: str) -> None:
    with run_sim_in_thread(SIM) as sim:
        r = _events(sqlite_url, sim.base_url)
    assert r.exit_code == 2, r.output
    assert "series KXHIGHSEA has no built-in time zone: give --series-tz" in r.output
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(kalshi_event)).scalar_one() == 0
    engine.dispose()


def test_series_tz_fills_the_trade_window_in_that_zone(sqlite_url: str) -> None:
    with run_sim_in_thread(SIM) as sim:
        r = _events(sqlite_url, sim.base_url, "--series-tz", "America/Los_Angeles")
    assert r.exit_code == 0, r.output
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        row = conn.execute(
            select(kalshi_event).where(kalshi_event.c.event_ticker == "KXHIGHSEA-25NOV10")
        ).one()
    engine.dispose()
    # Hand-computed: 10:00 PST (UTC-8) on Nov 9 and 16:00 PST on Nov 10.
    assert _utc(row.trade_start_utc) == datetime(2025, 11, 9, 18, 0, tzinfo=UTC)
    assert _utc(row.trade_end_utc) == datetime(2025, 11, 11, 0, 0, tzinfo=UTC)


def test_series_timezone_has_no_silent_default() -> None:
    with pytest.raises(InputError, match="KXUNKNOWN has no built-in time zone"):
        series_timezone("KXUNKNOWN")
    assert series_timezone("KXUNKNOWN", "America/Denver").key == "America/Denver"
    assert series_timezone("KXHIGHCHI").key == "America/Chicago"


def test_candles_needs_no_zone() -> None:
    """Only ``events`` fills trade windows: other commands of such a series still build."""
    assert ExtractConfig(series="KXHIGHSEA").series_tz is None
