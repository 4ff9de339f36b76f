"""Done when (issue 20 item 6): ONE ``make backfill CATEGORY="Climate and Weather" FROM= TO=``
against the simulator fills every series of the category into MariaDB, equal to the
simulator's truth, the series outside the zone table and the monthly one included; the
rerun changes nothing.

The exact command a user types runs (``make``, then the tools as subprocesses); the truth
is the simulator's own candles of the events it dates in [FROM, TO].
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from schemas.db import make_engine
from tests.kalshi_sim import CATEGORY_SERIES, WEATHER, SimConfig, World, run_sim_in_thread
from tests.test_load_support import Truth, full_rows, stored, truth_row

REPO = Path(__file__).resolve().parents[1]
FROM, TO = date(2025, 11, 28), date(2025, 11, 30)
BY_TICKER = {s.ticker: s for s in CATEGORY_SERIES}
#: The category's world: the hourly series with three events a day to keep it small.
SIM = SimConfig(
    seed=41,
    series=tuple(
        replace(s, hours=(8, 14, 20)) if s.cadence == "hourly" else s for s in CATEGORY_SERIES
    ),
    now=datetime(2025, 12, 3, 12, 0, tzinfo=UTC),
    first_date=date(2025, 11, 26),
    last_date=date(2025, 12, 2),
    markets_per_event=2,
    schedule="weather",
    historical_cutoff_days=3650,
    sparse_market_rate=0.3,
)

pytestmark = pytest.mark.mariadb


def selected_events(world: World) -> dict[str, list[str]]:
    """The simulator's events of each weather series dated in [FROM, TO]: a daily or hourly
    event by its day, the monthly one by the month's last day (its strike date's day)."""
    out: dict[str, list[str]] = {}
    for spec in world.config.series:
        if spec.category != WEATHER:
            continue
        events = world.event_tickers(spec.ticker)
        infos = [world.event_info(t) for t in events]
        out[spec.ticker] = [i.event_ticker for i in infos if i and FROM <= i.day <= TO]
    return out


def truth_of(world: World, events: dict[str, list[str]]) -> Truth:
    truth: Truth = {}
    for tickers in events.values():
        for event in tickers:
            for m in world.market_infos(event):
                for c in world.candles(m.ticker, 1):
                    truth[(m.ticker, c["end_period_ts"])] = truth_row(c)
    return truth


def make_backfill(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "make", "-s", "backfill", f"CATEGORY={WEATHER}", f"FROM={FROM}", f"TO={TO}",
            "ARGS=--concurrency 4",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip


def test_one_make_backfill_fills_every_series_of_the_category(
    mariadb_url: str, tmp_path: Path
) -> None:
    with run_sim_in_thread(SIM) as sim:
        env = {
            **os.environ,
            "KALSHI_API_BASE": sim.base_url,
            "DATABASE_URL": mariadb_url,
            "KALSHI_ARCHIVE_DIR": str(tmp_path / "raw"),
            "KALSHI_RPS": "500",
            "KALSHI_LOAD_RUN_IDLE_EXIT": "60",
        }
        first = make_backfill(env)
        assert first.returncode == 0, first.stdout + first.stderr
        events = selected_events(sim.world)
        sim.reset()
        again = make_backfill(env)
        assert again.returncode == 0, again.stdout + again.stderr
        candle_requests = [r for r in sim.counters.log if "candlesticks" in r.path]

    assert {s: len(e) for s, e in events.items()} == {
        "KXHIGHNY": 3,
        "KXHIGHCHI": 3,
        "KXLOWTNYC": 3,
        "KXTEMPNYCH": 9,
        "KXRAINNYCM": 1,  # November: dated Nov 30
        "KXHIGHTHNL": 3,  # outside the zone table
    }
    for series in events:
        assert f"{series}: " in first.stdout, first.stdout  # a line per series
    engine = make_engine(mariadb_url)
    try:
        want = truth_of(sim.world, events)
        got = stored(engine)
        assert {m.split("-")[0] for m, _ in got} == set(events)  # KXINXD is not weather
        assert set(want) - set(got) == set(), "missing candles"
        assert set(got) - set(want) == set(), "extra candles"
        assert got == want, "wrong values"
        monthly = [k for k in got if k[0].startswith("KXRAINNYCM-25NOV-")]
        assert len(monthly) > 2 * 40_000  # a month of minutes for each of the two markets
        before = full_rows(engine)
    finally:
        engine.dispose()
    # The rerun changed nothing and fetched nothing: every window was final.
    assert candle_requests == []
    engine = make_engine(mariadb_url)
    try:
        assert full_rows(engine) == before
    finally:
        engine.dispose()
