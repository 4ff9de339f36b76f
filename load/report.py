"""Looking at the backfill: status per series, the raw pages of an event, archive vs database.

- :func:`series_status` reads only the database: checkpoints by status (final windows
  apart from open ones), rows stored, missing minutes from ``kalshi_window_stats`` (each
  market-minute once), the last error of failed windows, leases.
- :func:`inspect_event` reads only the archive: what was asked, what came back, when.
- :func:`verify_event` reads both and lists every difference. It turns pages into rows
  with the load stage's own normalization, so verify and load cannot disagree on what a
  page means; the comparison itself (:func:`compare_frames`) is pure Polars.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import polars as pl
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from load.normalize import CANDLE_SCHEMA
from load.query import event_candles_stmt, read_candles
from schemas.archive import (
    BATCH_DIR,
    MANIFEST_FILE,
    PAGE_SUFFIX,
    TEMP_MARKER,
    ArchiveStore,
    Manifest,
    PageEnvelope,
)
from schemas.checkpoints import list_checkpoints
from schemas.db import translate_db_error
from schemas.errors import ArchiveError, CorruptArchiveError, InputError
from schemas.tables import (
    CANDLE_COUNT_COLUMNS,
    CANDLE_KEY_COLUMNS,
    CANDLE_PRICE_COLUMNS,
    CheckpointStatus,
    kalshi_candle,
    kalshi_window_stats,
)
from schemas.tickers import validate_event_ticker, validate_series_ticker
from schemas.workers import WorkerRow, list_workers

Normalizer = Callable[[Sequence[PageEnvelope]], pl.DataFrame]
"""Pages in, a frame with ``schemas.tables.CANDLE_COLUMNS`` out (the load stage's)."""

#: Columns verify compares (retrieved_at_utc differs legitimately between reruns).
VALUE_COLUMNS: tuple[str, ...] = ("event_ticker", *CANDLE_PRICE_COLUMNS, *CANDLE_COUNT_COLUMNS)


def series_of(event_ticker: str) -> str:
    """The series ticker an event ticker starts with (``KXHIGHNY-25NOV20`` → ``KXHIGHNY``)."""
    return validate_series_ticker(event_ticker.split("-", 1)[0])


def _db_rows(engine: Engine, stmt: Any, what: str) -> list[Any]:
    try:
        with engine.connect() as conn:
            return list(conn.execute(stmt).all())
    except SQLAlchemyError as e:
        raise translate_db_error(e, engine.url.render_as_string(hide_password=False), what) from e


# --- status -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowNote:
    """A window worth naming in the status: failed (with its error) or leased."""

    event_ticker: str
    period_interval: int
    window_policy: str
    status: str
    last_error: str | None = None
    lease_owner: str | None = None
    lease_expires_utc: datetime | None = None
    lease_claimed_utc: datetime | None = None
    """Since when ``lease_owner`` holds the window (renewals keep it)."""


@dataclass
class SeriesStatus:
    """Progress of one series at one candle period.

    ``windows`` counts FINAL windows by status; ``open_windows`` the windows of events
    still open (``is_final`` false), whose SUCCESS only means "loaded up to the last
    extract": a later one extends them, so they are never counted as finished.
    """

    series_ticker: str
    period_interval: int
    windows: dict[str, int] = field(default_factory=lambda: _by_status())
    open_windows: dict[str, int] = field(default_factory=lambda: _by_status())
    rows_stored: int = 0
    expected_candles: int = 0
    missing_candles: int = 0
    missing_in_maintenance: int = 0
    failed: list[WindowNote] = field(default_factory=list)
    leased: list[WindowNote] = field(default_factory=list)

    @property
    def missing_pct(self) -> Decimal | None:
        """Missing minutes over expected minutes, in percent (2 places), None before stats."""
        if self.expected_candles == 0:
            return None
        pct = Decimal(100 * self.missing_candles) / Decimal(self.expected_candles)
        return pct.quantize(Decimal("0.01"))

    def to_json(self) -> dict[str, Any]:
        pct = self.missing_pct
        return {
            "series_ticker": self.series_ticker,
            "period_interval": self.period_interval,
            "windows": dict(self.windows),
            "open_windows": dict(self.open_windows),
            "windows_total": sum(self.windows.values()) + sum(self.open_windows.values()),
            "rows_stored": self.rows_stored,
            "expected_candles": self.expected_candles,
            "missing_candles": self.missing_candles,
            "missing_in_maintenance": self.missing_in_maintenance,
            "missing_pct": None if pct is None else str(pct),
            "failed": [_fields_json(n) for n in self.failed],
            "leased": [_fields_json(n) for n in self.leased],
        }


def _by_status() -> dict[str, int]:
    return dict.fromkeys((s.value for s in CheckpointStatus), 0)


def _fields_json(obj: Any) -> dict[str, Any]:
    """A dataclass's fields in order, each datetime as ISO-8601 (other values as they are)."""
    doc = {f.name: getattr(obj, f.name) for f in fields(obj)}
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in doc.items()}


