"""Pure logic of the extract stage: paginator, windows, throttle, retries, as-of policy.

No database; no network but one local server for request signing. The throttle and the
retry loop run on a fake clock.
"""

from __future__ import annotations

import asyncio
import base64
import random
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from extract.api.client import KalshiClient, Signer
from extract.api.retry import RetryPolicy, Verdict, classify
from extract.api.throttle import Throttle
from extract.config import (
    TIERS,
    UNSIGNED_RATE,
    ApiConfig,
    AsOfPolicy,
    Credentials,
    DayOffset,
    ExtractConfig,
    RateLimit,
    choose_rate,
    series_timezone,
)
from extract.errors import (
    BadPageError,
    HttpStatusError,
    NoProgressError,
    TransportError,
    WrongEventError,
)
from extract.events.sync import build_rows, event_row, market_row, parse_time
from extract.plan.caps import event_requests
from extract.plan.paginator import PageRequest, Paginator
from extract.plan.windows import (
    EventTimes,
    MarketTimes,
    SkipReason,
    Window,
    plan_window,
)
from extract.run.progress import Snapshot, render
from schemas.core import WindowPolicy
from schemas.errors import ConfigError, FatalApiError, InputError, RetriesExhaustedError

NY = ZoneInfo("America/New_York")

# --- paginator ----------------------------------------------------------------------------


def test_paginator_follows_adjusted_end_ts_until_the_window_end() -> None:
    p = Paginator(100, 1000)
    assert p.next_request() == PageRequest(100, 1000)
    p.advance(100, 400)
    assert p.next_request() == PageRequest(400, 1000)
    p.advance(400, 800)
    assert not p.finished
    p.advance(800, 1000)
    assert p.finished and p.next_request() is None
    assert p.chain == [(100, 400), (400, 800), (800, 1000)]


def test_paginator_done_when_adjusted_end_passes_the_end() -> None:
    p = Paginator(100, 1000)
    p.advance(100, 1200)
    assert p.finished and p.chain == [(100, 1000)]


@pytest.mark.parametrize("adjusted", [100, 50])
def test_paginator_refuses_a_page_that_does_not_advance(adjusted: int) -> None:
    # Candles after start_ts, yet adjusted_end_ts does not move past it: a stalled server.
    p = Paginator(100, 1000)
    with pytest.raises(NoProgressError):
        p.advance(100, adjusted, span=(100, 400))
    assert p.chain == [] and p.cursor == 100


def test_paginator_single_instant_window_is_one_page() -> None:
    p = Paginator(500, 500)
    assert p.next_request() == PageRequest(500, 500)
    p.advance(500, 500)  # adjusted == end: done, not "no progress"
    assert p.finished


def test_paginator_refuses_a_page_from_elsewhere() -> None:
    p = Paginator(100, 1000)
    with pytest.raises(ValueError):
        p.advance(200, 400)


def test_paginator_after_the_window_grew_continues_at_the_old_end() -> None:
    # An open event archived up to 900 (asked for [500, 900]); now it ends at 1500.
    p = Paginator(100, 1500)
    p.advance(100, 500)
    p.advance(500, 900, end_ts=900)
    assert p.next_request() == PageRequest(900, 1500)


# --- windows ------------------------------------------------------------------------------


def _event(trade: tuple[int, int] | None = (960, 4980)) -> EventTimes:
    return EventTimes(
        "KXHIGHNY-25NOV20",
        trade[0] if trade else None,
        trade[1] if trade else None,
        (
            MarketTimes("KXHIGHNY-25NOV20-T52", 600, 9000),
            MarketTimes("KXHIGHNY-25NOV20-B50.5", 420, 9000),
            MarketTimes("KXHIGHNY-25NOV20-B48.5", None, None),
        ),
    )


