"""What the load stage's parts hand each other: a window ready to write, a window that
could not be read, and the run's summary. Its own module so the reader (``load.run.loader``)
and the writers (``load.run.batches``) share them without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from schemas.archive import Manifest, WindowKey


@dataclass(frozen=True)
class PreparedWindow:
    """A window read and normalized, ready to write."""

    manifest_path: str
    manifest: Manifest
    candles: pl.DataFrame
    stats: pl.DataFrame


@dataclass(frozen=True)
class WindowFailure:
    """A window that could not be read: why, and which file to quarantine (if any)."""

    manifest_path: str
    manifest: Manifest | None
    key: WindowKey | None
    error: str
    bad_file: str | None


@dataclass
class LoadSummary:
    """What one run did; ``failures`` holds one line per failed window."""

    windows_loaded: int = 0
    windows_skipped: int = 0
    windows_failed: int = 0
    windows_held: int = 0
    """Windows another live worker held (a loader, or the extractor finishing them)."""
    rows: int = 0
    elapsed_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    writers: int = 0
    """Batch writers the run used (``LoadConfig.writers``; 1 on SQLite); 0 before writing."""

    @property
    def rows_per_s(self) -> int:
        return int(self.rows / self.elapsed_s) if self.elapsed_s > 0 else 0

    def add(self, other: LoadSummary) -> None:
        """Count ``other`` (one batch's writes) in this summary too."""
        self.windows_loaded += other.windows_loaded
        self.windows_skipped += other.windows_skipped
        self.windows_failed += other.windows_failed
        self.windows_held += other.windows_held
        self.rows += other.rows
        self.failures.extend(other.failures)

    def line(self) -> str:
        text = (
            f"load: {self.windows_loaded} windows loaded, {self.windows_skipped} skipped, "
            f"{self.windows_failed} failed; {self.rows:,} rows in {self.elapsed_s:.1f} s "
            f"({self.rows_per_s:,} rows/s)"
        )
        if self.windows_held:
            text += f"; {self.windows_held} held by other workers"
        if self.writers:
            text += f"; with {self.writers} writer{'s' if self.writers != 1 else ''}"
        return text
