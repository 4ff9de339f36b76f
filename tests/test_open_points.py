"""The extractor's decisions on the points the API contract leaves open, as pure functions.

``kalshi-api.md`` ("What the spec leaves open") lists the answers a server may give; each
test here feeds one of them, hand-built or taken from the genuine recorded responses in
``/work/shared/kalshi-samples`` (vendored in ``tests/kalshi_samples``), and checks the
decision against what the contract says must happen. No network, no database.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from extract.api.client import ApiResponse, KalshiClient
from extract.api.retry import Verdict, classify
from extract.config import ApiConfig, ExtractConfig
from extract.errors import NoProgressError, PagingContractError
from extract.events.sync import build_rows, fetch_series_events
from extract.plan.caps import event_requests
from extract.plan.paginator import Paginator, Step, page_step, usable_adjusted_end
from extract.plan.tiers import (
    CUTOFF_WATCH_S,
    Absence,
    absent_market_action,
    historical_chunks,
    may_cross_cutoff,
)
from extract.plan.windows import EventTimes, MarketTimes, Window, plan_window
from extract.routes.event import EventRoute
from extract.routes.historical import HistoricalRoute
from schemas.api import contract_problem
from schemas.archive import ManifestMarket, WindowKey
from schemas.core import WindowPolicy
from schemas.errors import InputError

SAMPLES = Path(__file__).resolve().parent / "kalshi_samples"
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/kalshi-samples")
KEY = WindowKey("KXHIGHNY", "KXHIGHNY-25NOV20", 1, WindowPolicy.FULL_MARKET_WINDOW)


# --- adjusted_end_ts on an uncapped page -----------------------------------------------------

# A window [1000, 10000]; the requested page [1000, 10000]; its candles end at 1060..7000.
S, E = 1000, 10_000


@pytest.mark.parametrize(
    ("said", "why"),
    [(E, "end_ts"), (0, "zero"), (None, "absent"), (E + 600, "past the end")],
)
def test_an_uncapped_page_ends_the_window_whatever_it_says(said: int | None, why: str) -> None:
    step = page_step(S, E, usable_adjusted_end(said), (1060, 7000))
    assert step == Step(None, E), why


def test_last_candle_semantics_cost_one_confirming_request_then_end() -> None:
    # The page names its last candle: the contract reads that as "capped there", so the
    # next page starts at 7000 and holds only the boundary candle, naming it again.
    p = Paginator(S, E)
    assert p.advance(S, 7000, span=(1060, 7000)) == Step(7000, 7000)
    assert p.advance(7000, 7000, span=(7000, 7000)) == Step(None, E)
    assert p.finished and p.chain == [(S, 7000), (7000, E)]


def test_last_candle_of_an_empty_page_is_its_start() -> None:
    # No candle at all: a server naming its last candle says start_ts (or 0).
    assert page_step(S, E, S, None) == Step(None, E)


def test_a_capped_page_is_followed_whatever_its_size() -> None:
    # The cap is the server's: a page cut well below 5,000 candles is still followed.
    assert page_step(S, E, 4000, (1060, 4000)) == Step(4000, 4000)


def test_a_stalled_server_fails_loudly() -> None:
    # The same full page again: adjusted_end_ts does not pass start_ts, candles go on.
    with pytest.raises(NoProgressError, match="does not advance"):
        page_step(S, E, S, (S, 4000))
    assert classify(NoProgressError("x")) is Verdict.RETRY  # retried, then the window fails


@pytest.mark.parametrize("value", [0, None, "12", True, -5, 1.5])
def test_unusable_adjusted_end_values_are_no_claim(value: object) -> None:
    assert usable_adjusted_end(value) is None


# --- the range a page claims ---------------------------------------------------------------


def test_backward_paging_is_refused_with_the_reason() -> None:
    # A backward-paging server keeps the candles nearest end_ts and names the earliest.
    with pytest.raises(PagingContractError, match="paging semantics differ from the contract"):
        page_step(S, E, 7000, (7000, E))


def test_a_candle_before_the_start_is_refused() -> None:
    with pytest.raises(PagingContractError, match="paging semantics differ"):
        page_step(S, E, None, (S - 60, 7000))
    with pytest.raises(PagingContractError, match="before its start"):
        page_step(S, E, S, (S - 60, S))


def test_paging_contract_errors_are_not_retried() -> None:
    assert classify(PagingContractError("x")) is Verdict.FATAL


def test_a_historical_page_outside_its_request_is_refused() -> None:
    route = HistoricalRoute(KEY)
    window = Window(S, E, True, (ManifestMarket("KXHIGHNY-25NOV20-T52", S, E),))
    pager = route.pager(window, ["KXHIGHNY-25NOV20-T52"], 1)
    req = pager.next_request()
    assert req is not None and (req.start_ts, req.end_ts) == (S, E)
    body = {"ticker": "KXHIGHNY-25NOV20-T52", "candlesticks": [{"end_period_ts": E + 60}]}
    with pytest.raises(PagingContractError):
        pager.decide(req, route.check(orjson.dumps(body), req))


# --- the event cap: what the dry run estimates -----------------------------------------------


def _requested_cap_pages(n: int, start: int, end: int, period: int, cap: int) -> int:
    """Simulate a server whose cap counts REQUESTED candidates (markets x period ends),
    cutting at whole periods and paging forward from the cut (inclusive): independent
    of :func:`event_requests`, which must equal it."""
    p = period * 60
    pages, s = 0, start
    while True:
        pages += 1
        first = -(-s // p) * p
        count = (end // p * p - first) // p + 1
        if n * count <= cap:
            return pages
        s = first + (max(1, cap // n) - 1) * p


@pytest.mark.parametrize(("n", "minutes"), [(1, 100), (2, 2280), (6, 2280), (6, 2520), (12, 2520)])
def test_the_estimate_is_exact_for_a_requested_cap(n: int, minutes: int) -> None:
    end = S * 60 + minutes * 60
    assert event_requests(n, S * 60, end, 1) == _requested_cap_pages(n, S * 60, end, 1, 5000)


def test_the_estimate_bounds_a_returned_cap() -> None:
    # A cap counting RETURNED candles cuts at whole timestamps once 5,000 candles are in:
    # with 5 % of minutes missing a page holds more period ends, so fewer pages.
    n, ends = 6, 2521
    present = [t for t in range(ends) if t % 20 != 7]  # 95 % of the minutes
    pages, i = 0, 0
    while True:
        pages += 1
        k = 5000 // n
        if len(present) - i <= k:
            break
        i += k - 1  # the next page starts on the last kept timestamp
    assert pages <= event_requests(n, 0, (ends - 1) * 60, 1)


# --- markets a page leaves out ---------------------------------------------------------------


def test_a_sparse_market_listed_elsewhere_costs_nothing() -> None:
    action = absent_market_action(
        listed_somewhere=True, could_have_moved=False, lists_every_market=False
    )
    assert action is Absence.SPARSE


def test_a_market_that_could_have_moved_goes_to_the_historical_route() -> None:
    for listed in (True, False):
        action = absent_market_action(
            listed_somewhere=listed, could_have_moved=True, lists_every_market=False
        )
        assert action is Absence.HISTORICAL


@pytest.mark.parametrize(("listed", "every"), [(False, False), (False, True), (True, True)])
def test_otherwise_the_live_tier_is_asked(listed: bool, every: bool) -> None:
    # Absent from every page, or left out by a server that lists markets without candles.
    action = absent_market_action(
        listed_somewhere=listed, could_have_moved=False, lists_every_market=every
    )
    assert action is Absence.LOOKUP


def test_only_markets_settled_near_the_cutoff_may_cross_it() -> None:
    cutoff, now = 10**9, 10**9 + 90 * 86_400
    near = MarketTimes("KXHIGHNY-25NOV20-T1", 0, cutoff + 3600, cutoff + 7200)
    far = MarketTimes("KXHIGHNY-25NOV20-T2", 0, now - 3600, now - 1800)
    open_ = MarketTimes("KXHIGHNY-25NOV20-T3", 0, now + 3600, None)
    assert may_cross_cutoff(near, cutoff, now)
    assert not may_cross_cutoff(far, cutoff, now)  # weeks after the cutoff: still live
    assert not may_cross_cutoff(open_, cutoff, now)  # not even closed
    edge = MarketTimes("KXHIGHNY-25NOV20-T4", 0, 0, cutoff + CUTOFF_WATCH_S)
    assert not may_cross_cutoff(edge, cutoff, now)


def test_page_lists_and_market_without_candles() -> None:
    route = EventRoute(KEY)
    req = route.request(S, E, 1)
    body = {
        "market_tickers": ["KXHIGHNY-25NOV20-T52", "KXHIGHNY-25NOV20-B50.5"],
        "market_candlesticks": [[{"end_period_ts": 1060}], []],
    }
    page = route.check(orjson.dumps(body), req)  # no adjusted_end_ts key: accepted
    assert page.adjusted_end_ts is None and page.returned == 1
    assert page.listed == {"KXHIGHNY-25NOV20-T52", "KXHIGHNY-25NOV20-B50.5"}
    assert page.lists_a_market_without_candles


# --- the grace period ------------------------------------------------------------------------


def _event(close: int) -> EventTimes:
    return EventTimes(
        "KXHIGHNY-25NOV20", None, None, (MarketTimes("KXHIGHNY-25NOV20-T1", 0, close),)
    )


def test_a_window_is_final_only_a_grace_after_the_close() -> None:
    close, grace = 100 * 60, 60 * 60
    within = plan_window(_event(close), WindowPolicy.FULL_MARKET_WINDOW, 1, close + 59 * 60, grace)
    assert isinstance(within, Window)
    assert (within.end_ts, within.is_final) == (close, False)  # closed, not final yet
    after = plan_window(_event(close), WindowPolicy.FULL_MARKET_WINDOW, 1, close + grace, grace)
    assert isinstance(after, Window) and (after.end_ts, after.is_final) == (close, True)
    still_open = plan_window(_event(close), WindowPolicy.FULL_MARKET_WINDOW, 1, close - 600, grace)
    assert isinstance(still_open, Window)
    assert (still_open.end_ts, still_open.is_final) == (close - 600, False)


def test_final_grace_is_an_option_with_a_default() -> None:
    assert ExtractConfig(series="KXHIGHNY").final_grace_s == 3600
    assert ExtractConfig(series="KXHIGHNY", final_grace_minutes=0).final_grace_s == 0
    with pytest.raises(InputError, match="final-grace"):
        ExtractConfig(series="KXHIGHNY", final_grace_minutes=-1)


# --- values against the contract ---------------------------------------------------------------


def _sample(name: str) -> Any:
    return orjson.loads((SAMPLES / name).read_bytes())


def test_the_genuine_samples_hold_no_value_outside_the_contract() -> None:
    live = _sample("live-market-candles-p60.json")["candlesticks"]
    batch = _sample("live-batch-candles-p1.EXCERPT.json")["markets"][0]["candlesticks"]
    hist = _sample("historical-market-candles-p1.EXCERPT.json")["candlesticks"]
    assert live and batch and hist
    assert contract_problem(live, "live") is None
    assert contract_problem(batch, "live") is None
    assert contract_problem(hist, "historical") is None


def _live_candle(**over: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "end_period_ts": 1060,
        "yes_bid": {"open_dollars": "0.0000", "low_dollars": "0.0000", "high_dollars": "0.0000",
                    "close_dollars": "0.0000"},
        "yes_ask": {"open_dollars": "1.0000", "low_dollars": "1.0000", "high_dollars": "1.0000",
                    "close_dollars": "1.0000"},
        "price": {"previous_dollars": "0.000100"},
        "volume_fp": "0.00",
        "open_interest_fp": "12.50",
    }  # fmt: skip
    c.update(over)
    return c


def test_the_bounds_of_the_contract_are_accepted() -> None:
    # 0 and 1 dollars (an empty side of the book), a sub-cent tick, legacy integer twins.
    legacy = _live_candle(volume=3, open_interest=12)
    legacy["yes_bid"] = {**legacy["yes_bid"], "open": 0, "close": None}
    assert contract_problem([_live_candle(), legacy], "live") is None


@pytest.mark.parametrize(
    ("candle", "shape", "says"),
    [
        (_live_candle(price={"close_dollars": "1.2500"}), "live", "not a price in [0, 1]"),
        (_live_candle(price={"close_dollars": "-0.10"}), "live", "not a price in [0, 1]"),
        (_live_candle(price={"close_dollars": "0.1234567"}), "live", "not a price"),
        (_live_candle(price={"close_dollars": 0.56}), "live", "JSON float"),
        (_live_candle(volume_fp=10), "live", "JSON int"),
        (_live_candle(open_interest_fp="-1.00"), "live", "not a non-negative count"),
        (_live_candle(volume="3"), "live", "not a legacy integer"),
        ({"end_period_ts": 60, "yes_bid": {"open": 0.5}}, "historical", "JSON float"),
        ({"end_period_ts": 60, "volume": 12}, "historical", "JSON int"),
    ],
)
def test_values_outside_the_contract_are_named(candle: Any, shape: Any, says: str) -> None:
    problem = contract_problem([_live_candle(), candle], shape)
    assert problem is not None and says in problem


def test_the_value_check_is_cheap() -> None:
    """A 5,000-candle page (the event cap) of genuine-shaped candles: report the CPU."""
    live = _sample("live-market-candles-p60.json")["candlesticks"]
    page = [dict(c, end_period_ts=i) for i, c in enumerate(live * (5000 // len(live) + 1))][:5000]
    started = time.process_time()
    for _ in range(5):
        assert contract_problem(page, "live") is None
    per_page_ms = (time.process_time() - started) / 5 * 1000
    print(f"value check: {per_page_ms:.1f} ms CPU per 5,000-candle page")
    assert per_page_ms < 200


# --- regressions: behaviour in the code that had no test ---------------------------------------


def test_a_400_is_never_retried() -> None:
    from extract.errors import HttpStatusError

    assert classify(400) is Verdict.FATAL
    assert classify(HttpStatusError(400, "/x", '{"msg": "Parameter validation failed"}')) is (
        Verdict.FATAL
    )


def test_historical_requests_stay_under_5000_requested_candles() -> None:
    # A 12-day window of 1-minute periods: every chunk asks for at most 5,000 period ends.
    start, end = 1_700_000_000, 1_700_000_000 + 12 * 86_400
    for period in (1, 60):
        chunks = historical_chunks(start, end, period)
        step = period * 60
        for c in chunks:
            first = -(-c.start_ts // step) * step
            assert (c.end_ts // step * step - first) // step + 1 <= 5000
        assert chunks[0].start_ts == start and chunks[-1].end_ts == end


class _ScriptedClient(KalshiClient):
    """Answers ``/events`` from a script of bodies, in order (no network)."""

    def __init__(self, bodies: list[Any]) -> None:
        super().__init__(ApiConfig())
        self.bodies = bodies
        self.asked: list[dict[str, Any]] = []

    async def get_json(self, path: str, params: Any = None, **kw: Any) -> ApiResponse:
        if path == "/events":
            self.asked.append(dict(params or {}))
            body = self.bodies.pop(0)
        else:
            body = {"series": {"ticker": "KXHIGHNY"}}
        return ApiResponse(path, dict(params or {}), 200, body, datetime.now(UTC), b"")


def _ev(ticker: str, **over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_ticker": ticker,
        "series_ticker": "KXHIGHNY",
        "title": "t",
        "strike_date": "2025-11-21T04:59:00Z",
    }
    ev.update(over)
    return ev


async def test_an_empty_events_page_with_a_cursor_is_followed() -> None:
    client = _ScriptedClient(
        [
            {"events": [], "cursor": "c1"},
            {"events": [_ev("KXHIGHNY-25NOV20")], "cursor": "c2"},
            {"events": [], "cursor": ""},
        ]
    )
    events = await fetch_series_events(client, "KXHIGHNY")
    assert [e["event_ticker"] for e in events] == ["KXHIGHNY-25NOV20"]
    assert [a.get("cursor") for a in client.asked] == [None, "c1", "c2"]


def test_an_event_listed_without_a_markets_key_is_kept() -> None:
    cfg = ExtractConfig(series="KXHIGHNY")
    hist = {"KXHIGHNY-25NOV19": [{"ticker": "KXHIGHNY-25NOV19-T52",
                                   "event_ticker": "KXHIGHNY-25NOV19"}]}  # fmt: skip
    events, markets = build_rows(
        [_ev("KXHIGHNY-25NOV19"), _ev("KXHIGHNY-25NOV20", markets=[])],
        cfg,
        {},
        datetime.now(UTC),
        hist,
    )
    assert [e["event_ticker"] for e in events] == ["KXHIGHNY-25NOV19", "KXHIGHNY-25NOV20"]
    assert [(m["market_ticker"], m["is_historical"]) for m in markets] == [
        ("KXHIGHNY-25NOV19-T52", True)
    ]


def test_final_grace_is_a_candles_option() -> None:
    from click.testing import CliRunner

    from extract.cli import main

    shown = CliRunner().invoke(main, ["candles", "--help"])
    assert shown.exit_code == 0 and "--final-grace" in shown.output
    assert "(default: 5 req/s unsigned" in " ".join(shown.output.split())
    bad = CliRunner().invoke(main, ["candles", "--series", "KXHIGHNY", "--final-grace", "-5"])
    assert bad.exit_code == 2


def test_an_archived_page_that_may_lack_late_candles_is_fetched_again() -> None:
    from dataclasses import replace

    from extract.run.window_pages import _tentative
    from schemas.archive import KIND_EVENT_CANDLES, PageEnvelope

    def fetched(at: int) -> PageEnvelope:
        return PageEnvelope(
            kind=KIND_EVENT_CANDLES,
            series_ticker="KXHIGHNY",
            event_ticker="KXHIGHNY-25NOV20",
            market_ticker=None,
            period_interval=1,
            window_policy=WindowPolicy.FULL_MARKET_WINDOW,
            path="/x",
            params={"start_ts": S, "end_ts": E, "period_interval": 1},
            status=200,
            retrieved_at_utc=datetime.fromtimestamp(at, UTC),
            body={},
        )

    done, grace = Step(None, E), 3600
    assert _tentative(fetched(E + 600), done, None, grace)  # 10 minutes after its end
    settled = fetched(E + grace)
    assert not _tentative(settled, done, None, grace)  # a whole grace after: kept
    # ... unless the previous extent was not final and the page covers its last hour
    assert _tentative(settled, done, E - grace + 60, grace)
    assert not _tentative(replace(settled), Step(E - grace, E - grace), E - grace, grace)