def test_full_market_window_spans_earliest_open_to_latest_close() -> None:
    w = plan_window(_event(), WindowPolicy.FULL_MARKET_WINDOW, 1, now_ts=100_000)
    assert isinstance(w, Window)
    assert (w.start_ts, w.end_ts, w.is_final) == (420, 9000, True)
    assert [m.market_ticker for m in w.markets] == [
        "KXHIGHNY-25NOV20-B50.5",
        "KXHIGHNY-25NOV20-T52",
    ]
    assert [(m.open_ts, m.close_ts) for m in w.markets] == [(420, 9000), (600, 9000)]


def test_open_event_ends_at_the_current_minute_and_is_not_final() -> None:
    w = plan_window(_event(), WindowPolicy.FULL_MARKET_WINDOW, 1, now_ts=3_659)
    assert isinstance(w, Window)
    assert (w.start_ts, w.end_ts, w.is_final) == (420, 3600, False)
    assert all(m.close_ts == 3600 for m in w.markets)  # clipped to the window


def test_trade_window_only_clips_markets_to_the_trade_window() -> None:
    w = plan_window(_event(), WindowPolicy.TRADE_WINDOW_ONLY, 1, now_ts=100_000)
    assert isinstance(w, Window)
    assert (w.start_ts, w.end_ts, w.is_final) == (960, 4980, True)
    assert {(m.open_ts, m.close_ts) for m in w.markets} == {(960, 4980)}


def test_event_without_trade_window_or_markets_is_a_reason_not_a_window() -> None:
    policy = WindowPolicy.TRADE_WINDOW_ONLY
    assert plan_window(_event(None), policy, 1, 100_000) is SkipReason.NO_TRADE_WINDOW
    bare = EventTimes("KXHIGHNY-25NOV20", None, None, ())
    assert plan_window(bare, WindowPolicy.FULL_MARKET_WINDOW, 1, 100_000) is SkipReason.NO_MARKETS
    assert plan_window(_event(), WindowPolicy.FULL_MARKET_WINDOW, 1, 400) is SkipReason.NOT_STARTED


def test_hourly_window_end_rounds_up_to_the_period_holding_the_close() -> None:
    close = 1_763_701_140  # 2025-11-21T04:59:00Z
    ev = EventTimes("KXHIGHNY-25NOV20", None, None, (MarketTimes("KXHIGHNY-25NOV20-T1", 0, close),))
    w = plan_window(ev, WindowPolicy.FULL_MARKET_WINDOW, 60, now_ts=close + 86_400)
    assert isinstance(w, Window) and w.end_ts == close + 60


def test_event_requests_bound_the_pages_at_the_5000_candle_cap() -> None:
    w = plan_window(_event(), WindowPolicy.FULL_MARKET_WINDOW, 1, now_ts=100_000)
    assert isinstance(w, Window)
    # 2 markets x 144 period ends = 288 candles: one page
    assert event_requests(2, w.start_ts, w.end_ts, 1) == 1
    # 6 markets x 2,281 minute ends: pages of 833 ends, each next page starting on the
    # previous page's last end: 833 + 832 + 832 >= 2,281, so three pages.
    assert event_requests(6, 0, 38 * 3600, 1) == 3
    assert event_requests(6, 0, 38 * 3600, 60) == 1
    assert event_requests(6, 0, 2496 * 60, 1) == 3  # 2,497 ends: 833 + 832 + 832
    assert event_requests(6, 0, 2497 * 60, 1) == 4  # one end more


# --- as-of policy (DST) -------------------------------------------------------------------


def test_day_offset_parse_and_errors() -> None:
    assert DayOffset.parse("-1d10:00") == DayOffset(-1, time(10, 0))
    assert DayOffset.parse("0d16:30") == DayOffset(0, time(16, 30))
    assert DayOffset.parse("+2d00:05") == DayOffset(2, time(0, 5))
    for bad in ("10:00", "-1d25:00", "1d10:60", "xd10:00", ""):
        with pytest.raises(InputError):
            DayOffset.parse(bad)


