"""The historical tier's reads: the cutoff, and the markets the live listing leaves out.

Thin I/O around :mod:`extract.routing` (which decides): every request goes through the
run's one :class:`~extract.client.KalshiClient`, so it shares the throttle and the retry
policy with the candle requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from extract.client import ApiResponse, KalshiClient, RequestStats
from extract.errors import BadPageError
from extract.routing import Cutoff

log = logging.getLogger(__name__)

CUTOFF_PATH = "/historical/cutoff"
HISTORICAL_MARKETS_PATH = "/historical/markets"
#: ``GET /historical/markets`` allows up to 1,000 per page; an event has a handful.
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
    client: KalshiClient, event_ticker: str
) -> list[Mapping[str, Any]]:
    """Every market of ``event_ticker`` on the historical tier, following the cursor.

    Parsed with Decimal for JSON fractions (strikes stay exact), like ``/events``.
    """
    markets: list[Mapping[str, Any]] = []
    cursor = ""
    seen: set[str] = set()
    while True:
        params: dict[str, str | int] = {
            "event_ticker": event_ticker,
            "limit": HISTORICAL_MARKETS_LIMIT,
        }
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
