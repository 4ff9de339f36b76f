"""A candle object's fields: which ones are read, and how their text becomes exact decimals.

Why a regex before the decimal cast: Polars' strict string-to-decimal cast raises on
junk, but silently TRUNCATES extra decimal places (``"0.5600001"`` becomes 0.56) and
accepts ``"1e-2"``, ``"+0.5"`` or ``".5"``. Kalshi sends plain fixed-point strings, so
anything else is a corrupt page, refused loudly with the file's name.

Field rules (see /work/shared/kalshi-api.md and the OpenAPI files):
- Live event pages and batch pages (the same ``MarketCandlestick`` objects):
  ``*_dollars`` / ``*_fp`` strings; legacy pages may carry (also or only) integer-cent
  twins (``open`` = 56 is $0.56) and integer ``volume`` / ``open_interest``. A
  ``*_dollars``/``*_fp`` value wins; else the legacy integer is converted exactly.
  (Absent and null are the same to us, so a null ``*_dollars`` with a non-null cents
  twin takes the cents: such a page has never been seen.)
- Historical pages: plain ``open/low/high/close/mean/previous`` keys are DOLLAR strings,
  ``volume`` / ``open_interest`` count strings, no min/max (NULL).

The values stay the text received (:func:`candle_values`): Kalshi's strings are already
the exact text MySQL parses into its DECIMAL columns, and the pattern above refuses every
string with more decimals than the column holds (MySQL would round it with only a note).
Only what has no such text is converted: legacy integer cents (``56`` → ``"0.560000"``).
:func:`exact_decimals` casts the text to ``Decimal`` for whoever computes with the values.

A module of its own because these rules are the API's value contract, and they change
when Kalshi's fields do; how a page envelope is read and exploded into one row per
candle (:mod:`load.normalize.pages`) changes when the archive's format does.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from load.errors import MalformedValueError
from schemas.archive import KIND_HISTORICAL_MARKET_CANDLES
from schemas.tables import (
    CANDLE_COUNT_COLUMNS,
    CANDLE_PRICE_COLUMNS,
    COUNT_PRECISION,
    COUNT_SCALE,
    PRICE_PRECISION,
    PRICE_SCALE,
)

PRICE_DTYPE = pl.Decimal(PRICE_PRECISION, PRICE_SCALE)
COUNT_DTYPE = pl.Decimal(COUNT_PRECISION, COUNT_SCALE)

# Fixed-point text exactly as the contract allows it: digits, optional point and digits.
_PRICE_INT_DIGITS = PRICE_PRECISION - PRICE_SCALE
_DOLLARS_RE = rf"^[0-9]{{1,{_PRICE_INT_DIGITS}}}(\.[0-9]{{1,{PRICE_SCALE}}})?$"
_CENTS_RE = rf"^[0-9]{{1,{_PRICE_INT_DIGITS + 2}}}$"
_COUNT_RE = rf"^[0-9]{{1,{COUNT_PRECISION - COUNT_SCALE}}}(\.[0-9]{{1,{COUNT_SCALE}}})?$"

_OHLC = ("open", "low", "high", "close")
_PRICE_FIELDS = ("open", "high", "low", "close", "mean", "previous", "min", "max")

# One superset schema reads every page kind: Polars turns a JSON integer read as String
# into its digits ("56"), so legacy integer cents and dollar strings share a column and
# the page's kind decides how to read it.
_BOOK = pl.Struct({**{f"{k}_dollars": pl.String for k in _OHLC}, **{k: pl.String for k in _OHLC}})
_PRICE = pl.Struct(
    {**{f"{k}_dollars": pl.String for k in _PRICE_FIELDS}, **{k: pl.String for k in _PRICE_FIELDS}}
)
CANDLE_STRUCT = pl.Struct(
    {
        "end_period_ts": pl.Int64,
        "yes_bid": _BOOK,
        "yes_ask": _BOOK,
        "price": _PRICE,
        "volume_fp": pl.String,
        "open_interest_fp": pl.String,
        "volume": pl.String,
        "open_interest": pl.String,
    }
)
"""One candle object as Polars reads it from any page kind (see the comment above)."""


def _sources(rows: pl.DataFrame) -> dict[str, tuple[pl.Expr, pl.Expr | None, str]]:
    """Per output column: (text expr, legacy-cents text expr or None, value kind)."""
    c = pl.col("c")
    hist = pl.col("kind") == KIND_HISTORICAL_MARKET_CANDLES
    out: dict[str, tuple[pl.Expr, pl.Expr | None, str]] = {}
    groups = [("yes_bid", _OHLC), ("yes_ask", _OHLC), ("price", _PRICE_FIELDS)]
    for struct, names in groups:
        s = c.struct.field(struct)
        for name in names:
            plain = s.struct.field(name)
            dollars = pl.coalesce(s.struct.field(f"{name}_dollars"), pl.when(hist).then(plain))
            cents = pl.when(~hist).then(plain)
            out[f"{struct}_{name}"] = (dollars, cents, "price")
    for name in CANDLE_COUNT_COLUMNS:
        out[name] = (pl.coalesce(c.struct.field(f"{name}_fp"), c.struct.field(name)), None, "count")
    return out


def candle_values(rows: pl.DataFrame, page_names: Sequence[str]) -> pl.DataFrame:
    """The candle columns of exploded rows, every field checked, values as text.

    ``rows`` has one row per candle: ``_page`` (an index into ``page_names``, the
    names errors give), ``kind``, ``market_ticker``, ``event_ticker``,
    ``period_interval``, ``retrieved_at_utc`` and the candle struct ``c``
    (:data:`CANDLE_STRUCT`). The result has the columns of ``schemas.tables.CANDLE_COLUMNS``,
    row for row; :mod:`load.normalize.pages` puts them in order and casts them to its schema.
    Raises MalformedValueError naming the page, the market and the field for a value the
    contract does not allow.
    """
    sources = _sources(rows)
    texts = rows.select(
        "_page",
        "market_ticker",
        ts=pl.col("c").struct.field("end_period_ts"),
        **{f"{n}__t": t for n, (t, _, _) in sources.items()},
        **{f"{n}__c": ct for n, (_, ct, _) in sources.items() if ct is not None},
    )
    # Pages of today's API carry no legacy integer cents: an all-null twin column can
    # change nothing, so it is neither checked nor converted (about 2% of the load's CPU).
    sources = {
        n: (t, ct if ct is not None and texts[f"{n}__c"].null_count() < texts.height else None, k)
        for n, (t, ct, k) in sources.items()
    }
    checks: dict[str, pl.Expr] = {}
    for n, (_, cents, kind) in sources.items():
        pattern = _DOLLARS_RE if kind == "price" else _COUNT_RE
        checks[f"{n}__t"] = _bad(f"{n}__t", pattern)
        if cents is not None:
            checks[f"{n}__c"] = _bad(f"{n}__c", _CENTS_RE)
    flags = texts.select(pl.any_horizontal(*checks.values()).arg_true().first().alias("i"))
    if flags["i"][0] is not None:
        _raise_bad_value(texts, checks, int(flags["i"][0]), page_names)

    values: list[pl.Expr] = []
    for n, (_, cents, _kind) in sources.items():
        text = pl.col(f"{n}__t")
        if cents is not None:
            # Whole cents to dollars, exactly (scale 6 holds n / 100), then as text.
            legacy = (pl.col(f"{n}__c").cast(pl.Int64).cast(PRICE_DTYPE) / 100).cast(
                PRICE_DTYPE, strict=True
            )
            text = pl.coalesce(text, legacy.cast(pl.String))
        values.append(text.alias(n))
    return texts.select(
        pl.col("market_ticker"),
        pl.from_epoch("ts", time_unit="s").dt.replace_time_zone("UTC").alias("end_period_ts_utc"),
        rows["period_interval"].cast(pl.Int16, strict=True).alias("period_interval_minutes"),
        rows["event_ticker"].alias("event_ticker"),
        *values,
        rows["retrieved_at_utc"].alias("retrieved_at_utc"),
    )


def exact_decimals(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its price and count columns as exact ``Decimal`` (from their text:
    checked by :func:`candle_values`, so the strict cast neither rounds nor fails)."""
    return frame.with_columns(
        *(pl.col(c).cast(PRICE_DTYPE, strict=True) for c in CANDLE_PRICE_COLUMNS),
        *(pl.col(c).cast(COUNT_DTYPE, strict=True) for c in CANDLE_COUNT_COLUMNS),
    )


def _bad(column: str, pattern: str) -> pl.Expr:
    col = pl.col(column)
    return (col.is_not_null() & ~col.str.contains(pattern)).fill_null(False)


def _raise_bad_value(
    texts: pl.DataFrame, checks: dict[str, pl.Expr], index: int, page_names: Sequence[str]
) -> None:
    row = texts.row(index, named=True)
    flags = texts.slice(index, 1).select(**checks).row(0, named=True)
    column = next(k for k, v in flags.items() if v)
    field, _, part = column.rpartition("__")
    what = "legacy integer cents" if part == "c" else "fixed-point decimal"
    src = page_names[row["_page"]]
    raise MalformedValueError(
        f"{src}: {field} of {row['market_ticker']} at end_period_ts {row['ts']} is "
        f"{row[column]!r}, not a {what} the contract allows",
        source=src,
    )
