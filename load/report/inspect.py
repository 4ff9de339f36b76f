"""``inspect``: the raw pages of an event, read from the archive only.

:func:`inspect_event` lists, window by window, what was asked, what came back and when,
with the candles each page holds per market. A module of its own because it is the one
report that never opens the database, and it reads every page file, listed or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from load.report.common import event_window_dirs, fields_json
from schemas.archive import (
    BATCH_DIR,
    KIND_PACKED_CANDLES,
    MANIFEST_FILE,
    PAGE_SUFFIX,
    TEMP_MARKER,
    ArchiveStore,
    Manifest,
    PageEnvelope,
)
from schemas.errors import ArchiveError, InputError


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
        doc = fields_json(self)
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
    archive: ArchiveStore,
    rel: str,
    in_manifest: bool,
    with_body: bool,
    markets: frozenset[str] | None = None,
) -> PageSummary:
    """Read one page file; a corrupt or missing file becomes a summary with ``error`` set.

    ``markets``: the window's markets; the candles of a packed page (which also holds
    other windows' markets) are counted for those only, as load takes them.
    """
    try:
        page = archive.read_page(rel, keep_raw=with_body)
    except ArchiveError as e:
        return PageSummary(file=rel, in_manifest=in_manifest, error=str(e))
    counts, adjusted = candle_counts(page)
    if page.kind == KIND_PACKED_CANDLES and markets is not None:
        counts = {t: n for t, n in counts.items() if t in markets}
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
    """The requested start of a page, from its name (``{start_ts}`` or, packed,
    ``{start_ts}-{digest}``)."""
    name = rel.rsplit("/", 1)[-1].removesuffix(PAGE_SUFFIX).split("-", 1)[0]
    return int(name) if name.isdigit() else None


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
        listed = manifest.page_paths() if manifest else []
        on_disk = _page_files(archive, d)
        extra = sorted(set(on_disk) - set(listed), key=lambda r: (_start_ts_of(r) or 0, r))
        chosen = [(r, True) for r in listed] + [(r, False) for r in extra]
        if start_ts is not None:
            chosen = [(r, m) for r, m in chosen if _start_ts_of(r) == start_ts]
        mine = manifest.market_tickers if manifest else None
        pages = tuple(summarize_page(archive, r, m, with_body, mine) for r, m in chosen)
        out.append(WindowPages(d, manifest, pages))
    return out
