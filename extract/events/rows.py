"""Rows of kalshi_event / kalshi_market from API bodies: pure parsing, no I/O.

Bodies are parsed with Decimal for JSON fractions, so strikes are exact. The trade window
is as-of: filled once from the :class:`~extract.config.AsOfPolicy` and never overwritten,
so a later change of policy cannot rewrite what earlier windows were cut by.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from extract.config import AsOfPolicy, ExtractConfig
from extract.errors import BadPageError
from schemas.tickers import event_date_from_ticker, validate_event_ticker, validate_market_ticker


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 string (``...Z`` or with offset) → aware UTC; empty or missing → None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadPageError(f"expected an ISO-8601 time string, got {value!r}")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise BadPageError(f"invalid time {value!r}") from e
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def parse_strike(value: Any) -> Decimal | None:
    """A strike as an exact Decimal (bodies are parsed with Decimal, never float)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise BadPageError(f"invalid strike {value!r}")
    try:
        return Decimal(value)
    except ArithmeticError as e:
        raise BadPageError(f"invalid strike {value!r}") from e


def _text(value: Any, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]


def event_date_of(
    event_ticker: str, strike_date: datetime | None, tz: ZoneInfo | None
) -> date | None:
    """The local date an event is about: the day its ticker names (``KXHIGHNY-25NOV20``),
    else its strike date's date in the series' zone (an hourly or monthly event: the
    day it closes on), or in UTC for a series without a zone."""
    from_ticker = event_date_from_ticker(event_ticker)
    if from_ticker is not None:
        return from_ticker
    if strike_date is None:
        return None
    return strike_date.astimezone(tz or UTC).date()


def event_row(
    ev: Mapping[str, Any],
    series: str,
    tz: ZoneInfo | None,
    as_of: AsOfPolicy,
    existing_window: tuple[datetime | None, datetime | None] | None,
    now: datetime,
) -> dict[str, Any]:
    """A kalshi_event row; the trade window is kept if stored, else filled by ``as_of``
    in ``tz`` (left empty for a series without a zone: TRADE_WINDOW_ONLY skips it)."""
    ticker = validate_event_ticker(str(ev.get("event_ticker", "")))
    if ev.get("series_ticker") not in (None, series):
        raise BadPageError(f"event {ticker} belongs to series {ev.get('series_ticker')}")
    strike_date = parse_time(ev.get("strike_date"))
    day = event_date_of(ticker, strike_date, tz)
    start, end = existing_window if existing_window is not None else (None, None)
    if (start is None or end is None) and day is not None and tz is not None:
        start, end = as_of.window(day, tz)
    return {
        "event_ticker": ticker,
        "series_ticker": series,
        "title": _text(ev.get("title"), 255),
        "sub_title": _text(ev.get("sub_title"), 255),
        "category": _text(ev.get("category"), 64),
        "strike_date": strike_date,
        "event_date": day,
        "trade_start_utc": start,
        "trade_end_utc": end,
        "updated_at_utc": now,
    }


def market_row(
    m: Mapping[str, Any],
    series: str,
    event_ticker: str,
    now: datetime,
    *,
    is_historical: bool = False,
) -> dict[str, Any]:
    """A kalshi_market row from a ``Market`` object (the live and historical routes share it)."""
    ticker = validate_market_ticker(str(m.get("ticker", "")))
    if m.get("event_ticker", event_ticker) != event_ticker:
        raise BadPageError(f"market {ticker} nested under {event_ticker} names another event")
    return {
        "market_ticker": ticker,
        "event_ticker": event_ticker,
        "series_ticker": series,
        "open_time_utc": parse_time(m.get("open_time")),
        "close_time_utc": parse_time(m.get("close_time")),
        "expiration_time_utc": parse_time(m.get("expiration_time")),
        "latest_expiration_time_utc": parse_time(m.get("latest_expiration_time")),
        "settlement_ts_utc": parse_time(m.get("settlement_ts")),
        "status": _text(m.get("status"), 32),
        "result": _text(m.get("result"), 16),
        "strike_type": _text(m.get("strike_type"), 32),
        "floor_strike": parse_strike(m.get("floor_strike")),
        "cap_strike": parse_strike(m.get("cap_strike")),
        "is_historical": is_historical,
        "updated_at_utc": now,
    }


def build_rows(
    events: Iterable[Mapping[str, Any]],
    config: ExtractConfig,
    stored: Mapping[str, tuple[datetime | None, datetime | None]],
    now: datetime,
    historical: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(event rows, market rows) from the API's events of ``config``'s one series; pure.

    ``historical`` maps an event ticker to its markets from ``GET /historical/markets``:
    they become rows with ``is_historical`` true, and win over a live listing of the same
    market (one that moved to the historical tier between the two requests). Their event
    must be in ``events`` or already stored (a key of ``stored``).
    """
    (series,) = config.series
    tz = config.zone(series)
    event_rows: dict[str, dict[str, Any]] = {}
    market_rows: dict[str, dict[str, Any]] = {}
    for ev in events:
        row = event_row(ev, series, tz, config.as_of, stored.get(str(ev.get("event_ticker"))), now)
        event_rows[row["event_ticker"]] = row
        markets = ev.get("markets") or []
        if not isinstance(markets, list):
            raise BadPageError(f"event {row['event_ticker']}: markets is not a list")
        for m in markets:
            if not isinstance(m, dict):
                raise BadPageError(f"event {row['event_ticker']}: a market is not an object")
            mrow = market_row(m, series, row["event_ticker"], now)
            market_rows[mrow["market_ticker"]] = mrow
    for event_ticker, markets in (historical or {}).items():
        if event_ticker not in event_rows and event_ticker not in stored:
            raise BadPageError(f"historical markets of {event_ticker}, an event not listed")
        for m in markets:
            mrow = market_row(m, series, event_ticker, now, is_historical=True)
            market_rows[mrow["market_ticker"]] = mrow
    return list(event_rows.values()), list(market_rows.values())
