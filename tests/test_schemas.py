"""The shared contracts: tickers, the archive format, exact decimals in both databases."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from schemas.archive import (
    KIND_EVENT_CANDLES,
    LocalArchive,
    Manifest,
    ManifestMarket,
    PageEnvelope,
    WindowKey,
)
from schemas.core import WindowPolicy
from schemas.db import make_engine
from schemas.errors import ArchiveError, CorruptArchiveError, InputError
from schemas.secrets import redact_url
from schemas.tables import kalshi_candle
from schemas.tickers import event_date_from_ticker, validate_event_ticker, validate_market_ticker


@pytest.mark.parametrize("bad", ["../etc", "KX HIGH", "KX'1", 'a"b', "kxhighny", "", "A/B", "A..B"])
def test_hostile_tickers_are_refused(bad: str) -> None:
    with pytest.raises(InputError):
        validate_market_ticker(bad)


def test_real_tickers_pass_and_name_their_date() -> None:
    assert validate_market_ticker("KXHIGHNY-25NOV20-B50.5") == "KXHIGHNY-25NOV20-B50.5"
    assert validate_event_ticker("KXHIGHNY-25NOV20") == "KXHIGHNY-25NOV20"
    assert event_date_from_ticker("KXHIGHNY-25NOV20") == datetime(2025, 11, 20).date()
    assert event_date_from_ticker("KXHIGHNY-25XYZ20") is None


def _page(key: WindowKey, start: int) -> PageEnvelope:
    return PageEnvelope(
        kind=KIND_EVENT_CANDLES,
        series_ticker=key.series_ticker,
        event_ticker=key.event_ticker,
        market_ticker=None,
        period_interval=1,
        window_policy=key.window_policy,
        path=f"/trade-api/v2/series/{key.series_ticker}/events/{key.event_ticker}/candlesticks",
        params={"start_ts": start, "end_ts": start + 600, "period_interval": 1},
        status=200,
        retrieved_at_utc=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        body={"market_tickers": [], "market_candlesticks": [], "adjusted_end_ts": start + 600},
    )


def test_page_and_manifest_round_trip(archive_dir: Path) -> None:
    arch = LocalArchive(archive_dir)
    arch.ensure_writable()
    key = WindowKey("KXHIGHNY", "KXHIGHNY-25NOV20", 1, WindowPolicy.FULL_MARKET_WINDOW)
    page = _page(key, 1763650800)
    rel = key.page_path(page.start_ts)
    assert rel == "KXHIGHNY/KXHIGHNY-25NOV20/p1/full/1763650800.json.gz"
    arch.write_page(rel, page)
    assert arch.read_page(rel) == page
    m = Manifest(key, 1763650800, 1763651400, True, (ManifestMarket("M-1", 0, 60),), (rel,))
    arch.write_manifest(m)
    assert arch.manifest_for(key) == m
    assert list(arch.iter_manifests()) == [key.manifest_path]
    assert not list(archive_dir.rglob(".tmp-*"))


def test_corrupt_files_raise_corrupt_archive_error(archive_dir: Path) -> None:
    arch = LocalArchive(archive_dir)
    (archive_dir / "a.json.gz").write_bytes(b"not gzip")
    (archive_dir / "b.json.gz").write_bytes(gzip.compress(b'{"trunc'))
    (archive_dir / "c.json.gz").write_bytes(gzip.compress(b'{"archive_version": 1}'))
    for name in ("a", "b", "c"):
        with pytest.raises(CorruptArchiveError, match=f"{name}.json.gz"):
            arch.read_page(f"{name}.json.gz")


def test_archive_paths_cannot_escape(archive_dir: Path) -> None:
    with pytest.raises(ArchiveError):
        LocalArchive(archive_dir).read_bytes("../outside")


def test_unwritable_archive_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ArchiveError, match="not writable"):
        LocalArchive(blocker / "raw").ensure_writable()


def test_exact_decimals_and_nulls_survive_both_databases(db_url: str) -> None:
    engine = make_engine(db_url)
    row = {
        "market_ticker": "KXHIGHNY-25NOV20-B50.5",
        "end_period_ts_utc": datetime(2025, 11, 20, 15, 1, tzinfo=UTC),
        "period_interval_minutes": 1,
        "event_ticker": "KXHIGHNY-25NOV20",
        "yes_bid_open": Decimal("0.123456"),
        "yes_ask_close": Decimal("0.9900"),
        "volume": Decimal("2.50"),
        "retrieved_at_utc": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    }
    with engine.begin() as conn:
        conn.execute(insert(kalshi_candle), [row])
    with engine.connect() as conn:
        got = conn.execute(select(kalshi_candle)).mappings().one()
    assert got["yes_bid_open"] == Decimal("0.123456")
    assert got["yes_ask_close"] == Decimal("0.99")
    assert got["volume"] == Decimal("2.5")
    assert got["price_open"] is None
    assert got["end_period_ts_utc"] == row["end_period_ts_utc"]
    assert got["retrieved_at_utc"] == row["retrieved_at_utc"]
    engine.dispose()


def test_redacted_urls_hide_passwords() -> None:
    assert "sekrit" not in redact_url("mysql+pymysql://u:sekrit@h/db")
