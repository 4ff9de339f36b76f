"""Batch requests that carry the markets of several windows, and the floor under them: pure.

A window's batch plan (:func:`extract.plan.caps.batch_plan`) is a list of requests, each
under the caps; each of them is a **piece**: some of the window's markets over a range.
A piece far below the caps wastes most of a request (a weather event at 60 minutes asks
6 markets x 41 periods = 246 candles of the 10,000 a request may ask), so pieces of
different windows, of any event and any series, are **packed**: one request asks for the
tickers of every piece it carries over the hull of their ranges, as long as that stays
within 100 tickers and 10,000 requested candles (the caps count every ticker over the
whole range). A pack never asks a candle a piece did not, at a ticker it does not need,
except the periods of the hull outside a piece's own range; the markets of a window are
always asked over the window's whole range, so what a window's manifest holds does not
depend on which windows shared its requests.

:func:`pack_pieces` sorts the pieces by the ticker count their own range allows (short
pieces apart from long ones), then by start, and fills one request after another while
the next piece still fits: for pieces of one kind in time order that is the fewest
requests of any partition into consecutive runs (a feasible run stays feasible without
its last piece). A piece too large to share a request (a full time chunk of a long
window) stays alone, so packing never takes more requests than window by window.

:func:`piece_shares` is the floor's side (:mod:`extract.plan.auto`): a lower bound on the
requests of ANY packing of the pieces, whatever its order. A request whose range spans
``P`` periods holds at most ``K(P) = min(100, 10,000 // P)`` tickers, and only those of
pieces lying inside its range; so a request holding piece ``p`` holds at most ``M_p``
tickers, the best ``min(K, tickers inside)`` over every range around ``p`` (rounded down
to a multiple of the pieces' common ticker count). Each request then carries at most one
request's worth of ``tickers_p / M_p``, and their sum over the pieces is a floor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from extract.plan.caps import (
    BATCH_CANDLE_CAP,
    BATCH_MAX_TICKERS,
    BatchRequest,
    requested_candles,
)


@dataclass(frozen=True)
class Piece:
    """One request of one window's own batch plan, and the window it belongs to."""

    window: int
    """The window's index in the run's list (packing is agnostic of series and events)."""
    request: BatchRequest


@dataclass(frozen=True)
class Pack:
    """One batch request and the pieces it carries (one or several windows')."""

    request: BatchRequest
    pieces: tuple[Piece, ...]

    @property
    def windows(self) -> tuple[int, ...]:
        """The windows whose markets the request asks for, in order."""
        return tuple(sorted({p.window for p in self.pieces}))

    @property
    def shared(self) -> bool:
        """True when the request serves several windows (its page is archived once,
        outside every window's folder)."""
        return len(self.windows) > 1

    def tickers_of(self, window: int) -> tuple[str, ...]:
        """The tickers this request asks for on behalf of ``window``, sorted."""
        return tuple(
            sorted({t for p in self.pieces if p.window == window for t in p.request.tickers})
        )


