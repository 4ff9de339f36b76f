"""The batch route: its pages in the archive and the loader, and its backfill end to end.

Truth: the genuine batch answer Kalshi sent (``live-batch-candles-p1.EXCERPT.json``),
read here with the standard library only, and the event route's own pages.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from extract.config import ApiConfig, ExtractConfig, RateLimit, RouteChoice
from extract.errors import BadPageError, WrongEventError
from extract.events.sync import sync_events
from extract.plan.windows import Window
from extract.routes.base import Page
from extract.routes.batch import BatchRoute
from extract.run.candles import run_candles
from extract.run.outcome import CandlesSummary
from load.config import LoadConfig
from load.errors import MalformedValueError
from load.normalize.pages import normalize_pages
from load.report.inspect import inspect_event
from load.run.loader import load_windows
from schemas.archive import (
    KIND_BATCH_CANDLES,
    KIND_EVENT_CANDLES,
    LocalArchive,
    Manifest,
    ManifestMarket,
    PageEnvelope,
    WindowKey,
    open_archive,
)
from schemas.core import WindowPolicy
from schemas.db import make_engine
from schemas.tables import CANDLE_PRICE_COLUMNS
from tests.databases import mariadb_database
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, SimServer, run_sim_in_thread
from tests.kalshi_sim.model import period_ends
from tests.test_extract_cli import _base, invoke, sync
from tests.test_load_support import Truth, ground_truth, stored

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
    page = route.check(json.dumps(body).encode(), req)
    assert page.listed == {SIX[0]} and page.returned == 13
    other = {"markets": [{"market_ticker": "KXHIGHNY-26AUG28-B80.5", "candlesticks": []}]}
    with pytest.raises(WrongEventError):
        route.check(json.dumps(other).encode(), req)
    twice = {"markets": [{"market_ticker": SIX[0], "candlesticks": []}] * 2}
    with pytest.raises(BadPageError, match="twice"):
        route.check(json.dumps(twice).encode(), req)
    no_end = {"markets": [{"market_ticker": SIX[0], "candlesticks": [{}]}]}
    with pytest.raises(BadPageError, match="integer end_period_ts"):
        route.check(json.dumps(no_end).encode(), req)
    with pytest.raises(BadPageError, match="no 'markets' list"):
        route.check(b'{"market_tickers": []}', req)


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


# --- end to end: the batch route's backfill is the event route's -----------------------

E2E_NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
MIN_MAX = (
    CANDLE_PRICE_COLUMNS.index("price_min"),
    CANDLE_PRICE_COLUMNS.index("price_max"),
)


def e2e_world(**switches: Any) -> SimConfig:
    """Ten weather-schedule days around the 90-day cutoff: live and historical events,
    and events with markets on both sides of it."""
    return SimConfig(
        seed=31,
        series=(DEFAULT_SERIES[0],),
        now=E2E_NOW,
        first_date=date(2025, 10, 17),
        last_date=date(2025, 10, 26),
        markets_per_event=4,
        schedule="weather",
        **switches,
    )


async def backfill(
    sim: SimServer, db_url: str, archive: Path, route: RouteChoice
) -> CandlesSummary:
    """``extract events`` + ``extract candles --route`` + ``load run`` into ``db_url``."""
    api = ApiConfig(
        base_url=sim.base_url,
        rate=RateLimit(1000, 1.0),
        max_retries=2,
        backoff_base_s=0.001,
        backoff_max_s=0.01,
    )
    cfg = ExtractConfig(
        series="KXHIGHNY",
        db_url=db_url,
        archive_dir=archive,
        api=api,
        now=sim.world.now,
        concurrency=3,
        route=route,
    )
    await sync_events(cfg)
    summary = await run_candles(cfg)
    assert summary.ok, summary.failures
    load_cfg = LoadConfig(db_url=db_url, archive_dir=archive, retry_backoff_s=0)
    await asyncio.to_thread(load_windows, load_cfg)
    return summary


def historical_markets(archive: Path) -> set[str]:
    """Markets whose window manifest says they are on the historical tier."""
    store = LocalArchive(archive)
    return {
        m.market_ticker
        for rel in store.iter_manifests()
        for m in store.read_manifest(rel).markets
        if m.route == "historical"
    }


def batch_requests_under_cap(sim: SimServer) -> list[int]:
    """Requested candles of every batch request, by the simulator's own count."""
    out = []
    for rec in sim.counters.log:
        if rec.route != "batch_candlesticks":
            continue
        assert rec.status == 200, rec
        p = rec.params
        n = len(p["market_tickers"].split(","))
        out.append(n * period_ends(int(p["start_ts"]), int(p["end_ts"]), 1)[1])
    assert all(0 < k <= 10_000 for k in out), out
    return out


def same_rows(event: Truth, batch: Truth, hist_by_event: set[str], hist_by_batch: set[str]) -> None:
    """Row for row; price min/max are compared where both routes carry them (the
    historical route has none, so a market fetched there on one side only differs)."""
    assert set(event) == set(batch)
    for key, row in event.items():
        other = batch[key]
        if (key[0] in hist_by_event) != (key[0] in hist_by_batch):
            skip = set(MIN_MAX)
            row = tuple(v for i, v in enumerate(row) if i not in skip)
            other = tuple(v for i, v in enumerate(other) if i not in skip)
        assert row == other, key


