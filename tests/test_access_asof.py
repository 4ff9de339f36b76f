"""As-of snapshots: the close of the last candle at or before each timestamp, no look-ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from load.access.cli import asof_cmd
from load.access.query import ASOF_COLUMNS, asof_join, asof_snapshots
from schemas.errors import InputError
from tests.test_access_data import EVENTS, market_tickers, seed, truth_rows

BASE = datetime(2025, 11, 20, tzinfo=UTC)
MARKETS = ("EV-A", "EV-B", "EV-C")


def _candles(rows: list[tuple[str, int, int]]) -> pl.DataFrame:
    """(market, end minute, bid cents) triples as a candle frame with exact decimals."""
    return pl.DataFrame(
        {
            "market_ticker": [m for m, _, _ in rows],
            "end_period_ts_utc": [BASE + timedelta(minutes=t) for _, t, _ in rows],
            "yes_bid_close": [Decimal(b).scaleb(-2) for _, _, b in rows],
            "yes_ask_close": [Decimal(b + 1).scaleb(-2) for _, _, b in rows],
        },
        schema={
            "market_ticker": pl.String,
            "end_period_ts_utc": pl.Datetime("us", "UTC"),
            "yes_bid_close": pl.Decimal(10, 6),
            "yes_ask_close": pl.Decimal(10, 6),
        },
    )


candle_sets = st.lists(
    st.tuples(st.sampled_from(MARKETS), st.integers(0, 300), st.integers(1, 98)),
    max_size=60,
    unique_by=lambda r: (r[0], r[1]),
)
# Query times in seconds, so some fall between candle ends and some exactly on them.
query_times = st.lists(st.integers(-60, 400 * 60), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(rows=candle_sets, seconds=query_times, lookback_min=st.integers(1, 500))
def test_asof_never_looks_ahead_and_takes_the_latest(
    rows: list[tuple[str, int, int]], seconds: list[int], lookback_min: int
) -> None:
    lookback = timedelta(minutes=lookback_min)
    times = [BASE + timedelta(seconds=s) for s in seconds]
    got = asof_join(_candles(rows), ["EV-A"], times, lookback)
    assert got.columns == list(ASOF_COLUMNS)
    markets = sorted({"EV-A", *(m for m, _, _ in rows)})
    assert got.height == len(markets) * len(set(times))
    for snap in got.iter_rows(named=True):
        t = snap["asof_ts"]
        candidates = [
            (BASE + timedelta(minutes=m_t), b)
            for m, m_t, b in rows
            if m == snap["market_ticker"] and t - lookback <= BASE + timedelta(minutes=m_t) <= t
        ]
        if not candidates:
            assert snap["candle_end_ts"] is None and snap["yes_bid"] is None
            assert snap["staleness_s"] is None
            continue
        end, bid = max(candidates)
        assert snap["candle_end_ts"] <= t  # never a candle from after the asked time
        assert snap["candle_end_ts"] == end  # and the latest one at or before it
        assert snap["yes_bid"] == Decimal(bid).scaleb(-2)
        assert snap["yes_ask"] == Decimal(bid + 1).scaleb(-2)
        assert snap["staleness_s"] == (t - end).total_seconds()


def _truth_at(event: str, t: datetime, lookback: timedelta) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in truth_rows(event):
        if t - lookback <= r["end_period_ts_utc"] <= t:
            out[r["market_ticker"]] = r  # rows are in time order per market
    return out


def test_snapshots_match_ground_truth(db_url: str) -> None:
    event = EVENTS[1]
    engine = seed(db_url, EVENTS)  # the other event's markets must not leak in
    times = [
        datetime(2025, 11, 20, 2, 0, 30, tzinfo=UTC),  # between two candle ends
        datetime(2025, 11, 20, 9, 30, tzinfo=UTC),  # inside the maintenance pause
        datetime(2025, 11, 20, 15, 0, tzinfo=UTC),  # exactly a candle end
        datetime(2025, 11, 19, 14, 0, tzinfo=UTC),  # before any market opened
    ]
    lookback = timedelta(hours=6)
    frame = asof_snapshots(engine, event, times, lookback=lookback)
    markets = sorted(market_tickers(event))
    assert frame.height == len(markets) * len(times)
    assert frame["market_ticker"].unique().sort().to_list() == markets
    assert isinstance(frame.schema["yes_bid"], pl.Decimal)
    for snap in frame.iter_rows(named=True):
        truth = _truth_at(event, snap["asof_ts"], lookback).get(snap["market_ticker"])
        if truth is None:
            assert snap["yes_bid"] is None and snap["candle_end_ts"] is None
        else:
            assert snap["candle_end_ts"] == truth["end_period_ts_utc"] <= snap["asof_ts"]
            assert snap["yes_bid"] == truth["yes_bid_close"]
            assert snap["yes_ask"] == truth["yes_ask_close"]
    at_pause = frame.filter(pl.col("asof_ts") == times[1])
    assert (at_pause["staleness_s"] >= 30 * 60).all()  # last quote from before 08:00 UTC
    before_open = frame.filter(pl.col("asof_ts") == times[3])
    assert before_open["yes_bid"].null_count() == len(markets)
    engine.dispose()


def test_asof_input_errors(sqlite_url: str) -> None:
    engine = seed(sqlite_url, EVENTS[:1])
    with pytest.raises(InputError):
        asof_snapshots(engine, "bad/event", [BASE])
    with pytest.raises(InputError):
        asof_snapshots(engine, EVENTS[0], [])
    with pytest.raises(InputError):
        asof_snapshots(engine, EVENTS[0], [BASE.replace(tzinfo=None)])
    engine.dispose()


def test_asof_cli(db_url: str) -> None:
    event = EVENTS[1]
    seed(db_url, [event]).dispose()
    args = ["--event", event, "--at", "2025-11-20T15:00:00Z", "--at", "2025-11-20T16:00:30Z"]
    res = CliRunner().invoke(asof_cmd, [*args, "--format", "json", "--db", db_url])
    assert res.exit_code == 0, res.output
    rows = orjson.loads(res.stdout)
    assert len(rows) == 2 * len(market_tickers(event))
    for snap in rows:
        truth = _truth_at(event, datetime.fromisoformat(snap["asof_ts"]), timedelta(days=1))
        assert Decimal(snap["yes_bid"]) == truth[snap["market_ticker"]]["yes_bid_close"]
    res = CliRunner().invoke(asof_cmd, [*args, "--db", db_url])
    assert res.exit_code == 0 and "staleness_s" in res.stdout
    res = CliRunner().invoke(asof_cmd, ["--event", event, "--at", "noon", "--db", db_url])
    assert res.exit_code == 2 and "ISO-8601" in res.stderr
