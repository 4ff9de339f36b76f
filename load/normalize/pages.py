"""Pages in, one ``polars.DataFrame`` of candles out: pure, exact, no I/O.

The frame has exactly ``schemas.tables.CANDLE_COLUMNS``, times ``Datetime(us, UTC)``.
The loader's frame (:func:`normalize_text`) keeps each price and count as the text the
API sent (checked: at most the column's decimals), which is what the staging CSV needs:
converting a million rows to decimals and back cost about 1.7 CPU-s (docs/benchmarks.md).
:func:`normalize_json` gives the same rows with prices ``Decimal(10, 6)`` and counts
``Decimal(18, 2)``. Nothing goes through float and no null is ever filled.

Why the JSON is parsed by Polars and not by orjson: building Python dicts for a million
candles costs about 10 s on our 2-core machine (allocation and GC), and turning those
dicts into columns as much again; ``pl.read_json`` with a fixed schema parses the same
bytes straight into Arrow columns in about 3 s and releases the GIL (measured on 1M
sim candles; see the report in the load issue). :func:`normalize_pages` serializes
envelopes back to JSON so both entry points share one code path.

This module reads the envelopes, checks their headers and explodes every page kind into
one row per candle; what each candle field means and how its text becomes an exact
decimal is :mod:`load.normalize.fields`. A candle on two pages (``end_period_ts`` is
inclusive at both ends of a request) is kept once: the later retrieval wins, ties go to
the later page in the given order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import polars as pl

from load.errors import CorruptPageError, MalformedValueError
from load.normalize.fields import (
    CANDLE_STRUCT,
    COUNT_DTYPE,
    PRICE_DTYPE,
    candle_values,
    exact_decimals,
)
from schemas.archive import (
    KIND_BATCH_CANDLES,
    KIND_EVENT_CANDLES,
    KIND_HISTORICAL_MARKET_CANDLES,
    KIND_PACKED_CANDLES,
    READABLE_VERSIONS,
    PageEnvelope,
    WindowKey,
    parse_utc_iso,
)
from schemas.core import PERIODS
from schemas.errors import InputError
from schemas.tables import (
    CANDLE_COLUMNS,
    CANDLE_COUNT_COLUMNS,
    CANDLE_KEY_COLUMNS,
    CANDLE_PRICE_COLUMNS,
)
from schemas.tickers import validate_event_ticker, validate_market_ticker

TIME_DTYPE = pl.Datetime("us", "UTC")

#: The schema of the normalized frame, column by column (the writer relies on it).
CANDLE_SCHEMA: dict[str, pl.DataType] = {
    "market_ticker": pl.String(),
    "end_period_ts_utc": TIME_DTYPE,
    "period_interval_minutes": pl.Int16(),
    "event_ticker": pl.String(),
    **{c: PRICE_DTYPE for c in CANDLE_PRICE_COLUMNS},
    **{c: COUNT_DTYPE for c in CANDLE_COUNT_COLUMNS},
    "retrieved_at_utc": TIME_DTYPE,
}
assert tuple(CANDLE_SCHEMA) == CANDLE_COLUMNS, "normalize is out of step with schemas.tables"
#: The loader's frame: the same, prices and counts as the text received.
TEXT_SCHEMA: dict[str, pl.DataType] = {
    c: pl.String() if c in (*CANDLE_PRICE_COLUMNS, *CANDLE_COUNT_COLUMNS) else t
    for c, t in CANDLE_SCHEMA.items()
}

_ENVELOPE_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "archive_version": pl.Int64,
    "kind": pl.String,
    "series_ticker": pl.String,
    "event_ticker": pl.String,
    "market_ticker": pl.String,
    "period_interval": pl.Int64,
    "window_policy": pl.String,
    "status": pl.Int64,
    "retrieved_at_utc": pl.String,
    "body": pl.Struct(
        {
            "market_tickers": pl.List(pl.String),
            "market_candlesticks": pl.List(pl.List(CANDLE_STRUCT)),
            "adjusted_end_ts": pl.Int64,
            "ticker": pl.String,
            "candlesticks": pl.List(CANDLE_STRUCT),
            "markets": pl.List(
                pl.Struct({"market_ticker": pl.String, "candlesticks": pl.List(CANDLE_STRUCT)})
            ),
        }
    ),
}
_KINDS = (
    KIND_EVENT_CANDLES,
    KIND_HISTORICAL_MARKET_CANDLES,
    KIND_BATCH_CANDLES,
    KIND_PACKED_CANDLES,
)


@dataclass(frozen=True)
class WindowView:
    """The window pages are read for: a page of another window is corrupt, and from a
    packed page (several windows' markets) only ``markets`` are taken, as its event's."""

    key: WindowKey
    markets: frozenset[str]


@dataclass(frozen=True)
class RawPage:
    """One archived page as JSON text (already gunzipped), and where it came from."""

    source: str
    """Archive-relative path (or any label): every error names it."""
    data: bytes


def normalize_pages(
    pages: Sequence[PageEnvelope],
    *,
    sources: Sequence[str] | None = None,
    window: WindowView | None = None,
) -> pl.DataFrame:
    """Candles of ``pages`` (in manifest order), deduplicated; see the module docstring.

    The convenience entry for envelopes already in memory (tests, tools): they are
    serialized with orjson and go through exactly the path the loader uses.
    """
    names = list(sources) if sources is not None else [f"page {i}" for i in range(len(pages))]
    return normalize_json(
        [RawPage(n, orjson.dumps(p.to_json())) for n, p in zip(names, pages, strict=True)],
        window=window,
    )


def normalize_json(
    pages: Sequence[RawPage], *, key: WindowKey | None = None, window: WindowView | None = None
) -> pl.DataFrame:
    """:func:`normalize_text` with prices and counts as exact ``Decimal`` (CANDLE_SCHEMA)."""
    return exact_decimals(normalize_text(pages, key=key, window=window))


def normalize_text(
    pages: Sequence[RawPage], *, key: WindowKey | None = None, window: WindowView | None = None
) -> pl.DataFrame:
    """Candles of the pages' JSON envelopes, deduplicated, sorted by market and time, each
    price and count the text received (TEXT_SCHEMA).

    ``key`` (or ``window``, which also names the window's markets), when given, is the
    window the pages must belong to (series, event, period, policy): a page of another
    window is corrupt. A packed page needs ``window``: it serves several windows and
    only this one's markets are taken from it. Raises CorruptArchiveError (or its
    subclass MalformedValueError) naming the page for anything outside the contract.
    """
    if not pages:
        return pl.DataFrame(schema=TEXT_SCHEMA)
    if window is not None:
        key = window.key
    try:
        envelopes = pl.concat([_read_envelope(p) for p in pages], how="vertical")
        envelopes = envelopes.with_row_index("_page")
        retrieved = _check_envelopes(envelopes, pages, key)
        envelopes = envelopes.with_columns(retrieved_at_utc=retrieved)
        rows = _explode_candles(envelopes, pages, window)
        if rows.height == 0:
            return pl.DataFrame(schema=TEXT_SCHEMA)
        _check_tickers(rows, pages)
        values = candle_values(rows, [p.source for p in pages])
        frame = values.select(CANDLE_COLUMNS).cast(TEXT_SCHEMA)  # type: ignore[arg-type]
        return dedupe_candles(frame.with_columns(_page=rows["_page"])).drop("_page")
    except pl.exceptions.PolarsError as e:
        # Every known way a page can break the contract is caught above with the page's
        # name; this is the net for the unknown ones, so one odd page fails its window
        # instead of the run.
        names = ", ".join(p.source for p in pages[:3]) + (" ..." if len(pages) > 3 else "")
        raise CorruptPageError(
            f"{names}: unexpected page content ({_first_line(e)})", source=pages[0].source
        ) from e


def empty_candles() -> pl.DataFrame:
    """A frame with the candle schema and no rows."""
    return pl.DataFrame(schema=CANDLE_SCHEMA)


def dedupe_candles(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per key: the latest ``retrieved_at_utc`` wins, ties the later page/row.

    Also used across the windows of one batch (two policies of one event can overlap).
    One sort puts each key's rows together, latest last; a row is kept when the next
    row has another key. The result is in primary-key order, the order InnoDB's
    clustered index fills fastest.
    """
    keys = list(CANDLE_KEY_COLUMNS)
    page = ["_page"] if "_page" in frame.columns else []
    ordered = frame.with_row_index("_row").sort([*keys, "retrieved_at_utc", *page, "_row"])
    last = pl.any_horizontal(pl.col(k) != pl.col(k).shift(-1) for k in keys).fill_null(True)
    return ordered.filter(last).drop("_row")


# --- reading ------------------------------------------------------------------------


def _read_envelope(page: RawPage) -> pl.DataFrame:
    try:
        frame = pl.read_json(page.data, schema=_ENVELOPE_SCHEMA)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise CorruptPageError(
            f"{page.source}: not a page envelope ({_first_line(e)})", source=page.source
        ) from e
    if frame.height != 1:
        raise CorruptPageError(
            f"{page.source}: expected one JSON object, found {frame.height}", source=page.source
        )
    return frame


def _check_envelopes(
    env: pl.DataFrame, pages: Sequence[RawPage], key: WindowKey | None
) -> pl.Series:
    """Check each envelope's header; return their retrieval times (Datetime us UTC)."""
    times = []
    for row in env.select(
        "_page",
        "archive_version",
        "kind",
        "series_ticker",
        "event_ticker",
        "market_ticker",
        "period_interval",
        "window_policy",
        "status",
        "retrieved_at_utc",
    ).iter_rows(named=True):
        src = pages[row["_page"]].source

        def bad(what: str, src: str = src) -> MalformedValueError:
            return MalformedValueError(f"{src}: {what}", source=src)

        if row["archive_version"] not in READABLE_VERSIONS:
            readable = " and ".join(str(v) for v in READABLE_VERSIONS)
            raise bad(f"archive_version {row['archive_version']!r}, this reads {readable}")
        if row["kind"] not in _KINDS:
            raise bad(f"unknown page kind {row['kind']!r}")
        if row["status"] != 200:
            raise bad(f"archived HTTP status {row['status']!r}, not 200")
        packed = row["kind"] == KIND_PACKED_CANDLES
        if row["period_interval"] not in PERIODS or (row["event_ticker"] is None and not packed):
            raise bad(f"envelope period_interval {row['period_interval']!r} or event_ticker")
        if not packed:
            try:
                validate_event_ticker(row["event_ticker"])
            except InputError as e:
                raise bad(str(e)) from e
        if key is not None and (
            (not packed and row["series_ticker"] != key.series_ticker)
            or (not packed and row["event_ticker"] != key.event_ticker)
            or row["period_interval"] != key.period_interval
            or row["window_policy"] != key.window_policy.value
        ):
            what = "a packed page" if packed else f"page of {row['event_ticker']}"
            raise bad(
                f"{what} p{row['period_interval']} {row['window_policy']}, not of the window {key}"
            )
        if row["kind"] == KIND_HISTORICAL_MARKET_CANDLES and not row["market_ticker"]:
            raise bad("historical page without market_ticker")
        try:
            times.append(parse_utc_iso(row["retrieved_at_utc"]))
        except (TypeError, ValueError, AttributeError) as e:
            raise bad(f"retrieved_at_utc {row['retrieved_at_utc']!r} is not a time") from e
    return pl.Series("retrieved_at_utc", times, dtype=TIME_DTYPE)


def _explode_candles(
    env: pl.DataFrame, pages: Sequence[RawPage], window: WindowView | None
) -> pl.DataFrame:
    """One row per candle: page meta, ``market_ticker`` and the candle struct ``c``."""
    meta = ["_page", "kind", "event_ticker", "period_interval", "retrieved_at_utc"]
    body = pl.col("body")
    live = env.filter(pl.col("kind") == KIND_EVENT_CANDLES)
    hist = env.filter(pl.col("kind") == KIND_HISTORICAL_MARKET_CANDLES)

    lens = live.select(
        "_page",
        t=body.struct.field("market_tickers").list.len(),
        c=body.struct.field("market_candlesticks").list.len(),
    ).filter(pl.col("t").is_null() | pl.col("c").is_null() | (pl.col("t") != pl.col("c")))
    if lens.height:
        p = lens.row(0, named=True)
        src = pages[p["_page"]].source
        raise MalformedValueError(
            f"{src}: market_tickers ({p['t']}) and market_candlesticks ({p['c']}) "
            "are missing or not parallel",
            source=src,
        )
    live_rows = (
        live.select(
            *meta,
            market_ticker=body.struct.field("market_tickers"),
            c=body.struct.field("market_candlesticks"),
        )
        .explode("market_ticker", "c")
        .explode("c")
    )
    bad_hist = hist.filter(
        body.struct.field("candlesticks").is_null()
        | (body.struct.field("ticker") != pl.col("market_ticker")).fill_null(True)
    )
    if bad_hist.height:
        src = pages[bad_hist["_page"][0]].source
        raise MalformedValueError(
            f"{src}: historical page without candlesticks, or its ticker is not the "
            "envelope's market_ticker",
            source=src,
        )
    hist_rows = hist.select(
        *meta, market_ticker=body.struct.field("ticker"), c=body.struct.field("candlesticks")
    ).explode("c")
    rows = pl.concat(
        [
            live_rows,
            hist_rows,
            _batch_rows(env, pages, meta),
            _packed_rows(env, pages, meta, window),
        ],
        how="vertical",
    )
    missing = rows.filter(pl.col("c").struct.field("end_period_ts").is_null())
    if missing.height:
        src = pages[missing["_page"][0]].source
        raise MalformedValueError(
            f"{src}: a candle of {missing['market_ticker'][0]} is null or has no integer "
            "end_period_ts",
            source=src,
        )
    return rows


def _batch_entries(
    env: pl.DataFrame, kind: str, pages: Sequence[RawPage], meta: list[str]
) -> pl.DataFrame:
    """One row per market entry of the batch-shaped pages of ``kind``:
    ``{"markets": [{"market_ticker", "candlesticks"}]}``."""
    batch = env.filter(pl.col("kind") == kind)
    entries = batch.select(*meta, m=pl.col("body").struct.field("markets"))
    if entries["m"].null_count():
        src = pages[entries.filter(pl.col("m").is_null())["_page"][0]].source
        raise MalformedValueError(f"{src}: batch page without a markets list", source=src)
    entries = entries.explode("m").drop_nulls("m")
    return entries.select(
        *meta,
        market_ticker=pl.col("m").struct.field("market_ticker"),
        c=pl.col("m").struct.field("candlesticks"),
    )


def _batch_rows(env: pl.DataFrame, pages: Sequence[RawPage], meta: list[str]) -> pl.DataFrame:
    """Rows of one window's batch pages.

    Such a page is stored in ONE event's window folder, so a market of another event on
    it is corrupt, as on an event page.
    """
    per_market = _batch_entries(env, KIND_BATCH_CANDLES, pages, meta)
    strays = per_market.filter(
        pl.col("c").is_null()
        | ~pl.col("market_ticker").str.starts_with(pl.col("event_ticker") + "-").fill_null(False)
    )
    if strays.height:
        src = pages[strays["_page"][0]].source
        raise MalformedValueError(
            f"{src}: batch entry {strays['market_ticker'][0]!r} has no candlesticks list "
            "or is not a market of the page's event",
            source=src,
        )
    return per_market.explode("c")


def _packed_rows(
    env: pl.DataFrame, pages: Sequence[RawPage], meta: list[str], window: WindowView | None
) -> pl.DataFrame:
    """Rows of packed pages (several windows' markets): only the window's own markets,
    as candles of its event; the other entries belong to other windows' manifests."""
    per_market = _batch_entries(env, KIND_PACKED_CANDLES, pages, meta)
    if per_market.height and window is None:
        src = pages[per_market["_page"][0]].source
        raise MalformedValueError(
            f"{src}: a packed page is read only for a window (its markets)", source=src
        )
    if window is None:
        return per_market.explode("c")
    mine = per_market.filter(pl.col("market_ticker").is_in(sorted(window.markets)))
    missing = mine.filter(pl.col("c").is_null())
    if missing.height:
        src = pages[missing["_page"][0]].source
        raise MalformedValueError(
            f"{src}: batch entry {missing['market_ticker'][0]!r} has no candlesticks list",
            source=src,
        )
    return mine.with_columns(event_ticker=pl.lit(window.key.event_ticker)).explode("c")


def _check_tickers(rows: pl.DataFrame, pages: Sequence[RawPage]) -> None:
    """Tickers reach a CSV and SQL: each distinct one must be a well-formed ticker."""
    for row in rows.group_by("market_ticker").agg(pl.col("_page").first()).iter_rows():
        try:
            validate_market_ticker(row[0])
        except InputError as e:
            src = pages[row[1]].source
            raise MalformedValueError(f"{src}: {e}", source=src) from e


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
