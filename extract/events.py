"""``extract events``: sync a series' events and markets into kalshi_event/kalshi_market.

Parsing is pure (:func:`event_row`, :func:`market_row`); :func:`sync_events` does the I/O.
Markets settled before the historical cutoff are not nested in ``/events`` any more: for
each event that may have such markets (:func:`~extract.routing.needs_historical_lookup`)
they are listed on ``GET /historical/markets?event_ticker=...`` and stored with
``is_historical`` true, so the candles stage knows every market of every event.
Bodies are parsed with Decimal for JSON fractions, so strikes are exact. The trade window
is as-of: filled once from the :class:`~extract.config.AsOfPolicy` and never overwritten,
so a later change of policy cannot rewrite what earlier windows were cut by.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from extract.client import KalshiClient
from extract.config import AsOfPolicy, ExtractConfig, series_timezone
from extract.errors import BadPageError, HttpStatusError
from extract.historical import fetch_historical_markets, read_cutoff
from extract.routing import Cutoff, needs_historical_lookup
from schemas.db import make_engine, translate_db_error, upsert
from schemas.errors import InputError
from schemas.tables import kalshi_event, kalshi_market
from schemas.tickers import event_date_from_ticker, validate_event_ticker, validate_market_ticker

log = logging.getLogger(__name__)

EVENTS_PAGE_LIMIT = 200


@dataclass(frozen=True)
class EventsSummary:
    """What a sync stored."""

    series: str
    events: int
    markets: int
    requests: int
    historical_markets: int = 0
    """Of ``markets``, those listed by ``GET /historical/markets`` (settled before the cutoff)."""
    cutoff: str = ""
    """The historical cutoff (``market_settled_ts``) the sync read."""


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


def event_date_of(event_ticker: str, strike_date: datetime | None, tz: ZoneInfo) -> date | None:
    """The local date an event is about: from its ticker, else its strike date's local date."""
    from_ticker = event_date_from_ticker(event_ticker)
    if from_ticker is not None:
        return from_ticker
    return strike_date.astimezone(tz).date() if strike_date is not None else None


def event_row(
    ev: Mapping[str, Any],
    series: str,
    tz: ZoneInfo,
    as_of: AsOfPolicy,
    existing_window: tuple[datetime | None, datetime | None] | None,
    now: datetime,
) -> dict[str, Any]:
    """A kalshi_event row; the trade window is kept if stored, else filled by ``as_of``."""
    ticker = validate_event_ticker(str(ev.get("event_ticker", "")))
    if ev.get("series_ticker") not in (None, series):
        raise BadPageError(f"event {ticker} belongs to series {ev.get('series_ticker')}")
    strike_date = parse_time(ev.get("strike_date"))
    day = event_date_of(ticker, strike_date, tz)
    start, end = existing_window if existing_window is not None else (None, None)
    if (start is None or end is None) and day is not None:
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


def _check_events_page(body: Any) -> tuple[list[Mapping[str, Any]], str]:
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise BadPageError("events page: no 'events' list")
    cursor = body.get("cursor") or ""
    if not isinstance(cursor, str):
        raise BadPageError("events page: cursor is not a string")
    events = body["events"]
    if not all(isinstance(e, dict) for e in events):
        raise BadPageError("events page: an event is not an object")
    return events, cursor


async def fetch_series_events(client: KalshiClient, series: str) -> list[Mapping[str, Any]]:
    """Every event of ``series`` with its nested (live) markets, following the cursor."""
    try:
        await client.get_json(f"/series/{series}")
    except HttpStatusError as e:
        if e.status == 404:
            raise InputError(f"unknown series {series}") from None
        raise
    events: list[Mapping[str, Any]] = []
    cursor = ""
    seen: set[str] = set()
    while True:
        params: dict[str, str | int] = {
            "series_ticker": series,
            "with_nested_markets": "true",
            "limit": EVENTS_PAGE_LIMIT,
        }
        if cursor:
            params["cursor"] = cursor
        response = await client.get_json("/events", params, exact=True)
        page, cursor = _check_events_page(response.body)
        events.extend(page)
        if not cursor:
            return events
        if cursor in seen:
            raise BadPageError(f"/events repeated cursor {cursor!r}: stopping instead of looping")
        seen.add(cursor)


