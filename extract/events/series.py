"""Series discovery: ``GET /series?category=...&tags=...`` into ``kalshi_series``.

``kalshi-extract series`` lists a category's series, and every extract command given
``--category`` resolves its series the same way (:func:`resolve_config`, through
:func:`schemas.series.resolve_series`). Each answer is archived with its exact bytes
under ``_series/`` (:data:`schemas.archive.SERIES_DIR`, a folder load never reads as a
window) and stored, one row a series, so the load commands answer ``--category`` from
the database without calling the API. ``extract events`` stores the row of each series
it syncs too (from ``GET /series/{ticker}``).

A server that ignored the filters would hand back series of other categories, and a
category backfill would then fetch them all: the answer is filtered again here, and a
series outside the filter is left out with a warning. An answer without a series asked
for is bad input (the category is named), and nothing is written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from extract.api.client import ApiResponse, KalshiClient
from extract.config import ApiConfig, ExtractConfig, builtin_zones
from extract.errors import BadPageError
from extract.events.rows import parse_time
from schemas.archive import SERIES_DIR, ArchiveStore, answer_bytes, open_archive
from schemas.db import make_engine, translate_db_error, upsert
from schemas.errors import InputError
from schemas.series import SeriesSelection, resolve_series, select_listed, tags_of
from schemas.tables import kalshi_series
from schemas.tickers import validate_series_ticker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeriesListing:
    """One ``GET /series`` answer: the series the selection asked for, and where it is kept."""

    rows: tuple[dict[str, Any], ...]
    """``kalshi_series`` rows of the series kept, in the answer's order."""
    left_out: tuple[str, ...]
    """Series the server listed outside the filter (it ignored it): not kept."""
    archived: str
    """Where the raw answer is archived."""

    @property
    def tickers(self) -> tuple[str, ...]:
        return tuple(r["series_ticker"] for r in self.rows)


def series_row(doc: Any, retrieved_at: datetime) -> dict[str, Any]:
    """A ``kalshi_series`` row from a ``Series`` object; BadPageError if it is not one."""
    if not isinstance(doc, dict):
        raise BadPageError("a series is not an object")
    ticker = validate_series_ticker(str(doc.get("ticker", "")))
    sources = doc.get("settlement_sources")
    tags = list(tags_of(doc.get("tags") or []))
    return {
        "series_ticker": ticker,
        "title": _text(doc.get("title"), 255),
        "category": _text(doc.get("category"), 64),
        "tags": json.dumps(tags),
        "frequency": _text(doc.get("frequency"), 32),
        "settlement_sources": json.dumps(sources if isinstance(sources, list) else []),
        "last_updated_ts_utc": parse_time(doc.get("last_updated_ts")),
        "retrieved_at_utc": retrieved_at,
    }


def _text(value: Any, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]


def store_series(engine: Engine, rows: Sequence[Mapping[str, Any]], db_url: str) -> None:
    """Upsert series rows (the latest answer wins)."""
    try:
        with engine.begin() as conn:
            upsert(conn, kalshi_series, rows)
    except SQLAlchemyError as e:
        raise translate_db_error(e, db_url, "storing series") from None


def archive_answer(archive: ArchiveStore, response: ApiResponse) -> str:
    """The answer under ``_series/{UTC time}.json.gz``, exact bytes, atomically."""
    stamp = response.retrieved_at.strftime("%Y%m%dT%H%M%S.%fZ")
    rel = f"{SERIES_DIR}/{stamp}.json.gz"
    archive.write_atomic(
        rel,
        answer_bytes(
            response.path, response.params, response.status, response.retrieved_at, response.raw
        ),
    )
    return archive.where(rel)