def workers(engine: Engine) -> list[WorkerRow]:
    """The extract and load processes registered on this database (live or gone)."""
    try:
        with engine.connect() as conn:
            return list_workers(conn)
    except SQLAlchemyError as e:
        url = engine.url.render_as_string(hide_password=False)
        raise translate_db_error(e, url, "reading workers") from e


def series_status(engine: Engine, series_ticker: str | None = None) -> list[SeriesStatus]:
    """One :class:`SeriesStatus` per (series, period) found in checkpoints, stats or candles."""
    if series_ticker is not None:
        validate_series_ticker(series_ticker)
    out: dict[tuple[str, int], SeriesStatus] = {}

    def entry(series: str, period: int) -> SeriesStatus:
        key = (series, int(period))
        if key not in out:
            out[key] = SeriesStatus(series, int(period))
        return out[key]

    try:
        with engine.connect() as conn:
            checkpoints = list_checkpoints(conn, series_ticker)
    except SQLAlchemyError as e:
        url = engine.url.render_as_string(hide_password=False)
        raise translate_db_error(e, url, "reading checkpoints") from e
    for cp in checkpoints:
        st = entry(cp.key.series_ticker, cp.key.period_interval)
        by_status = st.windows if cp.is_final else st.open_windows
        by_status[cp.status.value] = by_status.get(cp.status.value, 0) + 1
        note = WindowNote(
            cp.key.event_ticker,
            cp.key.period_interval,
            cp.key.window_policy.value,
            cp.status.value,
            cp.last_error,
            cp.lease_owner,
            cp.lease_expires_utc,
            cp.lease_claimed_utc,
        )
        if cp.status is CheckpointStatus.FAILED:
            st.failed.append(note)
        if cp.lease_owner is not None:
            st.leased.append(note)

    prefix = None if series_ticker is None else f"{series_ticker}-"
    for (event, period), (expected, missing, maint) in _market_minutes(engine, prefix).items():
        st = entry(series_of(event), period)
        st.expected_candles += expected
        st.missing_candles += missing
        st.missing_in_maintenance += maint

    c = kalshi_candle.c
    counts = select(c.event_ticker, c.period_interval_minutes, func.count()).group_by(
        c.event_ticker, c.period_interval_minutes
    )
    if prefix is not None:
        # The market-key prefix is a range on the primary key's first column.
        counts = counts.where(c.market_ticker.startswith(prefix, autoescape=True))
    for event, period, n in _db_rows(engine, counts, "counting candles"):
        entry(series_of(event), period).rows_stored += int(n)
    return [out[k] for k in sorted(out)]


