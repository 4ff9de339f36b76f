"""The raw archive: the contract between extract (the only writer) and load (the only reader).

Layout under the archive root (version 1)::

    archive.json                                   {"archive_version": 1, ...}
    {series}/{event}/p{period}/{policy}/{start_ts}.json.gz          event-level pages
    {series}/{event}/p{period}/{policy}/markets/{market}/{start_ts}.json.gz
                                                   per-market pages (historical tier)
    {series}/{event}/p{period}/{policy}/batch/g{group}/{start_ts}.json.gz
                                                   batch pages (the event's markets)
    {series}/{event}/p{period}/{policy}/manifest.json   written LAST: the window is complete
    _quarantine/...                                corrupt files moved aside by load
    _rejected/...                                  pages extract refused (values or paging
                                                   outside the contract), kept to inspect

``policy`` is ``full`` (FULL_MARKET_WINDOW) or ``trade`` (TRADE_WINDOW_ONLY), so the two
policies' windows never overwrite each other's pages. Every page is a gzipped JSON
:class:`PageEnvelope`: the request, the HTTP status, when it was retrieved and the body
exactly as the API sent it. Every file is written atomically (temporary file, fsync,
rename), so a reader sees a whole file or none, whatever moment a writer is killed at.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import secrets
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from schemas.crashpoints import ARCHIVE_BEFORE_RENAME, crashpoint
from schemas.errors import ArchiveError, CorruptArchiveError, MissingExtraError
from schemas.tables import WindowPolicy
from schemas.tickers import validate_event_ticker, validate_market_ticker, validate_series_ticker
from schemas.workers import pid_alive

ARCHIVE_VERSION = 1
ARCHIVE_FORMAT = "kalshi-candles-raw-archive"
ROOT_FILE = "archive.json"
MANIFEST_FILE = "manifest.json"
QUARANTINE_DIR = "_quarantine"
REJECTED_DIR = "_rejected"
TEMP_MARKER = ".tmp-"
PAGE_SUFFIX = ".json.gz"

KIND_EVENT_CANDLES = "event_candlesticks"
KIND_HISTORICAL_MARKET_CANDLES = "historical_market_candlesticks"
#: ``GET /markets/candlesticks``: one page holds several markets of ONE event (the batch
#: route packs one event per request), stored in that event's window folder.
KIND_BATCH_CANDLES = "batch_candlesticks"
PAGE_KINDS = (KIND_EVENT_CANDLES, KIND_HISTORICAL_MARKET_CANDLES, KIND_BATCH_CANDLES)
BATCH_DIR = "batch"

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


@dataclass(frozen=True)
class PageEnvelope:
    """One raw API response as archived: what was asked, what came back, and when."""

    kind: str
    series_ticker: str
    event_ticker: str
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
        """Gzipped JSON (level 6: the archive is written once and read many times)."""
        return gzip.compress(orjson.dumps(self.to_json()), compresslevel=6, mtime=0)

    @classmethod
    def from_json(cls, doc: Any, where: str) -> PageEnvelope:
        try:
            if doc["archive_version"] != ARCHIVE_VERSION:
                raise CorruptArchiveError(
                    f"{where}: archive_version {doc['archive_version']!r}, "
                    f"this program reads {ARCHIVE_VERSION}"
                )
            if doc["kind"] not in PAGE_KINDS:
                raise CorruptArchiveError(f"{where}: unknown page kind {doc['kind']!r}")
            req = doc["request"]
            return cls(
                kind=doc["kind"],
                series_ticker=doc["series_ticker"],
                event_ticker=doc["event_ticker"],
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

    ``pages`` lists the page files (relative to the window folder) in fetch order; load
    reads exactly these. ``is_final`` is false for a still-open event whose window ended
    at the time of the run: a later extract extends it and rewrites the manifest.
    """

    key: WindowKey
    window_start_ts: int
    window_end_ts: int
    is_final: bool
    markets: tuple[ManifestMarket, ...]
    pages: tuple[str, ...]
    completed_at_utc: datetime = field(default_factory=lambda: datetime.now(UTC))

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
                "completed_at_utc": utc_iso(self.completed_at_utc),
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Manifest:
        try:
            doc = orjson.loads(data)
            if doc["archive_version"] != ARCHIVE_VERSION:
                raise CorruptArchiveError(f"{where}: archive_version {doc['archive_version']!r}")
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
            return cls(
                key=key,
                window_start_ts=int(doc["window_start_ts"]),
                window_end_ts=int(doc["window_end_ts"]),
                is_final=bool(doc["is_final"]),
                markets=tuple(ManifestMarket(**m) for m in doc["markets"]),
                pages=pages,
                completed_at_utc=parse_utc_iso(doc["completed_at_utc"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise CorruptArchiveError(f"{where}: not a valid manifest ({e!r})") from e


def decode_gzip_json(data: bytes, where: str) -> Any:
    """Gunzip and parse, turning every failure into CorruptArchiveError naming the file."""
    return parse_json_text(gunzip(data, where), where)


def gunzip(data: bytes, where: str) -> bytes:
    """Gunzip, turning a failure into CorruptArchiveError naming the file."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise CorruptArchiveError(f"{where}: not a valid gzip file ({e})") from e


def parse_json_text(text: bytes, where: str) -> Any:
    """Parse JSON, turning a failure into CorruptArchiveError naming the file."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise CorruptArchiveError(f"{where}: invalid JSON ({e})") from e


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """A temporary path beside ``dest`` to write; on success it replaces ``dest`` durably.

    The one atomic-file recipe (archive pages, manifests, exported Parquet): write the
    temporary file, fsync it, rename it over ``dest``, fsync the folder. A failure, or a
    kill at any moment, leaves ``dest`` as it was; a killed writer's ``.tmp-`` file is
    removed by the next run (:meth:`LocalArchive.remove_stray_temp_files`).
    """
    tmp = dest.with_name(f"{TEMP_MARKER}{dest.name}.{os.getpid()}.{secrets.token_hex(4)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        crashpoint(ARCHIVE_BEFORE_RENAME)
        os.replace(tmp, dest)
        dir_fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: The writer's pid in a temporary name: ``.tmp-NAME.PID.HEX`` or ``.tmp-probe-PID``.
_TEMP_PID = re.compile(r"\.(\d+)\.[0-9a-f]+$|^\.tmp-probe-(\d+)$")


class ArchiveStore:
    """Typed archive operations on top of a handful of raw file operations.

    Subclasses store files on a local disk (:class:`LocalArchive`) or on any filesystem
    fsspec supports, such as S3 (:class:`FsspecArchive`). All paths are relative POSIX
    paths below the archive root; :meth:`_check_rel` refuses any that would leave it.
    """

    location: str

    def __str__(self) -> str:
        return self.location

    @staticmethod
    def _check_rel(rel: str) -> str:
        if rel.startswith("/") or ".." in PurePosixPath(rel).parts or "\\" in rel:
            raise ArchiveError(f"archive path {rel!r} leaves the archive")
        return rel

    # --- raw operations each store implements ---

    def exists(self, rel: str) -> bool:
        raise NotImplementedError

    def read_bytes(self, rel: str) -> bytes:
        raise NotImplementedError

    def write_atomic(self, rel: str, data: bytes) -> None:
        """Readers see the whole new content or the old one, never a part."""
        raise NotImplementedError

    def delete(self, rel: str) -> None:
        raise NotImplementedError

    def move(self, src: str, dst: str) -> None:
        raise NotImplementedError

    def list_files(self, rel_dir: str, suffix: str = "") -> list[str]:
        """Relative paths of the files directly in ``rel_dir`` (no temporary files)."""
        raise NotImplementedError

    def glob(self, pattern: str) -> list[str]:
        """Relative paths matching a glob pattern below the root, sorted."""
        raise NotImplementedError

    def remove_stray_temp_files(self, rel_dir: str = "") -> int:
        """Delete temporary files a killed writer left behind; returns how many."""
        raise NotImplementedError

    def ensure_writable(self) -> None:
        """Create the root (and its version file) or fail with one clear line."""
        raise NotImplementedError

    # --- shared logic ---

    def check_version(self, *, create: bool = False) -> None:
        """Refuse an archive written in another format version instead of misreading it."""
        if self.exists(ROOT_FILE):
            where = f"{self.location}/{ROOT_FILE}"
            try:
                version = orjson.loads(self.read_bytes(ROOT_FILE))["archive_version"]
            except (orjson.JSONDecodeError, KeyError, TypeError) as e:
                raise CorruptArchiveError(f"{where}: unreadable archive version file") from e
            if version != ARCHIVE_VERSION:
                raise ArchiveError(
                    f"archive {self.location} has format version {version}; "
                    f"this program reads version {ARCHIVE_VERSION}"
                )
        elif create:
            self.write_atomic(
                ROOT_FILE,
                orjson.dumps({"archive_version": ARCHIVE_VERSION, "format": ARCHIVE_FORMAT}),
            )

    def move_to_quarantine(self, rel: str) -> str:
        """Move a corrupt file aside (never delete what the API sent); returns its new path."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = f"{QUARANTINE_DIR}/{self._check_rel(rel)}.{stamp}"
        self.move(rel, target)
        return target

    def write_rejected(self, rel: str, page: PageEnvelope) -> str:
        """Keep a page extract refused under ``_rejected/`` (never loaded); returns where.

        What the server sent stays inspectable (``gunzip``, ``load inspect``-like tools)
        while the window itself fails with the reason.
        """
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = f"{REJECTED_DIR}/{self._check_rel(rel)}.{stamp}"
        self.write_page(target, page)
        return self.where(target)

    def iter_manifests(self, series_ticker: str | None = None) -> Iterator[str]:
        """Relative paths of every window manifest, optionally of one series, sorted."""
        if series_ticker:
            validate_series_ticker(series_ticker)
            pattern = f"{series_ticker}/*/p*/*/{MANIFEST_FILE}"
        else:
            pattern = f"*/*/p*/*/{MANIFEST_FILE}"
        for rel in self.glob(pattern):
            if not rel.startswith(QUARANTINE_DIR):
                yield rel

    def where(self, rel: str) -> str:
        """A human-readable full location of ``rel`` for error messages."""
        return f"{self.location.rstrip('/')}/{rel}"

    def write_page(self, rel: str, page: PageEnvelope) -> None:
        self.write_atomic(rel, page.to_bytes())

    def read_page(self, rel: str, *, keep_raw: bool = False) -> PageEnvelope:
        """The page at ``rel``; ``keep_raw`` also recovers the body's exact bytes."""
        return PageEnvelope.from_bytes(self.read_bytes(rel), self.where(rel), keep_raw=keep_raw)

    def write_manifest(self, manifest: Manifest) -> None:
        self.write_atomic(manifest.key.manifest_path, manifest.to_bytes())

    def read_manifest(self, rel: str) -> Manifest:
        return Manifest.from_bytes(self.read_bytes(rel), self.where(rel))

    def manifest_for(self, key: WindowKey) -> Manifest | None:
        """The window's manifest, or None when the window is not complete."""
        if not self.exists(key.manifest_path):
            return None
        return self.read_manifest(key.manifest_path)


class LocalArchive(ArchiveStore):
    """The archive on a local filesystem: atomic by temp file, fsync and rename."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def _abs(self, rel: str) -> Path:
        return self.root.joinpath(*PurePosixPath(self._check_rel(rel)).parts)

    def where(self, rel: str) -> str:
        return str(self._abs(rel))

    def ensure_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._remove_dead_writers_temp_files()
            probe = self.root / f"{TEMP_MARKER}probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ArchiveError(f"archive folder {self.root} is not writable: {e.strerror}") from e
        self.check_version(create=True)

    def _remove_dead_writers_temp_files(self) -> None:
        """Temporary files at the root (``archive.json``'s) of writers that were killed.

        Window folders are cleaned by the extractor holding the window; the root has no
        such owner, so a file is removed only when the pid in its name is not running.
        """
        for p in self.root.glob(f"{TEMP_MARKER}*"):
            m = _TEMP_PID.search(p.name)
            if m is not None and not pid_alive(int(m.group(1) or m.group(2))):
                p.unlink(missing_ok=True)

    def exists(self, rel: str) -> bool:
        return self._abs(rel).is_file()

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self._abs(rel).read_bytes()
        except FileNotFoundError as e:
            raise ArchiveError(f"archive file missing: {self._abs(rel)}") from e
        except OSError as e:
            raise ArchiveError(f"cannot read {self._abs(rel)}: {e.strerror}") from e

    def write_atomic(self, rel: str, data: bytes) -> None:
        """Temporary file in the same folder, fsync, rename, fsync the folder."""
        dest = self._abs(rel)
        try:
            with atomic_path(dest) as tmp:
                tmp.write_bytes(data)
        except OSError as e:
            raise ArchiveError(f"cannot write {dest}: {e.strerror}") from e

    def delete(self, rel: str) -> None:
        self._abs(rel).unlink(missing_ok=True)

    def move(self, src: str, dst: str) -> None:
        dest = self._abs(dst)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._abs(src), dest)

    def list_files(self, rel_dir: str, suffix: str = "") -> list[str]:
        d = self._abs(rel_dir)
        if not d.is_dir():
            return []
        return sorted(
            f"{rel_dir}/{p.name}"
            for p in d.iterdir()
            if p.is_file() and TEMP_MARKER not in p.name and p.name.endswith(suffix)
        )

    def glob(self, pattern: str) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.glob(pattern))

    def remove_stray_temp_files(self, rel_dir: str = "") -> int:
        d = self._abs(rel_dir) if rel_dir else self.root
        if not d.is_dir():
            return 0
        removed = 0
        for p in d.rglob(f"{TEMP_MARKER}*"):
            p.unlink(missing_ok=True)
            removed += 1
        return removed


class FsspecArchive(ArchiveStore):
    """The archive on any fsspec filesystem (``s3://bucket/prefix``, ``memory://``, ...).

    Object stores make a single PUT atomic (a reader sees the old object or the new one),
    so no temporary file is needed; the manifest written last still marks completeness.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec  # imported here: only remote archives need it

        self.location = url.rstrip("/")
        try:
            self.fs, self._root = fsspec.core.url_to_fs(self.location, **(storage_options or {}))
        except ImportError as e:  # fsspec names the backend package it could not import
            if self.location.startswith(("s3://", "s3a://")):
                raise MissingExtraError("an s3:// archive", "s3fs", "s3") from e
            raise ArchiveError(f"cannot open the archive {self.location}: {e}") from e
        self._root = self._root.rstrip("/")

    def _abs(self, rel: str) -> str:
        return f"{self._root}/{self._check_rel(rel)}"

    def _rel(self, path: str) -> str:
        return path[len(self._root) + 1 :] if path.startswith(self._root + "/") else path

    def _fail(self, what: str, rel: str, e: Exception) -> ArchiveError:
        return ArchiveError(f"cannot {what} {self.where(rel)}: {e}")

    def ensure_writable(self) -> None:
        try:
            self.fs.makedirs(self._root, exist_ok=True)
        except Exception as e:
            raise ArchiveError(f"archive {self.location} is not writable: {e}") from e
        self.check_version(create=True)

    def exists(self, rel: str) -> bool:
        try:
            return bool(self.fs.isfile(self._abs(rel)))
        except FileNotFoundError:
            return False

    def read_bytes(self, rel: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._abs(rel)))
        except FileNotFoundError as e:
            raise ArchiveError(f"archive file missing: {self.where(rel)}") from e
        except Exception as e:
            raise self._fail("read", rel, e) from e

    def write_atomic(self, rel: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(self._abs(rel), data)
        except Exception as e:
            raise self._fail("write", rel, e) from e
        self.fs.invalidate_cache()

    def delete(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._abs(rel))
        self.fs.invalidate_cache()

    def move(self, src: str, dst: str) -> None:
        self.fs.copy(self._abs(src), self._abs(dst))
        self.delete(src)

    def list_files(self, rel_dir: str, suffix: str = "") -> list[str]:
        try:
            entries = self.fs.ls(self._abs(rel_dir), detail=True, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(
            self._rel(e["name"])
            for e in entries
            if e.get("type") == "file"
            and TEMP_MARKER not in e["name"].rsplit("/", 1)[-1]
            and e["name"].endswith(suffix)
        )

    def glob(self, pattern: str) -> list[str]:
        self.fs.invalidate_cache()
        return sorted(self._rel(p) for p in self.fs.glob(f"{self._root}/{pattern}"))

    def remove_stray_temp_files(self, rel_dir: str = "") -> int:
        return 0  # single PUTs leave no temporary objects behind


def open_archive(
    location: str | Path, storage_options: dict[str, Any] | None = None
) -> ArchiveStore:
    """The archive at a local path (default) or an fsspec URL such as ``s3://bucket/raw``."""
    text = str(location)
    if "://" in text and not text.startswith("file://"):
        return FsspecArchive(text, storage_options)
    return LocalArchive(text.removeprefix("file://"))


Archive = ArchiveStore
"""The archive type the stages accept: any store, local or fsspec."""
