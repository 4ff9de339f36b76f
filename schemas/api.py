"""The shape of the Kalshi pages we archive, and the structural check both stages apply.

Extract checks a page before archiving it (a body that breaks the shape is retried, never
archived); load checks it again when reading (an archive edited by hand or by another
version is refused loudly). The check is structural only: values stay the strings the API
sent until load normalizes them.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

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
    adjusted_end_ts: int


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
    if not isinstance(adjusted, int) or isinstance(adjusted, bool):
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
