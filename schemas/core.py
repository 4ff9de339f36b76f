"""The light core of ``schemas``: the defaults and names both stages and both command
lines use, with nothing heavier than the standard library.

Apart from :mod:`schemas.tables` and :mod:`schemas.db` so that ``--version``, ``-h`` and
every option's help import no database or dataframe library (they cost most of a
command's start-up otherwise).
"""

from __future__ import annotations

from enum import StrEnum

DEFAULT_DATABASE_URL = "sqlite:///data/kalshi.db"
DEFAULT_ARCHIVE_DIR = "data/raw"
DEFAULT_LEASE_SECONDS = 120.0
PERIODS = (1, 60, 1440)


class WindowPolicy(StrEnum):
    """How an event's time window is chosen."""

    FULL_MARKET_WINDOW = "FULL_MARKET_WINDOW"
    TRADE_WINDOW_ONLY = "TRADE_WINDOW_ONLY"


class CheckpointStatus(StrEnum):
    """Life of one event window. SUCCESS only once every row is in ``kalshi_candle``."""

    RUNNING = "RUNNING"  # extract is fetching pages
    EXTRACTED = "EXTRACTED"  # archive complete (manifest written), load pending
    SUCCESS = "SUCCESS"  # loaded, in the same transaction as its rows
    FAILED = "FAILED"  # see last_error; a rerun retries it
