"""The shape of the Kalshi pages we archive, and the checks both stages apply.

Extract checks a page before archiving it: a body that breaks the shape is retried, never
archived (:func:`check_event_candles_page`); a value outside the contract is refused
(:func:`contract_problem`: the window fails, since the same server would send it again).
These per-value checks are the reference and word every refusal; extract runs them only
on pages its column check (:mod:`schemas.candle_pages`) cannot vouch for. Load checks
pages again when reading (an archive edited by hand or by another version is refused
loudly). Values stay the strings the API sent until load normalizes them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal, NotRequired, TypedDict

from schemas.errors import FatalApiError


class BidAsk(TypedDict, total=False):
    open_dollars: str | None
    low_dollars: str | None
    high_dollars: str | None
    close_dollars: str | None


class Price(TypedDict, total=False):
    open_dollars: str | None
    low_dollars: str | None
    high_dollars: str | None
    close_dollars: str | None
    mean_dollars: str | None
    previous_dollars: str | None
    min_dollars: str | None
    max_dollars: str | None


class Candle(TypedDict):
    """``MarketCandlestick`` (live). Legacy integer-cent twins may also be present."""

    end_period_ts: int
    yes_bid: BidAsk
    yes_ask: BidAsk
    price: Price
    volume_fp: NotRequired[str]
    open_interest_fp: NotRequired[str]


class EventCandlesPage(TypedDict):
    """``GetEventCandlesticksResponse``: parallel lists, one candle list per market."""

    market_tickers: list[str]
    market_candlesticks: list[list[Candle]]
    adjusted_end_ts: NotRequired[int | None]
    """Where a capped page stopped. On an uncapped page servers differ (the requested
    end, the last candle's end, 0 or no key at all): see :mod:`extract.plan.paginator`."""


class HistoricalCandlesPage(TypedDict):
    """``GetMarketCandlesticksHistoricalResponse``: one market, plain OHLC keys."""

    ticker: str
    candlesticks: list[dict[str, Any]]


def check_event_candles_page(body: Any) -> EventCandlesPage:
    """Return ``body`` if it has the event-candlesticks shape, else raise FatalApiError."""
    if not isinstance(body, dict):
        raise FatalApiError(f"candlestick page is a {type(body).__name__}, not an object")
    tickers = body.get("market_tickers")
    lists = body.get("market_candlesticks")
    adjusted = body.get("adjusted_end_ts")
    if not isinstance(tickers, list) or not all(isinstance(t, str) for t in tickers):
        raise FatalApiError("candlestick page: market_tickers is not a list of strings")
    if not isinstance(lists, list) or not all(isinstance(x, list) for x in lists):
        raise FatalApiError("candlestick page: market_candlesticks is not a list of lists")
    if len(tickers) != len(lists):
        raise FatalApiError(
            f"candlestick page: {len(tickers)} market_tickers but {len(lists)} candle lists"
        )
    if adjusted is not None and (not isinstance(adjusted, int) or isinstance(adjusted, bool)):
        raise FatalApiError("candlestick page: adjusted_end_ts is not an integer")
    for candles in lists:
        for c in candles:
            if not isinstance(c, dict) or not isinstance(c.get("end_period_ts"), int):
                raise FatalApiError("candlestick page: a candle has no integer end_period_ts")
    return body  # type: ignore[return-value]


def check_historical_candles_page(body: Any) -> HistoricalCandlesPage:
    """Return ``body`` if it has the historical-candlesticks shape, else raise FatalApiError."""
    if not isinstance(body, dict):
        raise FatalApiError(f"historical page is a {type(body).__name__}, not an object")
    if not isinstance(body.get("ticker"), str):
        raise FatalApiError("historical page: ticker is not a string")
    candles = body.get("candlesticks")
    if not isinstance(candles, list):
        raise FatalApiError("historical page: candlesticks is not a list")
    for c in candles:
        if not isinstance(c, dict) or not isinstance(c.get("end_period_ts"), int):
            raise FatalApiError("historical page: a candle has no integer end_period_ts")
    return body  # type: ignore[return-value]


def check_batch_candles_page(body: Any) -> list[tuple[str, list[Any]]]:
    """The (ticker, candles) entries of a batch answer, or FatalApiError for its shape.

    Each entry must name its market and hold a candle list; each candle an integer
    ``end_period_ts``. Which markets the request asked for is the route's to check.
    """
    if not isinstance(body, dict) or not isinstance(body.get("markets"), list):
        raise FatalApiError("batch page: no 'markets' list")
    out: list[tuple[str, list[Any]]] = []
    for entry in body["markets"]:
        if not isinstance(entry, dict):
            raise FatalApiError("batch page: a markets entry is not an object")
        ticker, candles = entry.get("market_ticker"), entry.get("candlesticks")
        if not isinstance(ticker, str) or not isinstance(candles, list):
            raise FatalApiError("batch page: an entry lacks market_ticker or candlesticks")
        for c in candles:
            end = c.get("end_period_ts") if isinstance(c, dict) else None
            if not isinstance(end, int) or isinstance(end, bool):
                raise FatalApiError(
                    f"batch page: a candle of {ticker} has no integer end_period_ts"
                )
        out.append((ticker, candles))
    return out


# --- values against the contract ------------------------------------------------------

CandleShape = Literal["live", "historical"]

#: Money: a dollar string with at most 6 decimals (``"0.5600"``, sub-cent ``"0.000100"``).
_DOLLARS = re.compile(r"[0-9]{1,4}(\.[0-9]{1,6})?")
#: Counts: a non-negative fixed-point string (``"10.00"``, fractional contracts exist).
_COUNT = re.compile(r"[0-9]{1,16}(\.[0-9]{1,2})?")
_ONE = Decimal(1)
_HIST_BOOK = frozenset(("open", "low", "high", "close"))
_HIST_PRICE = frozenset(("open", "low", "high", "close", "mean", "previous", "min", "max"))
_LIVE_COUNTS = ("volume_fp", "open_interest_fp")
_LIVE_LEGACY_COUNTS = ("volume", "open_interest")
_HIST_COUNTS = ("volume", "open_interest")

#: Strings already found valid: a market's prices repeat from minute to minute, so most
#: values are one set lookup. Bounded (cleared when full), so memory stays flat: counts
#: (open interest, volume) take ever new values, and 200,000 of them held ~25 MB, which
#: made a year's extract peak at 1.22 x a month's (the bench's memory step; 1.09 x at
#: 50,000). At 50,000 the bench's 1M-candle archive never clears the cache: 14.6 ms a
#: 5,000-candle page, as at 200,000 (20,000: 18.7 ms, clearing it mid-run).
_GOOD_PRICES: set[str | None] = {None}
_GOOD_COUNTS: set[str | None] = {None}
_CACHE_MAX = 50_000


def _price_problem(v: Any, where: str) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str):  # before the cache: a list or an object is unhashable
        return f"{where} is a JSON {type(v).__name__} ({v!r}) where the contract has a string"
    if v in _GOOD_PRICES:
        return None
    if _DOLLARS.fullmatch(v) is None or Decimal(v) > _ONE:
        return f"{where} is {v!r}, not a price in [0, 1] dollars"
    if len(_GOOD_PRICES) >= _CACHE_MAX:
        _GOOD_PRICES.clear()
        _GOOD_PRICES.add(None)
    _GOOD_PRICES.add(v)
    return None


