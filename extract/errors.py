"""Errors of the extract stage, each under the project root in :mod:`schemas.errors`.

Grouped by what the caller does next: the retry loop retries every
:class:`~schemas.errors.RetriableApiError`, stops on anything else, and
:func:`extract.retry.classify` is the one place that decides which is which.
"""

from __future__ import annotations

from schemas.errors import ApiError, KalshiBackfillError, RetriableApiError

# --- answers from the API that the retry loop classifies ---


class HttpStatusError(ApiError):
    """The API answered a status other than 200; ``classify`` decides whether to retry."""

    def __init__(self, status: int, path: str, detail: str = "") -> None:
        self.status = status
        self.path = path
        tail = f": {detail}" if detail else ""
        super().__init__(f"HTTP {status} from {path}{tail}")


class TransportError(RetriableApiError):
    """Timeout, refused or reset connection, truncated transfer: nothing usable arrived."""


class BadPageError(RetriableApiError):
    """A 200 whose body is not usable JSON or breaks the page contract (retried, never archived)."""


class WrongEventError(BadPageError):
    """A candlestick page that names markets of another event."""


class NoProgressError(BadPageError):
    """``adjusted_end_ts`` did not move past the page's ``start_ts``: following it would loop."""


# --- several workers on one backfill ---


class LeaseLostError(KalshiBackfillError):
    """Another worker took this window's lease (ours expired during a stall): stop it."""


# --- the stage as a whole ---


class WindowsFailedError(KalshiBackfillError):
    """Some event windows ended FAILED (the others completed); the run exits non-zero."""
