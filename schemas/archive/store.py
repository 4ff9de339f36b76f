"""The archive's store: typed operations over a handful of raw file operations, and the
one atomic-file recipe every writer uses.

:class:`ArchiveStore` is what both stages hold; :mod:`schemas.archive.local` and
:mod:`schemas.archive.remote` implement its raw operations on a folder and on fsspec.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import orjson

from schemas.archive.pages import (
    ARCHIVE_VERSION,
    MANIFEST_FILE,
    READABLE_VERSIONS,
    Manifest,
    PageEnvelope,
    WindowKey,
)
from schemas.crashpoints import ARCHIVE_BEFORE_RENAME, crashpoint
from schemas.errors import ArchiveError, CorruptArchiveError
from schemas.tickers import validate_series_ticker

ARCHIVE_FORMAT = "kalshi-candles-raw-archive"
ROOT_FILE = "archive.json"
QUARANTINE_DIR = "_quarantine"
REJECTED_DIR = "_rejected"
#: ``GET /series`` answers (``extract series``, ``--category``): ``_series/{time}.json.gz``,
#: two levels deep, so no window glob (``{series}/{event}/p*/{policy}/...``) ever meets them.
SERIES_DIR = "_series"
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
    fsspec supports, such as S3 (:mod:`schemas.archive.remote`). All paths are relative
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

    def remove_dead_writers_temp_files(self, rel_dir: str, *, recursive: bool = True) -> int:
        """Delete temporary files under ``rel_dir`` left by writers no longer running."""
        return 0  # only a local folder has temporary files (object stores: single PUTs)

    # --- shared logic ---

    def check_version(self, *, create: bool = False) -> None:
        """Refuse an archive written in a format version this program does not read,
        instead of misreading it.

        ``create`` (a writer): an archive without a root file gets one, and an older
        readable one is marked :data:`ARCHIVE_VERSION`, since what the writer adds (packed
        pages) would be misread by a program that reads only the older version.
        """
        if self.exists(ROOT_FILE):
            where = f"{self.location}/{ROOT_FILE}"
            try:
                version = orjson.loads(self.read_bytes(ROOT_FILE))["archive_version"]
            except (orjson.JSONDecodeError, KeyError, TypeError) as e:
                raise CorruptArchiveError(f"{where}: unreadable archive version file") from e
            if version not in READABLE_VERSIONS:
                readable = " and ".join(str(v) for v in READABLE_VERSIONS)
                raise ArchiveError(
                    f"archive {self.location} has format version {version}; "
                    f"this program reads version {readable}: upgrade kalshi-candles"
                )
            if not create or version == ARCHIVE_VERSION:
                return
        elif not create:
            return
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
