"""The column check of a candle page says what the per-value check says, on every page.

:func:`schemas.candle_pages.read_candle_page` takes its column path only when the bytes
show the columns are the page; :func:`~schemas.candle_pages.by_values` (``orjson`` and
:func:`schemas.api.contract_problem`) is the reference. The truth here is that reference
and the genuine samples: every page below, the genuine ones and hundreds of mutations of
them (numbers, floats and booleans for strings, duplicate and unknown keys, escapes,
whitespace, nulls, legacy integer fields, values outside the contract), must get the
same verdict, shape error or markets and problem alike, from both.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.api import contract_problem
from schemas.candle_pages import Layout, by_values, read_candle_page
from schemas.errors import FatalApiError

SAMPLES = Path(__file__).resolve().parent / "kalshi_samples"
EVENT = "KXHIGHNY-26AUG28"


def _sample(name: str) -> Any:
    return orjson.loads((SAMPLES / name).read_bytes())


def _batch_candles() -> list[dict[str, Any]]:
    """The genuine live candles: 13 of a batch answer, 19 hourly ones (with empty prices)."""
    batch = _sample("live-batch-candles-p1.EXCERPT.json")["markets"][0]["candlesticks"]
    return [*batch, *_sample("live-market-candles-p60.json")["candlesticks"]]


def _pages() -> dict[Layout, bytes]:
    """One page of each layout made of genuine candles (compact JSON, like Kalshi's)."""
    live = _batch_candles()
    hist = _sample("historical-market-candles-p1.EXCERPT.json")["candlesticks"]
    tickers = [f"{EVENT}-B80.5", f"{EVENT}-T81"]
    return {
        "batch": orjson.dumps(
            {
                "markets": [
                    {"market_ticker": tickers[0], "candlesticks": live[:16]},
                    {"market_ticker": tickers[1], "candlesticks": live[16:32]},
                ]
            }
        ),
        "event": orjson.dumps(
            {
                "market_tickers": tickers,
                "market_candlesticks": [live[:16], live[16:32]],
                "adjusted_end_ts": live[31]["end_period_ts"],
            }
        ),
        "historical": orjson.dumps({"ticker": tickers[0], "candlesticks": hist}),
    }


def verdict(read: Any, raw: bytes, layout: Layout) -> tuple[Any, ...]:
    try:
        page = read(raw, layout)
    except FatalApiError as e:
        return ("shape", str(e))
    markets = tuple((t, ends.tolist()) for t, ends in page.markets)
    return ("page", markets, page.adjusted_end_ts, page.problem)


@pytest.mark.parametrize("layout", ["batch", "event", "historical"])
def test_genuine_pages_take_the_column_path_and_agree(layout: Layout) -> None:
    raw = _pages()[layout]
    page = read_candle_page(raw, layout)
    assert page.by_pattern and page.problem is None
    assert verdict(read_candle_page, raw, layout) == verdict(by_values, raw, layout)
    assert sum(len(e) for _, e in page.markets) == (12 if layout == "historical" else 32)


def test_the_genuine_batch_sample_takes_the_column_path() -> None:
    raw = (SAMPLES / "live-batch-candles-p1.EXCERPT.json").read_bytes().strip()
    page = read_candle_page(raw, "batch")
    assert page.by_pattern and page.problem is None
    assert verdict(read_candle_page, raw, "batch") == verdict(by_values, raw, "batch")


def _candle(**over: Any) -> dict[str, Any]:
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


# The refusal table of tests/test_open_points.py, through a whole page this time.
REFUSALS = [
    (_candle(price={"close_dollars": "1.2500"}), "live", "not a price in [0, 1]"),
    (_candle(price={"close_dollars": "-0.10"}), "live", "not a price in [0, 1]"),
    (_candle(price={"close_dollars": "0.1234567"}), "live", "not a price"),
    (_candle(price={"close_dollars": 0.56}), "live", "JSON float"),
    (_candle(volume_fp=10), "live", "JSON int"),
    (_candle(open_interest_fp="-1.00"), "live", "not a non-negative count"),
    (_candle(volume="3"), "live", "not a legacy integer"),
    ({"end_period_ts": 60, "yes_bid": {"open": 0.5}}, "historical", "JSON float"),
    ({"end_period_ts": 60, "volume": 12}, "historical", "JSON int"),
]


@pytest.mark.parametrize(("candle", "shape", "says"), REFUSALS)
def test_every_refusal_keeps_its_words(candle: Any, shape: str, says: str) -> None:
    first = _candle() if shape == "live" else {"end_period_ts": 0}
    ticker = f"{EVENT}-B80.5"
    body = (
        {"markets": [{"market_ticker": ticker, "candlesticks": [first, candle]}]}
        if shape == "live"
        else {"ticker": ticker, "candlesticks": [first, candle]}
    )
    layout: Layout = "batch" if shape == "live" else "historical"
    page = read_candle_page(orjson.dumps(body), layout)
    assert page.problem == contract_problem([first, candle], shape)  # type: ignore[arg-type]
    assert page.problem is not None and says in page.problem


def test_a_contract_value_the_columns_refuse_is_worded_by_the_reference() -> None:
    """A bad price in a page the columns can read: refused, named by the per-value path."""
    live = _batch_candles()[:5]
    live[3] = dict(live[3], price={"close_dollars": "1.0001"})
    raw = orjson.dumps({"markets": [{"market_ticker": f"{EVENT}-T81", "candlesticks": live}]})
    page = read_candle_page(raw, "batch")
    assert not page.by_pattern
    assert page.problem == (
        f"candle {live[3]['end_period_ts']}: price.close_dollars is '1.0001', "
        "not a price in [0, 1] dollars"
    )


# --- mutations: the column path never accepts what the reference refuses ---------------------

#: (pattern, replacements): one occurrence of the pattern, chosen at random, is replaced.
MUTATIONS: list[tuple[str, list[str]]] = [
    (
        r'"close_dollars":"[^"]*"',
        [
            '"close_dollars":0.5',
            '"close_dollars":1',
            '"close_dollars":true',
            '"close_dollars":{}',
            '"close_dollars":[]',
            '"close_dollars":null',
            '"close_dollars":"1.5"',
            '"close_dollars":"1.0000001"',
            '"close_dollars":"1e-2"',
            '"close_dollars":".5"',
            '"close_dollars":"+0.5"',
            '"close_dollars":"0.5 "',
            '"close_dollars": "0.5"',
            '"close_dollars":"0.5","close_dollars":"0.7"',
            '"close_dollars":"0.5","close_dollars":7',
            '"close_dollars":"0.5","foo_dollars":"5.0"',
            '"close_dollars":"0.5","foo_dollars":null',
            '"close_dollars":"1.000000"',
            '"close_dollars":"0001"',
            '"close_dollars":"00001"',
            '"close\\u005fdollars":"0.5"',
            '"close_dollars":"0.\\u0035"',
            '"close":"0.5"',
            '"close_dollars":"0.5","close":56',
            '"close_dollars":NaN',
        ],
    ),
    (
        r'"(?:volume|volume_fp|open_interest|open_interest_fp)":"[^"]*"',
        [
            '"volume_fp":12',
            '"volume_fp":"-1.00"',
            '"volume_fp":"1.234"',
            '"volume_fp":null',
            '"volume_fp":"12"',
            '"volume":3',
            '"volume":"3.00"',
            '"open_interest":null',
            '"volume_fp":12.5',
        ],
    ),
    (
        r'"end_period_ts":[0-9]+',
        [
            '"end_period_ts":"1060"',
            '"end_period_ts":1060.5',
            '"end_period_ts":true',
            '"end_period_ts":null',
            '"end_period_ts":-60',
            '"end_period_ts":1e9',
            '"end_period_ts":0123',
            '"end_period_ts":99999999999999999999',
            '"end_period_ts":60,"end_period_ts":120',
            '"end_period_ts":60,"end_period_ts":"x"',
            '"end_period_ts":60,"end_period_ts":1.5',
        ],
    ),
    (
        r'"(?:yes_bid|yes_ask|price)":\{',
        [
            '"yes_bid":null,"x":{',
            '"yes_bid":{"open":56,',
            '"yes_bid":{"mean":"0.5",',
            '"price":{"open":56,',
            '"price":{"foo_dollars":"9",',
            '"yes_bid":{"open_dollars":5,',
        ],
    ),
    (
        r'"(?:yes_bid|yes_ask|price)":\{[^{}]*\}',
        [
            '"yes_bid":null',
            '"yes_bid":5',
            '"yes_bid":"x"',
            '"yes_bid":[]',
            '"yes_bid":{}',
            '"price":{"close_dollars":"0.5"}',
        ],
    ),
    (
        r"\{\"end_period_ts\"",
        [
            'null,{"end_period_ts"',
            '5,{"end_period_ts"',
            '{"x":1,"end_period_ts"',
        ],
    ),
    (r",", [", ", ",\n"]),
    (
        r'"market_ticker":"[^"]*"',
        [
            '"market_ticker":5',
            '"market_ticker":null',
            '"market_ticker":"X\\u0041"',
        ],
    ),
    (
        r'"market_tickers":\["',
        [
            '"market_tickers":[5,"',
            '"market_tickers":[null,"',
            '"market_tickers":[],"market_tickers":["',
            '"market_tickers":["KXHIGHNY-26AUG28-X"],"market_tickers":["',
            '"market_tickers":["KXHIGHNY-26AUG28-X","KXHIGHNY-26AUG28-Y"],"market_tickers":["',
        ],
    ),
    (
        r'"adjusted_end_ts":[0-9]+',
        [
            '"adjusted_end_ts":"5"',
            '"adjusted_end_ts":1.5',
            '"adjusted_end_ts":true',
            '"adjusted_end_ts":null',
            '"adjusted_end_ts":0',
            '"adjusted_end_ts":5,"adjusted_end_ts":6',
            '"adjusted_end_ts":null,"adjusted_end_ts":6',
            '"adjusted_end_ts":-0',
            '"adjusted_end_ts":07',
        ],
    ),
    (r'"ticker":"[^"]*"', ['"ticker":5', '"ticker":null', '"ticker":"A","ticker":"B"']),
    (r"^\{", ["[{", '{"extra":1,', '{"extra":null,', " {"]),
    (r"\}$", ["}}", "},", "}x"]),
]


def _mutate(raw: bytes, rng: random.Random) -> bytes:
    text = raw.decode()
    for _ in range(rng.choice((1, 1, 2))):
        pattern, replacements = rng.choice(MUTATIONS)
        found = list(re.finditer(pattern, text))
        if not found:
            continue
        m = rng.choice(found)
        text = text[: m.start()] + rng.choice(replacements) + text[m.end() :]
    return text.encode()


@pytest.mark.parametrize("layout", ["batch", "event", "historical"])
def test_mutated_pages_get_the_reference_verdict(layout: Layout) -> None:
    rng = random.Random(f"candle-pages-{layout}")
    base = _pages()[layout]
    outcomes = {"pattern": 0, "values": 0, "refused": 0}
    for _ in range(400):
        raw = _mutate(base, rng)
        got, want = verdict(read_candle_page, raw, layout), verdict(by_values, raw, layout)
        assert got == want, raw.decode()[:2000]
        try:
            page = read_candle_page(raw, layout)
        except FatalApiError:
            outcomes["refused"] += 1
            continue
        outcomes["pattern" if page.by_pattern else "values"] += 1
    # The mutations reach both paths and the refusals: the comparison above is not vacuous.
    assert min(outcomes.values()) >= 20, outcomes