def test_as_of_default_window_on_an_ordinary_day() -> None:
    start, end = AsOfPolicy().window(date(2025, 11, 20), NY)
    assert start == datetime(2025, 11, 19, 15, 0, tzinfo=UTC)  # 10:00 EST
    assert end == datetime(2025, 11, 20, 21, 0, tzinfo=UTC)  # 16:00 EST


def test_as_of_window_across_spring_forward_is_an_hour_shorter() -> None:
    # 2025-03-09: clocks go 02:00 EST -> 03:00 EDT. 10:00 EST Mar 8 -> 16:00 EDT Mar 9.
    start, end = AsOfPolicy().window(date(2025, 3, 9), NY)
    assert start == datetime(2025, 3, 8, 15, 0, tzinfo=UTC)
    assert end == datetime(2025, 3, 9, 20, 0, tzinfo=UTC)
    assert (end - start).total_seconds() == 29 * 3600


def test_as_of_window_across_fall_back_is_an_hour_longer() -> None:
    start, end = AsOfPolicy().window(date(2025, 11, 2), NY)
    assert start == datetime(2025, 11, 1, 14, 0, tzinfo=UTC)  # 10:00 EDT
    assert end == datetime(2025, 11, 2, 21, 0, tzinfo=UTC)  # 16:00 EST
    assert (end - start).total_seconds() == 31 * 3600


def test_as_of_uses_the_series_zone() -> None:
    start, _ = AsOfPolicy().window(date(2025, 7, 4), series_timezone("KXHIGHLAX"))
    assert start == datetime(2025, 7, 3, 17, 0, tzinfo=UTC)  # 10:00 PDT
    assert series_timezone("KXUNKNOWN") is None  # no silent New York (issue 15 #8)
    denver = series_timezone("KXUNKNOWN", {"KXUNKNOWN": "America/Denver"})
    assert denver is not None and denver.key == "America/Denver"
    with pytest.raises(InputError, match="unknown time zone 'Mars/Olympus'"):
        ExtractConfig(series="KXHIGHNY", series_tz={"KXHIGHNY": "Mars/Olympus"})


def test_as_of_refuses_an_empty_window() -> None:
    policy = AsOfPolicy(DayOffset.parse("0d16:00"), DayOffset.parse("0d10:00"))
    with pytest.raises(InputError):
        policy.window(date(2025, 11, 20), NY)


# --- config -------------------------------------------------------------------------------


def test_rate_choice() -> None:
    assert choose_rate(None, None, signed=False) == UNSIGNED_RATE == RateLimit(5, 2.0)
    assert choose_rate(None, None, signed=True) == TIERS["basic"]
    assert choose_rate(None, "Premier", signed=True) == RateLimit(100, 1.0)
    assert choose_rate(25, None, signed=False) == RateLimit(25, 2.0)
    with pytest.raises(InputError):
        choose_rate(5, "basic", signed=False)
    with pytest.raises(InputError):
        choose_rate(None, "platinum", signed=False)


@pytest.mark.parametrize(
    "url", ["ftp://x/trade-api/v2", "api.kalshi.com", "https://", "http:///path", "https://h/?a=1"]
)
def test_api_base_must_be_http_with_a_host(url: str) -> None:
    with pytest.raises(ConfigError, match="invalid API base URL"):
        ApiConfig(base_url=url)


def test_api_base_path_is_the_archived_prefix() -> None:
    api = ApiConfig(base_url="http://127.0.0.1:9/trade-api/v2/")
    assert api.base_url == "http://127.0.0.1:9/trade-api/v2"
    assert api.base_path == "/trade-api/v2"


def test_config_validation() -> None:
    with pytest.raises(InputError):
        ExtractConfig(series="KXHIGHNY", date_from=date(2025, 2, 1), date_to=date(2025, 1, 1))
    with pytest.raises(InputError):
        ExtractConfig(series="../etc")
    with pytest.raises(InputError):
        ExtractConfig(series="KXHIGHNY", event="KXHIGHCHI-25NOV20")
    with pytest.raises(InputError):
        ExtractConfig(series="KXHIGHNY", period=5)
    with pytest.raises(InputError):
        ExtractConfig(series="KXHIGHNY", concurrency=0)