def ticker_capacity(periods: int, cap: int = BATCH_CANDLE_CAP) -> int:
    """``K(P)``: the most tickers one request may ask for over a range of ``periods``."""
    return min(BATCH_MAX_TICKERS, cap // periods) if periods > 0 else BATCH_MAX_TICKERS


def fits(
    n_tickers: int, start_ts: int, end_ts: int, period: int, cap: int = BATCH_CANDLE_CAP
) -> bool:
    """Whether ``n_tickers`` over ``[start_ts, end_ts]`` is one request under both caps."""
    return n_tickers <= ticker_capacity(requested_candles(start_ts, end_ts, period), cap)


def _order(piece: Piece, period: int, cap: int) -> tuple[int, int, int, int]:
    """Pieces whose own range allows about as many tickers sort together (powers of two
    of ``K``), then by time: a month-long piece packed among hour-long ones would stretch
    every request it joins."""
    req = piece.request
    own = ticker_capacity(requested_candles(req.start_ts, req.end_ts, period), cap)
    return (-own.bit_length(), req.start_ts, req.end_ts, piece.window)


def pack_pieces(pieces: Sequence[Piece], period: int, cap: int = BATCH_CANDLE_CAP) -> list[Pack]:
    """The requests that carry ``pieces``: consecutive pieces (in :func:`_order`) share a
    request while their tickers over the hull of their ranges stay under the caps.

    Deterministic: the same pieces always give the same requests (a rerun finds the
    pages it archived). Every request is under both caps (asserted).
    """
    out: list[Pack] = []
    current: list[Piece] = []
    tickers: set[str] = set()
    start = end = 0

    def close() -> None:
        if current:
            request = BatchRequest(tuple(sorted(tickers)), start, end)
            assert request.requested(period) <= cap and len(request.tickers) <= BATCH_MAX_TICKERS
            out.append(Pack(request, tuple(current)))

    for piece in sorted(pieces, key=lambda p: _order(p, period, cap)):
        req = piece.request
        if current:
            joined = tickers | set(req.tickers)
            lo, hi = min(start, req.start_ts), max(end, req.end_ts)
            if fits(len(joined), lo, hi, period, cap):
                current.append(piece)
                tickers, start, end = joined, lo, hi
                continue
            close()
        current, tickers = [piece], set(req.tickers)
        start, end = req.start_ts, req.end_ts
    close()
    return out


# --- the floor ----------------------------------------------------------------------------


def piece_shares(
    pieces: Sequence[tuple[int, int, int]], period: int, cap: int = BATCH_CANDLE_CAP
) -> list[Fraction]:
    """For each piece ``(tickers, start_ts, end_ts)``, ``tickers / M``: its share of a
    request in any packing at best (see the module docstring). Their sum is a floor.

    ``M`` is found level by level: for each ticker count ``k``, the longest range that
    allows ``k`` tickers spans ``10,000 // k`` periods, and the most tickers of pieces
    inside any such range around the piece is a sliding count (prefix sums over the
    pieces sorted by start and by end) and a range maximum (a sparse table). numpy,
    imported here: only the floor needs it.
    """
    if not pieces:
        return []
    import numpy as np

    n = np.array([p[0] for p in pieces], dtype=np.int64)
    starts = np.array([p[1] for p in pieces], dtype=np.int64)
    ends = np.array([p[2] for p in pieces], dtype=np.int64)
    step = period * 60
    lengths = ends - starts
    best = np.zeros(len(pieces), dtype=np.int64)
    for k in range(1, BATCH_MAX_TICKERS + 1):
        # The longest range whose requested count allows k tickers: cap // k periods.
        span = (cap // k) * step - 1
        # A range [a, a + span] (its requested count allows k tickers) holds the pieces
        # that start at or after a and end by a + span; only pieces no longer than span
        # can, and for those, starting before a means ending before a + span too.
        short = lengths <= span
        if not short.any():
            continue
        s_sorted = np.sort(starts[short])
        w_by_start = n[short][np.argsort(starts[short], kind="stable")]
        cum_start = np.concatenate(([0], np.cumsum(w_by_start)))
        order_end = np.argsort(ends[short], kind="stable")
        e_sorted = ends[short][order_end]
        cum_end = np.concatenate(([0], np.cumsum(n[short][order_end])))
        anchors = s_sorted  # an optimal range starts at some piece's start
        inside = (
            cum_end[np.searchsorted(e_sorted, anchors + span, side="right")]
            - cum_start[np.searchsorted(s_sorted, anchors, side="left")]
        )
        # For each piece (that fits such a range): anchors a with e_p - span <= a <= s_p.
        lo = np.searchsorted(anchors, ends - span, side="left")
        hi = np.searchsorted(anchors, starts, side="right") - 1
        ok = short & (lo <= hi)
        if not ok.any():
            continue
        top = _range_max(inside, lo[ok], hi[ok])
        best[ok] = np.maximum(best[ok], np.minimum(top, k))
    unit = math.gcd(*(int(x) for x in n))
    out: list[Fraction] = []
    for tickers, m in zip(n.tolist(), best.tolist(), strict=True):
        most = max(tickers, m // unit * unit)
        out.append(Fraction(tickers, most))
    return out


def _range_max(values: Any, lo: Any, hi: Any) -> Any:
    """``max(values[lo[i]..hi[i]])`` for each ``i`` (inclusive, ``lo <= hi``): a sparse table."""
    import numpy as np

    v = np.asarray(values)
    lo_a, hi_a = np.asarray(lo), np.asarray(hi)
    table = [v]
    width = 1
    while width * 2 <= len(v):
        prev = table[-1]
        table.append(np.maximum(prev[: len(prev) - width], prev[width:]))
        width *= 2
    length = hi_a - lo_a + 1
    level = np.floor(np.log2(length)).astype(np.int64)
    out = np.zeros(len(lo_a), dtype=v.dtype)
    for j in np.unique(level):
        sel = level == j
        t = table[int(j)]
        out[sel] = np.maximum(t[lo_a[sel]], t[hi_a[sel] - (1 << int(j)) + 1])
    return out
