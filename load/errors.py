"""The load stage's exceptions, under the project's one root (``schemas.errors``).

Grouped by what the loader does next: a corrupt page fails its window only (quarantine,
FAILED, go on); a lost connection is retried; anything else in the database fails the
batch; a run that failed any window ends with :class:`LoadFailedError` (non-zero exit).
"""

from __future__ import annotations

from schemas.errors import (
    CorruptArchiveError,
    DatabaseError,
    InputError,
    KalshiBackfillError,
)


class LoadError(KalshiBackfillError):
    """Root of the errors only the load stage raises."""


# --- the archive: fail the window, quarantine the file, keep loading the others ---


class CorruptPageError(CorruptArchiveError):
    """One page of a window cannot be used: not gzip, not JSON, or not an envelope."""

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(message)
        self.source = source
        """The page (archive-relative path, or a label) the message is about."""


class MalformedValueError(CorruptPageError):
    """A page parses but a value in it is not what the contract allows."""


# --- the database ---


class RetriableDatabaseError(DatabaseError):
    """The connection was lost or the server was busy: the transaction rolled back, retry."""


# --- several loaders: the window is another worker's now; skip it, never fail it ---


class LeaseLostError(LoadError):
    """Another worker took the window's lease (ours expired): its transaction rolls back."""


# --- the run as a whole ---


class NoWindowsError(InputError):
    """The archive holds no complete window of what was asked (exit 2): a mistyped
    ``--series`` or ``--archive``. "Nothing LEFT to load" is not an error."""


class LoadFailedError(LoadError):
    """Some windows failed (each has a FAILED checkpoint saying why): exit non-zero."""
