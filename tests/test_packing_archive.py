"""The archive's version 2 (packed pages): load takes a window's own markets from a page
that holds several windows', version-1 archives still load, and a newer archive is
refused at its root instead of misread.

Pages are built from the simulator's candles (``tests/test_load_support.py``); the truth
is the simulator's own candles, event by event.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from load.config import LoadConfig
from load.errors import LoadFailedError
from load.run.loader import load_windows
from schemas.archive import (
    KIND_PACKED_CANDLES,
    PACKED_DIR,
    ROOT_FILE,
    LocalArchive,
    Manifest,
    ManifestMarket,
    PageEnvelope,
    WindowKey,
    packed_page_path,
)
from schemas.core import WindowPolicy
from schemas.db import make_engine
from schemas.errors import ArchiveError, CorruptArchiveError
from schemas.tables import kalshi_candle
from tests.kalshi_sim import World
from tests.test_load_support import (
    build_window,
    closed_events,
    ground_truth,
    new_archive,
    sim_config,
    stored,
)

SERIES = "KXHIGHNY"
PERIOD = 60
T0 = datetime(2026, 1, 20, tzinfo=UTC)


def load(db_url: str, archive: Path) -> int:
    return load_windows(LoadConfig(db_url=db_url, archive_dir=archive, retry_backoff_s=0)).rows


def packed_windows(archive: LocalArchive, world: World, events: list[str]) -> str:
    """The events' windows at 60 minutes, all their markets on ONE packed page (plus a
    market of an event outside the run, which no manifest names). Returns its path."""
    infos = {e: world.market_infos(e) for e in events}
    start = min(m.open_ts for ms in infos.values() for m in ms)
    end = max(-(-m.close_ts // 3600) * 3600 for ms in infos.values() for m in ms)
    stranger = world.market_infos(world.event_tickers(SERIES)[0])[0].ticker
    tickers = tuple(sorted([m.ticker for ms in infos.values() for m in ms] + [stranger]))
    body = {
        "markets": [
            {"market_ticker": t, "candlesticks": world.candles(t, PERIOD, start, end)}
            for t in tickers
        ]
    }
    rel = packed_page_path(PERIOD, WindowPolicy.FULL_MARKET_WINDOW, tickers, start, end)
    archive.write_page(
        rel,
        PageEnvelope(
            kind=KIND_PACKED_CANDLES,
            series_ticker=None,
            event_ticker=None,
            market_ticker=None,
            period_interval=PERIOD,
            window_policy=WindowPolicy.FULL_MARKET_WINDOW,
            path="/trade-api/v2/markets/candlesticks",
            params={
                "market_tickers": ",".join(tickers),
                "start_ts": start,
                "end_ts": end,
                "period_interval": PERIOD,
            },
            status=200,
            retrieved_at_utc=T0,
            body=body,
            raw_body=orjson.dumps(body),
        ),
    )
    for e, markets in infos.items():
        key = WindowKey(SERIES, e, PERIOD, WindowPolicy.FULL_MARKET_WINDOW)
        w_start = min(m.open_ts for m in markets)
        w_end = max(-(-m.close_ts // 3600) * 3600 for m in markets)
        archive.write_manifest(
            Manifest(
                key,
                w_start,
                w_end,
                True,
                tuple(ManifestMarket(m.ticker, m.open_ts, m.close_ts) for m in markets),
                (),
                packed_pages=(rel,),
            )
        )
    return rel


def test_each_window_takes_only_its_markets_from_a_shared_page(
    sqlite_url: str, tmp_path: Path
) -> None:
    world = World(sim_config())
    archive = new_archive(tmp_path / "raw")
    events = closed_events(world, SERIES, 3)
    packed_windows(archive, world, events)
    want = ground_truth(world, events, PERIOD)
    assert load(sqlite_url, tmp_path / "raw") == len(want)
    engine = make_engine(sqlite_url)
    try:
        assert stored(engine) == want  # no candle of the stranger market, none twice
        with engine.connect() as conn:
            rows = conn.execute(select(kalshi_candle.c.market_ticker, kalshi_candle.c.event_ticker))
            assert all(m.rsplit("-", 1)[0] == e for m, e in rows)
    finally:
        engine.dispose()


def test_a_missing_packed_page_fails_the_windows_that_name_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    world = World(sim_config())
    archive = new_archive(tmp_path / "raw")
    rel = packed_windows(archive, world, closed_events(world, SERIES, 2))
    archive.delete(rel)
    with pytest.raises(LoadFailedError, match="archive file missing"):
        load(sqlite_url, tmp_path / "raw")
    assert list(archive.iter_manifests()) == []  # removed: the next extract refetches


def test_a_manifest_cannot_name_a_packed_page_outside_packed() -> None:
    key = WindowKey(SERIES, "KXHIGHNY-25NOV20", PERIOD, WindowPolicy.FULL_MARKET_WINDOW)
    for bad in ("KXHIGHNY/KXHIGHNY-25NOV21/p60/full/1.json.gz", f"{PACKED_DIR}/../x.json.gz"):
        doc = orjson.loads(Manifest(key, 0, 60, True, (), ()).to_bytes())
        doc["packed_pages"] = [bad]
        with pytest.raises(CorruptArchiveError, match="packed page"):
            Manifest.from_bytes(orjson.dumps(doc), "m")


# --- versions ---------------------------------------------------------------------------------


def as_version_1(root: Path) -> None:
    """Rewrite an archive as version 1 wrote it: every file says 1, no ``packed_pages``."""
    (root / ROOT_FILE).write_bytes(orjson.dumps({"archive_version": 1, "format": "x"}))
    for path in root.rglob("manifest.json"):
        doc = orjson.loads(path.read_bytes())
        assert doc.pop("packed_pages") == []
        path.write_bytes(orjson.dumps({**doc, "archive_version": 1}))
    for path in root.rglob("*.json.gz"):
        doc = orjson.loads(gzip.decompress(path.read_bytes()))
        path.write_bytes(gzip.compress(orjson.dumps({**doc, "archive_version": 1})))


def test_a_version_1_archive_still_loads(sqlite_url: str, tmp_path: Path) -> None:
    world = World(sim_config())
    archive = new_archive(tmp_path / "raw")
    events = closed_events(world, SERIES, 2)
    for e in events:
        build_window(archive, world, e, cap=1500)
    as_version_1(tmp_path / "raw")
    want = ground_truth(world, events)
    assert load(sqlite_url, tmp_path / "raw") == len(want)
    engine = make_engine(sqlite_url)
    try:
        assert stored(engine) == want
    finally:
        engine.dispose()
    # reading it leaves it version 1; a writer marks it 2, which a version-1 reader refuses
    root = tmp_path / "raw" / ROOT_FILE
    assert orjson.loads(root.read_bytes())["archive_version"] == 1
    LocalArchive(tmp_path / "raw").ensure_writable()
    assert orjson.loads(root.read_bytes())["archive_version"] == 2


def test_a_newer_archive_is_refused_at_its_root(sqlite_url: str, tmp_path: Path) -> None:
    new_archive(tmp_path / "raw")
    (tmp_path / "raw" / ROOT_FILE).write_bytes(orjson.dumps({"archive_version": 3}))
    with pytest.raises(ArchiveError, match="format version 3; this program reads version 1 and 2"):
        load(sqlite_url, tmp_path / "raw")
    with pytest.raises(ArchiveError, match="upgrade kalshi-candles"):
        LocalArchive(tmp_path / "raw").ensure_writable()
