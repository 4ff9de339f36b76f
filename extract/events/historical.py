"""The historical tier's reads: the cutoff, and the markets the live listing leaves out.

Thin I/O around :mod:`extract.plan.tiers` (which decides): every request goes through the
run's one :class:`~extract.api.client.KalshiClient`, so it shares the throttle and the retry
policy with the candle requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from extract.api.client import ApiResponse, KalshiClient, RequestStats
from extract.errors import BadPageError, HttpStatusError
from extract.plan.tiers import Cutoff
from schemas.tickers import validate_event_ticker

log = logging.getLogger(__name__)

CUTOFF_PATH = "/historical/cutoff"
HISTORICAL_MARKETS_PATH = "/historical/markets"
#: ``GET /historical/markets`` allows up to 1,000 per page (the nine old months of a year
#: of a six-market weather series are about 1,650 markets: two pages for the series).
HISTORICAL_MARKETS_LIMIT = 1000


def _check_cutoff(resp: ApiResponse) -> None:
    Cutoff.from_body(resp.body)


async def read_cutoff(client: KalshiClient, scope: RequestStats | None = None) -> Cutoff:
    """``GET /historical/cutoff`` (retried like any request; a bad body is retried too)."""
    resp = await client.get_json(CUTOFF_PATH, check=_check_cutoff, scope=scope)
    return Cutoff.from_body(resp.body)


class CutoffTracker:
    """The run's view of the cutoff: read before the first window, re-read when a live
    answer suggests it moved.

    Several windows can notice the move at once; they share one request: a refresh is
    answered from a read that started after the evidence was seen (see :meth:`refresh`).
    """

    def __init__(self, client: KalshiClient) -> None:
        self.client = client
        self.stats = RequestStats()
        """Requests spent on the cutoff (kept out of the run's candle request count)."""
        self.reads = 0
        self._cutoff: Cutoff | None = None
        self._read_started = -1.0
        self._lock = asyncio.Lock()

    @property
    def current(self) -> Cutoff | None:
        """The cutoff last read, or None before the first read."""
        return self._cutoff

    async def ensure(self) -> Cutoff:
        """The cutoff, read on first use: a run whose windows are all archived asks nothing."""
        async with self._lock:
            if self._cutoff is None:
                started = time.monotonic()
                self._store(await read_cutoff(self.client, self.stats), started)
            assert self._cutoff is not None
            return self._cutoff

    async def refresh(self, seen_at: float) -> Cutoff:
        """Re-read the cutoff because an answer seen at ``seen_at`` suggests it moved.

        ``seen_at`` is the ``time.monotonic()`` of that answer. A read that started after
        it already reflects it, so several windows noticing the same move share one
        request; any earlier read does not, so it is never trusted for new evidence.
        """
        async with self._lock:
            if self._cutoff is not None and self._read_started >= seen_at:
                return self._cutoff
            before = self._cutoff
            started = time.monotonic()
            self._store(await read_cutoff(self.client, self.stats), started)
            now = self._cutoff
            assert now is not None
        if before is not None and now != before:
            log.warning("historical cutoff moved during the run: %s -> %s", before, now)
        return now

    def _store(self, cutoff: Cutoff, started: float) -> None:
        # The cutoff only moves forward: never step back to an older answer.
        if self._cutoff is None or cutoff.market_settled_ts >= self._cutoff.market_settled_ts:
            self._cutoff = cutoff
        self._read_started = started
        self.reads += 1


def _check_markets_page(body: Any) -> tuple[list[Mapping[str, Any]], str]:
    if not isinstance(body, dict) or not isinstance(body.get("markets"), list):
        raise BadPageError("historical markets page: no 'markets' list")
    markets = body["markets"]
    if not all(isinstance(m, dict) for m in markets):
        raise BadPageError("historical markets page: a market is not an object")
    cursor = body.get("cursor") or ""
    if not isinstance(cursor, str):
        raise BadPageError("historical markets page: cursor is not a string")
    return markets, cursor


async def fetch_historical_markets(
    client: KalshiClient, event_ticker: str | None = None, *, series_ticker: str | None = None
) -> list[Mapping[str, Any]]:
    """Every market of one event, or of a whole series, on the historical tier.

    Follows the cursor (``limit`` 1,000). One listing per series costs
    ``ceil(markets / 1000)`` requests instead of one per old event; a server that refuses
    ``series_ticker`` answers 400 (:class:`~extract.errors.HttpStatusError`, never
    retried) and the caller falls back to per-event listings. Parsed with Decimal for
    JSON fractions (strikes stay exact), like ``/events``.
    """
    if (event_ticker is None) == (series_ticker is None):
        raise ValueError("give exactly one of event_ticker and series_ticker")
    scope: dict[str, str | int] = (
        {"event_ticker": event_ticker}
        if event_ticker is not None
        else {"series_ticker": str(series_ticker)}
    )
    markets: list[Mapping[str, Any]] = []
    cursor = ""
    seen: set[str] = set()
    while True:
        params: dict[str, str | int] = {**scope, "limit": HISTORICAL_MARKETS_LIMIT}
        if cursor:
            params["cursor"] = cursor
        resp = await client.get_json(HISTORICAL_MARKETS_PATH, params, exact=True)
        page, cursor = _check_markets_page(resp.body)
        markets.extend(page)
        if not cursor:
            return markets
        if cursor in seen:
            raise BadPageError(
                f"/historical/markets repeated cursor {cursor!r}: stopping instead of looping"
            )
        seen.add(cursor)


def group_by_event(
    markets: Iterable[Mapping[str, Any]], series: str
) -> dict[str, list[Mapping[str, Any]]]:
    """Event ticker → its markets, from a series listing; pure.

    A market of another series, or without an event ticker, is a page the sync cannot
    trust: it fails instead of filing the market under a guessed event.
    """
    out: dict[str, list[Mapping[str, Any]]] = {}
    for m in markets:
        event = m.get("event_ticker")
        if not isinstance(event, str) or not event.startswith(series + "-"):
            raise BadPageError(
                f"historical markets of series {series}: market {m.get('ticker')!r} "
                f"names event {event!r}"
            )
        out.setdefault(validate_event_ticker(event), []).append(m)
    return out


async def fetch_series_historical_markets(
    client: KalshiClient, series: str
) -> dict[str, list[Mapping[str, Any]]] | None:
    """Every historical market of ``series`` by event, in one paged listing.

    None when the server refuses ``series_ticker`` (a 400): the caller then lists the
    old events one by one.
    """
    try:
        markets = await fetch_historical_markets(client, series_ticker=series)
    except HttpStatusError as e:
        if e.status != 400:
            raise
        log.warning(
            "%s: GET %s refuses series_ticker (HTTP 400): listing old markets event by event",
            series,
            HISTORICAL_MARKETS_PATH,
        )
        return None
    return group_by_event(markets, series)
