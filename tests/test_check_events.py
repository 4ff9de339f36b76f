"""``check-api``'s event: the closed one with the most candles, a second try when it shows
no cut, and ``paging_direction`` named against a server whose event cap is far below
5,000.

Truth comes from the simulator: its switches (what it was told to answer), its world
(how many candles each event's markets hold) and its own request log (which event each
page asked for, and how many requests the run cost), never from check-api's counters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from extract.check import rules
from extract.check.rules import Span
from tests.kalshi_sim import RequestRecord, SimServer, World
from tests.test_check_api import NOW, SERIES, check, observed, page, sim_config

SMALL_CAP = 300
"""An event cap far below Kalshi's 5,000 (the simulator's ``candle_cap``)."""

UNCAPPED = ("end_ts", "last_candle", "zero", "absent")


def event_pages(log: list[RequestRecord]) -> list[tuple[str, dict[str, str]]]:
    """(event, query) of every event-route request, in order."""
    return [(r.path.split("/")[-2], r.params) for r in log if r.route == "event_candlesticks"]


def closed_by_candles(world: World) -> list[tuple[int, str]]:
    """(candles, event) of the world's five most recent events whose markets have all
    closed an hour before now, most candles first (the world's own count)."""
    now = int(NOW.timestamp())
    closed = []
    for ev in world.event_tickers(SERIES):
        markets = world.market_infos(ev)
        if max(m.close_ts for m in markets) <= now - 3600:
            closed.append((max(m.close_ts for m in markets), ev))
    recent = [ev for _, ev in sorted(closed)[-5:]]
    counts = [
        (sum(len(world.candles(m.ticker)) for m in world.market_infos(ev)), ev) for ev in recent
    ]
    return sorted(counts, reverse=True)


async def run_check(
    tmp_path: Path, event: str | None = None, **switches: Any
) -> tuple[dict[str, str], SimServer]:
    async with SimServer(sim_config(**switches)) as sim:
        report = await check(sim, tmp_path / "raw", event=event)
    assert sim.counters.total <= 20, sim.counters.by_route
    assert report.requests == sim.counters.total
    return observed(report), sim


# --- the event probed -------------------------------------------------------------------------


def half_illiquid(seed: int) -> dict[str, Any]:
    return {"seed": seed, "sparse_market_rate": 0.5, "schedule": "weather"}


@pytest.mark.parametrize("seed", [1, 4, 6])
async def test_the_closed_event_with_the_most_candles_is_probed(tmp_path: Path, seed: int) -> None:
    """Half the markets illiquid: events differ by thousands of candles, and the newest
    closed one is not always the richest. One hourly batch request weighs them."""
    got, sim = await run_check(tmp_path, **half_illiquid(seed))
    best = closed_by_candles(sim.world)
    pages = event_pages(list(sim.counters.log))
    assert {ev for ev, _ in pages} == {best[0][1]}  # the first try showed a cut
    assert got["paging_direction"] == "forward"
    # weighed by the run's first candle request: one hourly batch request, under its caps
    weighing = next(r for r in sim.counters.log if r.route.endswith("candlesticks"))
    assert weighing.route == "batch_candlesticks" and weighing.params["period_interval"] == "60"
    assert weighing.status == 200 and weighing.candidates is not None
    assert len(weighing.params["market_tickers"].split(",")) == 5 * 6
    assert weighing.candidates <= 10_000


async def test_the_newest_closed_is_not_always_the_richest() -> None:
    """The seeds above are worth testing: under one of them the newest closed event is
    not the one with the most candles (the old choice would have probed it)."""
    newest_differs = []
    for seed in (1, 4, 6):
        async with SimServer(sim_config(**half_illiquid(seed))) as sim:
            counts = closed_by_candles(sim.world)
        newest = max(ev for _, ev in counts)  # tickers sort by date within a series
        newest_differs.append(counts[0][1] != newest)
    assert any(newest_differs)


async def test_without_the_weighing_the_newest_closed_event_is_probed(tmp_path: Path) -> None:
    """The batch route fails: the events cannot be weighed, the newest closed one is
    probed, and every event-route check still reads as set."""
    async with SimServer(sim_config()) as sim:
        sim.fail_next("/markets/candlesticks", "503", times=1000)
        report = await check(sim, tmp_path / "raw")
    got = observed(report)
    newest = max(ev for _, ev in closed_by_candles(sim.world))
    assert {ev for ev, _ in event_pages(list(sim.counters.log))} == {newest}
    assert got["paging_direction"] == "forward" and got["event_cap_counts"] == "returned"
    direction = next(c for c in report.checks if c.name == "paging_direction")
    assert "could not be weighed" in direction.evidence
    assert sim.counters.total <= 20


async def test_an_event_that_cannot_show_a_cut_is_followed_by_one_more(tmp_path: Path) -> None:
    """``--event`` names the newest event, opening at the present: no page can be cut.
    The next event by candles answers, for two more requests (its weighing, its window)."""
    got, sim = await run_check(tmp_path, event="KXHIGHNY-25NOV21")
    pages = event_pages(list(sim.counters.log))
    assert [ev for ev, _ in pages[:4]] == ["KXHIGHNY-25NOV21"] * 4
    (second,) = pages[4:]
    assert second[0] == closed_by_candles(sim.world)[0][1]
    assert got["paging_direction"] == "forward"
    assert got["uncapped_adjusted_end_ts"] == "end_ts"


async def test_no_event_able_to_show_a_cut_is_unknown_after_two(tmp_path: Path) -> None:
    """Every market illiquid: no event reaches 5,000 candles, so no page is cut. Two
    events are tried, then ``unknown`` (a warning, exit 0), within the budget."""
    async with SimServer(sim_config(sparse_market_rate=1.0)) as sim:
        report = await check(sim, tmp_path / "raw")
        assert max(n for n, _ in closed_by_candles(sim.world)) < 5000
    got = observed(report)
    pages = event_pages(list(sim.counters.log))
    assert len({ev for ev, _ in pages}) == 2 and len(pages) == 5
    assert got["paging_direction"] == "unknown" and report.exit_code == 0
    assert sim.counters.total <= 20


# --- a cap far below 5,000 ------------------------------------------------------------------

SMALL_CAP_CASES = [
    (uncapped, direction, counts)
    for uncapped in UNCAPPED
    for direction in ("forward", "backward")
    for counts in ("returned", "requested")
]


@pytest.mark.parametrize(
    ("uncapped", "direction", "counts"),
    SMALL_CAP_CASES,
    ids=[f"{u}-{d}-{c}" for u, d, c in SMALL_CAP_CASES],
)
async def test_a_small_cap_is_paged_and_named(
    tmp_path: Path, uncapped: str, direction: str, counts: str
) -> None:
    got, sim = await run_check(
        tmp_path,
        candle_cap=SMALL_CAP,
        uncapped_adjusted_end=uncapped,
        paging_direction=direction,
        event_cap_counts=counts,
    )
    assert got["paging_direction"] == direction
    assert got["uncapped_adjusted_end_ts"] == uncapped  # the probes meant uncapped were
    assert got["market_tickers_scope"] == "all_markets"
    assert got["event_cap_counts"] == (counts if direction == "forward" else "unknown")
    # the first event answered: four pages of one event, none of another
    assert len(event_pages(list(sim.counters.log))) == 4


# --- the rule on hand-made pages ------------------------------------------------------------


def test_a_cut_is_read_with_the_uncapped_finding() -> None:
    full = Span(0, 600_000)
    small = page({"A": [60, 120, 180], "B": [60, 120]}, 180)  # 5 candles, cut at 180
    for finding in ("end_ts", "zero", "absent"):
        assert rules.paging_direction(small, full, 5000, False, finding) == "forward"
    # an uncapped page of a last_candle server looks the same: the count guard stays
    for finding in ("last_candle", "unknown", "other"):
        assert rules.paging_direction(small, full, 5000, False, finding) == "unknown"
        # ...unless another page served a candle of these markets after the cut
        later = {("A", 500_000)}
        assert rules.paging_direction(small, full, 5000, False, finding, later) == "forward"
        beyond = {("A", 600_060)}  # outside the range: proves nothing
        assert rules.paging_direction(small, full, 5000, False, finding, beyond) == "unknown"
    # whatever the finding: candles after the cut are backward, no cut is no answer
    back = page({"A": [180, 240]}, 180)
    assert rules.paging_direction(back, full, 5000, False, "end_ts") == "backward"
    served = page({"A": [60]}, 600_000)
    assert rules.paging_direction(served, full, 5000, False, "end_ts") == "unknown"
    assert rules.paging_direction(page({}, 180), full, 5000, False, "end_ts") == "unknown"


def test_the_uncapped_probes_fit_a_small_cap() -> None:
    hour = 3600
    opens, closes = [10 * hour] * 6, [40 * hour] * 6
    probes = rules.event_probes(opens, closes, 5000, now_ts=100 * hour)
    for span in (probes.uncapped, probes.before_open):
        assert 6 * (span.periods + 1) <= rules.UNCAPPED_CANDIDATES <= SMALL_CAP
    assert probes.before_open.end_ts < 10 * hour <= probes.uncapped.start_ts
    assert probes.uncapped.end_ts == 40 * hour
