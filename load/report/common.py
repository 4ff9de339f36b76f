"""What the three read-only reports share: which series an event is of, which window
folders the archive holds for it, and how a report record becomes JSON.

The reports themselves are modules of their own, one per command:
:mod:`load.report.status` (database only), :mod:`load.report.inspect` (archive only) and
:mod:`load.report.verify` (both). This module is the little they have in common, so none
of them imports another.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from schemas.archive import BATCH_DIR, MANIFEST_FILE, PAGE_SUFFIX, TEMP_MARKER, ArchiveStore
from schemas.tickers import validate_event_ticker, validate_series_ticker


def series_of(event_ticker: str) -> str:
    """The series ticker an event ticker starts with (``KXHIGHNY-25NOV20`` → ``KXHIGHNY``)."""
    return validate_series_ticker(event_ticker.split("-", 1)[0])


def fields_json(obj: Any) -> dict[str, Any]:
    """A dataclass's fields in order, each datetime as ISO-8601 (other values as they are)."""
    doc = {f.name: getattr(obj, f.name) for f in fields(obj)}
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in doc.items()}


def event_window_dirs(archive: ArchiveStore, event_ticker: str) -> list[str]:
    """Window folders of an event, complete or not (``{series}/{event}/p{n}/{policy}``).

    Found through the files they hold (pages or a manifest), so this works on any store,
    including object stores that have no folders.
    """
    validate_event_ticker(event_ticker)
    base = f"{series_of(event_ticker)}/{event_ticker}"
    found = archive.glob(f"{base}/p*/*/*{PAGE_SUFFIX}") + archive.glob(
        f"{base}/p*/*/{MANIFEST_FILE}"
    )
    found += archive.glob(f"{base}/p*/*/markets/*/*{PAGE_SUFFIX}")
    found += archive.glob(f"{base}/p*/*/{BATCH_DIR}/*/*{PAGE_SUFFIX}")
    return sorted({"/".join(f.split("/")[:4]) for f in found if TEMP_MARKER not in f})
