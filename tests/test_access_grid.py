"""``grid``: the book at every period, checked against a plain-Python reference built from
the simulator's truth, and against the no-look-ahead rule itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from load.access.book import book_grid, write_grid
from load.access.cli import grid_cmd
from load.access.grid import GRID_CANDLE_SCHEMA, GRID_SCHEMA, grid_frame
from schemas.checkpoints import ts_to_dt
from schemas.db import make_engine
from schemas.errors import InputError
from schemas.tables import kalshi_candle, kalshi_event, kalshi_market
from schemas.tickers import event_date_from_ticker
from tests.kalshi_sim import SeriesSpec, SimConfig, World
from tests.kalshi_sim.candles import maintenance_mask
from tests.test_access_data import RETRIEVED, candle_row

SERIES = "KXHIGHNY"
#: 2025-11-20 is a Thursday: its markets live through the 03:00-05:00 ET pause.
EVENTS = ("KXHIGHNY-25NOV19", "KXHIGHNY-25NOV20")
CONFIG = SimConfig(
    seed=23,
    series=(SeriesSpec(SERIES, "America/New_York", "New York City"),),
    first_date=date(2025, 11, 19),
    last_date=date(2025, 11, 20),
    now=datetime(2025, 11, 24, tzinfo=UTC),
    markets_per_event=3,
    missing_minute_rate=0.3,
    null_book_rate=0.05,
    open_jitter_rate=0.5,
)
WORLD = World(CONFIG)


def seed(url: str, events: Sequence[str] = EVENTS) -> Engine:
    """The events, their markets and every candle the simulator serves, as stored."""
    engine = make_engine(url)
    with engine.begin() as conn:
        for ev in events:
            conn.execute(
                kalshi_event.insert(),
                [
                    {
                        "event_ticker": ev,
                        "series_ticker": SERIES,
                        "event_date": event_date_from_ticker(ev),
                        "updated_at_utc": RETRIEVED,
                    }
                ],
            )
            infos = WORLD.market_infos(ev)
            conn.execute(
                kalshi_market.insert(),
                [
                    {
                        "market_ticker": m.ticker,
                        "event_ticker": ev,
                        "series_ticker": SERIES,
                        "open_time_utc": ts_to_dt(m.open_ts),
                        "close_time_utc": ts_to_dt(m.close_ts),
                        "status": "finalized",
                        "result": "yes" if m.result_yes else "no",
                        "is_historical": False,
                        "updated_at_utc": RETRIEVED,
                    }
                    for m in infos
                ],
            )
            conn.execute(
                kalshi_candle.insert(),
                [candle_row(m.ticker, ev, c) for m in infos for c in WORLD.candles(m.ticker)],
            )
    return engine


def reference(event: str) -> list[dict[str, Any]]:
    """The grid of an event written the plain way: walk every minute of each market's
    life (first minute after the open to the minute holding the close) and remember the
    last candle seen."""
    rows = []
    for m in sorted(WORLD.market_infos(event), key=lambda m: m.ticker):
        by_end = {c["end_period_ts"]: c for c in WORLD.candles(m.ticker)}
        t = (m.open_ts // 60 + 1) * 60
        last = None
        while t <= -(-m.close_ts // 60) * 60:
            own = by_end.get(t)
            if own is not None:
                last = own
            row: dict[str, Any] = {
                "market_ticker": m.ticker,
                "event_ticker": event,
                "end_period_ts_utc": ts_to_dt(t),
                "yes_bid": None,
                "yes_ask": None,
                "book_end_ts": None,
                "staleness_s": None,
                "has_candle": own is not None,
                "volume": Decimal(own["volume_fp"]) if own else Decimal(0),
                "open_interest": None,
                "price_close": None,
            }
            if last is not None:
                bid, ask = last["yes_bid"]["close_dollars"], last["yes_ask"]["close_dollars"]
                row["yes_bid"] = None if bid is None else Decimal(bid)
                row["yes_ask"] = None if ask is None else Decimal(ask)
                row["book_end_ts"] = ts_to_dt(last["end_period_ts"])
                row["staleness_s"] = t - last["end_period_ts"]
                row["open_interest"] = Decimal(last["open_interest_fp"])
            if own is not None and own["price"].get("close_dollars") is not None:
                row["price_close"] = Decimal(own["price"]["close_dollars"])
            rows.append(row)
            t += 60
    return rows


def test_the_world_has_every_case_the_grid_must_handle() -> None:
    """Null-book candles, a market opening late, minutes without a candle and the
    Thursday pause: each is in the events the grid is checked on."""
    infos = [m for ev in EVENTS for m in WORLD.market_infos(ev)]
    candles = {m.ticker: WORLD.candles(m.ticker) for m in infos}
    assert any(c["yes_bid"]["close_dollars"] is None for cs in candles.values() for c in cs)
    assert len({m.open_ts for m in infos if m.event_ticker == EVENTS[1]}) > 1  # a late open
    grid_minutes = sum(len(reference(ev)) for ev in EVENTS)
    assert grid_minutes > 1.3 * sum(len(cs) for cs in candles.values())  # many gaps
    thursday = next(m for m in infos if m.event_ticker == EVENTS[1])
    ends = [(thursday.open_ts // 60 + 1) * 60 + 60 * i for i in range(2400)]
    mask = maintenance_mask(np.array(ends, dtype=np.int64))
    paused = [t for t, inside in zip(ends, mask.tolist(), strict=True) if inside]
    assert len(paused) == 120 and not any(
        c["end_period_ts"] in paused for c in candles[thursday.ticker]
    )


def test_grid_equals_the_plain_reference(db_url: str) -> None:
    engine = seed(db_url)
    for ev in EVENTS:
        got = book_grid(engine, event=ev)
        assert got.schema == pl.Schema(GRID_SCHEMA)
        assert got.to_dicts() == reference(ev), ev
    series = book_grid(engine, series=[SERIES], date_from=date(2025, 11, 1))
    assert series.to_dicts() == reference(EVENTS[0]) + reference(EVENTS[1])
    market = sorted(WORLD.market_infos(EVENTS[1]), key=lambda m: m.ticker)[1].ticker
    one = book_grid(engine, market=market)
    assert one.to_dicts() == [r for r in reference(EVENTS[1]) if r["market_ticker"] == market]
    # a time range keeps the periods inside it; the book still comes from candles before
    pause = datetime(2025, 11, 20, 8, 30, tzinfo=UTC)
    inside = book_grid(engine, market=market, start=pause, end=pause + timedelta(minutes=10))
    assert inside.height == 11 and inside["staleness_s"].min() >= 30 * 60  # type: ignore[operator]
    assert inside.to_dicts() == [
        r
        for r in one.to_dicts()
        if pause <= r["end_period_ts_utc"] <= pause + timedelta(minutes=10)
    ]
    engine.dispose()


def check_no_lookahead(grid: pl.DataFrame, candles: Sequence[dict[str, Any]]) -> None:
    """Every quote at period end t is the close of the last candle ending at or before t
    (``candles``: kalshi_candle rows), and ``book_end_ts`` names that candle."""
    by_market: dict[str, list[dict[str, Any]]] = {}
    for c in sorted(candles, key=lambda c: c["end_period_ts_utc"]):
        by_market.setdefault(c["market_ticker"], []).append(c)
    for row in grid.iter_rows(named=True):
        t = row["end_period_ts_utc"]
        before = [c for c in by_market.get(row["market_ticker"], []) if c["end_period_ts_utc"] <= t]
        if not before:
            assert row["book_end_ts"] is None and row["yes_bid"] is None, row
            continue
        last = before[-1]
        assert row["book_end_ts"] == last["end_period_ts_utc"] <= t, row
        assert (row["yes_bid"], row["yes_ask"]) == (last["yes_bid_close"], last["yes_ask_close"]), (
            row
        )


def test_no_quote_comes_from_the_future(sqlite_url: str) -> None:
    engine = seed(sqlite_url, EVENTS[1:])
    grid = book_grid(engine, event=EVENTS[1])
    stored = [
        candle_row(m.ticker, EVENTS[1], c)
        for m in WORLD.market_infos(EVENTS[1])
        for c in WORLD.candles(m.ticker)
    ]
    check_no_lookahead(grid, stored)
    # The check can fail: move one candle a minute later (its quote now "arrives" after
    # the period the grid shows it in) and the same grid is caught.
    shifted = [dict(c) for c in stored]
    victim = next(
        i
        for i, c in enumerate(shifted[1:], 1)
        if c["yes_bid_close"] != shifted[i - 1]["yes_bid_close"]
        and shifted[i + 1]["end_period_ts_utc"] - c["end_period_ts_utc"] > timedelta(minutes=1)
    )
    shifted[victim]["end_period_ts_utc"] += timedelta(minutes=1)
    with pytest.raises(AssertionError):
        check_no_lookahead(grid, shifted)
    engine.dispose()


def test_grid_by_hand() -> None:
    """Two markets and a third without candles, values worked out by hand."""

    def t(minute: int) -> datetime:
        return datetime(2025, 11, 20, 10, minute, tzinfo=UTC)

    d = Decimal
    candles = pl.DataFrame(
        {
            "market_ticker": ["A", "A", "A", "B"],
            "end_period_ts_utc": [t(2), t(4), t(5), t(3)],
            "yes_bid_close": [d("0.4"), None, d("0.45"), d("0.1")],
            "yes_ask_close": [d("0.5"), d("0.55"), d("0.5"), d("0.2")],
            "price_close": [d("0.42"), None, None, None],
            "volume": [d("3"), d("0"), d("1.5"), d("2")],
            "open_interest": [d("10"), d("10"), d("11"), d("1")],
        },
        schema=GRID_CANDLE_SCHEMA,
    )
    spans = pl.DataFrame(
        {
            "market_ticker": ["A", "C"],
            "open_ts": [int(t(0).timestamp()), int(t(3).timestamp()) - 30],
            "close_ts": [int(t(6).timestamp()), int(t(5).timestamp())],
        }
    )
    got = grid_frame(candles, spans, "E", 1)
    cols = [
        "market_ticker",
        "end_period_ts_utc",
        "yes_bid",
        "yes_ask",
        "staleness_s",
        "has_candle",
        "volume",
        "open_interest",
        "price_close",
    ]
    want = [
        ("A", t(1), None, None, None, False, d(0), None, None),
        ("A", t(2), d("0.4"), d("0.5"), 0, True, d(3), d(10), d("0.42")),
        ("A", t(3), d("0.4"), d("0.5"), 60, False, d(0), d(10), None),
        ("A", t(4), None, d("0.55"), 0, True, d(0), d(10), None),  # a null bid is not filled
        ("A", t(5), d("0.45"), d("0.5"), 0, True, d("1.5"), d(11), None),
        ("A", t(6), d("0.45"), d("0.5"), 60, False, d(0), d(11), None),
        ("B", t(3), d("0.1"), d("0.2"), 0, True, d(2), d(1), None),  # no span: its candles
        ("C", t(3), None, None, None, False, d(0), None, None),  # opened at 10:02:30
        ("C", t(4), None, None, None, False, d(0), None, None),
        ("C", t(5), None, None, None, False, d(0), None, None),
    ]
    assert got.select(cols).rows() == want


def test_grid_cli_outputs_and_partitions(db_url: str, tmp_path: Path) -> None:
    seed(db_url).dispose()
    db = ["--db", db_url]
    runner = CliRunner()
    res = runner.invoke(grid_cmd, ["--event", EVENTS[0], "--format", "csv", *db])
    assert res.exit_code == 0, res.output
    frame = pl.read_csv(res.stdout.encode(), infer_schema=False)
    assert frame.height == len(reference(EVENTS[0])) and frame.columns == list(GRID_SCHEMA)
    out = tmp_path / "grid"
    res = runner.invoke(
        grid_cmd,
        ["--series", SERIES, "--from", "2025-11-19", "--to", "2025-11-20", "--out", str(out), *db],
    )
    assert res.exit_code == 0, res.output
    assert "2 files" in res.stderr
    for ev in EVENTS:
        day = event_date_from_ticker(ev)
        part = pl.read_parquet(out / f"series={SERIES}" / f"date={day}" / "part-0.parquet")
        assert part.to_dicts() == reference(ev)
    markets = pl.read_parquet(out / f"series={SERIES}" / "markets.parquet")
    assert markets.height == 6 and set(markets["result"]) <= {"yes", "no"}
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "markets.parquet",
        "part-0.parquet",
        "part-0.parquet",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--market", "KXHIGHNY-25NOV20-B99"], "not in the database"),
        (["--event", "KXHIGHNY-25NOV30"], "not in the database"),
        (
            ["--series", SERIES, "--from", "2025-11-20", "--to", "2025-11-19", "--out", "{out}"],
            "after",
        ),
        (["--event", EVENTS[0], "--from", "2025-11-20T10:00Z", "--to", "2025-11-19"], "after"),
        (["--series", SERIES, "--out", "{file}"], "existing file"),
        (["--event", EVENTS[0], "--series", SERIES], "exactly one"),
        (["--series", SERIES, "--format", "partitioned"], "--out"),
    ],
)
def test_grid_bad_input(sqlite_url: str, tmp_path: Path, args: list[str], message: str) -> None:
    seed(sqlite_url, EVENTS[:1]).dispose()
    (tmp_path / "file").write_text("mine")
    args = [a.format(out=tmp_path / "out", file=tmp_path / "file") for a in args]
    res = CliRunner().invoke(grid_cmd, [*args, "--db", sqlite_url])
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error:") and res.stderr.count("\n") == 1 and message in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "kalshi.db"]  # nothing written
    assert (tmp_path / "file").read_text() == "mine"


def test_write_grid_refuses_bad_ranges(sqlite_url: str, tmp_path: Path) -> None:
    engine = seed(sqlite_url, EVENTS[:1])
    with pytest.raises(InputError):
        write_grid(engine, SERIES, date(2025, 11, 20), date(2025, 11, 19), tmp_path / "o")
    with pytest.raises(InputError):
        write_grid(engine, [SERIES, SERIES], None, None, tmp_path / "o")
    assert not (tmp_path / "o").exists()
    engine.dispose()