def _market_minutes(engine: Engine, prefix: str | None) -> dict[tuple[str, int], tuple[int, ...]]:
    """(expected, missing, missing in maintenance) per (event, period), each market-minute once.

    ``kalshi_window_stats`` has a row per market for each window policy of an event. A
    market's minutes in the trade window are among its minutes in the full-market window
    (the manifest clips each market to its window), so summing both policies counts them
    twice. Per market, the row of the policy window covering the most minutes is taken.
    """
    ws = kalshi_window_stats.c
    stmt = select(
        ws.event_ticker,
        ws.period_interval_minutes,
        ws.market_ticker,
        ws.expected_candles,
        ws.missing_candles,
        ws.missing_in_maintenance,
    )
    if prefix is not None:
        stmt = stmt.where(ws.event_ticker.startswith(prefix, autoescape=True))
    widest: dict[tuple[str, int, str], tuple[int, int, int]] = {}
    for event, period, market, expected, missing, maint in _db_rows(engine, stmt, "reading stats"):
        key, row = (event, int(period), market), (int(expected), int(missing), int(maint))
        if key not in widest or row[0] > widest[key][0]:
            widest[key] = row
    out: dict[tuple[str, int], tuple[int, ...]] = {}
    for (event, period, _), row in widest.items():
        prev = out.get((event, period), (0, 0, 0))
        out[(event, period)] = tuple(a + b for a, b in zip(prev, row, strict=True))
    return out


# --- inspect ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageSummary:
    """One archived page as ``inspect`` shows it."""

    file: str
    in_manifest: bool
    kind: str | None = None
    market_ticker: str | None = None
    path: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    status: int | None = None
    retrieved_at_utc: datetime | None = None
    adjusted_end_ts: int | None = None
    candles: dict[str, int] = field(default_factory=dict)
    body: Any = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc = _fields_json(self)
        body, error = doc.pop("body"), doc.pop("error")
        doc["candles_total"] = sum(self.candles.values())
        if body is not None:
            doc["body"] = body
        if error is not None:
            doc["error"] = error
        return doc


@dataclass(frozen=True)
class WindowPages:
    """One window folder of an event: its manifest (None while incomplete) and its pages."""

    dir: str
    manifest: Manifest | None
    pages: tuple[PageSummary, ...]

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "dir": self.dir,
            "complete": m is not None,
            "window_start_ts": None if m is None else m.window_start_ts,
            "window_end_ts": None if m is None else m.window_end_ts,
            "is_final": None if m is None else m.is_final,
            "markets": [] if m is None else [mk.__dict__ for mk in m.markets],
            "pages": [p.to_json() for p in self.pages],
        }


def candle_counts(page: PageEnvelope) -> tuple[dict[str, int], int | None]:
    """Candles per market and ``adjusted_end_ts`` (None for per-market pages) of a page."""
    body = page.body if isinstance(page.body, dict) else {}
    if "market_tickers" in body:
        lists = body.get("market_candlesticks") or []
        counts = {
            str(t): len(cs) if isinstance(cs, list) else 0
            for t, cs in zip(body.get("market_tickers") or [], lists, strict=False)
        }
        adjusted = body.get("adjusted_end_ts")
        return counts, adjusted if isinstance(adjusted, int) else None
    if isinstance(body.get("markets"), list):  # a batch page
        entries = [e for e in body["markets"] if isinstance(e, dict)]
        return {
            str(e.get("market_ticker")): len(e["candlesticks"])
            if isinstance(e.get("candlesticks"), list)
            else 0
            for e in entries
        }, None
    candles = body.get("candlesticks")
    ticker = body.get("ticker") or page.market_ticker or "?"
    return {str(ticker): len(candles) if isinstance(candles, list) else 0}, None


def summarize_page(
    archive: ArchiveStore, rel: str, in_manifest: bool, with_body: bool
) -> PageSummary:
    """Read one page file; a corrupt or missing file becomes a summary with ``error`` set."""
    try:
        page = archive.read_page(rel, keep_raw=with_body)
    except ArchiveError as e:
        return PageSummary(file=rel, in_manifest=in_manifest, error=str(e))
    counts, adjusted = candle_counts(page)
    return PageSummary(
        file=rel,
        in_manifest=in_manifest,
        kind=page.kind,
        market_ticker=page.market_ticker,
        path=page.path,
        params=dict(page.params),
        status=page.status,
        retrieved_at_utc=page.retrieved_at_utc,
        adjusted_end_ts=adjusted,
        candles=counts,
        body=page.body_json() if with_body else None,
    )


