"""The load stage's configuration: one frozen dataclass, built by ``cli.py`` or by tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from schemas.core import DEFAULT_ARCHIVE_DIR, DEFAULT_DATABASE_URL, DEFAULT_LEASE_SECONDS
from schemas.errors import InputError
from schemas.processes import default_worker_id, validate_worker
from schemas.secrets import URL, safe_repr
from schemas.tickers import validate_series_ticker

StagingMethod = Literal["load_data", "insert"]


@dataclass(frozen=True)
class LoadConfig:
    """Everything one ``load run`` needs; nothing here reaches the network."""

    db_url: str = field(default=DEFAULT_DATABASE_URL, metadata=URL)
    """SQLAlchemy URL of the target database (SQLite or MySQL/MariaDB/TiDB)."""
    archive_dir: str | Path = DEFAULT_ARCHIVE_DIR
    """Root of the raw archive that extract wrote (a folder, or an fsspec URL)."""
    series: tuple[str, ...] = ()
    """Only these series' windows (empty: every series in the archive; a single ticker
    may be given as a plain string)."""
    batch_windows: int = 1
    """Windows per staged upsert and transaction (more is faster; memory grows with it)."""
    db_attempts: int = 4
    """Tries of one batch when the connection drops (the transaction rolled back each time)."""
    retry_backoff_s: float = 1.0
    """First wait between tries; doubles each time."""
    staging_method: StagingMethod = "load_data"
    """MySQL only: fill the staging table with LOAD DATA LOCAL (measured faster) or INSERT."""
    writers: int = 2
    """MySQL: batches written at once, each on its own connection (SQLite: always 1)."""
    prefetch: bool = True
    """Read and normalize the next batch in a thread while the current one is written."""
    worker_id: str = field(default_factory=default_worker_id)
    """This loader in window leases and ``kalshi_worker`` (default ``hostname:pid``)."""
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    """A killed loader's windows are taken over this long after its last renewal."""
    follow: bool = False
    """Keep loading windows as extract completes them, until no extractor is alive and
    no complete window is left (``load.run.follow``)."""
    idle_exit_s: float = 600.0
    """With ``follow``: stop anyway after this long without loading a window (0: never)."""
    poll_s: float = 1.0
    """With ``follow``: the pause between two looks at the archive."""

    __repr__ = safe_repr  # the database password is masked

    def __post_init__(self) -> None:
        series = (self.series,) if isinstance(self.series, str) else tuple(self.series or ())
        for ticker in series:
            validate_series_ticker(ticker)
        object.__setattr__(self, "series", series)
        if self.batch_windows < 1:
            raise InputError(f"batch_windows must be at least 1, not {self.batch_windows}")
        if self.writers < 1:
            raise InputError(f"writers must be at least 1, not {self.writers}")
        if self.db_attempts < 1:
            raise InputError(f"db_attempts must be at least 1, not {self.db_attempts}")
        if self.retry_backoff_s < 0:
            raise InputError("retry_backoff_s cannot be negative")
        if self.staging_method not in ("load_data", "insert"):
            raise InputError(f"unknown staging method {self.staging_method!r}")
        if self.idle_exit_s < 0 or self.poll_s <= 0:
            raise InputError("idle_exit_s cannot be negative and poll_s must be positive")
        validate_worker(self.worker_id, self.lease_seconds)
