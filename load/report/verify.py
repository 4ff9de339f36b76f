"""``verify``: an event's archive against the database, every difference listed.

:func:`verify_event` turns the complete windows' pages into rows with the load stage's
own normalization, so verify and load cannot disagree on what a page means; the
comparison itself (:func:`compare_frames`) is pure Polars. A module of its own because it
is the one report that reads both sides.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import polars as pl
from sqlalchemy import Engine

from load.access.query import event_candles_stmt, read_candles
from load.normalize.pages import CANDLE_SCHEMA, WindowView, dedupe_candles, normalize_pages
from load.report.common import event_window_dirs, fields_json
from schemas.archive import MANIFEST_FILE, ArchiveStore, PageEnvelope
from schemas.errors import CorruptArchiveError, InputError
from schemas.tables import CANDLE_COUNT_COLUMNS, CANDLE_KEY_COLUMNS, CANDLE_PRICE_COLUMNS

Normalizer = Callable[[Sequence[PageEnvelope], WindowView], pl.DataFrame]
"""A window's pages in, a frame with ``schemas.tables.CANDLE_COLUMNS`` out (the load
stage's: from a packed page only the window's own markets)."""

#: Columns verify compares (retrieved_at_utc differs legitimately between reruns).
VALUE_COLUMNS: tuple[str, ...] = ("event_ticker", *CANDLE_PRICE_COLUMNS, *CANDLE_COUNT_COLUMNS)

DiffKind = Literal["missing", "extra", "differs"]


@dataclass(frozen=True)
class Difference:
    """One disagreement between archive and database."""

    kind: DiffKind
    """``missing``: in the archive, not in the DB; ``extra``: the reverse; ``differs``."""
    market_ticker: str
    end_period_ts_utc: datetime
    period_interval: int
    column: str | None = None
    archive_value: str | None = None
    db_value: str | None = None

    def to_json(self) -> dict[str, Any]:
        return fields_json(self)


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify_event`; ``ok`` when there is no difference."""

    event_ticker: str
    windows_checked: tuple[str, ...]
    windows_incomplete: tuple[str, ...]
    archive_rows: int
    db_rows: int
    differences: tuple[Difference, ...]

    @property
    def ok(self) -> bool:
        return not self.differences

    def counts(self) -> dict[str, int]:
        out = {"missing": 0, "extra": 0, "differs": 0}
        for d in self.differences:
            out[d.kind] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "event_ticker": self.event_ticker,
            "ok": self.ok,
            "windows_checked": list(self.windows_checked),
            "windows_incomplete": list(self.windows_incomplete),
            "archive_rows": self.archive_rows,
            "db_rows": self.db_rows,
            "counts": self.counts(),
            "differences": [d.to_json() for d in self.differences],
        }


def _conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast a candle frame to CANDLE_SCHEMA (same names, exact decimal scales, UTC µs)."""
    return frame.select([pl.col(name).cast(dtype) for name, dtype in CANDLE_SCHEMA.items()])


def compare_frames(archive: pl.DataFrame, db: pl.DataFrame) -> list[Difference]:
    """Every row missing from ``db``, extra in ``db``, and every differing value column.

    Pure and vectorized: one full outer join on the candle key. Nulls compare equal to
    nulls (a null stored for an absent API field is not a difference).
    """
    keys = list(CANDLE_KEY_COLUMNS)
    a = _conform(archive).drop("retrieved_at_utc").with_columns(pl.lit(True).alias("_in_a"))
    d = _conform(db).drop("retrieved_at_utc").with_columns(pl.lit(True).alias("_in_d"))
    joined = a.join(d, on=keys, how="full", coalesce=True, suffix="_db")
    out: list[Difference] = []

    def key_of(row: dict[str, Any]) -> tuple[str, datetime, int]:
        return row["market_ticker"], row["end_period_ts_utc"], int(row["period_interval_minutes"])

    for row in (
        joined.filter(pl.col("_in_d").is_null()).select(keys).sort(keys).iter_rows(named=True)
    ):
        out.append(Difference("missing", *key_of(row)))
    for row in (
        joined.filter(pl.col("_in_a").is_null()).select(keys).sort(keys).iter_rows(named=True)
    ):
        out.append(Difference("extra", *key_of(row)))
    both = joined.filter(pl.col("_in_a") & pl.col("_in_d"))
    long = pl.concat(
        [
            both.filter(pl.col(col).ne_missing(pl.col(f"{col}_db"))).select(
                *keys,
                pl.lit(col).alias("column"),
                pl.col(col).cast(pl.String).alias("archive_value"),
                pl.col(f"{col}_db").cast(pl.String).alias("db_value"),
            )
            for col in VALUE_COLUMNS
        ]
    ).sort(*keys, "column")
    for row in long.iter_rows(named=True):
        out.append(
            Difference(
                "differs", *key_of(row), row["column"], row["archive_value"], row["db_value"]
            )
        )
    return out


def verify_event(
    engine: Engine,
    archive: ArchiveStore,
    event_ticker: str,
    normalize: Normalizer | None = None,
) -> VerifyReport:
    """Compare an event's complete archived windows with the database's rows.

    Only windows with a manifest count (load never loads an incomplete one; those are
    listed in ``windows_incomplete``). The archive side is every page of every complete
    window of a period, oldest retrieval first, through the load stage's normalization
    (which keeps the latest retrieval of a candle seen twice, as load does); the database
    side is every stored row of the event at each period those windows cover.
    """
    normalize = normalize or _normalize
    dirs = event_window_dirs(archive, event_ticker)
    if not dirs:
        raise InputError(f"no archived window for {event_ticker} under {archive}")
    frames_by_period: dict[int, list[pl.DataFrame]] = defaultdict(list)
    checked: list[str] = []
    incomplete: list[str] = []
    for d in dirs:
        manifest_rel = f"{d}/{MANIFEST_FILE}"
        if not archive.exists(manifest_rel):
            incomplete.append(d)
            continue
        manifest = archive.read_manifest(manifest_rel)
        if manifest.key.event_ticker != event_ticker:
            raise CorruptArchiveError(f"{manifest_rel} names event {manifest.key.event_ticker}")
        checked.append(d)
        pages = [archive.read_page(rel) for rel in manifest.page_paths()]
        pages.sort(key=lambda p: p.retrieved_at_utc)  # stable: fetch order within a window
        window = WindowView(manifest.key, manifest.market_tickers)
        frames_by_period[manifest.key.period_interval].append(_conform(normalize(pages, window)))
    archive_frames: list[pl.DataFrame] = []
    db_frames: list[pl.DataFrame] = []
    for period, frames in sorted(frames_by_period.items()):
        # Both policies' windows of a period, the latest retrieval of a candle kept, as load.
        archive_frames.append(dedupe_candles(pl.concat(frames)))
        db_frames.append(
            read_candles(engine, event_candles_stmt(event_ticker, None, None, period), "verify")
        )
    empty = pl.DataFrame(schema=CANDLE_SCHEMA)
    archived = pl.concat(archive_frames) if archive_frames else empty
    stored = pl.concat(db_frames) if db_frames else empty
    return VerifyReport(
        event_ticker=event_ticker,
        windows_checked=tuple(checked),
        windows_incomplete=tuple(incomplete),
        archive_rows=archived.height,
        db_rows=stored.height,
        differences=tuple(compare_frames(archived, stored)),
    )


def _normalize(pages: Sequence[PageEnvelope], window: WindowView) -> pl.DataFrame:
    return normalize_pages(pages, window=window)
