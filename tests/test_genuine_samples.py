"""Kalshi's own recorded answers (``tests/kalshi_samples/``) through the real load path.

The truth is each file itself, read here with nothing but ``json`` and ``Decimal``: no
code of the project decides what a value should be. The historical candle file is
archived as a historical page; the live per-market and batch files hold the same
``MarketCandlestick`` objects as an event page, so their candle lists (their exact
bytes) become event-shaped pages. Each window is loaded by ``load_windows`` into a real
database and every stored value is compared with the file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from extract.check.rules import batch_page_candles, candle_fields, market_page_candles
from extract.plan.tiers import Cutoff
from load.config import LoadConfig
from load.run.loader import load_windows
from schemas.archive import (
    KIND_EVENT_CANDLES,
    KIND_HISTORICAL_MARKET_CANDLES,
    LocalArchive,
    Manifest,
    ManifestMarket,
    PageEnvelope,
    WindowKey,
)
from schemas.core import WindowPolicy
from schemas.db import make_engine
from schemas.tables import CANDLE_COUNT_COLUMNS, CANDLE_PRICE_COLUMNS, kalshi_candle

SAMPLES = Path(__file__).resolve().parent / "kalshi_samples"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "kalshi-samples"
PLACEHOLDER = b"EXCERPT-TICKER-NOT-RECORDED"
RETRIEVED = datetime(2026, 8, 27, 12, 0, tzinfo=UTC)

Row = tuple[Decimal | None, ...]


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_vendored_samples_are_the_shared_ones() -> None:
    vendored = {p.name: p.read_bytes() for p in SAMPLES.iterdir() if p.is_file()}
    assert "historical-market-candles-p1.EXCERPT.json" in vendored
    if SHARED.is_dir():  # beside the team's checkout; a lone clone has only ours
        shared = {p.name: p.read_bytes() for p in SHARED.iterdir() if p.is_file()}
        assert vendored == shared, "tests/kalshi_samples/ differs from shared/kalshi-samples/"


# --- the truth: the files, read with json + Decimal only -------------------------------------


def _dec(v: Any) -> Decimal | None:
    assert v is None or isinstance(v, str), v  # the contract: strings, never JSON numbers
    return None if v is None else Decimal(v)


def live_truth(candle: dict[str, Any]) -> Row:
    """kalshi_candle's values of a live candle: ``*_dollars``/``*_fp``; absent = NULL."""
    out = [_dec(candle[side].get(f"{f}_dollars")) for side in ("yes_bid", "yes_ask")
           for f in ("open", "high", "low", "close")]  # fmt: skip
    fields = ("open", "high", "low", "close", "mean", "previous", "min", "max")
    out += [_dec(candle["price"].get(f"{f}_dollars")) for f in fields]
    return (*out, _dec(candle["volume_fp"]), _dec(candle["open_interest_fp"]))


def historical_truth(candle: dict[str, Any]) -> Row:
    """The historical shape: bare keys, explicit nulls, no min/max."""
    out = [_dec(candle[side][f]) for side in ("yes_bid", "yes_ask")
           for f in ("open", "high", "low", "close")]  # fmt: skip
    fields = ("open", "high", "low", "close", "mean", "previous", "min", "max")
    out += [_dec(candle["price"].get(f)) for f in fields]
    return (*out, _dec(candle["volume"]), _dec(candle["open_interest"]))


# --- archive and load -----------------------------------------------------------------------


def write_window(
    archive: LocalArchive,
    key: WindowKey,
    page: PageEnvelope,
    market: str,
    ends: list[int],
) -> None:
    rel = key.page_path(page.start_ts, page.market_ticker)
    archive.write_page(rel, page)
    step = key.period_interval * 60
    manifest = Manifest(
        key=key,
        window_start_ts=page.start_ts,
        window_end_ts=page.end_ts,
        is_final=True,
        markets=(
            ManifestMarket(
                market,
                min(ends) - step,
                max(ends),
                "historical" if page.market_ticker else "live",
            ),
        ),
        pages=(rel.removeprefix(key.dir + "/"),),
        completed_at_utc=RETRIEVED,
    )
    archive.write_manifest(manifest)


def event_page(key: WindowKey, market: str, candles_raw: bytes, ends: list[int]) -> PageEnvelope:
    """An event page holding ``candles_raw`` (the file's exact list bytes) for ``market``."""
    start, end = min(ends) - key.period_interval * 60, max(ends)
    raw = (
        b'{"market_tickers":["' + market.encode() + b'"],"market_candlesticks":['
        + candles_raw + b'],"adjusted_end_ts":' + str(end).encode() + b"}"
    )  # fmt: skip
    return PageEnvelope(
        kind=KIND_EVENT_CANDLES,
        series_ticker=key.series_ticker,
        event_ticker=key.event_ticker,
        market_ticker=None,
        period_interval=key.period_interval,
        window_policy=key.window_policy,
        path=f"/trade-api/v2/series/{key.series_ticker}/events/{key.event_ticker}/candlesticks",
        params={"start_ts": start, "end_ts": end, "period_interval": key.period_interval},
        status=200,
        retrieved_at_utc=RETRIEVED,
        body=json.loads(raw),
        raw_body=raw,
    )


