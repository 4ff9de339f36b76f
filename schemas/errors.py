"""One exception root for the whole project, grouped by what the caller does next.

Library code raises these; the CLIs turn them into one clear line and a non-zero exit.
aiohttp, SQLAlchemy and OS errors are translated at the boundary (``raise X(...) from e``)
so callers never need to know which library failed.
"""

from __future__ import annotations


class KalshiBackfillError(Exception):
    """Root of every error this project raises on purpose."""


# --- the user asked for something that cannot be done: fix the input and run again ---


class InputError(KalshiBackfillError):
    """Bad user input: an unknown series or event, an invalid ticker, date or period."""


class ConfigError(KalshiBackfillError):
    """Bad configuration: an unusable URL, archive folder or database URL."""


class SchemaError(InputError):
    """The database has no tables for a read-only command, or a schema revision this
    version does not run on: fix ``--db`` or run ``kalshi-load db upgrade``."""


class MissingExtraError(InputError):
    """An optional feature whose package is not installed: ``pip install`` its extra."""

    def __init__(self, feature: str, package: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs {package}, which is not installed: "
            f"pip install 'kalshi-candles[{extra}]'"
        )


# --- the API ---


class ApiError(KalshiBackfillError):
    """The Kalshi API answered something we cannot use."""


class RetriableApiError(ApiError):
    """A transient failure (429, 5xx, timeout, reset, unparseable body): try again later."""


class FatalApiError(ApiError):
    """A failure that retrying will not fix (other 4xx, a page that breaks the contract)."""


class RetriesExhaustedError(ApiError):
    """A retriable failure that kept failing until the retry budget ran out."""


# --- the archive ---


class ArchiveError(KalshiBackfillError):
    """The raw archive cannot be read or written."""


class CorruptArchiveError(ArchiveError):
    """An archive file is not valid gzip/JSON or breaks the envelope format: quarantine it."""


# --- the database ---


class DatabaseError(KalshiBackfillError):
    """The database is unreachable, refused our credentials, or rejected a statement."""


class LocalFileRequestError(DatabaseError):
    """The database server asked for a local file this connection did not offer (LOAD
    DATA LOCAL): refused with nothing sent; a server that does this is not to be trusted."""
