"""The pure arithmetic of routes: batch plans under the caps, the floor, ``auto``'s choice.

Truth comes from outside :mod:`extract.plan.auto`: hand-computed weather windows, the recorded
400 of the batch route (``error-400-batch-over-cap.json``), and the simulator's own
counting of requested candles (:func:`tests.kalshi_sim.model.period_ends`), which is
what its 400 rule applies.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from extract.plan.auto import (
    Answer,
    CapCounts,
    Evidence,
    RouteChoice,
    WindowShape,
    batch_historical_answer,
    choose_routes,
    classify_capped_event_page,
    window_floor,
)
from extract.plan.caps import (
    BATCH_CANDLE_CAP,
    batch_plan,
    event_route_pages,
    requested_candles,
    ticker_groups,
)
from extract.plan.runplan import RequestTally, plan_routes
from extract.routes.base import Page, RouteRequest
from extract.routes.choice import RouteChooser
from extract.run.outcome import CandlesSummary
from tests.kalshi_sim.model import period_ends

SAMPLES = Path(__file__).parent / "kalshi_samples"
#: A weather window: 14:00Z the day before to 05:00Z the day after (39 h, 2,340 minutes).
START = 1_763_647_200  # 2025-11-20T14:00Z
END = START + 39 * 3600
SIX = tuple(f"KXHIGHNY-25NOV21-B{50 + i}.5" for i in range(6))


def shape(live: tuple[str, ...] = SIX, hist: tuple[str, ...] = ()) -> WindowShape:
    return WindowShape(live, hist, START, END, 1)


# --- counting and planning ------------------------------------------------------------


def test_a_weather_window_requests_2341_candles_a_market() -> None:
    # both ends inclusive: 2,340 minutes hold 2,341 period ends
    assert requested_candles(START, END, 1) == 2341 == period_ends(START, END, 1)[1]
    assert requested_candles(START, END, 60) == 40 == period_ends(START, END, 60)[1]


def test_the_recorded_over_cap_request_would_never_be_planned() -> None:
    body = json.loads((SAMPLES / "error-400-batch-over-cap.json").read_bytes())
    assert "max candlesticks: 10000" in body["error"]["details"]
    assert BATCH_CANDLE_CAP == 10_000
    # 36,000 requested (the sample) would be split: e.g. 6 markets x 6,000 minutes
    plan = batch_plan(SIX, START, START + 5999 * 60, 1)
    assert sum(r.requested(1) for r in plan) == 36_000
    assert len(plan) == 4 and all(r.requested(1) <= 10_000 for r in plan)


def test_six_markets_of_a_weather_window_take_two_batch_requests() -> None:
    plan = batch_plan(SIX, START, END, 1)
    # 10,000 // 6 = 1,666 minutes a request: [START, START + 1665 min], then the rest
    assert [(r.start_ts, r.end_ts) for r in plan] == [
        (START, START + 1665 * 60),
        (START + 1665 * 60 + 1, END),
    ]
    assert all(r.tickers == SIX for r in plan)
    assert plan[0].params(1) == {
        "market_tickers": ",".join(SIX),
        "start_ts": START,
        "end_ts": START + 1665 * 60,
        "period_interval": 1,
    }


def test_more_than_100_tickers_are_split_evenly() -> None:
    tickers = [f"KXHIGHNY-25NOV21-B{i}" for i in range(130)]
    groups = ticker_groups(tickers)
    assert [len(g) for g in groups] == [65, 65]
    assert sorted(t for g in groups for t in g) == sorted(tickers)
    assert all(len(r.tickers) <= 100 for r in batch_plan(tickers, START, END, 1))


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 250),
    start=st.integers(1_700_000_000, 1_700_100_000),
    length=st.integers(0, 400_000),
    period=st.sampled_from([1, 60, 1440]),
)
def test_every_planned_request_is_under_the_simulators_cap_and_none_is_lost(
    n: int, start: int, length: int, period: int
) -> None:
    tickers = [f"KXHIGHNY-25NOV21-B{i}" for i in range(n)]
    plan = batch_plan(tickers, start, start + length, period)
    per_ticker: dict[str, list[int]] = {t: [] for t in tickers}
    for r in plan:
        first, count = period_ends(r.start_ts, r.end_ts, period)
        assert len(r.tickers) <= 100
        assert len(r.tickers) * count <= 10_000  # the simulator's 400 rule
        for t in r.tickers:
            per_ticker[t].extend(range(first, first + count * period * 60, period * 60))
    first, count = period_ends(start, start + length, period)
    every = list(range(first, first + count * period * 60, period * 60))
    for ends in per_ticker.values():
        assert ends == every  # each period end asked exactly once, in order


def test_event_pages_follow_the_simulators_requested_cut() -> None:
    # the sim's cut: k = 5000 // 6 = 833 periods a page, the next starting at the cut
    # period: 0..832, 832..1664, 1664..2340
    assert event_route_pages(6, 6 * 2341, 2341) == 3
    assert event_route_pages(6, 4999, 2341) == 1
    assert event_route_pages(0, 0, 2341) == 0


# --- evidence -------------------------------------------------------------------------


def test_a_capped_page_says_what_its_cap_counts() -> None:
    # 6 markets, cut after 833 periods: 4,998 candidates; sparse candles -> requested
    cut = START + 832 * 60
    assert classify_capped_event_page(6, START, cut, 1, returned=1200) is CapCounts.REQUESTED
    # dense: the candles fill the cap while candidates overflow it -> returned
    cut = START + 1000 * 60  # 6,006 candidates
    assert classify_capped_event_page(6, START, cut, 1, returned=4998) is CapCounts.RETURNED
    # every candidate a candle and both fit: cannot tell
    cut = START + 832 * 60
    assert classify_capped_event_page(6, START, cut, 1, returned=4998) is CapCounts.UNKNOWN


def test_batch_serves_historical_only_when_shown() -> None:
    assert batch_historical_answer({"A": 12, "B": None}, {}) is Answer.YES
    assert batch_historical_answer({"A": None}, {"A": 40}) is Answer.NO
    assert batch_historical_answer({"A": 0}, {"A": 3}) is Answer.NO
    # no candles on either route proves nothing
    assert batch_historical_answer({"A": None}, {"A": 0}) is Answer.UNKNOWN
    ev = Evidence()
    ev.saw_batch_historical(Answer.YES)
    ev.saw_batch_historical(Answer.NO)
    assert ev.batch_serves_historical is Answer.YES


# --- the choice -----------------------------------------------------------------------


def test_auto_takes_batch_while_the_event_cap_is_unknown() -> None:
    routes = choose_routes(shape(), RouteChoice.AUTO, Evidence())
    assert routes.batch == SIX and routes.event == ()
    assert routes.requests == {"event": 0, "batch": 2, "historical": 0}


def test_auto_takes_the_event_route_for_sparse_markets_under_a_returned_cap() -> None:
    ev = Evidence(CapCounts.RETURNED)
    ev.saw_page(returned=300, requested=14_046)  # sparse: 2% of minutes have a candle
    routes = choose_routes(shape(), RouteChoice.AUTO, ev)
    assert routes.event == SIX and routes.batch == ()
    assert routes.requests == {"event": 1, "batch": 0, "historical": 0}


def test_auto_takes_batch_for_dense_markets_under_a_returned_cap() -> None:
    ev = Evidence(CapCounts.RETURNED)
    ev.saw_page(returned=13_300, requested=14_046)
    assert choose_routes(shape(), RouteChoice.AUTO, ev).batch == SIX


def test_a_tie_goes_to_the_event_route() -> None:
    one = WindowShape(SIX[:1], (), START, END, 1)  # 2,341 candidates: one page either way
    assert choose_routes(one, RouteChoice.AUTO, Evidence()).event == SIX[:1]


def test_historical_markets_by_what_batch_has_shown() -> None:
    hist = tuple(t.replace("NOV21", "JUN02") for t in SIX)
    w = shape(live=(), hist=hist)
    probe = choose_routes(w, RouteChoice.AUTO, Evidence())
    assert probe.probe and probe.batch == hist
    waiting = choose_routes(w, RouteChoice.AUTO, Evidence(), may_probe=False)
    assert waiting.historical == hist and not waiting.probe
    yes = choose_routes(w, RouteChoice.AUTO, Evidence(batch_serves_historical=Answer.YES))
    assert yes.batch == hist and yes.requests == {"event": 0, "batch": 2, "historical": 0}
    no = choose_routes(w, RouteChoice.BATCH, Evidence(batch_serves_historical=Answer.NO))
    assert no.historical == hist and no.requests == {"event": 0, "batch": 0, "historical": 6}
    event = choose_routes(w, RouteChoice.EVENT, Evidence(batch_serves_historical=Answer.YES))
    assert event.historical == hist and event.batch == ()


# --- the floor ------------------------------------------------------------------------


def test_the_floor_of_a_weather_window() -> None:
    hist = tuple(t.replace("NOV21", "JUN02") for t in SIX)
    # live: ceil(6 x 2,341 / 10,000) = 2 on batch
    assert window_floor(shape(), batch_serves_historical=False) == 2
    # historical, batch not serving them: one request a market
    assert window_floor(shape(live=(), hist=hist), batch_serves_historical=False) == 6
    assert window_floor(shape(live=(), hist=hist), batch_serves_historical=True) == 2
    # a sparse event under a returned cap: one event page holds it all
    assert window_floor(shape(), batch_serves_historical=False, event_candles=900) == 1
    # mixed: 3 live + 3 historical markets; batch for all when it serves them
    mixed = shape(live=SIX[:3], hist=hist[:3])
    assert window_floor(mixed, batch_serves_historical=True) == 2
    assert window_floor(mixed, batch_serves_historical=False) == 1 + 3


# --- the run's chooser ----------------------------------------------------------------


async def test_one_window_probes_batch_and_the_others_wait_for_its_answer() -> None:
    hist = tuple(t.replace("NOV21", "JUN02") for t in SIX)
    chooser = RouteChooser(RouteChoice.AUTO)
    w = shape(live=(), hist=hist)
    order: list[str] = []

    async def first() -> None:
        async with chooser.routes(w) as routes:
            assert routes.probe and routes.batch == hist
            order.append("probe")
            await asyncio.sleep(0.05)
            chooser.saw_batch_historical({t: None for t in hist}, {hist[0]: 40})
            order.append("answered")

    async def second() -> None:
        await asyncio.sleep(0.01)  # starts while the first one probes
        async with chooser.routes(w) as routes:
            order.append("second")
            assert not routes.probe and routes.historical == hist

    await asyncio.gather(first(), second())
    assert order == ["probe", "answered", "second"]
    assert chooser.evidence.batch_serves_historical is Answer.NO


async def test_probing_stops_after_windows_that_cannot_tell() -> None:
    hist = tuple(t.replace("NOV21", "JUN02") for t in SIX)
    chooser = RouteChooser(RouteChoice.BATCH)
    w = shape(live=(), hist=hist)
    probes = []
    for _ in range(5):
        async with chooser.routes(w) as routes:
            probes.append(routes.probe)
            chooser.saw_batch_historical({t: 0 for t in hist}, {t: 0 for t in hist})
    assert probes == [True, True, True, False, False]


def test_the_chooser_learns_the_cap_and_the_density_from_pages() -> None:
    chooser = RouteChooser(RouteChoice.AUTO)
    cut = START + 832 * 60
    params: dict[str, int | str] = {"start_ts": START, "end_ts": END, "period_interval": 1}
    req = RouteRequest("/series/S/events/E/candlesticks", params, START, END)
    sparse = Page.of(((t, [cut] * 200) for t in SIX), cut)
    chooser.saw("event", req, SIX, sparse)
    assert chooser.evidence.event_cap_counts is CapCounts.REQUESTED
    assert (chooser.evidence.candles_returned, chooser.evidence.candles_requested) == (
        1200,
        6 * 833,
    )


def test_the_summary_shows_requests_per_event_and_route() -> None:
    s = CandlesSummary(done=4, route_requests={"batch": 8, "historical": 6, "lookup": 1})
    assert s.lines()[-1] == (
        "requests per event: 3.75 over 4 windows (batch 2.0, historical 1.5, lookup 0.25)"
    )
    assert not any(line.startswith("requests per event") for line in CandlesSummary().lines())


def test_the_dry_run_tally_names_the_floor_under_both_answers() -> None:
    hist = tuple(t.replace("NOV21", "JUN02") for t in SIX)
    windows = [shape(), shape(live=(), hist=hist)]
    plan = plan_routes(windows, [True, True], RouteChoice.AUTO, Evidence())
    tally = RequestTally(plan)
    assert tally.planned == {"event": 0, "batch": 2, "historical": 6}
    lines = tally.lines(Evidence())
    assert lines[0] == "requests planned: 8 (event 0, batch 2, historical 6) (2.67 x the floor)"
    # If batch serves historical markets: each window's full chunk (6 x 1,666 periods)
    # alone, and both remainders (12 tickers x 675 periods = 8,100) in one request.
    assert lines[1].startswith("floor: 3 ")
    assert lines[2].startswith("  the floor is 8 if batch does not serve historical markets")
    known = tally.lines(Evidence(batch_serves_historical=Answer.NO))
    assert known[1].startswith("floor: 8 ") and len(known) == 2
