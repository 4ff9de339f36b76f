"""``extract events``: sync the series' events and markets into kalshi_event/kalshi_market.

Series by series, through one client (one rate budget): a series that fails (unknown to
the server, no events, an API failure) is named in the summary and the others go on. A
``--category`` is resolved first (:func:`extract.events.series.resolve_config`); each
series' own ``GET /series/{ticker}`` answer is stored in ``kalshi_series`` too.

Parsing is pure (:mod:`extract.events.rows`); :func:`sync_events` does the I/O.
Markets settled before the historical cutoff are not nested in ``/events`` any more: they
are listed once for the whole series on ``GET /historical/markets?series_ticker=...``
(paged, 1,000 a page) and stored with ``is_historical`` true, so the candles stage knows
every market of every event. A server that refuses ``series_ticker`` gets one
``?event_ticker=...`` listing per event that may hold such markets
(:func:`~extract.plan.tiers.needs_historical_lookup`). An event the live listing no longer
returns is read from ``GET /events/{event_ticker}``, unless it is stored already.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from extract.api.client import KalshiClient
from extract.config import ExtractConfig
from extract.errors import BadPageError, HttpStatusError
from extract.events.historical import (
    fetch_historical_markets,
    fetch_series_historical_markets,
    read_cutoff,
)
from extract.events.rows import build_rows, event_row, market_row, parse_time
from extract.events.series import resolve_config, series_row
from extract.plan.tiers import Cutoff, needs_historical_lookup
from schemas.archive import open_archive
from schemas.db import make_engine, translate_db_error, upsert
from schemas.errors import ApiError, InputError, KalshiBackfillError
from schemas.tables import kalshi_event, kalshi_market, kalshi_series
from schemas.tickers import validate_event_ticker

#: ``event_row``/``market_row``/``build_rows``/``parse_time`` live in extract.events.rows;
#: re-exported because callers know them as part of this stage.
__all__ = [
    "EventsSummary",
    "SeriesSynced",
    "build_rows",
    "event_row",
    "events_to_look_up",
    "fetch_series_events",
    "market_row",
    "parse_time",
    "sync_events",
]

log = logging.getLogger(__name__)

EVENTS_PAGE_LIMIT = 200


@dataclass(frozen=True)
class SeriesSynced:
    """What the sync stored for one series."""

    series: str
    events: int
    markets: int
    requests: int
    historical_markets: int = 0
    """Of ``markets``, those listed by ``GET /historical/markets`` (settled before the cutoff)."""
    cutoff: str = ""
    """The historical cutoff (``market_settled_ts``) the sync read."""
    zone: str | None = None
    """The series' time zone, or None: no as-of trade windows (TRADE_WINDOW_ONLY skips it)."""

    def line(self) -> str:
        zone = "" if self.zone else "; no time zone: no as-of trade windows"
        return (
            f"{self.series}: {self.events} events, {self.markets} markets synced "
            f"({self.historical_markets} historical; cutoff {self.cutoff}{zone})"
        )


@dataclass
class EventsSummary:
    """What a sync stored, series by series, and which series failed (and why)."""

    synced: list[SeriesSynced] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    requests: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def events(self) -> int:
        return sum(s.events for s in self.synced)

    @property
    def markets(self) -> int:
        return sum(s.markets for s in self.synced)

    @property
    def historical_markets(self) -> int:
        return sum(s.historical_markets for s in self.synced)

    def lines(self) -> list[str]:
        out = [s.line() for s in self.synced]
        out += [f"{series}: FAILED: {why}" for series, why in self.failed]
        if len(self.synced) + len(self.failed) > 1:
            out.append(
                f"{len(self.synced)} series synced, {len(self.failed)} failed: "
                f"{self.events} events, {self.markets} markets, {self.requests} requests"
            )
        return out


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


async def fetch_series(client: KalshiClient, series: str) -> dict[str, Any] | None:
    """``GET /series/{series}``: its ``kalshi_series`` row (None when the answer holds no
    series object); InputError when the server does not know the series."""
    try:
        response = await client.get_json(f"/series/{series}", exact=True)
    except HttpStatusError as e:
        if e.status == 404:
            raise InputError(f"unknown series {series}") from None
        raise
    body = response.body
    doc = body.get("series") if isinstance(body, dict) else None
    return series_row(doc, response.retrieved_at) if isinstance(doc, dict) else None


async def fetch_series_events(client: KalshiClient, series: str) -> list[Mapping[str, Any]]:
    """Every event of ``series`` with its nested (live) markets, following the cursor."""
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


