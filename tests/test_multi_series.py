"""Many series in one run (issue 20 items 2 and 5): one plan, one budget, one progress, one
summary with a line per series, one exit code; the per-window lines in the log file; and
bad input refused with one ``error:`` line before anything is written.

Truth: the simulator's own events and request log.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from extract.cli import main
from schemas.checkpoints import list_checkpoints
from schemas.db import make_engine
from schemas.tables import kalshi_backfill_checkpoint, kalshi_event
from tests.kalshi_sim import CATEGORY_SERIES, SimConfig, run_sim_in_thread

NOW = datetime(2025, 11, 20, 15, 0, tzinfo=UTC)
BY_TICKER = {s.ticker: s for s in CATEGORY_SERIES}
#: Two daily series and an hourly one with four events a day.
SERIES = (
    BY_TICKER["KXHIGHNY"],
    BY_TICKER["KXHIGHCHI"],
    replace(BY_TICKER["KXTEMPNYCH"], hours=(9, 12, 15, 18)),
)
SIM = SimConfig(
    seed=17,
    series=SERIES,
    now=NOW,
    first_date=date(2025, 11, 16),
    last_date=date(2025, 11, 18),
    markets_per_event=2,
    candle_cap=1500,
    historical_cutoff_days=3650,
)
TICKERS = "KXHIGHNY,KXHIGHCHI,KXTEMPNYCH"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def events_of(sim_world: object, series: str) -> list[str]:
    return list(sim_world.event_tickers(series))  # type: ignore[attr-defined]


def test_one_run_over_several_series(sqlite_url: str, archive_dir: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "run.jsonl"
    with run_sim_in_thread(SIM) as sim:
        base = ["--db", sqlite_url, "--api-base", sim.base_url]
        synced = invoke("events", "--series", "KXHIGHNY,KXHIGHCHI", "--series", "KXTEMPNYCH",
                        *base)  # fmt: skip
        want = {s.ticker: events_of(sim.world, s.ticker) for s in SERIES}
        # Every candle a market holds lies inside its full market window.
        candles = {
            series: sum(
                len(sim.world.candles_in(m.ticker, 1))
                for e in events
                for m in sim.world.market_infos(e)
            )
            for series, events in want.items()
        }
        sim.reset()
        r = invoke(
            "--log-file", str(log_file), "candles", "--series", TICKERS,
            "--archive", str(archive_dir), "--rps", "500", *base,
        )  # fmt: skip
        requests = sum(1 for x in sim.counters.log if x.route != "historical_cutoff")
    assert synced.exit_code == 0, synced.output
    assert "KXTEMPNYCH: 12 events, 24 markets synced" in synced.output
    assert "3 series synced, 0 failed: 18 events" in synced.output
    assert r.exit_code == 0, r.output
    # One summary: totals, then a line per series with its windows.
    assert "windows: 18 done, 0 skipped (already archived), 0 failed" in r.output
    for series, events in want.items():
        assert f"{series}: {len(events)} windows: {len(events)} done" in r.output
        assert f"{candles[series]:,} candles" in r.output  # the series' own candles
    assert f"candles: {sum(candles.values())}," in r.output
    assert f"requests: {requests}," in r.output  # one client: every request counted once
    # A line as each series finished, on the terminal; no per-window line there.
    assert all(f"{s}: {len(e)} windows: " in r.stderr for s, e in want.items())
    assert "markets with candles" not in r.stderr
    # The per-window lines, one line each, in the log file with their values.
    docs = [orjson.loads(line) for line in log_file.read_text().splitlines()]
    windows = [d for d in docs if "markets with candles" in d["message"]]
    assert sorted(d["message"].split()[0] for d in windows) == sorted(
        e for events in want.values() for e in events
    )
    for d in windows:
        assert "\n" not in d["message"]
        assert sum(d["fields"]["candles_per_market"].values()) > 0
    # Checkpoints of every series.
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        keys = [cp.key for cp in list_checkpoints(conn, None)]
    engine.dispose()
    assert sorted({k.series_ticker for k in keys}) == sorted(want)
    assert len(keys) == 18


def test_a_failing_series_is_named_and_the_others_run(sqlite_url: str, archive_dir: Path) -> None:
    with run_sim_in_thread(SIM) as sim:
        base = ["--db", sqlite_url, "--api-base", sim.base_url]
        r = invoke("events", "--series", "KXHIGHNY,KXNOPE", *base)
        assert r.exit_code == 1, r.output
        assert "KXHIGHNY: 3 events, 6 markets synced" in r.output
        assert "KXNOPE: FAILED: unknown series KXNOPE" in r.output
        assert "error: 1 series not synced: KXNOPE" in r.output
        # candles: KXNOPE has no events stored: named, KXHIGHNY runs; a FAILED window of
        # KXHIGHNY makes the exit 1 once the rest is done.
        sim.fail_next("/events/KXHIGHNY-25NOV17/candlesticks", "500", times=50)
        r = invoke(
            "candles", "--series", "KXHIGHNY,KXNOPE", "--archive", str(archive_dir),
            "--max-retries", "1", "--backoff-base", "0.001", *base,
        )  # fmt: skip
    assert r.exit_code == 1, r.output
    assert "KXNOPE: left out: no events for series KXNOPE in the database" in r.output
    assert "KXHIGHNY: 3 windows: 2 done, 0 already archived, 1 failed" in r.output
    assert "FAILED KXHIGHNY-25NOV17 p1 FULL_MARKET_WINDOW" in r.output


def test_the_dry_run_of_several_series_prints_a_line_per_series(
    sqlite_url: str, archive_dir: Path, tmp_path: Path
) -> None:
    log_file = tmp_path / "plan.log"
    with run_sim_in_thread(SIM) as sim:
        base = ["--db", sqlite_url, "--api-base", sim.base_url]
        assert invoke("events", "--series", TICKERS, *base).exit_code == 0
        sim.reset()
        r = invoke(
            "candles", "--series", TICKERS, "--dry-run", "--log-file", str(log_file),
            "--archive", str(archive_dir), "--route", "event", *base,
        )  # fmt: skip
        assert sim.counters.total == 0
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines[:3]] == ["KXHIGHNY", "KXHIGHCHI", "KXTEMPNYCH"]
    # 2 markets: a daily window (2 x ~2,280 candidates) and an hourly one fit one page.
    assert lines[0].startswith("KXHIGHNY: 3 events, ~3 requests (3 live, 0 historical)")
    assert lines[2].startswith("KXTEMPNYCH: 12 events, ~12 requests")
    assert lines[-1].startswith("plan: 18 events of 3 series, ~18 candle requests")
    assert "KXTEMPNYCH-25NOV1612: " in log_file.read_text()  # per event: in the log file


# --- bad input: one line, the right exit code, nothing written ---------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--series", "KXHIGHNY", "--category", "Climate and Weather"),
         "error: give --series or --category, not both"),
        (("--series", "KXHIGHNY,KXHIGHCHI,KXHIGHNY"),
         "error: series KXHIGHNY is listed twice in --series"),
        (("--series", "KXHIGHNY", "--series", "KXHIGHNY"),
         "error: series KXHIGHNY is listed twice in --series"),
        (("--series", "KXHIGHNY", "--series-tz", "KXHIGHNY"),
         "error: invalid --series-tz 'KXHIGHNY': expected SERIES=ZONE"),
        (("--series", "KXHIGHNY", "--series-tz", "KXHIGHNY=Mars/Olympus"),
         "error: unknown time zone 'Mars/Olympus' for KXHIGHNY"),
        ((), "error: give --series (e.g. --series KXHIGHNY,KXHIGHCHI) or --category"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", ["events", "candles"])
def test_bad_selection_is_one_line_and_writes_nothing(
    command: str, args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    db, archive = tmp_path / "kalshi.db", tmp_path / "raw"
    with run_sim_in_thread(SIM) as sim:
        r = invoke(command, *args, "--db", f"sqlite:///{db}", "--archive", str(archive),
                   "--api-base", sim.base_url)  # fmt: skip
        assert sim.counters.total == 0  # refused before any request
    assert r.exit_code == 2, r.output
    (line,) = r.output.strip().splitlines()
    assert line.startswith(message), line
    assert not db.exists() and not archive.exists()


def test_a_log_file_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    r = invoke("--log-file", str(tmp_path / "no" / "such" / "dir.log"), "events", "--series",
               "KXHIGHNY")  # fmt: skip
    assert r.exit_code == 2
    assert r.output.strip().startswith("error: cannot write --log-file ")


def test_events_stores_each_series_row(sqlite_url: str) -> None:
    with run_sim_in_thread(SIM) as sim:
        r = invoke("events", "--series", TICKERS, "--db", sqlite_url, "--api-base", sim.base_url)
    assert r.exit_code == 0, r.output
    engine = make_engine(sqlite_url)
    from schemas.tables import kalshi_series

    with engine.connect() as conn:
        series = dict(
            conn.execute(select(kalshi_series.c.series_ticker, kalshi_series.c.frequency)).all()
        )
        n_events = conn.execute(select(func.count()).select_from(kalshi_event)).scalar_one()
        n_checkpoints = conn.execute(
            select(func.count()).select_from(kalshi_backfill_checkpoint)
        ).scalar_one()
    engine.dispose()
    assert series == {"KXHIGHNY": "daily", "KXHIGHCHI": "daily", "KXTEMPNYCH": "hourly"}
    assert (n_events, n_checkpoints) == (18, 0)
