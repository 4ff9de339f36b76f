"""``auto`` without a ``check-api`` report asks batch about ONE historical market (one hourly
request over its window) before routing the rest, where a window's own batch requests
would waste more than one request on the question.

Truth: the simulator's request log (what was asked, at what period, for which markets,
by its own count of requested candles: :func:`tests.kalshi_sim.model.period_ends`) and its
world (which markets are historical, every candle they hold), never the extractor's own
counters; and, for the chooser alone, hand-written answers.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from extract.config import RouteChoice
from extract.plan.auto import (
    Answer,
    BatchProbe,
    WindowShape,
    batch_probe,
    choose_routes,
    probe_waste,
)
from extract.plan.auto import Evidence as RunEvidence
from extract.routes.choice import RouteChooser
from schemas.db import make_engine
from tests.kalshi_sim import RequestRecord, SimServer
from tests.kalshi_sim.model import period_ends
from tests.test_batch_route import MIN_MAX, backfill, e2e_world, historical_markets
from tests.test_load_support import ground_truth, stored
from tests.test_route_choice import END, SIX, START, shape

HIST = tuple(t.replace("NOV21", "JUN02") for t in SIX)


# --- which way to ask --------------------------------------------------------------------------


def test_a_window_of_six_historical_markets_would_waste_two_batch_requests() -> None:
    w = shape(live=(), hist=HIST)
    probing = choose_routes(w, RouteChoice.AUTO, RunEvidence(), may_probe=True)
    plain = choose_routes(w, RouteChoice.AUTO, RunEvidence(), may_probe=False)
    # 6 x 2,341 = 14,046 requested candles (this 39-hour shape): two batch requests
    assert -(-6 * period_ends(START, END, 1)[1] // 10_000) == 2
    assert probe_waste(probing, plain) == 2
    # four historical markets fit one batch request: the window's own request asks
    four = shape(live=(), hist=HIST[:4])
    assert (
        probe_waste(
            choose_routes(four, RouteChoice.AUTO, RunEvidence(), may_probe=True),
            choose_routes(four, RouteChoice.AUTO, RunEvidence(), may_probe=False),
        )
        == 1
    )
    # two live markets and two historical ones share one request: asking costs nothing
    mixed = shape(live=SIX[:2], hist=HIST[:2])
    assert (
        probe_waste(
            choose_routes(mixed, RouteChoice.AUTO, RunEvidence(), may_probe=True),
            choose_routes(mixed, RouteChoice.AUTO, RunEvidence(), may_probe=False),
        )
        == 0
    )


def test_the_probe_asks_the_whole_window_in_hours() -> None:
    probe = batch_probe(shape(live=(), hist=HIST))
    assert probe.ticker == sorted(HIST)[0] and probe.period == 60
    assert (probe.start_ts, probe.end_ts) == (START, END)  # whole hours already
    assert period_ends(probe.start_ts, probe.end_ts, 60)[1] == 40
    # a window of odd minutes: the hours holding its first and last minute are asked
    odd = WindowShape((), HIST, START + 180, END - 60, 1)
    assert (batch_probe(odd).start_ts, batch_probe(odd).end_ts) == (START, END)


class FakeBatch:
    """Answers the chooser's one-market question as told; records what was asked."""

    def __init__(self, candles: int | None) -> None:
        self.candles = candles
        self.asked: list[BatchProbe] = []

    async def __call__(self, probe: BatchProbe) -> int | None:
        self.asked.append(probe)
        return self.candles


async def test_a_candle_from_batch_is_a_yes_and_nobody_waits() -> None:
    ask = FakeBatch(17)
    chooser = RouteChooser(RouteChoice.AUTO, ask_batch=ask)
    w = shape(live=(), hist=HIST)
    order: list[str] = []

    async def first() -> None:
        async with chooser.routes(w) as routes:
            assert routes.batch == HIST and not routes.historical and not routes.probe
            order.append("first in")
            await asyncio.sleep(0.05)
            order.append("first out")

    async def second() -> None:
        await asyncio.sleep(0.01)
        async with chooser.routes(w) as routes:
            assert routes.batch == HIST
            order.append("second in")

    await asyncio.gather(first(), second())
    assert order == ["first in", "second in", "first out"]
    assert chooser.evidence.batch_serves_historical is Answer.YES
    assert len(ask.asked) == 1


async def test_no_candle_from_batch_waits_for_the_historical_route() -> None:
    ask = FakeBatch(0)
    chooser = RouteChooser(RouteChoice.AUTO, ask_batch=ask)
    w = shape(live=(), hist=HIST)
    order: list[str] = []

    async def first() -> None:
        async with chooser.routes(w) as routes:
            assert routes.historical == HIST and not routes.batch and not routes.probe
            assert routes.asked == ask.asked[0].ticker
            await asyncio.sleep(0.05)
            chooser.saw_batch_historical({routes.asked: 0}, {routes.asked: 312})
            order.append("answered")

    async def second() -> None:
        await asyncio.sleep(0.01)
        async with chooser.routes(w) as routes:
            assert routes.historical == HIST and routes.asked is None
            order.append("second")

    await asyncio.gather(first(), second())
    assert order == ["answered", "second"]
    assert chooser.evidence.batch_serves_historical is Answer.NO


