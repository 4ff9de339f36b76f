"""The archive in a local folder: atomic by temporary file, fsync and rename."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from schemas.archive.store import _TEMP_PID, TEMP_MARKER, ArchiveStore, atomic_path
from schemas.errors import ArchiveError
from schemas.processes import pid_alive


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
            self.remove_dead_writers_temp_files("", recursive=False)
            probe = self.root / f"{TEMP_MARKER}probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ArchiveError(f"archive folder {self.root} is not writable: {e.strerror}") from e
        self.check_version(create=True)

    def remove_dead_writers_temp_files(self, rel_dir: str, *, recursive: bool = True) -> int:
        """Temporary files under ``rel_dir`` whose writer (the pid in the name) is dead.

        Window folders are cleaned by the extractor holding the window; the root and the
        packed pages (``_packed/``, written by whichever extractor needs a page first)
        have no such owner, so a file is removed only when its writer is not running.
        """
        d = self._abs(rel_dir) if rel_dir else self.root
        if not d.is_dir():
            return 0
        removed = 0
        for p in (d.rglob if recursive else d.glob)(f"{TEMP_MARKER}*"):
            m = _TEMP_PID.search(p.name)
            if m is not None and not pid_alive(int(m.group(1) or m.group(2))):
                p.unlink(missing_ok=True)
                removed += 1
        return removed

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
