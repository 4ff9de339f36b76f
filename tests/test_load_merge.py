"""Whether "the later retrieval wins" across batches, window policies and reloads.

Each event gets two windows (both policies) over the same candles: one retrieved LATER
holding the simulator's truth, one retrieved EARLIER whose volumes were altered. Whatever
order they are loaded in, in one batch or in separate batches or runs, and through the
MySQL ``skip_unchanged`` path (markets that already have rows), the table must end up
equal to the simulator's truth: the row with the later ``retrieved_at_utc`` wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from load.config import LoadConfig
from load.run.loader import load_windows
from load.run.writer import _mysql_updates
from schemas.archive import LocalArchive
from schemas.core import WindowPolicy
from schemas.db import make_engine
from schemas.tables import CANDLE_COLUMNS, CANDLE_KEY_COLUMNS
from tests.kalshi_sim import World
from tests.test_load_support import (
    T0,
    build_window,
    closed_events,
    ground_truth,
    new_archive,
    sim_config,
    stored,
)

FULL, TRADE = WindowPolicy.FULL_MARKET_WINDOW, WindowPolicy.TRADE_WINDOW_ONLY
EARLY, LATE = T0, T0 + timedelta(hours=1)
ALTERED_VOLUME = "987654.00"


@pytest.fixture(scope="module")
def world() -> World:
    return World(sim_config(markets_per_event=2))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url, local_infile=True)
    yield eng
    eng.dispose()


def _alter(candle: dict[str, Any]) -> dict[str, Any]:
    return {**candle, "volume_fp": ALTERED_VOLUME}


def build(
    archive: LocalArchive, world: World, event: str, policy: WindowPolicy, *, late: bool
) -> None:
    """The event's window under ``policy``: true values retrieved LATE, or altered EARLY."""
    built = build_window(archive, world, event, policy=policy, retrieved_at=LATE if late else EARLY)
    if late:
        return
    for rel in built.page_paths:
        page = archive.read_page(rel)
        body = dict(page.body)
        body["market_candlesticks"] = [
            [_alter(c) for c in cs] for cs in body["market_candlesticks"]
        ]
        archive.write_page(rel, replace(page, body=body))


def load(db_url: str, archive: Path, engine: Engine, **over: Any) -> None:
    cfg = LoadConfig(db_url=db_url, archive_dir=archive, retry_backoff_s=0, **over)
    load_windows(cfg, engine=engine)


@pytest.mark.parametrize("batch_windows", [1, 2])
def test_later_retrieval_wins_across_policies_and_batches(
    db_url: str, engine: Engine, tmp_path: Path, world: World, batch_windows: int
) -> None:
    # The archive lists FULL before TRADE: the earlier retrieval is loaded last.
    events = closed_events(world, "KXHIGHNY", 2)
    archive = new_archive(tmp_path / "raw")
    for e in events:
        build(archive, world, e, FULL, late=True)
        build(archive, world, e, TRADE, late=False)
    load(db_url, tmp_path / "raw", engine, batch_windows=batch_windows)
    assert stored(engine) == ground_truth(world, events)


def test_later_retrieval_wins_across_reloads_and_skip_unchanged(
    db_url: str, engine: Engine, tmp_path: Path, world: World
) -> None:
    a, b = closed_events(world, "KXHIGHCHI", 2)
    archive = new_archive(tmp_path / "raw")
    build(archive, world, a, FULL, late=True)  # run 1: the truth of a
    build(archive, world, b, TRADE, late=False)  # run 1: altered b
    load(db_url, tmp_path / "raw", engine)
    truth = ground_truth(world, [a, b])
    got = stored(engine)
    assert got != truth  # b holds its altered, early retrieval for now
    build(archive, world, a, TRADE, late=False)  # run 2: older, altered: must not win
    build(archive, world, b, FULL, late=True)  # run 2: newer, true: must win
    load(db_url, tmp_path / "raw", engine)
    assert stored(engine) == truth


def test_mysql_assigns_the_deciding_column_last() -> None:
    """MySQL evaluates ON DUPLICATE KEY UPDATE left to right: every value column must
    compare with the STORED retrieval time, so retrieved_at_utc is assigned last."""
    assignments = [a.split(" = ", 1)[0] for a in re.split(r", (?=\w+ = )", _mysql_updates())]
    assert assignments[-1] == "retrieved_at_utc"
    assert assignments.count("retrieved_at_utc") == 1
    assert sorted(assignments) == sorted(c for c in CANDLE_COLUMNS if c not in CANDLE_KEY_COLUMNS)
