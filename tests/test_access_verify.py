"""``verify``: archive against database, every difference listed, non-zero exit on any."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import orjson
from click.testing import CliRunner
from sqlalchemy import and_, delete, insert, update

from load.report.cli import verify_cmd
from load.report.verify import verify_event
from schemas.tables import kalshi_candle
from tests.test_access_data import EVENTS, archive_event, seed, truth_rows

EVENT = EVENTS[1]


def test_verify_agrees_then_lists_each_difference(db_url: str, archive_dir: Path) -> None:
    archive, _, names = archive_event(archive_dir, EVENT, cap=4000)
    assert len(names) >= 2
    engine = seed(db_url, [EVENT])
    report = verify_event(engine, archive, EVENT)
    assert report.ok, report.differences[:5]
    assert report.archive_rows == report.db_rows == len(truth_rows(EVENT))

    rows = truth_rows(EVENT)
    gone, changed, extra_src = rows[10], rows[500], rows[-1]
    c = kalshi_candle.c

    def where(r: dict[str, object]) -> object:
        return and_(
            c.market_ticker == r["market_ticker"],
            c.end_period_ts_utc == r["end_period_ts_utc"],
            c.period_interval_minutes == 1,
        )

    new_bid = Decimal("0.123456")
    extra = {**extra_src, "end_period_ts_utc": extra_src["end_period_ts_utc"] + timedelta(hours=1)}
    with engine.begin() as conn:
        conn.execute(delete(kalshi_candle).where(where(gone)))
        conn.execute(
            update(kalshi_candle).where(where(changed)).values(yes_bid_close=new_bid, volume=None)
        )
        conn.execute(insert(kalshi_candle), [extra])
    report = verify_event(engine, archive, EVENT)
    assert not report.ok
    assert report.counts() == {"missing": 1, "extra": 1, "differs": 2}
    by_kind = {(d.kind, d.column): d for d in report.differences}
    assert by_kind[("missing", None)].end_period_ts_utc == gone["end_period_ts_utc"]
    assert by_kind[("extra", None)].end_period_ts_utc == extra["end_period_ts_utc"]
    bid = by_kind[("differs", "yes_bid_close")]
    assert (bid.market_ticker, bid.end_period_ts_utc) == (
        changed["market_ticker"],
        changed["end_period_ts_utc"],
    )
    assert Decimal(bid.archive_value or "") == changed["yes_bid_close"]
    assert Decimal(bid.db_value or "") == new_bid
    vol = by_kind[("differs", "volume")]
    assert vol.db_value is None and Decimal(vol.archive_value or "") == changed["volume"]
    engine.dispose()


def test_verify_cli_exit_codes(db_url: str, archive_dir: Path) -> None:
    archive_event(archive_dir, EVENT, cap=4000)
    archive_event(archive_dir, EVENTS[0], cap=4000, complete=False)
    engine = seed(db_url, [EVENT])
    runner = CliRunner()
    args = ["--db", db_url, "--archive", str(archive_dir)]
    res = runner.invoke(verify_cmd, ["--event", EVENT, *args])
    assert res.exit_code == 0, res.output
    assert "OK: archive and database agree" in res.stdout

    with engine.begin() as conn:
        conn.execute(delete(kalshi_candle).where(kalshi_candle.c.market_ticker.like(f"{EVENT}-T%")))
    res = runner.invoke(verify_cmd, ["--event", EVENT, *args, "--format", "json"])
    assert res.exit_code == 1
    doc = orjson.loads(res.stdout)
    assert not doc["ok"] and doc["counts"]["missing"] > 1000 and doc["counts"]["extra"] == 0
    assert {d["market_ticker"] for d in doc["differences"]} == {
        r["market_ticker"] for r in truth_rows(EVENT) if "-T" in str(r["market_ticker"])
    }
    res = runner.invoke(verify_cmd, ["--event", EVENT, *args])
    assert res.exit_code == 1 and "DIFFERENT:" in res.stdout and "MISSING" in res.stdout

    # a window without manifest is not compared (load would not have loaded it)
    res = runner.invoke(verify_cmd, ["--event", EVENTS[0], *args])
    assert res.exit_code == 0, res.output
    assert "incomplete (not compared)" in res.stdout
    res = runner.invoke(verify_cmd, ["--event", "KXHIGHNY-25NOV30", *args])
    assert res.exit_code == 2 and "no archived window" in res.stderr
    engine.dispose()


def test_normalized_archive_frame_is_exact(archive_dir: Path, sqlite_url: str) -> None:
    """The archive side holds the API's exact values (checked against ground truth)."""
    archive, _, _ = archive_event(archive_dir, EVENT, cap=4000)
    engine = seed(sqlite_url, [])
    report = verify_event(engine, archive, EVENT)
    assert report.counts()["missing"] == len(truth_rows(EVENT)) == report.archive_rows
    assert report.db_rows == 0
    first = report.differences[0]
    truth = {(r["market_ticker"], r["end_period_ts_utc"]) for r in truth_rows(EVENT)}
    assert (first.market_ticker, first.end_period_ts_utc) in truth
    engine.dispose()
