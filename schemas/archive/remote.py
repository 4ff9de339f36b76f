"""The archive on any fsspec filesystem (S3 and the like): the ``[s3]`` extra's store.

Apart from :mod:`schemas.archive` so that a local archive never imports fsspec, and the
store module stays one screenful shorter.
"""

from __future__ import annotations

import contextlib
from typing import Any

from schemas.archive.store import TEMP_MARKER, ArchiveStore
from schemas.errors import ArchiveError, MissingExtraError


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
