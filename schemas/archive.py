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
    _check/{series}/{time}/NN-{probe}.json.gz      check-api's evidence (never loaded)

The formats of the files (window keys, page envelopes, manifests) are in
:mod:`schemas.pages`, re-exported here. ``policy`` is ``full`` (FULL_MARKET_WINDOW) or
``trade`` (TRADE_WINDOW_ONLY), so the two policies' windows never overwrite each other's
pages. Every page is a gzipped JSON
:class:`PageEnvelope`: the request, the HTTP status, when it was retrieved and the body
exactly as the API sent it. Every file is written atomically (temporary file, fsync,
rename), so a reader sees a whole file or none, whatever moment a writer is killed at.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from schemas.crashpoints import ARCHIVE_BEFORE_RENAME, crashpoint
from schemas.errors import ArchiveError, CorruptArchiveError
from schemas.pages import (
    ARCHIVE_VERSION,
    BATCH_DIR,
    BODY_BYTES_KEY,
    KIND_BATCH_CANDLES,
    KIND_EVENT_CANDLES,
    KIND_HISTORICAL_MARKET_CANDLES,
    MANIFEST_FILE,
    PAGE_KINDS,
    PAGE_SUFFIX,
    Manifest,
    ManifestMarket,
    PageEnvelope,
    WindowKey,
    body_fields,
    decode_gzip_json,
    exact_body,
    gunzip,
    parse_json_text,
    parse_utc_iso,
    utc_iso,
)
from schemas.tickers import validate_series_ticker
from schemas.workers import pid_alive

#: The stores, and the page formats of :mod:`schemas.pages` (re-exported: the stages
#: reach the archive through this module).
__all__ = [
    "ARCHIVE_FORMAT",
    "ARCHIVE_VERSION",
    "BATCH_DIR",
    "BODY_BYTES_KEY",
    "KIND_BATCH_CANDLES",
    "KIND_EVENT_CANDLES",
    "KIND_HISTORICAL_MARKET_CANDLES",
    "MANIFEST_FILE",
    "PAGE_KINDS",
    "PAGE_SUFFIX",
    "QUARANTINE_DIR",
    "REJECTED_DIR",
    "ROOT_FILE",
    "TEMP_MARKER",
    "Archive",
    "ArchiveStore",
    "LocalArchive",
    "Manifest",
    "ManifestMarket",
    "PageEnvelope",
    "WindowKey",
    "atomic_path",
    "body_fields",
    "decode_gzip_json",
    "exact_body",
    "gunzip",
    "open_archive",
    "parse_json_text",
    "parse_utc_iso",
    "utc_iso",
]

ARCHIVE_FORMAT = "kalshi-candles-raw-archive"
ROOT_FILE = "archive.json"
QUARANTINE_DIR = "_quarantine"
REJECTED_DIR = "_rejected"
TEMP_MARKER = ".tmp-"


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
    fsspec supports, such as S3 (:mod:`schemas.fsspec_archive`). All paths are relative
    POSIX paths below the archive root; :meth:`_check_rel` refuses any that would leave it.
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


def open_archive(
    location: str | Path, storage_options: dict[str, Any] | None = None
) -> ArchiveStore:
    """The archive at a local path (default) or an fsspec URL such as ``s3://bucket/raw``."""
    text = str(location)
    if "://" in text and not text.startswith("file://"):
        from schemas.fsspec_archive import FsspecArchive  # only remote archives need it

        return FsspecArchive(text, storage_options)
    return LocalArchive(text.removeprefix("file://"))


Archive = ArchiveStore
"""The archive type the stages accept: any store, local or fsspec."""
