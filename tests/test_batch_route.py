"""The batch route: its pages in the archive and the loader, and its backfill end to end.

Truth: the genuine batch answer Kalshi sent (``live-batch-candles-p1.EXCERPT.json``),
read here with the standard library only, and the event route's own pages.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from load.errors import MalformedValueError
from load.normalize import normalize_pages
from schemas.archive import (
    KIND_BATCH_CANDLES,
    KIND_EVENT_CANDLES,
    PageEnvelope,
    WindowKey,
)
from schemas.tables import WindowPolicy

SAMPLES = Path(__file__).parent / "kalshi_samples"
EVENT = "KXHIGHNY-26AUG27"
MARKET = "KXHIGHNY-26AUG27-B80.5"
KEY = WindowKey("KXHIGHNY", EVENT, 1, WindowPolicy.FULL_MARKET_WINDOW)
T0 = datetime(2026, 8, 28, 12, 0, tzinfo=UTC)


def sample_batch() -> dict[str, Any]:
    """The recorded batch answer, with its placeholder ticker named as one of our event's."""
    body = json.loads((SAMPLES / "live-batch-candles-p1.EXCERPT.json").read_bytes())
    assert body["markets"][0]["market_ticker"] == "EXCERPT-TICKER-NOT-RECORDED"
    body["markets"][0]["market_ticker"] = MARKET
    return dict(body)


def envelope(kind: str, body: Any, params: dict[str, Any] | None = None) -> PageEnvelope:
    return PageEnvelope(
        kind=kind,
        series_ticker="KXHIGHNY",
        event_ticker=EVENT,
        market_ticker=None,
        period_interval=1,
        window_policy=WindowPolicy.FULL_MARKET_WINDOW,
        path="/trade-api/v2/markets/candlesticks",
        params=params
        or {"market_tickers": MARKET, "start_ts": 0, "end_ts": 1, "period_interval": 1},
        status=200,
        retrieved_at_utc=T0,
        body=body,
    )


def _dec(v: Any) -> Decimal | None:
    return None if v is None else Decimal(v)


def test_the_genuine_batch_answer_loads_value_for_value() -> None:
    body = sample_batch()
    frame = normalize_pages([envelope(KIND_BATCH_CANDLES, body)])
    candles = body["markets"][0]["candlesticks"]
    assert frame.height == len(candles) == 13
    rows = {r["end_period_ts_utc"]: r for r in frame.iter_rows(named=True)}
    for c in candles:
        row = rows[datetime.fromtimestamp(c["end_period_ts"], UTC)]
        assert row["market_ticker"] == MARKET and row["event_ticker"] == EVENT
        for side in ("yes_bid", "yes_ask"):
            for k in ("open", "low", "high", "close"):
                assert row[f"{side}_{k}"] == Decimal(c[side][f"{k}_dollars"])
        for k in ("open", "low", "high", "close", "mean", "previous", "min", "max"):
            assert row[f"price_{k}"] == _dec(c["price"].get(f"{k}_dollars"))
        assert row["volume"] == Decimal(c["volume_fp"])
        assert row["open_interest"] == Decimal(c["open_interest_fp"])


def test_a_batch_page_and_an_event_page_of_the_same_candles_are_the_same_rows() -> None:
    body = sample_batch()
    candles = body["markets"][0]["candlesticks"]
    event_body = {
        "market_tickers": [MARKET],
        "market_candlesticks": [candles],
        "adjusted_end_ts": candles[-1]["end_period_ts"],
    }
    batch = normalize_pages([envelope(KIND_BATCH_CANDLES, body)])
    event = normalize_pages([envelope(KIND_EVENT_CANDLES, event_body)])
    assert batch.equals(event)


def test_a_batch_page_holding_another_events_market_is_refused() -> None:
    body = sample_batch()
    body["markets"][0]["market_ticker"] = "KXHIGHNY-26AUG28-B80.5"
    with pytest.raises(MalformedValueError, match="not a market of the page's event"):
        normalize_pages([envelope(KIND_BATCH_CANDLES, body)])


def test_a_batch_page_without_markets_is_refused() -> None:
    with pytest.raises(MalformedValueError, match="without a markets list"):
        normalize_pages([envelope(KIND_BATCH_CANDLES, {"cursor": ""})])


def test_an_empty_batch_answer_is_no_rows() -> None:
    assert normalize_pages([envelope(KIND_BATCH_CANDLES, {"markets": []})]).height == 0


def test_batch_pages_have_their_own_folder() -> None:
    assert KEY.batch_page_path(1787789280) == (
        "KXHIGHNY/KXHIGHNY-26AUG27/p1/full/batch/g0/1787789280.json.gz"
    )
