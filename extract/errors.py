"""Errors of the extract stage, each under the project root in :mod:`schemas.errors`.

Grouped by what the caller does next: the retry loop retries every
:class:`~schemas.errors.RetriableApiError`, stops on anything else, and
:func:`extract.api.retry.classify` is the one place that decides which is which.
"""

from __future__ import annotations

from schemas.errors import ApiError, FatalApiError, KalshiBackfillError, RetriableApiError

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


class ContractError(FatalApiError):
    """A 200 page that breaks the API contract in a way a retry will not fix.

    Refused before it is archived (a copy goes under the archive's ``_rejected/``); the
    window ends FAILED with this reason. ``response`` is the refused answer, when known.
    """

    response: object | None = None


class PagingContractError(ContractError):
    """A page whose candles lie outside the range it claims to cover."""


class ValueContractError(ContractError):
    """A page holding a value the contract does not allow (a price outside [0, 1] dollars,
    a JSON number where the contract has a string)."""


# --- several workers on one backfill ---


class LeaseLostError(KalshiBackfillError):
    """Another worker took this window's lease (ours expired during a stall): stop it."""


# --- the stage as a whole ---


class WindowsFailedError(KalshiBackfillError):
    """Some event windows ended FAILED (the others completed); the run exits non-zero."""