def _page_files(archive: ArchiveStore, window_dir: str) -> list[str]:
    """Every page file of a window: event-level pages, then batch and per-market pages."""
    files = archive.list_files(window_dir, PAGE_SUFFIX)
    files += [
        f
        for sub in (f"{BATCH_DIR}/*", "markets/*")
        for f in archive.glob(f"{window_dir}/{sub}/*{PAGE_SUFFIX}")
        if TEMP_MARKER not in f.rsplit("/", 1)[-1]
    ]
    return files


def _start_ts_of(rel: str) -> int | None:
    name = rel.rsplit("/", 1)[-1].removesuffix(PAGE_SUFFIX)
    return int(name) if name.isdigit() else None


def event_window_dirs(archive: ArchiveStore, event_ticker: str) -> list[str]:
    """Window folders of an event, complete or not (``{series}/{event}/p{n}/{policy}``).

    Found through the files they hold (pages or a manifest), so this works on any store,
    including object stores that have no folders.
    """
    validate_event_ticker(event_ticker)
    base = f"{series_of(event_ticker)}/{event_ticker}"
    found = archive.glob(f"{base}/p*/*/*{PAGE_SUFFIX}") + archive.glob(
        f"{base}/p*/*/{MANIFEST_FILE}"
    )
    found += archive.glob(f"{base}/p*/*/markets/*/*{PAGE_SUFFIX}")
    found += archive.glob(f"{base}/p*/*/{BATCH_DIR}/*/*{PAGE_SUFFIX}")
    return sorted({"/".join(f.split("/")[:4]) for f in found if TEMP_MARKER not in f})


def inspect_event(
    archive: ArchiveStore,
    event_ticker: str,
    start_ts: int | None = None,
    with_body: bool = False,
) -> list[WindowPages]:
    """The archived pages of an event, window by window, in fetch order.

    Pages the manifest lists come first, in its order; files on disk that it does not list
    (an interrupted or superseded run) follow, flagged ``in_manifest=False``. ``start_ts``
    keeps only the pages requested from that timestamp.
    """
    dirs = event_window_dirs(archive, event_ticker)
    if not dirs:
        raise InputError(f"no archived window for {event_ticker} under {archive}")
    out: list[WindowPages] = []
    for d in dirs:
        manifest_rel = f"{d}/{MANIFEST_FILE}"
        manifest = archive.read_manifest(manifest_rel) if archive.exists(manifest_rel) else None
        listed = [f"{d}/{p}" for p in manifest.pages] if manifest else []
        on_disk = _page_files(archive, d)
        extra = sorted(set(on_disk) - set(listed), key=lambda r: (_start_ts_of(r) or 0, r))
        chosen = [(r, True) for r in listed] + [(r, False) for r in extra]
        if start_ts is not None:
            chosen = [(r, m) for r, m in chosen if _start_ts_of(r) == start_ts]
        pages = tuple(summarize_page(archive, r, m, with_body) for r, m in chosen)
        out.append(WindowPages(d, manifest, pages))
    return out


# --- verify -------------------------------------------------------------------------------

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
        return _fields_json(self)


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


def default_normalizer() -> Normalizer:
    """The load stage's page normalization (imported here so report loads without it)."""
    from load.normalize import normalize_pages

    return normalize_pages


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
    normalize = normalize or default_normalizer()
    dirs = event_window_dirs(archive, event_ticker)
    if not dirs:
        raise InputError(f"no archived window for {event_ticker} under {archive}")
    pages_by_period: dict[int, list[PageEnvelope]] = defaultdict(list)
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
        pages_by_period[manifest.key.period_interval].extend(
            archive.read_page(f"{d}/{p}") for p in manifest.pages
        )
    archive_frames: list[pl.DataFrame] = []
    db_frames: list[pl.DataFrame] = []
    for period, pages in sorted(pages_by_period.items()):
        pages.sort(key=lambda p: p.retrieved_at_utc)  # stable: fetch order within a window
        archive_frames.append(_conform(normalize(pages)))
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
