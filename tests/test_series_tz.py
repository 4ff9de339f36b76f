"""Time zones without a hand-kept list in code (issue 20 item 3).

The series → zone table is a data file shipped with the package; ``--series-tz
SERIES=ZONE`` and ``--series-tz-file`` extend it. FULL_MARKET_WINDOW needs no zone, so a
series outside the table is synced and backfilled; TRADE_WINDOW_ONLY names such a series
once and skips it. Expected times are computed by hand from the zone rules.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from extract.cli import main
from extract.config import (
    ExtractConfig,
    builtin_zones,
    parse_zone_pairs,
    series_timezone,
    zones_file,
)
from schemas.db import make_engine
from schemas.errors import InputError
from schemas.tables import kalshi_event
from tests.kalshi_sim import SeriesSpec, SimConfig, run_sim_in_thread

REPO = Path(__file__).resolve().parents[1]
#: Honolulu: no Kalshi weather city, so outside the shipped table.
HONOLULU = SeriesSpec("KXHIGHTHNL", "Pacific/Honolulu", "Honolulu")
NEW_YORK = SeriesSpec("KXHIGHNY", "America/New_York", "New York City")
SIM = SimConfig(
    seed=11,
    series=(NEW_YORK, HONOLULU),
    now=datetime(2025, 11, 20, 15, 0, tzinfo=UTC),
    first_date=date(2025, 11, 9),
    last_date=date(2025, 11, 11),
    markets_per_event=2,
    historical_cutoff_days=3650,
)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def events_rows(db: str) -> dict[str, tuple[object, ...]]:
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            t = kalshi_event.c
            rows = conn.execute(select(t.event_ticker, t.event_date, t.trade_start_utc))
            return {r.event_ticker: (r.event_date, r.trade_start_utc) for r in rows}
    finally:
        engine.dispose()


# --- the shipped table --------------------------------------------------------------------


def test_the_table_is_a_data_file_shipped_with_the_package() -> None:
    text = (REPO / "extract" / "series_zones.toml").read_text()
    assert dict(builtin_zones()) == tomllib.loads(text)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "series_zones.toml" in pyproject["tool"]["setuptools"]["package-data"]["extract"]
    assert "SERIES_TIMEZONES" not in (REPO / "extract" / "config.py").read_text()


def test_the_table_covers_the_weather_cities() -> None:
    zones = builtin_zones()
    first = ("NY", "CHI", "MIA", "AUS", "DEN", "LAX", "PHIL")
    newer = ("ATL", "BOS", "DAL", "DC", "HOU", "LV", "MIN", "NOLA", "OKC", "PHX", "SATX",
             "SEA", "SFO")  # fmt: skip
    assert all(f"KXHIGH{c}" in zones for c in first)
    assert all(f"KXHIGHT{c}" in zones for c in newer)
    assert all(f"KXLOWT{c}" in zones for c in ("NYC", *first[1:], *newer))
    # The 18 of the code's former table, unchanged.
    assert zones["KXRAINSEA"] == "America/Los_Angeles" and zones["KXSNOWBOS"] == "America/New_York"
    # Phoenix keeps standard time all year: 10:00 local is 17:00Z in July and in January.
    tz = series_timezone("KXHIGHTPHX")
    assert tz is not None
    for day in (date(2025, 7, 4), date(2025, 1, 4)):
        assert datetime(day.year, day.month, day.day, 10, tzinfo=tz).astimezone(UTC).hour == 17
    assert series_timezone("KXHIGHTHNL") is None  # no guess


# --- the user's zones ---------------------------------------------------------------------


def test_series_tz_pairs_and_file(tmp_path: Path) -> None:
    assert parse_zone_pairs(["KXHIGHTHNL=Pacific/Honolulu", "A1=UTC,B2=Europe/Paris"]) == {
        "KXHIGHTHNL": "Pacific/Honolulu",
        "A1": "UTC",
        "B2": "Europe/Paris",
    }
    own = tmp_path / "zones.toml"
    own.write_text('KXHIGHTHNL = "Pacific/Honolulu"\n# a comment\nKXFOO = "Asia/Tokyo"\n')
    assert zones_file(own) == {"KXHIGHTHNL": "Pacific/Honolulu", "KXFOO": "Asia/Tokyo"}
    tz = series_timezone("KXHIGHTHNL", zones_file(own))
    assert tz is not None and tz.key == "Pacific/Honolulu"
    # The user's zone wins over the table's.
    tz = series_timezone("KXHIGHNY", {"KXHIGHNY": "America/Chicago"})
    assert tz is not None and tz.key == "America/Chicago"


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["America/Chicago"], "invalid --series-tz 'America/Chicago': expected SERIES=ZONE"),
        (["KXFOO="], "invalid --series-tz 'KXFOO=': expected SERIES=ZONE"),
        (["=UTC"], "invalid --series-tz '=UTC'"),
        (["KXFOO=UTC=UTC"], "invalid --series-tz 'KXFOO=UTC=UTC'"),
        (["KXFOO=Mars/Olympus"], "unknown time zone 'Mars/Olympus' for KXFOO"),
        (["KXFOO=UTC", "KXFOO=UTC"], "series KXFOO is given twice in --series-tz"),
        (["../x=UTC"], "invalid series ticker '../x'"),
    ],
)
def test_bad_series_tz_is_one_input_error(pairs: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_zone_pairs(pairs)


def test_a_bad_zone_file_names_itself(tmp_path: Path) -> None:
    bad = tmp_path / "zones.toml"
    bad.write_text("KXFOO = America/Chicago\n")  # no quotes
    with pytest.raises(InputError, match=f"{bad}: not a zone file"):
        zones_file(bad)
    bad.write_text('KXFOO = "Nowhere/City"\n')
    with pytest.raises(InputError, match="unknown time zone 'Nowhere/City' for KXFOO"):
        zones_file(bad)
    with pytest.raises(InputError, match="cannot read --series-tz-file"):
        zones_file(tmp_path / "missing.toml")


# --- a series outside the table -----------------------------------------------------------


def test_events_of_a_series_without_a_zone_are_synced_without_trade_windows(
    sqlite_url: str,
) -> None:
    with run_sim_in_thread(SIM) as sim:
        r = invoke("events", "--series", "KXHIGHTHNL", "--db", sqlite_url, "--api-base",
                   sim.base_url)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "KXHIGHTHNL: 3 events, 6 markets synced" in r.output
    assert "no time zone" in r.output
    rows = events_rows(sqlite_url)
    # The event date is the day the ticker names; no trade window without a zone.
    assert rows["KXHIGHTHNL-25NOV10"] == (date(2025, 11, 10), None)


def test_series_tz_fills_the_trade_window_in_that_zone(sqlite_url: str) -> None:
    with run_sim_in_thread(SIM) as sim:
        r = invoke(
            "events", "--series", "KXHIGHTHNL", "--series-tz", "KXHIGHTHNL=Pacific/Honolulu",
            "--db", sqlite_url, "--api-base", sim.base_url,
        )  # fmt: skip
    assert r.exit_code == 0, r.output
    start = events_rows(sqlite_url)["KXHIGHTHNL-25NOV10"][1]
    assert isinstance(start, datetime)
    # Hand-computed: 10:00 HST (UTC-10, no DST) on Nov 9.
    assert _utc(start) == datetime(2025, 11, 9, 20, 0, tzinfo=UTC)


def test_trade_window_only_names_the_zoneless_series_once_and_runs_the_others(
    sqlite_url: str, archive_dir: Path
) -> None:
    with run_sim_in_thread(SIM) as sim:
        base = ["--db", sqlite_url, "--api-base", sim.base_url]
        assert invoke("events", "--series", "KXHIGHNY,KXHIGHTHNL", *base).exit_code == 0
        r = invoke(
            "candles", "--series", "KXHIGHNY,KXHIGHTHNL", "--window-policy",
            "TRADE_WINDOW_ONLY", "--archive", str(archive_dir), *base,
        )  # fmt: skip
        candle_requests = [x.path for x in sim.counters.log if "candlesticks" in x.path]
    assert r.exit_code == 0, r.output
    hint = "KXHIGHTHNL: left out: no time zone: give --series-tz KXHIGHTHNL=ZONE"
    assert r.output.count(hint) == 1
    assert "KXHIGHNY: 3 windows: 3 done" in r.output
    assert candle_requests and not any("KXHIGHTHNL" in p for p in candle_requests)
    # Alone, the same series is bad input: one line, exit 2.
    with run_sim_in_thread(SIM) as sim:
        r = invoke(
            "candles", "--series", "KXHIGHTHNL", "--window-policy", "TRADE_WINDOW_ONLY",
            "--archive", str(archive_dir), "--db", sqlite_url, "--api-base", sim.base_url,
        )  # fmt: skip
    assert r.exit_code == 2
    assert r.output.strip() == "error: KXHIGHTHNL: no time zone: give --series-tz KXHIGHTHNL=ZONE"


def test_full_market_window_needs_no_zone() -> None:
    """Only TRADE_WINDOW_ONLY and the event dates of dateless tickers read a zone."""
    config = ExtractConfig(series="KXHIGHTHNL")
    assert config.series == ("KXHIGHTHNL",) and config.zone("KXHIGHTHNL") is None