def events_to_look_up(
    events: Iterable[Mapping[str, Any]],
    cutoff: Cutoff,
    stored: Mapping[str, Mapping[str, bool]],
) -> list[str]:
    """Tickers of the events whose markets must be listed on the historical tier; pure.

    See :func:`~extract.plan.tiers.needs_historical_lookup`; ``stored`` maps an event to its
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
    (series,) = config.series
    events = await fetch_series_events(client, series)
    # Read after the listing: a cutoff that moves in between only adds lookups.
    cutoff = await read_cutoff(client)
    historical = await fetch_series_historical_markets(client, series)
    if historical is None:
        historical = await _historical_by_event(client, engine, config, events, cutoff)
    events = [*events, *await _unlisted_events(client, engine, config, events, historical)]
    return events, historical, cutoff


async def _historical_by_event(
    client: KalshiClient,
    engine: Engine,
    config: ExtractConfig,
    events: Sequence[Mapping[str, Any]],
    cutoff: Cutoff,
) -> dict[str, list[Mapping[str, Any]]]:
    """The fallback: one historical listing per listed event that may hold old markets.

    It only sees the events ``/events`` lists. A listing without a single wholly
    historical event (no nested market, strike date before the cutoff) may be a server
    that drops them: their markets cannot be found this way, so the sync says so.
    """
    if not any(_wholly_historical(e, cutoff) for e in events):
        log.warning(
            "%s: /historical/markets refuses series_ticker and /events lists no event wholly "
            "past the historical cutoff (%s): events older than it, if any, cannot be "
            "discovered and are not synced",
            config.series[0],
            cutoff,
        )
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
    return historical


def _wholly_historical(event: Mapping[str, Any], cutoff: Cutoff) -> bool:
    strike = parse_time(event.get("strike_date"))
    live = event.get("markets")
    return not live and strike is not None and int(strike.timestamp()) < cutoff.market_settled_ts


async def _unlisted_events(
    client: KalshiClient,
    engine: Engine,
    config: ExtractConfig,
    events: Sequence[Mapping[str, Any]],
    historical: Mapping[str, Sequence[Mapping[str, Any]]],
) -> list[Mapping[str, Any]]:
    """Events with historical markets that ``/events`` left out and that are not stored.

    A server may drop wholly historical events from its listing: their markets still
    belong in the database, so each such event is read once from
    ``GET /events/{event_ticker}`` (its top-level ``markets`` are its live ones).
    """
    listed = {str(e.get("event_ticker")) for e in events}
    missing = [t for t in historical if t not in listed]
    if not missing:
        return []
    try:
        stored = _stored_windows(engine, missing)
    except SQLAlchemyError as e:
        raise translate_db_error(e, config.db_url, "reading stored events") from None
    out: list[Mapping[str, Any]] = []
    for ticker in missing:
        if ticker in stored:
            continue
        body = (await client.get_json(f"/events/{ticker}", exact=True)).body
        event = body.get("event") if isinstance(body, dict) else None
        if not isinstance(event, dict) or event.get("event_ticker") != ticker:
            raise BadPageError(f"GET /events/{ticker}: no 'event' object for {ticker}")
        markets = body.get("markets") or []
        out.append({**event, "markets": markets})
    return out


async def sync_events(
    config: ExtractConfig, *, engine: Engine | None = None, client: KalshiClient | None = None
) -> EventsSummary:
    """Fetch each series' events and markets and upsert them, series by series.

    A series that fails is named in the summary and the others go on; InputError (or
    ApiError) only when every series failed, so one series asked for fails as before.
    """
    own_engine = engine is None
    engine = engine or make_engine(config.db_url)
    try:
        if client is None:
            async with KalshiClient(config.api, concurrency=1) as own:
                return await _sync_all(config, engine, own)
        return await _sync_all(config, engine, client)
    finally:
        if own_engine:
            engine.dispose()


async def _sync_all(config: ExtractConfig, engine: Engine, client: KalshiClient) -> EventsSummary:
    start = client.stats.requests
    config = await resolve_config(config, client, open_archive(config.archive_dir), engine)
    summary = EventsSummary()
    errors: list[KalshiBackfillError] = []
    for series in config.series:
        try:
            summary.synced.append(await _sync_series(config.with_series([series]), engine, client))
        except (InputError, ApiError) as e:
            if len(config.series) == 1:
                raise
            errors.append(e)
            summary.failed.append((series, str(e)))
            log.warning("%s: not synced: %s", series, e)
    summary.requests = client.stats.requests - start
    if not summary.synced:
        text = "no series could be synced: " + "; ".join(f"{s}: {w}" for s, w in summary.failed)
        raise InputError(text) if all(isinstance(e, InputError) for e in errors) else ApiError(text)
    return summary


async def _sync_series(config: ExtractConfig, engine: Engine, client: KalshiClient) -> SeriesSynced:
    """Fetch one series' events and markets and upsert them; InputError if none."""
    (series,) = config.series
    before = client.stats.requests
    series_doc = await fetch_series(client, series)
    events, historical, cutoff = await _fetch(client, engine, config)
    requests = client.stats.requests - before
    if not events and not historical:
        raise InputError(f"no events for series {series}")
    now = datetime.now(UTC)
    tickers = [str(e.get("event_ticker")) for e in events] + list(historical)
    try:
        stored = _stored_windows(engine, tickers)
        event_rows, market_rows = build_rows(events, config, stored, now, historical)
        live_rows = [r for r in market_rows if not r["is_historical"]]
        with engine.begin() as conn:
            if series_doc is not None:
                upsert(conn, kalshi_series, [series_doc])
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
            series,
            moved,
        )
    zone = config.zone(series)
    n_hist = len(market_rows) - len(live_rows)
    log.info(
        "%s: synced %d events and %d markets (%d live, %d historical; cutoff %s; %d requests)%s",
        series,
        len(event_rows),
        len(market_rows),
        len(live_rows),
        n_hist,
        cutoff,
        requests,
        "" if zone else "; no time zone: event dates from the tickers, no as-of trade windows",
    )
    return SeriesSynced(
        series,
        len(event_rows),
        len(market_rows),
        requests,
        n_hist,
        str(cutoff),
        None if zone is None else zone.key,
    )
