"""``query``: a market's candles over a range, exact decimals, served by the candle index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import polars as pl
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from load.access.cli import query_cmd
from load.access.query import CANDLE_INDEX, market_range_stmt, query_candles
from load.normalize.pages import CANDLE_SCHEMA
from schemas.errors import InputError
from schemas.tables import CANDLE_COLUMNS
from tests.test_access_data import EVENTS, market_tickers, seed, truth_rows

EVENT = EVENTS[1]
MARKET = sorted(market_tickers(EVENT))[1]
START = datetime(2025, 11, 20, 7, 0, tzinfo=UTC)  # 02:00 ET, before the maintenance pause
END = datetime(2025, 11, 20, 11, 30, tzinfo=UTC)


def expected(market: str, start: datetime, end: datetime) -> list[dict[str, object]]:
    return [
        r
        for r in truth_rows(EVENT)
        if r["market_ticker"] == market and start <= r["end_period_ts_utc"] <= end
    ]


def test_query_returns_the_range_exactly(db_url: str) -> None:
    engine = seed(db_url, [EVENT], periods=(1, 60))
    frame = query_candles(engine, MARKET, START, END)
    want = expected(MARKET, START, END)
    assert frame.schema == pl.Schema(CANDLE_SCHEMA)
    assert frame.columns == list(CANDLE_COLUMNS)
    # 4.5 h less the 2 h maintenance pause (08:00-10:00 UTC) less ~5% random holes
    assert 120 < frame.height == len(want)  # only period 1, only this market, both ends in
    assert frame.to_dicts() == want  # every value, Decimal for Decimal, None for NULL
    assert frame["end_period_ts_utc"].is_sorted()
    # the inclusive bounds: a range of one exact candle end returns that candle
    one = want[5]["end_period_ts_utc"]
    assert isinstance(one, datetime)
    assert query_candles(engine, MARKET, one, one).height == 1
    hourly = query_candles(engine, MARKET, START, END, period=60)
    assert set(hourly["period_interval_minutes"]) == {60}
    assert 3 <= hourly.height <= 5
    engine.dispose()


def test_sub_cent_prices_survive_exactly(db_url: str) -> None:
    """Six-decimal prices come back digit for digit, in a Decimal column (never float)."""
    engine = seed(db_url, [EVENT])
    frame = query_candles(engine, MARKET, START - timedelta(days=2), END + timedelta(days=2))
    assert isinstance(frame.schema["yes_bid_close"], pl.Decimal)
    truth = {r["end_period_ts_utc"]: r["yes_bid_close"] for r in truth_rows(EVENT)
             if r["market_ticker"] == MARKET}  # fmt: skip
    got = dict(zip(frame["end_period_ts_utc"], frame["yes_bid_close"], strict=True))
    assert got == truth
    engine.dispose()


def test_bad_input_is_an_input_error(sqlite_url: str) -> None:
    engine = seed(sqlite_url, [EVENT])
    with pytest.raises(InputError, match="invalid market ticker"):
        query_candles(engine, "kxhighny'; drop table x", START, END)
    with pytest.raises(InputError, match="after"):
        query_candles(engine, MARKET, END, START)
    with pytest.raises(InputError, match="time zone"):
        query_candles(engine, MARKET, START.replace(tzinfo=None), END)
    engine.dispose()


def test_mariadb_uses_the_candle_index(mariadb_url: str) -> None:
    engine = seed(mariadb_url, [EVENT], periods=(1, 60))
    sql = market_range_stmt(MARKET, START, END).compile(
        dialect=engine.dialect, compile_kwargs={"literal_binds": True}
    )
    with engine.connect() as conn:
        plan = conn.execute(text(f"EXPLAIN {sql}")).mappings().all()
    assert len(plan) == 1
    assert plan[0]["key"] == CANDLE_INDEX
    assert plan[0]["type"] == "range"
    engine.dispose()


def test_sqlite_uses_the_candle_index(sqlite_url: str) -> None:
    engine = seed(sqlite_url, [EVENT])
    sql = market_range_stmt(MARKET, START, END).compile(
        dialect=engine.dialect, compile_kwargs={"literal_binds": True}
    )
    with engine.connect() as conn:
        plan = " ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    assert CANDLE_INDEX in plan, plan
    engine.dispose()


def _cli(db: str, *args: str) -> list[str]:
    return [
        "--market",
        MARKET,
        "--from",
        "2025-11-20T07:00:00Z",
        "--to",
        "2025-11-20T11:30:00+00:00",
        "--db",
        db,
        *args,
    ]


def test_cli_formats(db_url: str, tmp_path: Path) -> None:
    seed(db_url, [EVENT]).dispose()
    want = expected(MARKET, START, END)
    runner = CliRunner()

    res = runner.invoke(query_cmd, _cli(db_url, "--format", "json"))
    assert res.exit_code == 0, res.output
    rows = orjson.loads(res.stdout)
    assert len(rows) == len(want)
    # a string with the column's scale: the same decimal, no float rounding on the way
    assert isinstance(rows[0]["yes_ask_close"], str)
    assert [Decimal(r["yes_ask_close"]) for r in rows] == [r["yes_ask_close"] for r in want]
    assert rows[0]["market_ticker"] == MARKET

    res = runner.invoke(query_cmd, _cli(db_url, "--format", "csv"))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split(",") == list(CANDLE_COLUMNS)
    assert len(lines) == len(want) + 1

    res = runner.invoke(query_cmd, _cli(db_url))
    assert res.exit_code == 0, res.output
    assert f"({len(want)} rows)" in res.stdout and MARKET in res.stdout

    out = tmp_path / "q.parquet"
    res = runner.invoke(query_cmd, _cli(db_url, "--format", "parquet", "--out", str(out)))
    assert res.exit_code == 0, res.output
    back = pl.read_parquet(out)
    assert back.schema["price_close"] == pl.Decimal(10, 6)
    assert back.height == len(want)
    assert back["yes_bid_close"].to_list() == [r["yes_bid_close"] for r in want]


def test_cli_refuses_bad_input(sqlite_url: str) -> None:
    seed(sqlite_url, [EVENT]).dispose()
    runner = CliRunner()
    res = runner.invoke(query_cmd, _cli(sqlite_url, "--format", "parquet"))
    assert res.exit_code == 2 and "--out" in res.stderr
    bad = ["--market", "BAD TICKER", "--from", "2025-11-20", "--to", "2025-11-21"]
    res = runner.invoke(query_cmd, [*bad, "--db", sqlite_url])
    assert res.exit_code == 2 and "invalid market ticker" in res.stderr
    rev = ["--market", MARKET, "--from", "2025-11-21", "--to", "2025-11-20", "--db", sqlite_url]
    res = runner.invoke(query_cmd, rev)
    assert res.exit_code == 2 and "after" in res.stderr
    res = runner.invoke(query_cmd, ["--market", MARKET, "--from", "yesterday", "--to", "x"])
    assert res.exit_code == 2 and "ISO-8601" in res.stderr
    res = runner.invoke(query_cmd, _cli(sqlite_url, "--period", "5"))
    assert res.exit_code == 2


def test_decimal_column_never_float(sqlite_url: str) -> None:
    engine = seed(sqlite_url, [EVENT])
    frame = query_candles(engine, MARKET, START, END)
    for name, dtype in frame.schema.items():
        assert not dtype.is_float(), name
    assert all(isinstance(v, Decimal) for v in frame["volume"].drop_nulls())
    engine.dispose()


def test_cli_to_date_without_a_time_includes_that_whole_day(sqlite_url: str) -> None:
    """``--to 2025-11-20`` is the whole day: every candle ending on that UTC date."""
    seed(sqlite_url, [EVENT]).dispose()
    day = datetime(2025, 11, 20, tzinfo=UTC).date()
    want = [
        r
        for r in truth_rows(EVENT)
        if r["market_ticker"] == MARKET
        and isinstance(r["end_period_ts_utc"], datetime)
        and r["end_period_ts_utc"].date() == day
    ]
    assert max(r["end_period_ts_utc"] for r in want).hour == 23  # type: ignore[union-attr]
    args = ["--market", MARKET, "--from", "2025-11-20", "--to", "2025-11-20"]
    res = CliRunner().invoke(query_cmd, [*args, "--format", "json", "--db", sqlite_url])
    assert res.exit_code == 0, res.output
    assert len(orjson.loads(res.stdout)) == len(want)
    # A time given stays an instant: midnight is midnight.
    args[-1] = "2025-11-20T00:00:00Z"
    res = CliRunner().invoke(query_cmd, [*args, "--format", "json", "--db", sqlite_url])
    assert res.exit_code == 0, res.output
    assert len(orjson.loads(res.stdout)) <= 1
    help_text = CliRunner().invoke(query_cmd, ["--help"]).output
    assert "whole day" in help_text
