"""``status``: windows by status, rows stored, missing minutes, failures and leases."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from click.testing import CliRunner
from sqlalchemy import Engine

from load.report.cli import status_cmd
from load.report.status import series_status
from schemas.archive import WindowKey
from schemas.checkpoints import save_checkpoint
from schemas.core import CheckpointStatus, WindowPolicy
from schemas.db import make_engine, upsert
from schemas.tables import kalshi_window_stats
from tests.test_access_data import EVENTS, SERIES, seed, truth_rows, window_stats_rows

LEASE_UNTIL = datetime(2025, 11, 25, 13, 0, tzinfo=UTC)


def _seed_status(url: str) -> Engine:
    engine = seed(url, EVENTS, stats=True)
    with engine.begin() as conn:
        for ev, status, extra in (
            (EVENTS[0], CheckpointStatus.SUCCESS, {}),
            (EVENTS[1], CheckpointStatus.SUCCESS, {}),
            ("KXHIGHNY-25NOV21", CheckpointStatus.FAILED, {"last_error": "HTTP 400 from /x"}),
            (
                "KXHIGHNY-25NOV22",
                CheckpointStatus.RUNNING,
                {"lease_owner": "host-a:123", "lease_expires_utc": LEASE_UNTIL},
            ),
            ("KXHIGHCHI-25NOV20", CheckpointStatus.EXTRACTED, {}),
        ):
            key = WindowKey(ev.split("-")[0], ev, 1, WindowPolicy.FULL_MARKET_WINDOW)
            save_checkpoint(
                conn,
                key,
                status=status,
                window_start_ts=1763560800,
                window_end_ts=1763701140,
                is_final=True,
                **extra,
            )
    return engine


def test_status_per_series(db_url: str) -> None:
    engine = _seed_status(db_url)
    statuses = {s.series_ticker: s for s in series_status(engine)}
    assert set(statuses) == {SERIES, "KXHIGHCHI"}
    ny = statuses[SERIES]
    assert ny.period_interval == 1
    assert ny.windows == {"RUNNING": 1, "EXTRACTED": 0, "SUCCESS": 2, "FAILED": 1}
    assert ny.rows_stored == sum(len(truth_rows(ev)) for ev in EVENTS)
    stats = [r for ev in EVENTS for r in window_stats_rows(ev)]
    expected = sum(r["expected_candles"] for r in stats)
    missing = sum(r["missing_candles"] for r in stats)
    assert (ny.expected_candles, ny.missing_candles) == (expected, missing)
    assert ny.missing_pct == (Decimal(100 * missing) / expected).quantize(Decimal("0.01"))
    assert ny.missing_in_maintenance == sum(r["missing_in_maintenance"] for r in stats) > 0
    assert [(n.event_ticker, n.last_error) for n in ny.failed] == [
        ("KXHIGHNY-25NOV21", "HTTP 400 from /x")
    ]
    assert [(n.lease_owner, n.lease_expires_utc) for n in ny.leased] == [
        ("host-a:123", LEASE_UNTIL)
    ]
    chi = statuses["KXHIGHCHI"]
    assert chi.windows["EXTRACTED"] == 1 and chi.rows_stored == 0 and chi.missing_pct is None
    only = series_status(engine, "KXHIGHCHI")
    assert [s.series_ticker for s in only] == ["KXHIGHCHI"]
    engine.dispose()


def test_status_cli(db_url: str) -> None:
    _seed_status(db_url).dispose()
    res = CliRunner().invoke(status_cmd, ["--db", db_url])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split()[:6] == ["series", "period", "running", "extracted", "success", "failed"]
    ny = next(line for line in lines if line.startswith(SERIES))
    assert ny.split()[2:6] == ["1", "0", "2", "1"] and "%" in ny
    assert any("FAILED KXHIGHNY-25NOV21" in line and "HTTP 400" in line for line in lines)
    assert any("LEASED KXHIGHNY-25NOV22" in line and "host-a:123" in line for line in lines)

    res = CliRunner().invoke(status_cmd, ["--db", db_url, "--series", SERIES, "--format", "json"])
    assert res.exit_code == 0, res.output
    (doc,) = orjson.loads(res.stdout)
    assert doc["windows"]["SUCCESS"] == 2 and doc["windows_total"] == 4
    assert Decimal(doc["missing_pct"]) > 0
    assert doc["leased"][0]["lease_expires_utc"].startswith("2025-11-25T13:00")

    res = CliRunner().invoke(status_cmd, ["--db", db_url, "--series", "no good"])
    assert res.exit_code == 2


def test_status_empty_database(sqlite_url: str) -> None:
    make_engine(sqlite_url).dispose()  # the tables, no rows (no tables: tests/test_readonly_db)
    res = CliRunner().invoke(status_cmd, ["--db", sqlite_url])
    assert res.exit_code == 0 and "no windows" in res.stdout


def test_registered_on_python_m_load(sqlite_url: str) -> None:
    """The commands are reachable as ``python -m load ...`` (registered in load/cli.py)."""
    _seed_status(sqlite_url).dispose()
    done = subprocess.run(
        [sys.executable, "-m", "load", "status", "--db", sqlite_url, "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert {s["series_ticker"] for s in orjson.loads(done.stdout)} == {SERIES, "KXHIGHCHI"}


def test_status_counts_each_market_minute_once_across_policies(db_url: str) -> None:
    """Both policies of one event loaded: the trade window's minutes are among the full
    window's (its markets are clipped to it), so status counts the full one only."""
    engine = seed(db_url, [EVENTS[0]], stats=True)
    full = window_stats_rows(EVENTS[0])
    trade = [
        {
            **r,
            "window_policy": "TRADE_WINDOW_ONLY",
            "expected_candles": r["expected_candles"] // 2,
            "present_candles": r["present_candles"] // 2,
            "missing_candles": r["missing_candles"] // 2,
            "missing_in_maintenance": r["missing_in_maintenance"] // 2,
        }
        for r in full
    ]
    with engine.begin() as conn:
        upsert(conn, kalshi_window_stats, trade)
    (ny,) = series_status(engine)
    assert ny.expected_candles == sum(r["expected_candles"] for r in full)
    assert ny.missing_candles == sum(r["missing_candles"] for r in full)
    assert ny.missing_in_maintenance == sum(r["missing_in_maintenance"] for r in full)
    assert ny.rows_stored == len(truth_rows(EVENTS[0]))  # COUNT(*): exact, no policy
    engine.dispose()