def between(raw: bytes, head: bytes, tail: bytes) -> bytes:
    """The bytes of ``raw`` after its leading ``head`` and before its last ``tail``."""
    assert raw.startswith(head), raw[:40]
    return raw[len(head) : raw.rindex(tail)]


def stored(db_url: str) -> dict[tuple[str, int, int], Row]:
    t = kalshi_candle.c
    values = [t[n] for n in (*CANDLE_PRICE_COLUMNS, *CANDLE_COUNT_COLUMNS)]
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(t.market_ticker, t.end_period_ts_utc, t.period_interval_minutes, *values)
            ).all()
    finally:
        engine.dispose()
    return {(r[0], int(r[1].timestamp()), int(r[2])): tuple(r[3:]) for r in rows}


@pytest.mark.parametrize("db", ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def test_the_genuine_candles_load_exactly(
    tmp_path: Path, request: pytest.FixtureRequest, db: str
) -> None:
    db_url = str(request.getfixturevalue(f"{db}_url"))
    archive = LocalArchive(tmp_path / "raw")
    archive.ensure_writable()
    policy = WindowPolicy.FULL_MARKET_WINDOW
    truth: dict[tuple[str, int, int], Row] = {}

    # 1. the live per-market answer (whole, genuine ticker), period 60, as an event page
    raw = sample("live-market-candles-p60.json")
    doc = json.loads(raw)
    market = doc["ticker"]
    key = WindowKey("KXATPSETWINNER", market.rsplit("-", 1)[0], 60, policy)
    ends = [c["end_period_ts"] for c in doc["candlesticks"]]
    candles_raw = between(raw, b'{"candlesticks":', b',"ticker":')
    write_window(archive, key, event_page(key, market, candles_raw, ends), market, ends)
    truth |= {(market, c["end_period_ts"], 60): live_truth(c) for c in doc["candlesticks"]}

    # 2. the batch answer's first market (placeholder ticker named here), period 1
    raw = sample("live-batch-candles-p1.EXCERPT.json")
    doc = json.loads(raw)
    market = "KXHIGHNY-26AUG26-B80.5"
    key = WindowKey("KXHIGHNY", "KXHIGHNY-26AUG26", 1, policy)
    (entry,) = doc["markets"]
    ends = [c["end_period_ts"] for c in entry["candlesticks"]]
    candles_raw = between(raw, b'{"markets":[{"candlesticks":', b',"market_ticker":')
    write_window(archive, key, event_page(key, market, candles_raw, ends), market, ends)
    truth |= {(market, c["end_period_ts"], 1): live_truth(c) for c in entry["candlesticks"]}

    # 3. the historical answer, as an archived historical page with the file's bytes
    market = "KXHIGHNY-26JUN25-B80.5"
    raw = sample("historical-market-candles-p1.EXCERPT.json").replace(PLACEHOLDER, market.encode())
    doc = json.loads(raw)
    key = WindowKey("KXHIGHNY", "KXHIGHNY-26JUN25", 1, policy)
    ends = [c["end_period_ts"] for c in doc["candlesticks"]]
    page = PageEnvelope(
        kind=KIND_HISTORICAL_MARKET_CANDLES,
        series_ticker="KXHIGHNY",
        event_ticker=key.event_ticker,
        market_ticker=market,
        period_interval=1,
        window_policy=policy,
        path=f"/trade-api/v2/historical/markets/{market}/candlesticks",
        params={"start_ts": min(ends) - 60, "end_ts": max(ends), "period_interval": 1},
        status=200,
        retrieved_at_utc=RETRIEVED,
        body=json.loads(raw),
        raw_body=raw,
    )
    write_window(archive, key, page, market, ends)
    truth |= {(market, c["end_period_ts"], 1): historical_truth(c) for c in doc["candlesticks"]}

    summary = load_windows(LoadConfig(db_url=db_url, archive_dir=archive.root, writers=1))
    assert (summary.windows_loaded, summary.windows_failed) == (3, 0)
    got = stored(db_url)
    assert len(truth) == 19 + 13 + 12
    assert got == truth  # every value of every candle, nothing missing, nothing extra


def test_genuine_answers_as_check_api_and_client_inputs() -> None:
    cutoff = Cutoff.from_body(json.loads(sample("historical-cutoff.json")))
    assert str(cutoff) == "2026-06-25T00:00:00Z"
    live = market_page_candles(json.loads(sample("live-market-candles-p60.json")))
    assert candle_fields(next(iter(live.values()))) == "*_dollars/*_fp"
    batch = batch_page_candles(json.loads(sample("live-batch-candles-p1.EXCERPT.json")))
    assert candle_fields(next(iter(batch.values()))) == "*_dollars/*_fp"
    hist = market_page_candles(json.loads(sample("historical-market-candles-p1.EXCERPT.json")))
    # the historical shape is not the live contract: check-api would name what came instead
    assert candle_fields(next(iter(hist.values()))).startswith("other: keys")
