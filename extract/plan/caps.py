"""The API's caps on one request, and how many requests each route takes under them: pure.

Its own module because two users count by the same rule: the batch route cuts its
requests here (:mod:`extract.routes.batch`) and ``auto`` prices every route with it
(:mod:`extract.plan.auto`), so a request is never planned by one count and priced by another.

Caps (``/work/shared/kalshi-api.md``, the recorded 400 in ``kalshi-samples/``):

- batch ``GET /markets/candlesticks``: at most 100 tickers and 10,000 REQUESTED candles
  (tickers x periods of the range, whether or not a candle exists); over it a 400;
- event ``GET /series/{s}/events/{e}/candlesticks``: about 5,000 candles a page, cut by
  the server (``adjusted_end_ts``); whether it counts candles returned or candidates
  requested is open;
- per-market historical: 5,000 requested candles (:data:`HISTORICAL_CHUNK_CANDLES`).

Requested candles are counted as ``(end_ts - start_ts) // period_seconds + 1`` per
ticker: the period ends inside the inclusive range can never be more, whether the
server counts period ends (the simulator), the length over the period, or the length
plus one. So a request planned under the cap is under it by every reading.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from extract.plan.tiers import HISTORICAL_CHUNK_CANDLES, historical_chunks

#: The batch route's cap on requested candles, summed over its tickers.
BATCH_CANDLE_CAP = 10_000
#: The batch route's ticker limit.
BATCH_MAX_TICKERS = 100
#: The event route's documented cap (changelog, September 2025), per page.
EVENT_CANDLE_CAP = 5000


def requested_candles(start_ts: int, end_ts: int, period: int) -> int:
    """Candles one ticker requests over ``[start_ts, end_ts]`` (see the module docstring)."""
    if end_ts < start_ts:
        raise ValueError(f"range ends ({end_ts}) before it starts ({start_ts})")
    return (end_ts - start_ts) // (period * 60) + 1


def ceil_div(a: int, b: int) -> int:
    """``a / b`` rounded up, in integers: request counts never go through a float."""
    return -(-a // b)


# --- the batch route ------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRequest:
    """One batch request: these tickers over ``[start_ts, end_ts]`` (inclusive)."""

    tickers: tuple[str, ...]
    start_ts: int
    end_ts: int

    def params(self, period: int) -> dict[str, str | int]:
        """The query, in the order it is sent and archived."""
        return {
            "market_tickers": ",".join(self.tickers),
            "start_ts": self.start_ts,
            "end_ts": self.end_ts,
            "period_interval": period,
        }

    def requested(self, period: int) -> int:
        """Candles this request asks for, summed over its tickers."""
        return len(self.tickers) * requested_candles(self.start_ts, self.end_ts, period)


def time_chunks(start_ts: int, end_ts: int, period: int, per_ticker: int) -> list[tuple[int, int]]:
    """``[start_ts, end_ts]`` cut into ranges of at most ``per_ticker`` requested candles.

    The first range is ``[start, start + (k - 1) periods]``, each next one starts a
    second after the previous end and spans ``k`` periods less a second, so every range
    counts ``k`` by :func:`requested_candles` and, the previous end being a period end
    after the first range, holds exactly ``k`` period ends: no candle is asked twice
    and no request wastes a period (``historical_chunks`` repeats its span from the
    unaligned start and so holds one period less). The starts depend only on the
    window, so a rerun finds the pages it archived.
    """
    if per_ticker < 1:
        raise ValueError("per_ticker must be at least 1")
    if end_ts < start_ts:
        raise ValueError(f"range ends ({end_ts}) before it starts ({start_ts})")
    step = period * 60
    out: list[tuple[int, int]] = []
    start, end = start_ts, start_ts + (per_ticker - 1) * step
    while True:
        out.append((start, min(end, end_ts)))
        if end >= end_ts:
            return out
        start, end = end + 1, end + per_ticker * step


def ticker_groups(
    tickers: Iterable[str], max_tickers: int = BATCH_MAX_TICKERS
) -> list[tuple[str, ...]]:
    """Sorted tickers in as few groups of at most ``max_tickers`` as possible, sizes even.

    Even sizes because a group's time chunk is ``cap // size`` periods: two groups of 60
    take fewer requests than 100 + 20 over a long window.
    """
    ordered = sorted(set(tickers))
    if not ordered:
        return []
    n_groups = ceil_div(len(ordered), max_tickers)
    base, extra = divmod(len(ordered), n_groups)
    out: list[tuple[str, ...]] = []
    i = 0
    for g in range(n_groups):
        size = base + (1 if g < extra else 0)
        out.append(tuple(ordered[i : i + size]))
        i += size
    return out


def batch_plan(
    tickers: Iterable[str],
    start_ts: int,
    end_ts: int,
    period: int,
    cap: int = BATCH_CANDLE_CAP,
    max_tickers: int = BATCH_MAX_TICKERS,
) -> list[BatchRequest]:
    """Every batch request of a window, each under ``cap`` requested and ``max_tickers``.

    A group of ``n`` tickers is cut into time chunks of ``cap // n`` periods
    (:func:`time_chunks`).
    """
    out: list[BatchRequest] = []
    for group in ticker_groups(tickers, max_tickers):
        per_ticker = cap // len(group)
        if per_ticker < 1:
            raise ValueError(f"a batch of {len(group)} tickers cannot fit a cap of {cap}")
        for chunk_start, chunk_end in time_chunks(start_ts, end_ts, period, per_ticker):
            out.append(BatchRequest(group, chunk_start, chunk_end))
    for req in out:
        assert req.requested(period) <= cap, "batch request planned over the cap"
    return out


# --- the other routes -----------------------------------------------------------------


def event_requests(
    n_markets: int, start_ts: int, end_ts: int, period: int, cap: int = EVENT_CANDLE_CAP
) -> int:
    """Pages the event route takes over ``[start_ts, end_ts]`` for ``n_markets``; pure.

    The bound for a cap that counts REQUESTED candidates (markets x period ends, the
    range cut at whole periods, the next page starting at the cut, inclusive): each page
    holds ``k = cap // n_markets`` period ends and the next one starts on the last of
    them. A cap counting RETURNED candles cuts no sooner (a page holds at least as many
    period ends, fewer when minutes are missing), so this is an upper bound either way,
    give or take the one confirming request of an uncapped page whose
    ``adjusted_end_ts`` names its last candle before the window end.
    """
    if n_markets <= 0:
        return 0
    step = period * 60
    first = -(-start_ts // step) * step
    ends = max(0, (end_ts // step * step - first) // step + 1)
    k = max(2, cap // n_markets)
    if n_markets * ends <= cap or ends <= k:
        return 1
    return 1 + -(-(ends - k) // (k - 1))


def event_route_pages(
    n_markets: int, candles: int, n_periods: int, cap: int = EVENT_CANDLE_CAP
) -> int:
    """Pages the event route takes when its cap cuts ``candles`` of ``n_markets`` markets.

    ``candles`` is what the cap counts over the window (candidates ``n_markets x
    n_periods`` if it counts requested ones, the candles the server holds if it counts
    returned ones). The next page starts AT the previous ``adjusted_end_ts``, so the
    boundary period is asked twice: each page after the first moves by ``cap`` minus one
    period's worth (``n_markets`` candles at most).
    """
    if n_markets == 0:
        return 0
    if candles <= cap:
        return 1
    step = cap - n_markets if n_periods > 1 else cap
    if step < 1:
        raise ValueError(f"an event cap of {cap} cannot page {n_markets} markets")
    return 1 + ceil_div(candles - cap, step)


def historical_route_requests(n_markets: int, start_ts: int, end_ts: int, period: int) -> int:
    """Requests of ``n_markets`` historical markets over the window (one chain each)."""
    if n_markets == 0:
        return 0
    return n_markets * len(historical_chunks(start_ts, end_ts, period, HISTORICAL_CHUNK_CANDLES))