# --- retry classification and the loop ----------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "verdict"),
    [
        (200, Verdict.OK),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (502, Verdict.RETRY),
        (503, Verdict.RETRY),
        (408, Verdict.RETRY),
        (400, Verdict.FATAL),
        (401, Verdict.FATAL),
        (403, Verdict.FATAL),
        (404, Verdict.FATAL),
        (HttpStatusError(429, "/x"), Verdict.RETRY),
        (HttpStatusError(504, "/x"), Verdict.RETRY),
        (HttpStatusError(404, "/x"), Verdict.FATAL),
        (TransportError("reset"), Verdict.RETRY),
        (BadPageError("truncated"), Verdict.RETRY),
        (WrongEventError("other event"), Verdict.RETRY),
        (NoProgressError("stuck"), Verdict.RETRY),
        (FatalApiError("contract"), Verdict.FATAL),
        (ValueError("bug"), Verdict.FATAL),
    ],
)
def test_classify(outcome: int | BaseException, verdict: Verdict) -> None:
    assert classify(outcome) is verdict


def _policy(retries: int, sleeps: list[float]) -> RetryPolicy:
    async def sleep(s: float) -> None:
        sleeps.append(s)

    return RetryPolicy(retries, 1.0, 8.0, rng=random.Random(1), sleep=sleep)


async def test_retry_loop_retries_then_succeeds() -> None:
    sleeps: list[float] = []
    calls = 0
    seen: list[BaseException] = []

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise HttpStatusError(503, "/x")
        return "ok"

    assert await _policy(5, sleeps).run(attempt, what="t", on_retry=seen.append) == "ok"
    assert calls == 4 and len(sleeps) == 3 and len(seen) == 3
    # full jitter under a doubling ceiling: 1, 2, 4 (capped at 8)
    assert all(0 <= s <= c for s, c in zip(sleeps, (1, 2, 4), strict=True))


async def test_retry_loop_gives_up_with_retries_exhausted() -> None:
    sleeps: list[float] = []

    async def attempt() -> str:
        raise TransportError("reset")

    with pytest.raises(RetriesExhaustedError, match="after 3 attempts") as info:
        await _policy(2, sleeps).run(attempt, what="t")
    assert isinstance(info.value.__cause__, TransportError)
    assert len(sleeps) == 2


async def test_retry_loop_stops_at_once_on_fatal() -> None:
    sleeps: list[float] = []
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        raise HttpStatusError(404, "/x")

    with pytest.raises(HttpStatusError):
        await _policy(5, sleeps).run(attempt, what="t")
    assert calls == 1 and sleeps == []


def test_backoff_ceiling_is_capped() -> None:
    p = RetryPolicy(10, 1.0, 8.0, rng=random.Random(3))
    assert all(0 <= p.backoff(n) <= 8.0 for n in range(1, 30) for _ in range(5))


# --- throttle (fake clock) ----------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _throttle(rate: float, burst: float, clock: FakeClock) -> Throttle:
    return Throttle(rate, burst, clock=clock, sleep=clock.sleep)


async def test_throttle_allows_the_burst_then_paces_at_the_rate() -> None:
    clock = FakeClock()
    t = _throttle(10, 2.0, clock)
    for _ in range(20):
        await t.acquire()
    assert clock.now == 0.0  # a full bucket: 2 s of budget at once
    for _ in range(50):
        await t.acquire()
    assert clock.now == pytest.approx(5.0)  # then 10 per second


async def test_throttle_is_shared_by_concurrent_tasks() -> None:
    clock = FakeClock()
    t = _throttle(20, 1.0, clock)

    async def worker() -> None:
        for _ in range(25):
            await t.acquire()

    await asyncio.gather(*(worker() for _ in range(4)))
    assert clock.now == pytest.approx((100 - 20) / 20)