async def list_series(
    client: KalshiClient, archive: ArchiveStore, selection: SeriesSelection
) -> SeriesListing:
    """``GET /series`` for the selection's category and tags, checked and filtered; the
    answer is archived when it holds a series asked for (an empty one is bad input, and
    bad input writes nothing)."""
    params: dict[str, str | int] = {}
    if selection.category is not None:
        params["category"] = selection.category
    if selection.tags:
        params["tags"] = ",".join(selection.tags)
    response = await client.get_json("/series", params, exact=True)
    body = response.body
    if not isinstance(body, dict) or not isinstance(body.get("series"), list | None):
        raise BadPageError("GET /series: no 'series' list")
    listed = [series_row(doc, response.retrieved_at) for doc in body.get("series") or []]
    kept, outside = select_listed(listed, selection)
    if outside:
        log.warning(
            "GET /series answered %d series outside %s (the server ignored the filter): "
            "left out: %s",
            len(outside),
            selection.describe(),
            ", ".join(outside[:10]) + (" ..." if len(outside) > 10 else ""),
        )
    wanted = set(kept)
    rows = tuple(r for r in listed if r["series_ticker"] in wanted)
    return SeriesListing(rows, tuple(outside), archive_answer(archive, response) if rows else "")


async def resolve_config(
    config: ExtractConfig, client: KalshiClient, archive: ArchiveStore, engine: Engine
) -> ExtractConfig:
    """``config`` with its series: as given, or its category's from ``GET /series``
    (archived and stored first). InputError, nothing written, for a category without a
    series (:func:`schemas.series.resolve_series`)."""
    selection = config.selection
    if not selection.by_catalog:
        return config
    archive.ensure_writable()
    listing = await list_series(client, archive, selection)
    if listing.rows:
        store_series(engine, listing.rows, config.db_url)
        log.info(
            "%s: %d series (answer archived at %s): %s",
            selection.describe(),
            len(listing.rows),
            listing.archived,
            ", ".join(listing.tickers),
        )
    tickers = resolve_series(
        selection, lambda _: listing.tickers, required=True, where="GET /series"
    )
    return config.with_series(tickers)


# --- ``kalshi-extract series`` ----------------------------------------------------------------


async def list_and_store(
    api: ApiConfig, db_url: str, archive_dir: str, category: str | None, tags: Sequence[str]
) -> SeriesListing:
    """``extract series``: the listing, archived and stored; InputError if it is empty."""
    selection = SeriesSelection.parse((), category, tags)
    archive = open_archive(archive_dir)
    archive.ensure_writable()
    engine = make_engine(db_url)
    try:
        async with KalshiClient(api, concurrency=1) as client:
            listing = await list_series(client, archive, selection)
        if not listing.rows:
            what = f"of {selection.describe()} " if selection.by_catalog else ""
            raise InputError(f"GET /series answered no series {what}(nothing stored)")
        store_series(engine, listing.rows, db_url)
    finally:
        engine.dispose()
    log.info(
        "%d series stored in kalshi_series; answer archived at %s",
        len(listing.rows),
        listing.archived,
    )
    return listing


def series_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row as printed by ``--format json``: lists as lists, times as ISO text."""
    updated = row["last_updated_ts_utc"]
    zone = builtin_zones().get(row["series_ticker"])
    return {
        "ticker": row["series_ticker"],
        "title": row["title"],
        "category": row["category"],
        "tags": json.loads(row["tags"] or "[]"),
        "frequency": row["frequency"],
        "settlement_sources": json.loads(row["settlement_sources"] or "[]"),
        "last_updated_ts": None if updated is None else updated.isoformat(),
        "retrieved_at": row["retrieved_at_utc"].isoformat(),
        "time_zone": zone,
    }


def format_series(listing: SeriesListing, fmt: str) -> str:
    """The listing as a table (ticker, frequency, zone, tags, title) or as JSON."""
    docs = [series_json(r) for r in listing.rows]
    if fmt == "json":
        return orjson.dumps(docs, option=orjson.OPT_INDENT_2).decode() + "\n"
    head = ["series", "frequency", "time zone", "tags", "title"]
    rows = [
        [
            d["ticker"],
            d["frequency"] or "",
            d["time_zone"] or "-",
            ",".join(d["tags"]),
            d["title"] or "",
        ]
        for d in docs
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]])
        for r in [head, *rows]
    ]
    no_zone = [d["ticker"] for d in docs if d["time_zone"] is None]
    lines.append(
        f"{len(docs)} series"
        + (
            f"; {len(no_zone)} outside the zone table (FULL_MARKET_WINDOW needs none; "
            "TRADE_WINDOW_ONLY needs --series-tz SERIES=ZONE)"
            if no_zone
            else ""
        )
    )
    return "\n".join(lines) + "\n"