def test_status_shows_open_windows_apart_from_final_ones(db_url: str) -> None:
    engine = seed(db_url, [EVENTS[0]])
    with engine.begin() as conn:
        for ev, status, final in (
            (EVENTS[0], CheckpointStatus.SUCCESS, True),
            ("KXHIGHNY-25NOV23", CheckpointStatus.SUCCESS, False),
            ("KXHIGHNY-25NOV24", CheckpointStatus.EXTRACTED, False),
        ):
            key = WindowKey(SERIES, ev, 1, WindowPolicy.FULL_MARKET_WINDOW)
            save_checkpoint(
                conn,
                key,
                status=status,
                window_start_ts=1763560800,
                window_end_ts=1763701140,
                is_final=final,
            )
    (ny,) = series_status(engine)
    assert ny.windows == {"RUNNING": 0, "EXTRACTED": 0, "SUCCESS": 1, "FAILED": 0}
    assert ny.open_windows == {"RUNNING": 0, "EXTRACTED": 1, "SUCCESS": 1, "FAILED": 0}
    engine.dispose()
    res = CliRunner().invoke(status_cmd, ["--db", db_url])
    assert res.exit_code == 0, res.output
    head, row = res.stdout.splitlines()[:2]
    cells = dict(zip(head.split(), row.split(), strict=False))
    assert (cells["success"], cells["open"]) == ("1", "2"), res.stdout
    res = CliRunner().invoke(status_cmd, ["--db", db_url, "--format", "json"])
    (doc,) = orjson.loads(res.stdout)
    assert doc["windows"]["SUCCESS"] == 1 and doc["open_windows"]["SUCCESS"] == 1
    assert doc["windows_total"] == 3


def test_status_reads_window_records_never_the_candle_table(db_url: str) -> None:
    """Its cost follows the windows, not the candles: no statement names kalshi_candle,
    and several series are read at once."""
    from sqlalchemy import event

    engine = _seed_status(db_url)
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    statuses = series_status(engine, [SERIES, "KXHIGHCHI"])
    event.remove(engine, "before_cursor_execute", record)
    assert [s.series_ticker for s in statuses] == ["KXHIGHCHI", SERIES]
    assert seen and not any("kalshi_candle" in sql for sql in seen)
    engine.dispose()