async def test_throttle_halves_on_429_once_per_cooldown_and_recovers_slowly() -> None:
    clock = FakeClock()
    t = _throttle(20, 2.0, clock)
    t.on_throttled()
    t.on_throttled()  # same burst of 429s: one cut
    assert t.rate == 10
    assert t.tokens <= 0.0  # the bucket is emptied: the server said we are over
    clock.now += 1.0
    t.on_throttled()
    assert t.rate == 5
    for _ in range(10):
        clock.now += 1.0
        t.on_throttled()
    assert t.rate == t.floor_rate == 2.0
    t.on_success()  # within the recovery interval of the last cut
    assert t.rate == 2.0
    clock.now += 2.0
    t.on_success()
    assert t.rate == pytest.approx(4.0)  # +10% of nominal per interval
    for _ in range(20):
        clock.now += 2.0
        t.on_success()
    assert t.rate == 20


async def test_throttle_after_a_cut_paces_at_the_lower_rate() -> None:
    clock = FakeClock()
    t = _throttle(10, 1.0, clock)
    t.on_throttled()
    start = clock.now
    for _ in range(10):
        await t.acquire()
    assert clock.now - start == pytest.approx(10 / 5)


# --- events parsing -----------------------------------------------------------------------


def _api_event(**over: object) -> dict[str, object]:
    ev: dict[str, object] = {
        "event_ticker": "KXHIGHNY-25NOV20",
        "series_ticker": "KXHIGHNY",
        "title": "Highest temperature in NYC on Nov 20, 2025?",
        "sub_title": "On Nov 20, 2025",
        "category": "Climate and Weather",
        "strike_date": "2025-11-21T04:59:00Z",
    }
    ev.update(over)
    return ev


def test_event_row_fills_the_trade_window_by_the_as_of_policy() -> None:
    now = datetime(2025, 11, 1, tzinfo=UTC)
    row = event_row(_api_event(), "KXHIGHNY", NY, AsOfPolicy(), None, now)
    assert row["event_date"] == date(2025, 11, 20)
    assert row["strike_date"] == datetime(2025, 11, 21, 4, 59, tzinfo=UTC)
    assert row["trade_start_utc"] == datetime(2025, 11, 19, 15, tzinfo=UTC)
    assert row["trade_end_utc"] == datetime(2025, 11, 20, 21, tzinfo=UTC)


def test_event_row_keeps_a_stored_trade_window() -> None:
    kept = (datetime(2025, 11, 19, 1, tzinfo=UTC), datetime(2025, 11, 20, 2, tzinfo=UTC))
    row = event_row(_api_event(), "KXHIGHNY", NY, AsOfPolicy(), kept, datetime.now(UTC))
    assert (row["trade_start_utc"], row["trade_end_utc"]) == kept


def test_event_date_falls_back_to_the_local_strike_date() -> None:
    ev = _api_event(event_ticker="KXHIGHNY-SPECIAL", strike_date="2025-11-21T04:59:00Z")
    row = event_row(ev, "KXHIGHNY", NY, AsOfPolicy(), None, datetime.now(UTC))
    assert row["event_date"] == date(2025, 11, 20)  # 23:59 New York time


def test_market_row_keeps_strikes_exact_and_times_aware() -> None:
    m = {
        "ticker": "KXHIGHNY-25NOV20-B50.5",
        "event_ticker": "KXHIGHNY-25NOV20",
        "open_time": "2025-11-19T15:00:00Z",
        "close_time": "2025-11-21T04:59:00Z",
        "expiration_time": "2025-11-28T04:59:00Z",
        "latest_expiration_time": "2025-11-28T04:59:00Z",
        "status": "active",
        "result": "",
        "strike_type": "between",
        "floor_strike": Decimal("50.1"),
        "cap_strike": 51,
    }
    row = market_row(m, "KXHIGHNY", "KXHIGHNY-25NOV20", datetime.now(UTC))
    assert row["floor_strike"] == Decimal("50.1") and isinstance(row["floor_strike"], Decimal)
    assert row["cap_strike"] == Decimal(51)
    assert row["open_time_utc"] == datetime(2025, 11, 19, 15, tzinfo=UTC)
    assert row["settlement_ts_utc"] is None
    with pytest.raises(BadPageError):
        market_row({**m, "floor_strike": 50.1}, "KXHIGHNY", "KXHIGHNY-25NOV20", datetime.now(UTC))
    with pytest.raises(BadPageError):
        market_row(m, "KXHIGHNY", "KXHIGHNY-25NOV21", datetime.now(UTC))