def _stored_windows(
    engine: Engine, tickers: Iterable[str]
) -> dict[str, tuple[datetime | None, datetime | None]]:
    t = kalshi_event.c
    out: dict[str, tuple[datetime | None, datetime | None]] = {}
    wanted = list(tickers)
    with engine.connect() as conn:
        for i in range(0, len(wanted), 500):
            stmt = select(t.event_ticker, t.trade_start_utc, t.trade_end_utc).where(
                t.event_ticker.in_(wanted[i : i + 500])
            )
            for r in conn.execute(stmt):
                out[r.event_ticker] = (r.trade_start_utc, r.trade_end_utc)
    return out


def _mark_historical(
    conn: Connection,
    event_rows: Sequence[Mapping[str, Any]],
    market_rows: Sequence[Mapping[str, Any]],
    now: datetime,
) -> int:
    """Flag stored markets of the synced events that the live listing left out.

    ``with_nested_markets`` omits markets settled before the historical cutoff, and so
    does the event candle route: flagged markets are fetched from the historical tier
    (even when the historical lookup of this sync skipped their event).
    """
    m = kalshi_market.c
    live = {r["market_ticker"] for r in market_rows}
    moved = 0
    for i in range(0, len(event_rows), 500):
        events = [r["event_ticker"] for r in event_rows[i : i + 500]]
        stored = conn.execute(
            select(m.market_ticker).where(m.event_ticker.in_(events), m.is_historical.is_(False))
        ).scalars()
        gone = [t for t in stored if t not in live]
        if gone:
            conn.execute(
                update(kalshi_market)
                .where(m.market_ticker.in_(gone))
                .values(is_historical=True, updated_at_utc=now)
            )
            moved += len(gone)
    return moved


