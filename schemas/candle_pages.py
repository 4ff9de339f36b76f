"""A candle page read from the bytes received: parsed once, checked column by column.

:func:`read_candle_page` is what extract applies to every candle page before it is
archived (and to every archived page it reuses): the page's shape, its candles' ranges
and every price and count against the contract (:mod:`schemas.api`), with the markets it
lists and their candles' ``end_period_ts`` for the pager's decisions, all from ONE parse.

Why columns: a full batch page holds up to 10,000 candles and 4 MB of JSON. Building a
Python object per value (``orjson.loads``) and checking each one in Python cost about
15 µs a candle, most of a core at 20 requests a second. Polars parses the same bytes
straight into Arrow columns and checks them with vectorized expressions, releasing the
GIL, for a few µs a candle (``docs/benchmarks.md``).

Why it is still exact: a schema-driven JSON reader is lax where the contract is strict.
Polars reads the JSON number ``0.56`` into a String column as ``"0.56"``, ``true`` into an
integer column as 1, a float ``5.5`` as 5, keeps the first of two equal keys, and ignores
keys outside its schema. So the column path is taken only when the bytes themselves show
that the columns are the page: no whitespace and no backslash outside the JSON grammar's
need (so every ``"`` delimits a string and ``":`` ends a key), every key holding a value
read into exactly one column (counted: keys minus null-valued keys equals the columns'
non-null values), every string-valued key read into a string column and every integer
column read from an integer literal (counted likewise), and the tickers list written
exactly as read. A page that does not show all of that (pretty-printed JSON, an escape,
an extra key, a legacy integer field, a value the contract refuses) goes through
:func:`by_values`: ``orjson`` and the per-value checks of :mod:`schemas.api`, which also
word every refusal (the value, the field, the candle). So the column path only ever
accepts what the per-value path accepts; the tests compare the two on mutated pages.
"""

from __future__ import annotations

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

#: A price in [0, 1] dollars with at most 4 integer and 6 decimal digits (``_DOLLARS``
#: in schemas.api, and the value at most 1), as one pattern.
PRICE_PATTERN = r"^(?:0{1,4}(?:\.[0-9]{1,6})?|0{0,3}1(?:\.0{1,6})?)$"
#: A non-negative count with at most 2 decimals (``_COUNT`` in schemas.api).
COUNT_PATTERN = r"^[0-9]{1,16}(?:\.[0-9]{1,2})?$"
_INTEGER_VALUE = r'":-?[0-9]+[,}]'

_BOOK = ("open", "low", "high", "close")
_PRICE = ("open", "low", "high", "close", "mean", "previous", "min", "max")


def _candle_dtype(shape: CandleShape) -> pl.Struct:
    suffix = "_dollars" if shape == "live" else ""
    counts = ("volume_fp", "open_interest_fp") if shape == "live" else ("volume", "open_interest")
    return pl.Struct(
        {
            "end_period_ts": pl.Int64,
            "yes_bid": pl.Struct({f"{k}{suffix}": pl.String for k in _BOOK}),
            "yes_ask": pl.Struct({f"{k}{suffix}": pl.String for k in _BOOK}),
            "price": pl.Struct({f"{k}{suffix}": pl.String for k in _PRICE}),
            **dict.fromkeys(counts, pl.String),
        }
    )


_LIVE, _HIST = _candle_dtype("live"), _candle_dtype("historical")
_SCHEMAS: dict[Layout, dict[str, pl.DataType]] = {
    "event": {
        "market_tickers": pl.List(pl.String),
        "market_candlesticks": pl.List(pl.List(_LIVE)),
        "adjusted_end_ts": pl.Int64(),
    },
    "batch": {
        "markets": pl.List(pl.Struct({"market_ticker": pl.String, "candlesticks": pl.List(_LIVE)}))
    },
    "historical": {"ticker": pl.String(), "candlesticks": pl.List(_HIST)},
}


@dataclass(frozen=True)
class CandlePage:
    """A page's markets in the server's order, each with its candles' ``end_period_ts``."""

    markets: tuple[tuple[str, Ends], ...]
    adjusted_end_ts: int | None
    """As the page said it (event pages; None when absent or null)."""
    problem: str | None
    """The first value the contract does not allow, worded (None: every value holds)."""
    by_columns: bool
    """True when the column path checked it (False: :func:`by_values`)."""


def read_candle_page(raw: bytes, layout: Layout, where: str = "the server") -> CandlePage:
    """The checked page of ``raw``; FatalApiError when it breaks the page's shape.

    ``where`` names the request in the message of an unparseable body. A value outside
    the contract is not raised but returned (``problem``): extract refuses such a page
    (and keeps a copy), or quarantines an archived one.
    """
    page = _by_columns(raw, layout)
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
    return CandlePage(markets, adjusted, problem, by_columns=False)


