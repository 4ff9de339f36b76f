"""The raw archive: the contract between extract (the only writer) and load (the only reader).

Layout under the archive root (version 2)::

    archive.json                                   {"archive_version": 2, ...}
    {series}/{event}/p{period}/{policy}/{start_ts}.json.gz          event-level pages
    {series}/{event}/p{period}/{policy}/markets/{market}/{start_ts}.json.gz
                                                   per-market pages (historical tier)
    {series}/{event}/p{period}/{policy}/batch/g{group}/{start_ts}.json.gz
                                                   batch pages (the event's markets)
    _packed/p{period}/{policy}/{YYYY-MM}/{start_ts}-{digest}.json.gz
                                                   packed batch pages: one request for
                                                   the markets of several windows, kept
                                                   once; each manifest names those of
                                                   its markets (version 2)
    {series}/{event}/p{period}/{policy}/manifest.json   written LAST: the window is complete
    _quarantine/...                                corrupt files moved aside by load
    _rejected/...                                  pages extract refused (values or paging
                                                   outside the contract), kept to inspect
    _check/{series}/{time}/NN-{probe}.json.gz      check-api's evidence (never loaded)
    _series/{time}.json.gz                         GET /series answers (never loaded)

The formats of the files (window keys, page envelopes, manifests) are in
:mod:`schemas.archive.pages`; the store both stages hold in :mod:`schemas.archive.store`,
on a folder in :mod:`schemas.archive.local`, on fsspec in :mod:`schemas.archive.remote`;
all re-exported here. May import only ``schemas`` modules outside the archive.

``policy`` is ``full`` (FULL_MARKET_WINDOW) or ``trade`` (TRADE_WINDOW_ONLY), so the two
policies' windows never overwrite each other's pages. Every page is a gzipped JSON
:class:`PageEnvelope`: the request, the HTTP status, when it was retrieved and the body
exactly as the API sent it. Every file is written atomically (temporary file, fsync,
rename), so a reader sees a whole file or none, whatever moment a writer is killed at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas.archive.local import LocalArchive
from schemas.archive.pages import (
    ARCHIVE_VERSION,
    BATCH_DIR,
    BODY_BYTES_KEY,
    KIND_BATCH_CANDLES,
    KIND_EVENT_CANDLES,
    KIND_HISTORICAL_MARKET_CANDLES,
    KIND_PACKED_CANDLES,
    MANIFEST_FILE,
    PACKED_DIR,
    PAGE_KINDS,
    PAGE_SUFFIX,
    READABLE_VERSIONS,
    Manifest,
    ManifestMarket,
    PageEnvelope,
    WindowKey,
    answer_bytes,
    body_fields,
    decode_gzip_json,
    exact_body,
    gunzip,
    packed_page_path,
    parse_json_text,
    parse_utc_iso,
    utc_iso,
)
from schemas.archive.store import (
    ARCHIVE_FORMAT,
    QUARANTINE_DIR,
    REJECTED_DIR,
    ROOT_FILE,
    SERIES_DIR,
    TEMP_MARKER,
    ArchiveStore,
    atomic_path,
)

#: The stores, and the page formats of :mod:`schemas.archive.pages` (re-exported: the
#: stages reach the archive through this package).
__all__ = [
    "ARCHIVE_FORMAT",
    "ARCHIVE_VERSION",
    "BATCH_DIR",
    "BODY_BYTES_KEY",
    "KIND_BATCH_CANDLES",
    "KIND_EVENT_CANDLES",
    "KIND_HISTORICAL_MARKET_CANDLES",
    "KIND_PACKED_CANDLES",
    "MANIFEST_FILE",
    "PACKED_DIR",
    "PAGE_KINDS",
    "PAGE_SUFFIX",
    "QUARANTINE_DIR",
    "READABLE_VERSIONS",
    "REJECTED_DIR",
    "ROOT_FILE",
    "SERIES_DIR",
    "TEMP_MARKER",
    "Archive",
    "ArchiveStore",
    "LocalArchive",
    "Manifest",
    "ManifestMarket",
    "PageEnvelope",
    "WindowKey",
    "answer_bytes",
    "atomic_path",
    "body_fields",
    "decode_gzip_json",
    "exact_body",
    "gunzip",
    "open_archive",
    "packed_page_path",
    "parse_json_text",
    "parse_utc_iso",
    "utc_iso",
]


def open_archive(
    location: str | Path, storage_options: dict[str, Any] | None = None
) -> ArchiveStore:
    """The archive at a local path (default) or an fsspec URL such as ``s3://bucket/raw``."""
    text = str(location)
    if "://" in text and not text.startswith("file://"):
        from schemas.archive.remote import FsspecArchive  # only remote archives need it

        return FsspecArchive(text, storage_options)
    return LocalArchive(text.removeprefix("file://"))


Archive = ArchiveStore
"""The archive type the stages accept: any store, local or fsspec."""
