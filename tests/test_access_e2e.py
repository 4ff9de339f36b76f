"""Every access command on data that went simulator → extract → archive → load.

One pipeline run per database (SQLite and MariaDB), then each command is checked against
the simulator's ground truth: what a researcher reads back is what Kalshi served.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import polars as pl
from click.testing import CliRunner
from sqlalchemy import delete, select

from extract.config import ApiConfig, ExtractConfig, RateLimit, RouteChoice
from extract.events.sync import sync_events
from extract.run.candles import run_candles
from load.access.cli import asof_cmd, export_cmd, query_cmd
from load.config import LoadConfig
from load.report.cli import coverage_cmd, inspect_cmd, status_cmd, verify_cmd
from load.report.status import series_status
from load.report.verify import verify_event
from load.run.loader import load_windows
from schemas.archive import open_archive
from schemas.db import make_engine
from schemas.tables import kalshi_candle, kalshi_market
from schemas.tickers import event_date_from_ticker
from tests.kalshi_sim import SimServer
from tests.test_access_data import CONFIG, EVENTS, SERIES, WORLD, market_tickers, truth_rows

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _strip(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in r.items() if k != "retrieved_at_utc"} for r in rows]


async def test_access_commands_on_a_real_backfill(db_url: str, tmp_path: Path) -> None:
    archive_dir = tmp_path / "raw"
    async with SimServer(CONFIG) as sim:
        extract = ExtractConfig(
            route=RouteChoice.EVENT,
            series=SERIES,
            db_url=db_url,
            archive_dir=archive_dir,
            api=ApiConfig(base_url=sim.base_url, rate=RateLimit(1000, 1.0), max_retries=2),
            date_from=date(2025, 11, 19),
            date_to=date(2025, 11, 20),
            now=CONFIG.now,
        )
        await sync_events(extract)
        summary = await run_candles(extract)
        assert summary.failed == 0
    loaded = load_windows(LoadConfig(db_url=db_url, archive_dir=archive_dir))
    # One window per event, each row a candle the simulator served (its own truth).
    assert (loaded.windows_loaded, loaded.windows_failed) == (len(EVENTS), 0), loaded.line()
    assert loaded.rows == sum(len(truth_rows(e)) for e in EVENTS), loaded.line()
    runner = CliRunner()
    db = ["--db", db_url]
    event = EVENTS[1]
    market = sorted(market_tickers(event))[0]
    truth = [r for r in truth_rows(event) if r["market_ticker"] == market]

    # query: the market's whole life, value for value
    args = ["--market", market, "--from", "2025-11-18", "--to", "2025-11-22", "--format", "json"]
    res = runner.invoke(query_cmd, [*args, *db])
    assert res.exit_code == 0, res.output
    got = orjson.loads(res.stdout)
    assert len(got) == len(truth)
    for row, want in zip(got, truth, strict=True):
        assert Decimal(row["yes_bid_close"]) == want["yes_bid_close"]
        assert (row["price_close"] is None) == (want["price_close"] is None)
        assert datetime.fromisoformat(row["end_period_ts_utc"]) == want["end_period_ts_utc"]

    # asof: in the maintenance pause the quote is the last one before it
    at = datetime(2025, 11, 20, 9, 0, tzinfo=UTC)
    res = runner.invoke(
        asof_cmd, ["--event", event, "--at", at.isoformat(), "--format", "csv", *db]
    )
    assert res.exit_code == 0, res.output
    snaps = pl.read_csv(res.stdout.encode(), schema_overrides={"yes_bid": pl.String})
    snap = snaps.filter(pl.col("market_ticker") == market).row(0, named=True)
    last = max(
        (r for r in truth if r["end_period_ts_utc"] <= at), key=lambda r: r["end_period_ts_utc"]
    )
    assert Decimal(snap["yes_bid"]) == last["yes_bid_close"]
    assert last["end_period_ts_utc"] <= datetime(2025, 11, 20, 8, 0, tzinfo=UTC)

    # export: one file per event date holding exactly the served candles
    out = tmp_path / "export"
    args = ["--series", SERIES, "--from", "2025-11-19", "--to", "2025-11-20", "--out", str(out)]
    res = runner.invoke(export_cmd, [*args, *db])
    assert res.exit_code == 0, res.output
    for ev, day in zip(EVENTS, ("2025-11-19", "2025-11-20"), strict=True):
        frame = pl.read_parquet(out / f"series={SERIES}" / f"date={day}" / "part-0.parquet")
        assert _strip(frame.to_dicts()) == _strip(truth_rows(ev))
    _check_markets_file(out / f"series={SERIES}" / "markets.parquet", db_url)

    # status: both windows loaded, every row counted, holes and the pause reported
    engine = make_engine(db_url)
    (status,) = series_status(engine, SERIES)
    assert status.windows["SUCCESS"] == 2 and status.windows["FAILED"] == 0
    assert status.rows_stored == sum(len(truth_rows(ev)) for ev in EVENTS)
    assert status.missing_in_maintenance > 0 and status.missing_pct is not None
    res = runner.invoke(status_cmd, [*db, "--format", "json"])
    assert res.exit_code == 0 and orjson.loads(res.stdout)[0]["windows"]["SUCCESS"] == 2

    # inspect: the pages extract archived, straight from the API
    res = runner.invoke(inspect_cmd, ["--event", event, "--archive", str(archive_dir)])
    assert res.exit_code == 0, res.output
    assert "[complete" in res.stdout and "-> 200 at" in res.stdout
    assert f"/events/{event}/candlesticks" in res.stdout

    # verify: agreement, then a row removed behind load's back is reported
    res = runner.invoke(verify_cmd, ["--event", event, "--archive", str(archive_dir), *db])
    assert res.exit_code == 0, res.output
    with engine.begin() as conn:
        conn.execute(
            delete(kalshi_candle).where(
                kalshi_candle.c.market_ticker == market,
                kalshi_candle.c.end_period_ts_utc == truth[100]["end_period_ts_utc"],
            )
        )
    report = verify_event(engine, open_archive(archive_dir), event)
    assert [(d.kind, d.end_period_ts_utc) for d in report.differences] == [
        ("missing", truth[100]["end_period_ts_utc"])
    ]
    res = runner.invoke(verify_cmd, ["--event", event, "--archive", str(archive_dir), *db])
    assert res.exit_code == 1 and "1 missing" in res.stdout
    engine.dispose()

    # coverage: a PNG of both events
    png = tmp_path / "coverage.png"
    days = ["--from", "2025-11-19", "--to", "2025-11-20"]
    res = runner.invoke(coverage_cmd, ["--series", SERIES, *days, "--out", str(png), *db])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == PNG_SIGNATURE and "2 events" in res.stderr


def _check_markets_file(path: Path, db_url: str) -> None:
    """markets.parquet equals the kalshi_market rows, and those are what the simulator
    listed: strikes, times, status, result and settlement of every market."""
    markets = pl.read_parquet(path)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        stored = conn.execute(
            select(kalshi_market).where(kalshi_market.c.series_ticker == SERIES)
        ).all()
    engine.dispose()
    assert markets["market_ticker"].to_list() == sorted(r.market_ticker for r in stored)
    assert len(stored) == len(WORLD.event_tickers()) * CONFIG.markets_per_event
    by_ticker = {r.market_ticker: r._mapping for r in stored}
    for row in markets.to_dicts():
        db_row = by_ticker[row["market_ticker"]]
        for col, value in row.items():
            if col != "event_date":
                assert value == db_row[col], (row["market_ticker"], col)
        sim = WORLD.market(row["market_ticker"])
        assert sim is not None
        assert row["event_ticker"] == sim["event_ticker"]
        assert row["event_date"] == event_date_from_ticker(sim["event_ticker"])
        assert row["strike_type"] == sim["strike_type"]
        for side in ("floor_strike", "cap_strike"):
            want = sim.get(side)
            assert row[side] == (None if want is None else Decimal(str(want))), side
        for col, key in (
            ("open_time_utc", "open_time"),
            ("close_time_utc", "close_time"),
            ("expiration_time_utc", "expiration_time"),
        ):
            assert row[col] == datetime.fromisoformat(sim[key]), col
        assert (row["status"], row["result"]) == (sim["status"], sim["result"])
        settled = sim.get("settlement_ts")
        assert row["settlement_ts_utc"] == (settled and datetime.fromisoformat(settled))
