"""A candle page read from the bytes received: checked in one pass, parsed once.

:func:`read_candle_page` is what extract applies to every candle page before it is
archived (and to every archived page it reuses): the page's shape, its candles' end
times and every price and count against the contract (:mod:`schemas.api`), with the
markets it lists and their candles' ``end_period_ts`` for the pager's decisions.

Why not a Python object per value: a full batch page holds up to 10,000 candles and 4 MB
of JSON. ``orjson.loads`` and a check of each value in Python cost about 15 µs a candle,
most of a core at 20 requests a second (docs/benchmarks.md has the profiles).

The fast path is a pattern: the page's whole text must match the grammar of a compact
page (:data:`PATTERNS`): the layout's keys and no other, no whitespace, strings without
escapes or control characters, integers as JSON writes them, every price a dollar
string in [0, 1] with at most 6 decimals, every count a fixed-point string with at most
2, or null. Polars' regex engine (a DFA over the bytes, no GIL) decides that in about
half a microsecond a candle. A page that matches is valid JSON whose every value the
per-value checks accept, so only the end times and tickers are then cut out of the text
(strings in candles hold no bracket, so each market's candle list is one slice). A page
that does not match (pretty-printed JSON, an escape, an extra or legacy key, a value
the contract refuses, a malformed body) goes through :func:`by_values`: ``orjson`` and
the per-value checks, which decide and word every refusal. So the pattern only ever
accepts what the per-value path accepts, with the same markets and end times; the
tests compare the two on the genuine samples and on a thousand mutations of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
import polars as pl

from schemas.api import (
    CandleShape,
    check_batch_candles_page,
    check_event_candles_page,
    check_historical_candles_page,
    contract_problem,
)
from schemas.errors import FatalApiError

Layout = Literal["event", "batch", "historical"]
"""The page's envelope: event candlesticks, a batch answer, one historical market."""
Ends = npt.NDArray[np.int64]

SHAPE: dict[Layout, CandleShape] = {"event": "live", "batch": "live", "historical": "historical"}


@dataclass(frozen=True)
class CandlePage:
    """A page's markets in the server's order, each with its candles' ``end_period_ts``."""

    markets: tuple[tuple[str, Ends], ...]
    adjusted_end_ts: int | None
    """As the page said it (event pages; None when absent or null)."""
    problem: str | None
    """The first value the contract does not allow, worded (None: every value holds)."""
    by_pattern: bool
    """True when the pattern path checked it (False: :func:`by_values`)."""


def read_candle_page(raw: bytes, layout: Layout, where: str = "the server") -> CandlePage:
    """The checked page of ``raw``; FatalApiError when it breaks the page's shape.

    ``where`` names the request in the message of an unparseable body. A value outside
    the contract is not raised but returned (``problem``): extract refuses such a page
    (and keeps a copy), or quarantines an archived one.
    """
    page = _by_pattern(raw, layout)
    return page if page is not None else by_values(raw, layout, where)


# --- the per-value path: the reference, and the words of every refusal --------------------


