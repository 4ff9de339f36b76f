"""Deterministic 1-minute candle generation, aggregation and API formatting.

Prices are integer micro-dollars (1e-6 $) and counts integer hundredths of a
contract, so nothing here goes through float on the way out: a price of 562500
is formatted ``"0.5625"``, a count of 250 ``"2.50"``. A market's whole lifetime is
generated at once (about 2,300 minutes, a millisecond of numpy), independent of
the simulated ``now``; serving cuts that series at ``now``, so moving ``now``
forward only reveals more of the same candles.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MICRO = 1_000_000
MIN_PRICE = 10_000  # $0.01
MAX_PRICE = 990_000  # $0.99
_NY = ZoneInfo("America/New_York")

Candle = dict[str, Any]


def stable_seed(*parts: object) -> list[int]:
    """Seed words for numpy from a hash of ``parts`` (Python's ``hash`` is salted)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


@dataclass(frozen=True)
class CandleParams:
    """What the generator needs to know about one market."""

    ticker: str
    open_ts: int
    close_ts: int
    tick: int
    """Price tick in micro-dollars: 10_000 (cent), 100 (0.0001) or 1 (0.000001)."""
    result_yes: bool
    start_prob: float
    seed: int
    missing_minute_rate: float
    no_trade_rate: float
    null_book_rate: float
    sparse: bool = False
    """Illiquid: candles only in a few rare bursts (a few hundred over the life)."""


@dataclass(frozen=True)
class Series:
    """Column arrays of candles (1-minute or aggregated); index i is one candle."""

    ts: IntArray
    bid_o: IntArray
    bid_l: IntArray
    bid_h: IntArray
    bid_c: IntArray
    ask_o: IntArray
    ask_l: IntArray
    ask_h: IntArray
    ask_c: IntArray
    traded: BoolArray
    p_o: IntArray
    p_l: IntArray
    p_h: IntArray
    p_c: IntArray
    p_mean: IntArray
    prev: IntArray
    """Last trade price before the period, -1 when there was none (null)."""
    vol: IntArray
    oi: IntArray
    null_book: BoolArray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def take(self, index: npt.NDArray[Any]) -> Series:
        """Rows selected by a boolean mask or an index array."""
        return Series(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def upto(self, last_ts: int) -> Series:
        """The prefix with ts <= last_ts (ts is sorted)."""
        n = int(np.searchsorted(self.ts, last_ts, side="right"))
        return self.take(np.arange(n))


def maintenance_mask(ts: IntArray) -> BoolArray:
    """Minutes ending inside the weekly pause, Thursday (03:00, 05:00] New York time.

    Computed per distinct UTC day so DST is handled by zoneinfo, not by hand.
    """
    mask = np.zeros(ts.shape, dtype=np.bool_)
    if ts.size == 0:
        return mask
    first_day = int(ts[0]) // 86400 - 1
    last_day = int(ts[-1]) // 86400 + 1
    for day in range(first_day, last_day + 1):
        d = datetime.fromtimestamp(day * 86400, UTC).date()
        if d.weekday() != 3:  # Thursday
            continue
        start = int(datetime(d.year, d.month, d.day, 3, tzinfo=_NY).timestamp())
        end = int(datetime(d.year, d.month, d.day, 5, tzinfo=_NY).timestamp())
        mask |= (ts > start) & (ts <= end)
    return mask


def _on_tick(values: npt.NDArray[Any], tick: int) -> IntArray:
    out: IntArray = (np.floor_divide(values.astype(np.int64), tick) * tick).astype(np.int64)
    return out


def _between(rng: np.random.Generator, lo: IntArray, hi: IntArray, tick: int) -> IntArray:
    """A uniform on-tick price in [lo, hi] per element (lo, hi on tick, lo <= hi)."""
    steps = (hi - lo) // tick + 1
    pick = np.floor(rng.random(lo.shape) * steps).astype(np.int64)
    out: IntArray = lo + np.minimum(pick, steps - 1) * tick
    return out


def _bursts(p: CandleParams, n: int) -> BoolArray:
    """The minutes of an illiquid market's rare bursts of activity.

    From a generator of its own, so making a market sparse changes which minutes
    exist but none of the other draws: 4-8 bursts of 10-59 minutes each.
    """
    rng = np.random.default_rng(stable_seed(p.seed, "sparse", p.ticker))
    mask = np.zeros(n, dtype=np.bool_)
    for _ in range(int(rng.integers(4, 9))):
        start = int(rng.integers(0, max(1, n)))
        mask[start : start + int(rng.integers(10, 60))] = True
    return mask


def generate_minutes(p: CandleParams) -> Series:
    """The market's 1-minute candles over its whole life, (open_ts, close_ts].

    Every random array is drawn unconditionally and in a fixed order, so the rates
    change which minutes are affected but never shift the other draws.
    """
    rng = np.random.default_rng(stable_seed(p.seed, "candles", p.ticker))
    first = p.open_ts - p.open_ts % 60 + 60
    last = p.close_ts - p.close_ts % 60
    ts: IntArray = np.arange(first, last + 1, 60, dtype=np.int64)
    n = int(ts.shape[0])
    idx = np.arange(n)
    tick = p.tick

    present = (rng.random(n) >= p.missing_minute_rate) & ~maintenance_mask(ts)
    if p.sparse:
        present &= _bursts(p, n)
    if n:
        present[-1] = True  # the closing minute always prints: last candle == close

    # Book: a logit random walk that only moves in minutes with activity, drifting
    # towards the outcome near the close.
    # A month-long market (43,000 minutes) walks with smaller steps, so that its book
    # wanders about as far as a daily one's instead of pinning at a cent.
    scale = 0.05 if n <= 10_000 else 0.05 * float(np.sqrt(10_000 / n))
    steps = rng.normal(0.0, scale, n) * present
    frac = (ts - first) / max(1, last - first)
    x0 = float(np.log(p.start_prob / (1 - p.start_prob)))
    target = 4.6 if p.result_yes else -4.6
    x = x0 + np.cumsum(steps) + (target - x0) * frac**4
    mid = MICRO / (1.0 + np.exp(-x))
    spread_raw = rng.integers(1, 5, n) * 10_000 + rng.integers(0, 100, n) * 100
    spread_raw += rng.integers(0, 100, n)
    last_active = np.maximum.accumulate(np.where(present, idx, 0))
    spread = _on_tick(spread_raw[last_active], tick)
    spread = np.maximum(spread, tick)
    bid_c = np.clip(_on_tick(mid - spread / 2, tick), MIN_PRICE, MAX_PRICE - 10_000)
    ask_c = np.clip(bid_c + spread, bid_c + tick, MAX_PRICE)
    bid_o = np.concatenate([bid_c[:1], bid_c[:-1]])
    ask_o = np.concatenate([ask_c[:1], ask_c[:-1]])
    wiggle = rng.integers(0, 3, (4, n)) * tick * (rng.random((4, n)) < 0.3)
    bid_h = np.minimum(np.maximum(bid_o, bid_c) + wiggle[0], MAX_PRICE)
    bid_l = np.maximum(np.minimum(bid_o, bid_c) - wiggle[1], MIN_PRICE)
    ask_h = np.minimum(np.maximum(ask_o, ask_c) + wiggle[2], MAX_PRICE)
    ask_l = np.maximum(np.minimum(ask_o, ask_c) - wiggle[3], MIN_PRICE)

    # Trades: inside the book at the open and at the close of the minute.
    traded = present & (rng.random(n) >= p.no_trade_rate)
    p_o = _between(rng, bid_o, ask_o, tick)
    p_c = _between(rng, bid_c, ask_c, tick)
    ext = rng.integers(0, 2, (2, n)) * tick
    p_l = np.maximum(np.minimum(p_o, p_c) - ext[0], MIN_PRICE)
    p_h = np.minimum(np.maximum(p_o, p_c) + ext[1], MAX_PRICE)
    p_mean = _between(rng, p_l, p_h, tick)
    vol = rng.integers(1, 40, n) * 100 + (rng.random(n) < 0.2) * 50
    vol = np.where(traded, vol, 0).astype(np.int64)
    oi = np.cumsum(np.where(rng.random(n) < 0.7, vol, 0)).astype(np.int64)
    last_trade = np.maximum.accumulate(np.where(traded, idx, -1)) if n else idx
    prev_idx = np.concatenate([[-1], last_trade[:-1]]).astype(np.int64)
    prev = np.where(prev_idx >= 0, p_c[np.maximum(prev_idx, 0)], -1).astype(np.int64)
    null_book = present & (rng.random(n) < p.null_book_rate)

    full = Series(
        ts=ts,
        bid_o=bid_o,
        bid_l=bid_l,
        bid_h=bid_h,
        bid_c=bid_c,
        ask_o=ask_o,
        ask_l=ask_l,
        ask_h=ask_h,
        ask_c=ask_c,
        traded=traded,
        p_o=p_o,
        p_l=p_l,
        p_h=p_h,
        p_c=p_c,
        p_mean=p_mean,
        prev=prev,
        vol=vol,
        oi=oi,
        null_book=null_book,
    )
    return full.take(present)


def period_end(ts: IntArray, period_s: int) -> IntArray:
    """End of the UTC-aligned period holding a minute that ends at ``ts``."""
    out: IntArray = -(-ts // period_s) * period_s
    return out


def aggregate(m: Series, period_minutes: int) -> Series:
    """Roll 1-minute candles up to ``period_minutes`` (60 or 1440), UTC-aligned.

    A period exists when at least one of its minutes exists; bid/ask open/close
    come from its first/last minute, trade OHLC from its traded minutes, ``mean``
    is the volume-weighted mean (rounded to the micro-dollar), ``previous`` is the
    last trade before the period, volume sums and open interest is the last one.
    """
    if period_minutes == 1 or len(m) == 0:
        return m
    keys = period_end(m.ts, period_minutes * 60)
    n = len(m)
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    ends = np.concatenate([starts[1:], [n]]) - 1
    idx = np.arange(n)
    big = np.int64(1 << 60)
    traded = np.add.reduceat(m.traded.astype(np.int64), starts) > 0
    first_t = np.minimum.reduceat(np.where(m.traded, idx, n), starts)
    last_t = np.maximum.reduceat(np.where(m.traded, idx, -1), starts)
    safe_first = np.minimum(first_t, n - 1)
    safe_last = np.maximum(last_t, 0)
    vol = np.add.reduceat(m.vol, starts)
    weighted = np.add.reduceat(np.where(m.traded, m.p_mean * m.vol, 0), starts)
    den = np.maximum(vol, 1)
    mean = (2 * weighted + den) // (2 * den)
    return Series(
        ts=keys[starts],
        bid_o=m.bid_o[starts],
        bid_l=np.minimum.reduceat(m.bid_l, starts),
        bid_h=np.maximum.reduceat(m.bid_h, starts),
        bid_c=m.bid_c[ends],
        ask_o=m.ask_o[starts],
        ask_l=np.minimum.reduceat(m.ask_l, starts),
        ask_h=np.maximum.reduceat(m.ask_h, starts),
        ask_c=m.ask_c[ends],
        traded=traded,
        p_o=np.where(traded, m.p_o[safe_first], -1),
        p_l=np.where(traded, np.minimum.reduceat(np.where(m.traded, m.p_l, big), starts), -1),
        p_h=np.where(traded, np.maximum.reduceat(np.where(m.traded, m.p_h, -1), starts), -1),
        p_c=np.where(traded, m.p_c[safe_last], -1),
        p_mean=np.where(traded, mean, -1),
        prev=m.prev[starts],
        vol=vol,
        oi=m.oi[ends],
        null_book=np.maximum.reduceat(m.null_book.astype(np.int64), starts) > 0,
    )


# --- formatting -----------------------------------------------------------------


@lru_cache(maxsize=1 << 16)
def fmt_dollars(v: int) -> str:
    """Micro-dollars to the API string: 4 decimals on the 0.0001 grid, else 6.

    Memoized: a market has a few hundred distinct prices and formatting dominated
    the cost of serving pages.
    """
    whole, frac = divmod(v, MICRO)
    if frac % 100 == 0:
        return f"{whole}.{frac // 100:04d}"
    return f"{whole}.{frac:06d}"


@lru_cache(maxsize=1 << 16)
def fmt_count(c: int) -> str:
    """Hundredths of a contract to the API's 2-decimal string."""
    return f"{c // 100}.{c % 100:02d}"


def legacy_cents(v: int) -> int:
    """Integer cents of the pre-2026 fields: rounded half up, as sub-cent prices were."""
    return (v + 5_000) // 10_000


def _book(o: int, lo: int, hi: int, c: int, null: bool, legacy: bool) -> dict[str, Any]:
    if null:
        out: dict[str, Any] = dict.fromkeys(
            ("open_dollars", "low_dollars", "high_dollars", "close_dollars")
        )
        if legacy:
            out.update(dict.fromkeys(("open", "low", "high", "close")))
        return out
    out = {
        "open_dollars": fmt_dollars(o),
        "low_dollars": fmt_dollars(lo),
        "high_dollars": fmt_dollars(hi),
        "close_dollars": fmt_dollars(c),
    }
    if legacy:
        out.update(
            open=legacy_cents(o), low=legacy_cents(lo), high=legacy_cents(hi), close=legacy_cents(c)
        )
    return out


def live_candles(s: Series, legacy: bool = False) -> list[Candle]:
    """Candles in the live ``MarketCandlestick`` shape.

    A period without trades gets ``price: {"previous_dollars": ...}`` with the other
    keys absent (what the live API sends); ``previous_dollars`` is null when the
    market never traded before.
    """
    if not legacy and not s.null_book.any():
        return _live_candles_fast(s)
    cols = {f.name: getattr(s, f.name).tolist() for f in fields(s)}
    out: list[Candle] = []
    for i in range(len(s)):
        prev = cols["prev"][i]
        prev_s = fmt_dollars(prev) if prev >= 0 else None
        null = cols["null_book"][i]
        if cols["traded"][i]:
            o, lo, hi, c, mean = (cols[k][i] for k in ("p_o", "p_l", "p_h", "p_c", "p_mean"))
            price: dict[str, Any] = {
                "open_dollars": fmt_dollars(o),
                "low_dollars": fmt_dollars(lo),
                "high_dollars": fmt_dollars(hi),
                "close_dollars": fmt_dollars(c),
                "mean_dollars": fmt_dollars(mean),
                "previous_dollars": prev_s,
                "min_dollars": fmt_dollars(lo),
                "max_dollars": fmt_dollars(hi),
            }
            if legacy:
                price.update(
                    open=legacy_cents(o),
                    low=legacy_cents(lo),
                    high=legacy_cents(hi),
                    close=legacy_cents(c),
                    mean=legacy_cents(mean),
                    previous=legacy_cents(prev) if prev >= 0 else None,
                )
        else:
            price = {"previous_dollars": prev_s}
            if legacy:
                price["previous"] = legacy_cents(prev) if prev >= 0 else None
        vol, oi = cols["vol"][i], cols["oi"][i]
        candle: Candle = {
            "end_period_ts": cols["ts"][i],
            "yes_bid": _book(
                cols["bid_o"][i], cols["bid_l"][i], cols["bid_h"][i], cols["bid_c"][i], null, legacy
            ),
            "yes_ask": _book(
                cols["ask_o"][i], cols["ask_l"][i], cols["ask_h"][i], cols["ask_c"][i], null, legacy
            ),
            "price": price,
            "volume_fp": fmt_count(vol),
            "open_interest_fp": fmt_count(oi),
        }
        if legacy:
            candle["volume"] = vol // 100
            candle["open_interest"] = oi // 100
        out.append(candle)
    return out


def _live_candles_fast(s: Series) -> list[Candle]:
    """``live_candles`` without legacy twins or null books: column-wise formatting.

    Serving is dominated by building these dicts; formatting whole columns first
    (memoized) and zipping them halves the cost. Same output as the general path.
    """

    def dollars(a: IntArray) -> list[str]:
        return [fmt_dollars(v) if v >= 0 else "" for v in a.tolist()]

    b = [dollars(a) for a in (s.bid_o, s.bid_l, s.bid_h, s.bid_c)]
    a = [dollars(x) for x in (s.ask_o, s.ask_l, s.ask_h, s.ask_c)]
    p = [dollars(x) for x in (s.p_o, s.p_l, s.p_h, s.p_c, s.p_mean)]
    prev = [fmt_dollars(v) if v >= 0 else None for v in s.prev.tolist()]
    vol = [fmt_count(v) for v in s.vol.tolist()]
    oi = [fmt_count(v) for v in s.oi.tolist()]
    out: list[Candle] = []
    for i, (t, traded) in enumerate(zip(s.ts.tolist(), s.traded.tolist(), strict=True)):
        if traded:
            lo, hi = p[1][i], p[2][i]
            price: dict[str, Any] = {
                "open_dollars": p[0][i],
                "low_dollars": lo,
                "high_dollars": hi,
                "close_dollars": p[3][i],
                "mean_dollars": p[4][i],
                "previous_dollars": prev[i],
                "min_dollars": lo,
                "max_dollars": hi,
            }
        else:
            price = {"previous_dollars": prev[i]}
        out.append(
            {
                "end_period_ts": t,
                "yes_bid": {
                    "open_dollars": b[0][i],
                    "low_dollars": b[1][i],
                    "high_dollars": b[2][i],
                    "close_dollars": b[3][i],
                },
                "yes_ask": {
                    "open_dollars": a[0][i],
                    "low_dollars": a[1][i],
                    "high_dollars": a[2][i],
                    "close_dollars": a[3][i],
                },
                "price": price,
                "volume_fp": vol[i],
                "open_interest_fp": oi[i],
            }
        )
    return out


_BOOK_KEYS = ("open", "low", "high", "close")
_PRICE_KEYS = ("open", "low", "high", "close", "mean", "previous")


def to_historical(c: Candle) -> Candle:
    """A live candle in the ``MarketCandlestickHistorical`` shape.

    Plain open/low/high/close keys holding the same dollar strings, explicit nulls
    for a period without trades, no min/max, ``volume``/``open_interest`` holding
    the same count strings as ``volume_fp``/``open_interest_fp``.
    """
    price = c["price"]
    return {
        "end_period_ts": c["end_period_ts"],
        "yes_bid": {k: c["yes_bid"][f"{k}_dollars"] for k in _BOOK_KEYS},
        "yes_ask": {k: c["yes_ask"][f"{k}_dollars"] for k in _BOOK_KEYS},
        "price": {k: price.get(f"{k}_dollars") for k in _PRICE_KEYS},
        "volume": c["volume_fp"],
        "open_interest": c["open_interest_fp"],
    }


def synthetic_before(real: Candle, end_period_ts: int, legacy: bool = False) -> Candle:
    """The ``include_latest_before_start`` candle projected from ``real``.

    The spec says OHLC are set to null and previous to the real close. Bid/ask
    OHLC are required and non-nullable in the spec's schema, so they carry the
    real candle's closing quote instead; ``price`` holds only ``previous_dollars``
    (the real candle's trade close, or its own previous when it had no trade).
    """
    price = real["price"]
    prev = price.get("close_dollars") or price.get("previous_dollars")

    def flat(book: dict[str, Any]) -> dict[str, Any]:
        close = book["close_dollars"]
        out = {f"{k}_dollars": close for k in _BOOK_KEYS}
        if legacy:
            out.update({k: book.get("close") for k in _BOOK_KEYS})
        return out

    out: Candle = {
        "end_period_ts": end_period_ts,
        "yes_bid": flat(real["yes_bid"]),
        "yes_ask": flat(real["yes_ask"]),
        "price": {"previous_dollars": prev},
        "volume_fp": "0.00",
        "open_interest_fp": real["open_interest_fp"],
    }
    if legacy:
        out["volume"] = 0
        out["open_interest"] = real.get("open_interest")
    return out