async def test_a_market_without_candles_cannot_say_no() -> None:
    ask = FakeBatch(0)
    chooser = RouteChooser(RouteChoice.AUTO, ask_batch=ask)
    for _ in range(4):
        async with chooser.routes(shape(live=(), hist=HIST)) as routes:
            if routes.asked:
                chooser.saw_batch_historical({routes.asked: 0}, {routes.asked: 0})
    assert chooser.evidence.batch_serves_historical is Answer.UNKNOWN
    assert len(ask.asked) == 3  # MAX_PROBES windows asked, then the historical route


async def test_when_batch_cannot_be_asked_the_window_asks_with_its_own_requests() -> None:
    chooser = RouteChooser(RouteChoice.AUTO, ask_batch=FakeBatch(None))
    async with chooser.routes(shape(live=(), hist=HIST)) as routes:
        assert routes.probe and routes.batch == HIST and routes.asked is None


async def test_a_window_with_room_asks_with_its_own_requests() -> None:
    ask = FakeBatch(5)
    chooser = RouteChooser(RouteChoice.AUTO, ask_batch=ask)
    async with chooser.routes(shape(live=(), hist=HIST[:4])) as routes:
        assert routes.probe and routes.batch == HIST[:4]
    assert not ask.asked


# --- end to end: the simulator counts ----------------------------------------------------------


def tickers(r: RequestRecord) -> set[str]:
    return set(r.params["market_tickers"].split(","))


@pytest.mark.parametrize("serves", [False, True], ids=["batch-refuses", "batch-serves"])
async def test_a_small_auto_backfill_asks_batch_once_for_one_market(
    tmp_path: Path, sqlite_url: str, serves: bool
) -> None:
    """Ten weather days of six markets, four of them historical: the backfill asks batch
    about one market with one request, where the first historical window's own batch
    requests took two; its rows are the simulator's candles either way."""
    world = replace(e2e_world(batch_serves_historical=serves), markets_per_event=6)
    async with SimServer(world) as sim:
        summary = await backfill(sim, sqlite_url, tmp_path / "raw", RouteChoice.AUTO)
        log = [r for r in sim.counters.log if r.route.endswith("candlesticks")]
        sim.reset()
        again = await backfill(sim, sqlite_url, tmp_path / "raw", RouteChoice.AUTO)
        assert not [r for r in sim.counters.log if r.route.endswith("candlesticks")]
        assert again.skipped == summary.done
        w = sim.world
    events = w.event_tickers("KXHIGHNY")
    historical = {m.ticker for e in events for m in w.market_infos(e) if w.is_historical(m)}
    hist_windows = {m.event_ticker for e in events for m in w.market_infos(e) if w.is_historical(m)}
    assert len(historical) == 6 * len(hist_windows) and len(hist_windows) >= 2

    # the question: one request, one historical market, hourly, before any of its window
    batch = [r for r in log if r.route == "batch_candlesticks"]
    asking = [r for r in batch if tickers(r) & historical]
    probe = asking[0]
    assert len(tickers(probe)) == 1 and probe.params["period_interval"] == "60"
    assert probe.candidates is not None and probe.candidates <= 100
    assert log.index(probe) == 0
    assert summary.route_requests.get("probe") == 1

    # today's way: the first historical window's six markets in its own batch requests
    hist_log = [r for r in log if r.route == "historical_candlesticks"]
    event = probe.params["market_tickers"].rsplit("-", 1)[0]
    window = [r for r in log if r is not probe and event + "-" in r.path + str(r.params)]
    start = min(int(r.params["start_ts"]) for r in window)
    end = max(int(r.params["end_ts"]) for r in window)
    before_way = -(-6 * period_ends(start, end, 1)[1] // 10_000)
    assert before_way == 2

    minute_batch = [r for r in batch if r is not probe]
    assert all(r.params["period_interval"] == "1" for r in minute_batch)
    if not serves:
        # the answer is no: no other batch request names a historical market, and each
        # historical market took its one request on its own route (2,340 <= 5,000)
        assert asking == [probe]
        assert sorted(r.path.split("/")[-2] for r in hist_log) == sorted(historical)
        # every request but the question carries the window's data: one wasted, not two
        assert len(log) == 1 + len(hist_log) + len(minute_batch)
        before = len(log) - 1 + before_way
        assert len(log) < before, (len(log), before)
    else:
        # the answer is yes: historical markets come from batch, never their own route
        assert not hist_log
        assert len(log) == 1 + len(minute_batch)

    # the rows are the simulator's candles, every one and none extra
    rows = stored(make_engine(sqlite_url))
    truth = ground_truth(w, events)
    assert set(rows) == set(truth)
    assert historical_markets(tmp_path / "raw") == historical  # the manifests' tier
    on_hist_route = set() if serves else historical
    for key, row in truth.items():
        got = rows[key]
        if key[0] in on_hist_route:  # the historical route carries no price min/max
            row = tuple(v for i, v in enumerate(row) if i not in MIN_MAX)
            got = tuple(v for i, v in enumerate(got) if i not in MIN_MAX)
        assert got == row, key
