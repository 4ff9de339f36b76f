"""The same archive operations on a local folder and on an S3-compatible server (moto)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.archive import (
    KIND_EVENT_CANDLES,
    ArchiveStore,
    LocalArchive,
    Manifest,
    ManifestMarket,
    PageEnvelope,
    WindowKey,
    open_archive,
)
from schemas.core import WindowPolicy
from schemas.errors import ArchiveError, CorruptArchiveError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible server (moto in server mode) on 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_archive(endpoint: str, bucket: str) -> ArchiveStore:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).create_bucket(Bucket=bucket)
    options = {
        "key": "test",
        "secret": "test",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    return open_archive(f"s3://{bucket}/raw", options)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArchiveStore:
    if request.param == "local":
        return open_archive(tmp_path / "raw")
    endpoint = request.getfixturevalue("s3_endpoint")
    return s3_archive(endpoint, f"b{tmp_path.name.lower().replace('_', '')[-20:]}")


def _page(key: WindowKey, start: int) -> PageEnvelope:
    return PageEnvelope(
        kind=KIND_EVENT_CANDLES,
        series_ticker=key.series_ticker,
        event_ticker=key.event_ticker,
        market_ticker=None,
        period_interval=1,
        window_policy=key.window_policy,
        path="/trade-api/v2/series/S/events/E/candlesticks",
        params={"start_ts": start, "end_ts": start + 60, "period_interval": 1},
        status=200,
        retrieved_at_utc=datetime(2026, 1, 1, tzinfo=UTC),
        body={"market_tickers": [], "market_candlesticks": [], "adjusted_end_ts": start + 60},
    )


def test_store_round_trip_listing_and_quarantine(store: ArchiveStore) -> None:
    store.ensure_writable()
    store.check_version()
    key = WindowKey("KXHIGHNY", "KXHIGHNY-25NOV20", 1, WindowPolicy.TRADE_WINDOW_ONLY)
    pages = [key.page_path(s) for s in (120, 60)]
    for rel, start in zip(pages, (120, 60), strict=True):
        store.write_page(rel, _page(key, start))
    assert store.list_files(key.dir, ".json.gz") == sorted(pages)
    assert store.read_page(pages[1]).start_ts == 60
    manifest = Manifest(
        key, 60, 180, False, (ManifestMarket("KXHIGHNY-25NOV20-T1", 0, 999),), tuple(pages)
    )
    store.write_manifest(manifest)
    assert list(store.iter_manifests("KXHIGHNY")) == [key.manifest_path]
    assert store.manifest_for(key) == manifest
    store.write_atomic(pages[0], b"garbage")
    with pytest.raises(CorruptArchiveError):
        store.read_page(pages[0])
    moved = store.move_to_quarantine(pages[0])
    assert not store.exists(pages[0]) and store.exists(moved)
    assert list(store.iter_manifests()) == [key.manifest_path]
    with pytest.raises(ArchiveError):
        store.read_bytes("../escape")


def test_local_paths_and_file_urls_open_a_local_archive(tmp_path: Path) -> None:
    assert isinstance(open_archive(tmp_path), LocalArchive)
    assert isinstance(open_archive(f"file://{tmp_path}"), LocalArchive)