# --- the column path ----------------------------------------------------------------------


def _by_columns(raw: bytes, layout: Layout) -> CandlePage | None:
    """The page by Polars, or None whenever the per-value path must decide (see above)."""
    if raw[:1] != b"{" or any(c in raw for c in (b" ", b"\n", b"\r", b"\t", b"\\")):
        return None
    try:
        frame = pl.read_json(raw, schema=_SCHEMAS[layout])
    except (pl.exceptions.PolarsError, OSError):
        return None
    outer = _outer(frame, layout, raw)
    if outer is None:
        return None
    tickers, lists, (strings, arrays, integers) = outer
    lengths = lists.list.len().to_numpy()
    total = int(lengths.sum())
    candles = lists.explode()  # Polars 2: an empty list adds no row, a null element does
    if candles.len() != total or candles.null_count():
        return None  # a null where a candle object should be
    counted = _count_columns(candles.struct.unnest())
    if counted is None:
        return None
    texts, objects, bad = counted
    strings, integers = strings + texts, integers + total
    try:
        literal_integers = _count(raw, _INTEGER_VALUE)
    except pl.exceptions.PolarsError:
        return None
    keys = raw.count(b'":') - raw.count(b'":null')
    if (
        bad
        or raw.count(b'":"') != strings
        or raw.count(b'":{') != objects
        or raw.count(b'":[') != arrays
        or literal_integers != integers
        or keys != strings + objects + arrays + integers
    ):
        return None
    ends = candles.struct.field("end_period_ts").to_numpy()
    parts = np.split(ends, np.cumsum(lengths)[:-1]) if tickers else []
    adjusted = frame.get_column("adjusted_end_ts")[0] if layout == "event" else None
    markets = tuple(zip(tickers, parts, strict=True))
    return CandlePage(markets, adjusted, None, by_columns=True)


def _outer(
    frame: pl.DataFrame, layout: Layout, raw: bytes
) -> tuple[list[str], pl.Series, tuple[int, int, int]] | None:
    """(tickers, their candle lists, and the keys outside the candles that hold a string,
    an array and an integer), or None when something is null where the shape says not."""
    if layout == "historical":
        ticker, lists = frame.get_column("ticker")[0], frame.get_column("candlesticks")
        if ticker is None or lists.null_count():
            return None
        return [ticker], lists, (1, 1, 0)
    if layout == "batch":
        markets = frame.get_column("markets")
        if markets.null_count():
            return None
        entries = markets[0]
        if entries.null_count():
            return None
        names, lists = entries.struct.field("market_ticker"), entries.struct.field("candlesticks")
        if names.null_count() or lists.null_count():
            return None
        n = len(entries)
        return names.to_list(), lists, (n, 1 + n, 0)
    names, outer = frame.get_column("market_tickers"), frame.get_column("market_candlesticks")
    if names.null_count() or outer.null_count():
        return None
    tickers, lists = names[0].to_list(), outer[0]
    if lists.null_count() or len(tickers) != len(lists) or None in tickers:
        return None
    listed = b",".join(b'"' + t.encode() + b'"' for t in tickers)
    if b'"market_tickers":[' + listed + b"]" not in raw:
        return None
    adjusted = frame.get_column("adjusted_end_ts")[0]
    return tickers, lists, (0, 2, int(adjusted is not None))


def _count_columns(candles: pl.DataFrame) -> tuple[int, int, int] | None:
    """(string values, object values, values the contract refuses) of the candle columns,
    in one vectorized pass; None if a candle lacks its ``end_period_ts``."""
    sides = ("yes_bid", "yes_ask", "price")
    prices = [
        pl.col(side).struct.field(f.name)
        for side in sides
        for f in candles.schema[side].fields  # type: ignore[attr-defined]
    ]
    counts = [pl.col(c) for c in candles.columns if candles.schema[c] == pl.String]
    row = candles.select(
        ts=pl.col("end_period_ts").null_count(),
        texts=pl.sum_horizontal(c.count() for c in (*prices, *counts)),
        objects=pl.sum_horizontal(pl.col(s).count() for s in sides),
        bad=pl.sum_horizontal(
            *(c.str.contains(PRICE_PATTERN).not_().sum() for c in prices),
            *(c.str.contains(COUNT_PATTERN).not_().sum() for c in counts),
        ),
    ).row(0)
    if row[0]:
        return None
    return int(row[1]), int(row[2]), int(row[3])


def _count(raw: bytes, pattern: str) -> int:
    """Matches of ``pattern`` in ``raw`` (Polars' regex engine: one pass, no GIL)."""
    found = pl.Series([raw], dtype=pl.Binary).cast(pl.String).str.count_matches(pattern)
    return int(found[0])
