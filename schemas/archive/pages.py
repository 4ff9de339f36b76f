"""The archive's file formats: window keys, page envelopes and manifests.

What a page or a manifest holds, and how it is written and read back as bytes; where the
files live and how they are stored is :mod:`schemas.archive`. Load reads these formats,
extract writes them, and nothing else writes the archive.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, cast

import orjson
from isal import igzip, isal_zlib

from schemas.core import WindowPolicy
from schemas.errors import CorruptArchiveError
from schemas.tickers import validate_event_ticker, validate_market_ticker, validate_series_ticker

#: The format this program writes. Version 2 added packed pages (``_packed/``, one batch
#: request serving several windows) and the manifests' ``packed_pages``; a version-1
#: archive is a valid version-2 one, so both are read, and the first extract that writes
#: into a version-1 archive marks its root version 2: a program that reads only version 1
#: then refuses the archive at its root instead of loading windows without their packed
#: pages.
ARCHIVE_VERSION = 2
#: Every format version this program reads.
READABLE_VERSIONS = (1, 2)
MANIFEST_FILE = "manifest.json"
PAGE_SUFFIX = ".json.gz"

KIND_EVENT_CANDLES = "event_candlesticks"
KIND_HISTORICAL_MARKET_CANDLES = "historical_market_candlesticks"
#: ``GET /markets/candlesticks`` for the markets of ONE window, stored in its folder.
KIND_BATCH_CANDLES = "batch_candlesticks"
#: ``GET /markets/candlesticks`` for the markets of several windows (of any events and
#: series), stored once under ``_packed/``; each window takes only its own markets.
KIND_PACKED_CANDLES = "packed_batch_candlesticks"
PAGE_KINDS = (
    KIND_EVENT_CANDLES,
    KIND_HISTORICAL_MARKET_CANDLES,
    KIND_BATCH_CANDLES,
    KIND_PACKED_CANDLES,
)
BATCH_DIR = "batch"
#: Root folder of the packed pages (outside every window folder).
PACKED_DIR = "_packed"

_POLICY_SLUG = {WindowPolicy.FULL_MARKET_WINDOW: "full", WindowPolicy.TRADE_WINDOW_ONLY: "trade"}


def utc_iso(ts: datetime) -> str:
    """ISO-8601 with a ``Z``, microseconds kept: the archive's one time format."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc_iso(value: str) -> datetime:
    """Inverse of :func:`utc_iso` (accepts any ISO-8601 string with an offset or Z)."""
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


@dataclass(frozen=True, order=True)
class WindowKey:
    """Identifies one event window: the unit extract completes and load loads."""

    series_ticker: str
    event_ticker: str
    period_interval: int
    window_policy: WindowPolicy

    def __post_init__(self) -> None:
        validate_series_ticker(self.series_ticker)
        validate_event_ticker(self.event_ticker)
        object.__setattr__(self, "window_policy", WindowPolicy(self.window_policy))

    @property
    def dir(self) -> str:
        """The window's folder, relative to the archive root (POSIX separators)."""
        slug = _POLICY_SLUG[self.window_policy]
        return f"{self.series_ticker}/{self.event_ticker}/p{self.period_interval}/{slug}"

    @property
    def manifest_path(self) -> str:
        return f"{self.dir}/{MANIFEST_FILE}"

    def page_path(self, start_ts: int, market_ticker: str | None = None) -> str:
        """Where the page requested at ``start_ts`` lives (per market for market routes)."""
        if market_ticker is None:
            return f"{self.dir}/{int(start_ts)}{PAGE_SUFFIX}"
        validate_market_ticker(market_ticker)
        return f"{self.dir}/markets/{market_ticker}/{int(start_ts)}{PAGE_SUFFIX}"

    def batch_page_path(self, start_ts: int, group: int = 0) -> str:
        """Where the batch page of ticker group ``group`` requested at ``start_ts`` lives.

        Groups exist because a batch request holds at most 100 tickers; a weather event
        (about six markets) only ever has group 0.
        """
        return f"{self.dir}/{BATCH_DIR}/g{int(group)}/{int(start_ts)}{PAGE_SUFFIX}"

    def __str__(self) -> str:
        return f"{self.event_ticker} p{self.period_interval} {self.window_policy.value}"