def test_bad_tickers_and_times_from_the_api_are_refused() -> None:
    with pytest.raises(InputError):
        event_row(
            _api_event(event_ticker="../x"), "KXHIGHNY", NY, AsOfPolicy(), None, datetime.now(UTC)
        )
    with pytest.raises(BadPageError):
        parse_time("yesterday")
    assert parse_time("") is None
    assert parse_time("2025-11-21T04:59:00+00:00") == datetime(2025, 11, 21, 4, 59, tzinfo=UTC)


def test_build_rows_flattens_nested_markets() -> None:
    cfg = ExtractConfig(series="KXHIGHNY")
    ev = _api_event(
        markets=[{"ticker": "KXHIGHNY-25NOV20-T52", "event_ticker": "KXHIGHNY-25NOV20"}]
    )
    events, markets = build_rows([ev], cfg, {}, datetime.now(UTC))
    assert [e["event_ticker"] for e in events] == ["KXHIGHNY-25NOV20"]
    assert [m["market_ticker"] for m in markets] == ["KXHIGHNY-25NOV20-T52"]


# --- progress -----------------------------------------------------------------------------


def test_progress_line() -> None:
    line = render(Snapshot(5, 10, 42, 50, 3, 10.0), width=10)
    assert line.startswith("[#####-----] 5/10 events  42 pages  5.0 req/s  3 429s  ETA 0m10s")


# --- signing ------------------------------------------------------------------------------


def test_signer_signs_timestamp_method_path_and_never_shows_the_key(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    signer = Signer(Credentials("key-id-123", path))
    headers = signer.headers("get", "/trade-api/v2/series/KXHIGHNY", now_ms=1_700_000_000_000)
    assert headers["KALSHI-ACCESS-KEY"] == "key-id-123"
    assert headers["KALSHI-ACCESS-TIMESTAMP"] == "1700000000000"
    key.public_key().verify(
        base64.b64decode(headers["KALSHI-ACCESS-SIGNATURE"]),
        b"1700000000000GET/trade-api/v2/series/KXHIGHNY",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
        hashes.SHA256(),
    )
    assert "key-id" not in repr(signer) and "PRIVATE" not in repr(signer)


def test_signer_refuses_unusable_key_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read private key file"):
        Signer(Credentials("k", tmp_path / "missing.pem"))
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key") as info:
        Signer(Credentials("k", bad))
    assert "nope" not in str(info.value)


async def test_signed_requests_carry_the_headers_over_real_http(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    seen: list[tuple[str, dict[str, str]]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.headers)))
        return web.json_response({"series": {"ticker": "KXHIGHNY"}})

    app = web.Application()
    app.router.add_get("/trade-api/v2/series/{s}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        api = ApiConfig(
            base_url=f"http://127.0.0.1:{port}/trade-api/v2",
            credentials=Credentials("kid", path),
        )
        async with KalshiClient(api) as client:
            resp = await client.get_json("/series/KXHIGHNY", {"x": 1})
    finally:
        await runner.cleanup()
    assert resp.path == "/trade-api/v2/series/KXHIGHNY"
    ((got_path, headers),) = seen
    ts = headers["KALSHI-ACCESS-TIMESTAMP"]
    key.public_key().verify(
        base64.b64decode(headers["KALSHI-ACCESS-SIGNATURE"]),
        f"{ts}GET{got_path}".encode(),  # path without the query string
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
        hashes.SHA256(),
    )