def build_rows(
    events: Iterable[Mapping[str, Any]],
    config: ExtractConfig,
    stored: Mapping[str, tuple[datetime | None, datetime | None]],
    now: datetime,
    historical: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(event rows, market rows) from the API's events; pure.

    ``historical`` maps an event ticker to its markets from ``GET /historical/markets``:
    they become rows with ``is_historical`` true, and win over a live listing of the same
    market (one that moved to the historical tier between the two requests).
    """
    tz = config.tz
    event_rows: dict[str, dict[str, Any]] = {}
    market_rows: dict[str, dict[str, Any]] = {}
    for ev in events:
        row = event_row(
            ev, config.series, tz, config.as_of, stored.get(str(ev.get("event_ticker"))), now
        )
        event_rows[row["event_ticker"]] = row
        markets = ev.get("markets") or []
        if not isinstance(markets, list):
            raise BadPageError(f"event {row['event_ticker']}: markets is not a list")
        for m in markets:
            if not isinstance(m, dict):
                raise BadPageError(f"event {row['event_ticker']}: a market is not an object")
            mrow = market_row(m, config.series, row["event_ticker"], now)
            market_rows[mrow["market_ticker"]] = mrow
    for event_ticker, markets in (historical or {}).items():
        if event_ticker not in event_rows:
            raise BadPageError(f"historical markets of {event_ticker}, an event not listed")
        for m in markets:
            mrow = market_row(m, config.series, event_ticker, now, is_historical=True)
            market_rows[mrow["market_ticker"]] = mrow
    return list(event_rows.values()), list(market_rows.values())


def events_to_look_up(
    events: Iterable[Mapping[str, Any]],
    cutoff: Cutoff,
    stored: Mapping[str, Mapping[str, bool]],
) -> list[str]:
    """Tickers of the events whose markets must be listed on the historical tier; pure.

    See :func:`~extract.routing.needs_historical_lookup`; ``stored`` maps an event to its
    stored markets' ``is_historical`` flags.
    """
    out = []
    for ev in events:
        ticker = str(ev.get("event_ticker"))
        strike = parse_time(ev.get("strike_date"))
        nested = ev.get("markets") or []
        if needs_historical_lookup(
            None if strike is None else int(strike.timestamp()),
            len(nested) if isinstance(nested, list) else 0,
            cutoff.market_settled_ts,
            stored.get(ticker),
        ):
            out.append(ticker)
    return out


def _stored_flags(engine: Engine, tickers: Iterable[str]) -> dict[str, dict[str, bool]]:
    """Event → {market → stored is_historical}, for the events given."""
    m = kalshi_market.c
    out: dict[str, dict[str, bool]] = {}
    wanted = list(tickers)
    with engine.connect() as conn:
        for i in range(0, len(wanted), 500):
            stmt = select(m.event_ticker, m.market_ticker, m.is_historical).where(
                m.event_ticker.in_(wanted[i : i + 500])
            )
            for r in conn.execute(stmt):
                out.setdefault(r.event_ticker, {})[r.market_ticker] = bool(r.is_historical)
    return out


async def _fetch(
    client: KalshiClient, engine: Engine, config: ExtractConfig
) -> tuple[list[Mapping[str, Any]], dict[str, list[Mapping[str, Any]]], Cutoff]:
    """The live events (nested markets), the cutoff, then the historical markets they lack.

    The order matters when the cutoff moves during the sync: a market listed live first
    and moved afterwards is found by the historical lookup too, never by neither.
    """
    events = await fetch_series_events(client, config.series)
    # After the series lookup (an unknown series says so first), before anything is stored.
    series_timezone(config.series, config.series_tz)
    # Read after the listing: a cutoff that moves in between only adds lookups.
    cutoff = await read_cutoff(client)
    try:
        flags = _stored_flags(engine, [str(e.get("event_ticker")) for e in events])
    except SQLAlchemyError as e:
        raise translate_db_error(e, config.db_url, "reading stored markets") from None
    historical: dict[str, list[Mapping[str, Any]]] = {}
    for ticker in events_to_look_up(events, cutoff, flags):
        validate_event_ticker(ticker)
        markets = await fetch_historical_markets(client, ticker)
        if markets:
            historical[ticker] = markets
    return events, historical, cutoff


async def sync_events(
    config: ExtractConfig, *, engine: Engine | None = None, client: KalshiClient | None = None
) -> EventsSummary:
    """Fetch the series' events and markets and upsert them; raises InputError if none."""
    own_engine = engine is None
    engine = engine or make_engine(config.db_url)
    try:
        if client is None:
            async with KalshiClient(config.api, concurrency=1) as own:
                events, historical, cutoff = await _fetch(own, engine, config)
                requests = own.stats.requests
        else:
            events, historical, cutoff = await _fetch(client, engine, config)
            requests = client.stats.requests
        if not events:
            raise InputError(f"no events for series {config.series}")
        now = datetime.now(UTC)
        tickers = [str(e.get("event_ticker")) for e in events]
        try:
            stored = _stored_windows(engine, tickers)
            event_rows, market_rows = build_rows(events, config, stored, now, historical)
            live_rows = [r for r in market_rows if not r["is_historical"]]
            with engine.begin() as conn:
                # Before the upsert, so it sees the flags the previous sync stored.
                moved = _mark_historical(conn, event_rows, live_rows, now)
                for i in range(0, len(event_rows), 500):
                    upsert(conn, kalshi_event, event_rows[i : i + 500])
                for i in range(0, len(market_rows), 500):
                    upsert(conn, kalshi_market, market_rows[i : i + 500])
        except SQLAlchemyError as e:
            raise translate_db_error(e, config.db_url, "storing events") from None
        if moved:
            log.warning(
                "%s: %d stored markets are no longer nested in their live events (historical "
                "tier): marked is_historical, their candles come from the historical route",
                config.series,
                moved,
            )
        n_hist = len(market_rows) - len(live_rows)
        log.info(
            "%s: synced %d events and %d markets (%d live, %d historical; cutoff %s; %d requests)",
            config.series,
            len(event_rows),
            len(market_rows),
            len(live_rows),
            n_hist,
            cutoff,
            requests,
        )
        return EventsSummary(
            config.series, len(event_rows), len(market_rows), requests, n_hist, str(cutoff)
        )
    finally:
        if own_engine:
            engine.dispose()