def packed_page_path(
    period: int, policy: WindowPolicy, tickers: tuple[str, ...], start_ts: int, end_ts: int
) -> str:
    """Where the packed page asking ``tickers`` over ``[start_ts, end_ts]`` lives, from the
    archive root: ``_packed/p{period}/{policy}/{YYYY-MM}/{start_ts}-{digest}.json.gz``.

    Named by the request itself (a digest of period, range and tickers), so a rerun that
    plans the same request finds the page, and two requests never share a file. The
    month of the start keeps a folder to a few hundred files.
    """
    slug = _POLICY_SLUG[WindowPolicy(policy)]
    text = f"{int(period)}|{int(start_ts)}|{int(end_ts)}|{','.join(tickers)}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    month = datetime.fromtimestamp(int(start_ts), UTC).strftime("%Y-%m")
    return f"{PACKED_DIR}/p{int(period)}/{slug}/{month}/{int(start_ts)}-{digest}{PAGE_SUFFIX}"


def check_version(version: Any, where: str) -> None:
    """CorruptArchiveError unless ``version`` is one this program reads."""
    if version not in READABLE_VERSIONS:
        raise CorruptArchiveError(
            f"{where}: archive_version {version!r}, this program reads "
            + " and ".join(str(v) for v in READABLE_VERSIONS)
        )