def by_values(raw: bytes, layout: Layout, where: str = "the server") -> CandlePage:
    """The page through ``orjson`` and the per-value checks of :mod:`schemas.api`."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise FatalApiError(f"unparseable body from {where} ({len(raw)} bytes): {e}") from e
    adjusted: int | None = None
    lists: Sequence[tuple[str, Sequence[Any]]]
    if layout == "event":
        event = check_event_candles_page(body)
        lists = list(zip(event["market_tickers"], event["market_candlesticks"], strict=True))
        adjusted = event.get("adjusted_end_ts")
    elif layout == "batch":
        lists = check_batch_candles_page(body)
    else:
        hist = check_historical_candles_page(body)
        lists = [(hist["ticker"], hist["candlesticks"])]
    problem = contract_problem((c for _, cs in lists for c in cs), SHAPE[layout])
    markets = tuple(
        (t, np.fromiter((c["end_period_ts"] for c in cs), np.int64, len(cs))) for t, cs in lists
    )
    return CandlePage(markets, adjusted, problem, by_pattern=False)


# --- the pattern path ----------------------------------------------------------------------


def _object(member: str) -> str:
    return r"\{(?:" + member + r"(?:," + member + r")*)?\}"


_PRICE_TEXT = r'(?:null|"(?:0{1,4}(?:\.[0-9]{1,6})?|0{0,3}1(?:\.0{1,6})?)")'
_COUNT_TEXT = r'(?:null|"[0-9]{1,16}(?:\.[0-9]{1,2})?")'
#: JSON's integer (no leading zero), at most 18 digits: orjson's 64 bits hold it.
_INT = r"-?(?:0|[1-9][0-9]{0,17})"
#: A string without escape, quote or control character (a ticker).
_STRING = r'"[^"\\\x00-\x1f]*"'


def _candle(shape: CandleShape) -> str:
    suffix = "_dollars" if shape == "live" else ""
    counts = "volume_fp|open_interest_fp" if shape == "live" else "volume|open_interest"
    book = _object(r'"(?:open|low|high|close)' + suffix + '":' + _PRICE_TEXT)
    price = _object(r'"(?:open|low|high|close|mean|previous|min|max)' + suffix + '":' + _PRICE_TEXT)
    other = (
        r'(?:"(?:yes_bid|yes_ask)":(?:null|' + book + r')|"price":(?:null|' + price
        + r')|"(?:' + counts + r')":' + _COUNT_TEXT + ")"
    )  # fmt: skip
    # end_period_ts exactly once; the other members in any order.
    return r"\{(?:" + other + r",)*" + r'"end_period_ts":' + _INT + r"(?:," + other + r")*\}"


def _list(shape: CandleShape) -> str:
    candle = _candle(shape)
    return r"\[(?:" + candle + r"(?:," + candle + r")*)?\]"


def _patterns() -> dict[Layout, str]:
    live, hist = _list("live"), _list("historical")
    entry = (
        r'\{(?:"market_ticker":' + _STRING + r',"candlesticks":' + live
        + r'|"candlesticks":' + live + r',"market_ticker":' + _STRING + r")\}"
    )  # fmt: skip
    member = (
        r'(?:"market_tickers":\[(?:' + _STRING + r"(?:," + _STRING + r")*)?\]"
        + r'|"market_candlesticks":\[(?:' + live + r"(?:," + live + r")*)?\]"
        + r'|"adjusted_end_ts":(?:null|' + _INT + "))"
    )  # fmt: skip
    return {
        "batch": r'^\{"markets":\[(?:' + entry + r"(?:," + entry + r")*)?\]\}$",
        "event": r"^\{" + member + r"(?:," + member + r")*\}$",
        "historical": (
            r'^\{(?:"ticker":'
            + _STRING
            + r',"candlesticks":'
            + hist
            + r'|"candlesticks":'
            + hist
            + r',"ticker":'
            + _STRING
            + r")\}$"
        ),
    }


#: The grammar of a compact page every value of which the contract allows, by layout.
PATTERNS = _patterns()
_END_TS = re.compile(rb'"end_period_ts":(-?[0-9]+)')
_TICKER = {"batch": b'"market_ticker":"', "historical": b'"ticker":"'}


def _by_pattern(raw: bytes, layout: Layout) -> CandlePage | None:
    """The page when its text matches :data:`PATTERNS`, else None (see the docstring)."""
    try:
        text = pl.Series([raw], dtype=pl.Binary).cast(pl.String)  # strict: UTF-8 or raise
        if not text.str.contains(PATTERNS[layout])[0]:
            return None
    except pl.exceptions.PolarsError:
        return None
    adjusted: int | None = None
    if layout == "event":
        keys = (b'"market_tickers":', b'"market_candlesticks":', b'"adjusted_end_ts":')
        once = [raw.count(k) for k in keys]
        if once[0] != 1 or once[1] != 1 or once[2] > 1:
            return None  # a member twice (JSON keeps the last) or missing
        start = raw.index(keys[0]) + len(keys[0])
        tickers = [
            t.decode() for t in re.findall(rb'"([^"]*)"', raw[start : raw.index(b"]", start)])
        ]
        lists = _lists(raw, raw.index(keys[1]) + len(keys[1]))
        if len(lists) != len(tickers):
            return None
        if once[2]:
            at = raw.index(keys[2]) + len(keys[2])
            value = raw[at : at + 4]
            adjusted = None if value == b"null" else int(re.match(rb"-?[0-9]+", raw[at:]).group())  # type: ignore[union-attr]
    else:
        tickers, lists = [], []
        tag, pos = _TICKER[layout], 0
        while (at := raw.find(tag, pos)) != -1:
            end = raw.index(b'"', at + len(tag))
            tickers.append(raw[at + len(tag) : end].decode())
            pos = end
        pos = 0
        while (at := raw.find(b'"candlesticks":[', pos)) != -1:
            end = raw.index(b"]", at + 16)
            lists.append((at + 16, end))
            pos = end
    markets = tuple(
        (ticker, np.array(_END_TS.findall(raw, a, b), dtype=np.int64))
        for ticker, (a, b) in zip(tickers, lists, strict=True)
    )
    return CandlePage(markets, adjusted, None, by_pattern=True)


def _lists(raw: bytes, at: int) -> list[tuple[int, int]]:
    """(start, end) of each candle list in ``[[...],[...]]`` starting at ``at`` (no
    bracket occurs inside a candle list of a matching page)."""
    out: list[tuple[int, int]] = []
    at += 1  # past the outer "["
    while raw[at : at + 1] == b"[":
        end = raw.index(b"]", at)
        out.append((at + 1, end))
        at = end + 1
        if raw[at : at + 1] == b",":
            at += 1
    return out
