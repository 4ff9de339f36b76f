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

from extract.errors import BadPageError, WrongEventError
from extract.routes.base import Page
from extract.routes.batch import BatchRoute
from extract.windows import Window
from load.errors import MalformedValueError
from load.normalize import normalize_pages
from load.report import inspect_event
from schemas.archive import (
    KIND_BATCH_CANDLES,
    KIND_EVENT_CANDLES,
    Manifest,
    ManifestMarket,
    PageEnvelope,
    WindowKey,
    open_archive,
)
from schemas.tables import WindowPolicy
from tests.kalshi_sim.model import period_ends

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


# --- the route: plan, check, files ------------------------------------------------------

WINDOW_START = 1_787_700_000 - 1_787_700_000 % 60
SIX = tuple(f"{EVENT}-B{70 + i}.5" for i in range(6))


def window(minutes: int = 2340) -> Window:
    markets = tuple(ManifestMarket(t, WINDOW_START, WINDOW_START + minutes * 60) for t in SIX)
    return Window(WINDOW_START, WINDOW_START + minutes * 60, True, markets)


def test_the_route_plans_a_weather_window_in_two_requests_under_the_cap() -> None:
    route = BatchRoute(KEY)
    pager = route.pager(window(), SIX, 1)
    reqs = []
    while (req := pager.next_request()) is not None:
        reqs.append(req)
        pager.advance(req, pager.decide(req, Page(())))
    assert route.estimate(window(), SIX, 1) == len(reqs) == 2
    assert [r.params["market_tickers"] for r in reqs] == [",".join(SIX)] * 2
    assert reqs[0].start_ts == WINDOW_START and reqs[-1].end_ts == WINDOW_START + 2340 * 60
    assert reqs[1].start_ts == reqs[0].end_ts + 1
    # the simulator's count of requested candles (its 400 rule)
    assert all(6 * period_ends(r.start_ts, r.end_ts, 1)[1] <= 10_000 for r in reqs)
    assert route.file(reqs[1]) == f"batch/g0/{reqs[1].start_ts}.json.gz"


def test_an_archived_batch_page_is_reused_only_for_the_same_request() -> None:
    route = BatchRoute(KEY)
    req = route.pager(window(), SIX, 1).next_request()
    assert req is not None
    same = envelope(KIND_BATCH_CANDLES, {"markets": []}, dict(req.params))
    assert route.matches(same, req)
    fewer = dict(req.params, market_tickers=",".join(SIX[:5]))
    assert not route.matches(envelope(KIND_BATCH_CANDLES, {"markets": []}, fewer), req)
    shorter = dict(req.params, end_ts=int(req.params["end_ts"]) - 60)
    assert not route.matches(envelope(KIND_BATCH_CANDLES, {"markets": []}, shorter), req)


def test_the_check_refuses_what_the_request_did_not_ask_for() -> None:
    route = BatchRoute(KEY)
    req = route.pager(window(), SIX, 1).next_request()
    assert req is not None
    body = sample_batch()
    body["markets"][0]["market_ticker"] = SIX[0]
    page = route.check(body, req)
    assert page.listed == {SIX[0]} and page.returned == 13
    other = {"markets": [{"market_ticker": "KXHIGHNY-26AUG28-B80.5", "candlesticks": []}]}
    with pytest.raises(WrongEventError):
        route.check(other, req)
    twice = {"markets": [{"market_ticker": SIX[0], "candlesticks": []}] * 2}
    with pytest.raises(BadPageError, match="twice"):
        route.check(twice, req)
    with pytest.raises(BadPageError, match="integer end_period_ts"):
        route.check({"markets": [{"market_ticker": SIX[0], "candlesticks": [{}]}]}, req)
    with pytest.raises(BadPageError, match="no 'markets' list"):
        route.check({"market_tickers": []}, req)


def test_inspect_shows_batch_pages(tmp_path: Path) -> None:
    archive = open_archive(tmp_path)
    archive.ensure_writable()
    body = sample_batch()
    rel = KEY.batch_page_path(1787789280)
    archive.write_page(rel, envelope(KIND_BATCH_CANDLES, body))
    archive.write_manifest(
        Manifest(KEY, 1787789280, 1787790000, True, (), (rel.removeprefix(KEY.dir + "/"),))
    )
    (shown,) = inspect_event(archive, EVENT)
    (page,) = shown.pages
    assert page.file == rel and page.in_manifest and page.kind == KIND_BATCH_CANDLES
    assert page.candles == {MARKET: 13} and page.adjusted_end_ts is None