@dataclass(frozen=True)
class PageEnvelope:
    """One raw API response as archived: what was asked, what came back, and when."""

    kind: str
    series_ticker: str | None
    """None on a packed page (its markets belong to several windows)."""
    event_ticker: str | None
    """None on a packed page."""
    market_ticker: str | None
    period_interval: int
    window_policy: WindowPolicy
    path: str
    params: dict[str, Any]
    status: int
    retrieved_at_utc: datetime
    body: Any
    raw_body: bytes | None = field(default=None, repr=False, compare=False)
    """The body's bytes exactly as received, when known: the archive stores them verbatim
    (``body`` is their parse), so ``inspect --body`` shows what the server sent. Pages
    archived before exact bytes were kept read back with None here (their stored body
    is our re-serialization)."""

    @property
    def start_ts(self) -> int:
        return int(self.params["start_ts"])

    @property
    def end_ts(self) -> int:
        return int(self.params["end_ts"])

    def to_json(self) -> dict[str, Any]:
        return {
            "archive_version": ARCHIVE_VERSION,
            "kind": self.kind,
            "series_ticker": self.series_ticker,
            "event_ticker": self.event_ticker,
            "market_ticker": self.market_ticker,
            "period_interval": self.period_interval,
            "window_policy": self.window_policy.value,
            "request": {"method": "GET", "path": self.path, "params": self.params},
            "status": self.status,
            "retrieved_at_utc": utc_iso(self.retrieved_at_utc),
            **body_fields(self.body, self.raw_body),
        }

    def body_json(self) -> Any:
        """The body for a JSON document: the exact bytes received when known (an
        ``orjson.Fragment``, written verbatim by ``orjson.dumps``), else the parsed body."""
        return self.body if self.raw_body is None else orjson.Fragment(self.raw_body)

    def to_bytes(self) -> bytes:
        """Gzipped JSON: :func:`gzip_page`."""
        return gzip_page(orjson.dumps(self.to_json()))

    @classmethod
    def from_json(cls, doc: Any, where: str) -> PageEnvelope:
        try:
            check_version(doc["archive_version"], where)
            if doc["kind"] not in PAGE_KINDS:
                raise CorruptArchiveError(f"{where}: unknown page kind {doc['kind']!r}")
            req = doc["request"]
            return cls(
                kind=doc["kind"],
                series_ticker=doc.get("series_ticker"),
                event_ticker=doc.get("event_ticker"),
                market_ticker=doc.get("market_ticker"),
                period_interval=int(doc["period_interval"]),
                window_policy=WindowPolicy(doc["window_policy"]),
                path=req["path"],
                params=dict(req["params"]),
                status=int(doc["status"]),
                retrieved_at_utc=parse_utc_iso(doc["retrieved_at_utc"]),
                body=doc["body"],
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptArchiveError(f"{where}: not a page envelope ({e!r})") from e

    @classmethod
    def from_bytes(cls, data: bytes, where: str, *, keep_raw: bool = False) -> PageEnvelope:
        """The envelope of a gzipped page; ``keep_raw`` also recovers the body's exact bytes
        (off by default: the loader needs only the parse)."""
        text = gunzip(data, where)
        doc = parse_json_text(text, where)
        page = cls.from_json(doc, where)
        if keep_raw and isinstance(doc, dict):
            page = replace(page, raw_body=exact_body(text, doc.get(BODY_BYTES_KEY)))
        return page


#: Key of the body's length in bytes; with "body" written last it locates the exact bytes.
BODY_BYTES_KEY = "body_bytes"


def body_fields(body: Any, raw: bytes | None) -> dict[str, Any]:
    """The LAST fields of an archived document: ``body`` (verbatim when ``raw`` is known)
    preceded by its length, which :func:`exact_body` uses to cut the bytes back out."""
    if raw is None:
        return {"body": body}
    return {BODY_BYTES_KEY: len(raw), "body": orjson.Fragment(raw)}


def exact_body(text: bytes, length: Any) -> bytes | None:
    """The body's bytes as received, cut from a document written with :func:`body_fields`.

    orjson writes no whitespace, so the document ends ``"body":RAW}`` and ``length`` (the
    document's ``body_bytes``) says where RAW starts. None for documents written before
    exact bytes were kept (their body is our re-serialization).
    """
    head = b'"body":'
    if not isinstance(length, int) or isinstance(length, bool) or not text.endswith(b"}"):
        return None
    end = len(text) - 1
    start = end - length
    if start < len(head) or text[start - len(head) : start] != head:
        return None
    return text[start:end]


def answer_bytes(
    path: str, params: dict[str, Any], status: int, retrieved_at: datetime, raw: bytes
) -> bytes:
    """A listing answer (``GET /series``), not a candle page, as archived: the request,
    the status, when it came and the body exactly as received, gzipped."""
    doc = {
        "archive_version": ARCHIVE_VERSION,
        "request": {"method": "GET", "path": path, "params": params},
        "status": status,
        "retrieved_at_utc": utc_iso(retrieved_at),
        **body_fields(None, raw),
    }
    return gzip_page(orjson.dumps(doc))


@dataclass(frozen=True)
class ManifestMarket:
    """A market of the window, with the bounds its missing-minute grid is computed on."""

    market_ticker: str
    open_ts: int
    close_ts: int
    route: str = "live"  # "live" (event endpoint) or "historical" (per-market endpoint)


@dataclass(frozen=True)
class Manifest:
    """Written last into a window's folder: the window's archive is complete.

    ``pages`` lists the window's own page files (relative to the window folder) in fetch
    order and ``packed_pages`` the packed pages holding some of its markets (relative to
    the archive root, under ``_packed/``); load reads exactly these, and from a packed
    page only the markets listed here. ``is_final`` is false for a still-open event
    whose window ended at the time of the run: a later extract extends it and rewrites
    the manifest.
    """

    key: WindowKey
    window_start_ts: int
    window_end_ts: int
    is_final: bool
    markets: tuple[ManifestMarket, ...]
    pages: tuple[str, ...]
    completed_at_utc: datetime = field(default_factory=lambda: datetime.now(UTC))
    packed_pages: tuple[str, ...] = ()

    def page_paths(self) -> list[str]:
        """Every page of the window, relative to the archive root: its own, then packed."""
        return [f"{self.key.dir}/{p}" for p in self.pages] + list(self.packed_pages)

    @property
    def market_tickers(self) -> frozenset[str]:
        return frozenset(m.market_ticker for m in self.markets)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "archive_version": ARCHIVE_VERSION,
                "series_ticker": self.key.series_ticker,
                "event_ticker": self.key.event_ticker,
                "period_interval": self.key.period_interval,
                "window_policy": self.key.window_policy.value,
                "window_start_ts": self.window_start_ts,
                "window_end_ts": self.window_end_ts,
                "is_final": self.is_final,
                "markets": [m.__dict__ for m in self.markets],
                "pages": list(self.pages),
                "packed_pages": list(self.packed_pages),
                "completed_at_utc": utc_iso(self.completed_at_utc),
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Manifest:
        try:
            doc = orjson.loads(data)
            check_version(doc["archive_version"], where)
            key = WindowKey(
                doc["series_ticker"],
                doc["event_ticker"],
                int(doc["period_interval"]),
                WindowPolicy(doc["window_policy"]),
            )
            pages = tuple(str(p) for p in doc["pages"])
            for p in pages:
                if p.startswith("/") or ".." in PurePosixPath(p).parts:
                    raise CorruptArchiveError(f"{where}: page path {p!r} leaves the window")
            packed = tuple(str(p) for p in doc.get("packed_pages", ()))
            for p in packed:
                parts = PurePosixPath(p).parts
                if p.startswith("/") or ".." in parts or parts[:1] != (PACKED_DIR,):
                    raise CorruptArchiveError(
                        f"{where}: packed page {p!r} is not under {PACKED_DIR}/"
                    )
            return cls(
                key=key,
                window_start_ts=int(doc["window_start_ts"]),
                window_end_ts=int(doc["window_end_ts"]),
                is_final=bool(doc["is_final"]),
                markets=tuple(ManifestMarket(**m) for m in doc["markets"]),
                pages=pages,
                completed_at_utc=parse_utc_iso(doc["completed_at_utc"]),
                packed_pages=packed,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise CorruptArchiveError(f"{where}: not a valid manifest ({e!r})") from e


def decode_gzip_json(data: bytes, where: str) -> Any:
    """Gunzip and parse, turning every failure into CorruptArchiveError naming the file."""
    return parse_json_text(gunzip(data, where), where)


#: ISA-L's level 1 (of 0-3). Measured on 30 full batch pages (docs/benchmarks.md): 0.63 ms
#: of CPU a MB of JSON against 7.5 for zlib's level 6, for 1.6 x its bytes (11 % of the
#: JSON); zlib-ng's level 2 writes 1.48 x at 1.46 ms, zlib's level 1 1.55 x at 2.5 ms.
#: A page is written once and read a few times, and extract's CPU a candle is what holds
#: a full-page backfill below its rate budget, so the bytes written per CPU-second win.
GZIP_LEVEL = 1


def gzip_page(data: bytes) -> bytes:
    """``data`` gzipped (RFC 1952, any gunzip reads it) by ISA-L at :data:`GZIP_LEVEL`."""
    out: bytes = igzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
    return out


#: What a corrupt gzip file raises: ISA-L's own error for a bad deflate stream.
#: (isal's stubs type it as an instance, hence the cast.)
GZIP_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    cast(type[BaseException], isal_zlib.error),
)


def gunzip(data: bytes, where: str) -> bytes:
    """Gunzip (ISA-L: 1.7 x zlib's speed), turning a failure into CorruptArchiveError."""
    try:
        out: bytes = igzip.decompress(data)  # type: ignore[no-untyped-call]
    except GZIP_ERRORS as e:
        raise CorruptArchiveError(f"{where}: not a valid gzip file ({e})") from e
    return out


def parse_json_text(text: bytes, where: str) -> Any:
    """Parse JSON, turning a failure into CorruptArchiveError naming the file."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise CorruptArchiveError(f"{where}: invalid JSON ({e})") from e