@pytest.mark.mariadb
@pytest.mark.parametrize(
    "switches",
    [
        {},
        {"batch_serves_historical": True, "sparse_market_rate": 0.5},
        {"market_tickers_scope": "with_candles", "event_cap_counts": "requested"},
    ],
    ids=["default", "batch-serves-historical-sparse", "with-candles-requested-cap"],
)
async def test_the_batch_backfill_equals_the_event_backfill(
    tmp_path: Path, switches: dict[str, Any]
) -> None:
    world = e2e_world(**switches)
    with mariadb_database() as event_db, mariadb_database() as batch_db:
        async with SimServer(world) as sim:
            await backfill(sim, event_db, tmp_path / "event", RouteChoice.EVENT)
            sim.reset()
            summary = await backfill(sim, batch_db, tmp_path / "batch", RouteChoice.BATCH)
            sizes = batch_requests_under_cap(sim)
            routes = dict(sim.counters.by_route)
        assert sizes and routes.get("event_candlesticks", 0) == 0
        hist_event = historical_markets(tmp_path / "event")
        hist_batch = hist_event if not switches.get("batch_serves_historical") else set()
        if not switches.get("batch_serves_historical"):
            assert routes["historical_candlesticks"] >= len(hist_event)
        else:  # after the probe, historical markets come from batch: none on their route
            assert routes.get("historical_candlesticks", 0) == 0
        event_rows = stored(make_engine(event_db))
        batch_rows = stored(make_engine(batch_db))
        truth = ground_truth(sim.world, sim.world.event_tickers("KXHIGHNY"))
        assert set(event_rows) == set(truth)  # every candle, none extra
        same_rows(event_rows, batch_rows, hist_event, hist_batch)
        assert summary.route_requests.get("batch", 0) == len(sizes)


@pytest.mark.parametrize("serves", [False, True])
async def test_auto_learns_whether_batch_serves_historical_markets(
    tmp_path: Path, sqlite_url: str, serves: bool
) -> None:
    world = e2e_world(batch_serves_historical=serves)
    async with SimServer(world) as sim:
        summary = await backfill(sim, sqlite_url, tmp_path / "raw", RouteChoice.AUTO)
        log = list(sim.counters.log)
        sim.reset()
        again = await backfill(sim, sqlite_url, tmp_path / "raw", RouteChoice.AUTO)
        # a rerun finds every window archived: not one candle request
        assert again.skipped == summary.done and not again.route_requests
        assert not [r for r in sim.counters.log if r.route.endswith("candlesticks")]
    historical = {
        m.ticker
        for e in sim.world.event_tickers("KXHIGHNY")
        for m in sim.world.market_infos(e)
        if sim.world.is_historical(m)
    }
    batch_hist = [
        r
        for r in log
        if r.route == "batch_candlesticks"
        and historical & set(r.params["market_tickers"].split(","))
    ]
    hist_requests = [r for r in log if r.route == "historical_candlesticks"]
    n_hist = len(historical_markets(tmp_path / "raw"))
    if serves:
        # the first window with historical markets probes and every later one uses batch
        assert batch_hist and not hist_requests
    else:
        # one probing window asked batch for historical markets; then their own route
        windows = {r.params["start_ts"] for r in batch_hist}
        assert len(windows) <= 2 and len(hist_requests) == n_hist
    assert summary.route_requests.get("event", 0) == 0  # the event cap is unknown: batch


def test_the_dry_run_shows_requests_per_route_and_the_floor(
    tmp_path: Path, sqlite_url: str
) -> None:
    world = e2e_world(batch_serves_historical=True)
    with run_sim_in_thread(world) as sim:
        assert sync(sim, sqlite_url).exit_code == 0
        sim.reset()
        args = ["candles", "--series", "KXHIGHNY", "--db", sqlite_url, "--dry-run"]
        args += ["--archive", str(tmp_path / "raw"), *_base(sim)]
        by_route = {r: invoke(*args, "--route", r).output.splitlines() for r in ("event", "batch")}
        assert sim.counters.total == 0  # a dry run asks nothing
    # 10 weather events of 4 markets, 39 h each (2,341 minutes): all are historical or
    # live by the stored flags; the event route takes 2 pages per live event
    # (4 x 2,341 > 5,000), batch 1 (9,364 <= 10,000), historical 1 per market
    event, batch = by_route["event"], by_route["batch"]
    planned = next(ln for ln in batch if ln.startswith("requests planned:"))
    floor = next(ln for ln in batch if ln.startswith("floor:"))
    n_live = sum(1 for ln in event if "~2 requests" in ln and "historical)" not in ln)
    assert n_live > 0
    assert f"batch {n_live}," in planned
    assert floor.startswith("floor: 10 ")  # one batch request per event if batch serves all
    assert event[-1].startswith("plan: 10 events")
    r = invoke(*args, "--route", "sideways")
    assert r.exit_code == 2 and "--route" in r.output