def _count_problem(v: Any, where: str) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str):  # before the cache: a list or an object is unhashable
        return f"{where} is a JSON {type(v).__name__} ({v!r}) where the contract has a string"
    if v in _GOOD_COUNTS:
        return None
    if _COUNT.fullmatch(v) is None:
        return f"{where} is {v!r}, not a non-negative count"
    if len(_GOOD_COUNTS) >= _CACHE_MAX:
        _GOOD_COUNTS.clear()
        _GOOD_COUNTS.add(None)
    _GOOD_COUNTS.add(v)
    return None


def _legacy_int_problem(v: Any, where: str) -> str | None:
    """The pre-2026 integer twins (cents, whole contracts): integers or null."""
    if v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
        return None
    return f"{where} is {v!r}, not a legacy integer"


def _side_problem(side: Any, name: str, shape: CandleShape, ts: Any) -> str | None:
    if side is None:
        return None
    if not isinstance(side, dict):
        return f"candle {ts}: {name} is not an object"
    plain = _HIST_PRICE if name == "price" else _HIST_BOOK
    for k, v in side.items():
        where = f"candle {ts}: {name}.{k}"
        if k.endswith("_dollars") or (shape == "historical" and k in plain):
            problem = _price_problem(v, where)
        elif shape == "live" and k in plain:
            problem = _legacy_int_problem(v, where)
        else:
            continue  # a key the contract does not name: load ignores it
        if problem is not None:
            return problem
    return None


def contract_problem(candles: Iterable[Mapping[str, Any]], shape: CandleShape) -> str | None:
    """The first value in ``candles`` the contract does not allow, or None.

    A price must be a dollar string in [0, 1] with at most 6 decimals, a count a
    non-negative fixed-point string, both possibly null; the legacy integer twins of
    the live shape (``yes_bid.open`` in cents, ``volume``) may still be integers. A JSON
    number where the contract has a string is refused: reading it would go through a
    float. Validated strings are cached, so a typical page costs a set lookup a value.
    """
    counts = _LIVE_COUNTS if shape == "live" else _HIST_COUNTS
    good_prices, good_counts = _GOOD_PRICES, _GOOD_COUNTS
    empty: dict[str, Any] = {}
    for c in candles:
        # Fast path: every value already validated in its role (set operations in C).
        try:
            seen = {
                *(c.get("yes_bid") or empty).values(),
                *(c.get("yes_ask") or empty).values(),
                *(c.get("price") or empty).values(),
            }
            legacy = shape == "live" and bool(c.keys() & _LIVE_LEGACY_COUNTS)
            if seen <= good_prices and all(c.get(k) in good_counts for k in counts) and not legacy:
                continue
        except (AttributeError, TypeError):
            pass  # not objects, or unhashable values: the slow path names the problem
        ts = c.get("end_period_ts")
        for name in ("yes_bid", "yes_ask", "price"):
            problem = _side_problem(c.get(name), name, shape, ts)
            if problem is not None:
                return problem
        for k in counts:
            problem = _count_problem(c.get(k), f"candle {ts}: {k}")
            if problem is not None:
                return problem
        if shape == "live":
            for k in _LIVE_LEGACY_COUNTS:
                problem = _legacy_int_problem(c.get(k), f"candle {ts}: {k}")
                if problem is not None:
                    return problem
    return None
