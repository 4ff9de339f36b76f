"""A failed final extraction stays FAILED: loading an older manifest never erases it.

The issue's reproduction, with the checkpoint written by the same ``save_checkpoint``
call the extractor makes when a window fails: an open event's non-final window is
archived (and maybe loaded), then its final extraction FAILS. ``load run`` must neither
set SUCCESS nor clear the error, and must exit non-zero naming the window. A later
successful extract (final manifest, EXTRACTED) is then loaded as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from load.cli import cli
from schemas.archive import WindowKey
from schemas.checkpoints import get_checkpoint, save_checkpoint
from schemas.core import CheckpointStatus, WindowPolicy
from schemas.db import make_engine
from tests.kalshi_sim import World
from tests.test_load_support import (
    build_window,
    closed_events,
    ground_truth,
    new_archive,
    sim_config,
    stored,
)

REASON = "KXHIGHNY-X-T1: on neither the live nor the historical tier"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url, local_infile=True)
    yield eng
    eng.dispose()


def _run(db_url: str, archive: Path) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["run", "--db", db_url, "--archive", str(archive)])
    return res.exit_code, res.output


def _fail_final(engine: Engine, key: WindowKey, start: int, end: int) -> None:
    """What extract records when the final window's extraction fails."""
    with engine.begin() as conn:
        save_checkpoint(
            conn,
            key,
            status=CheckpointStatus.FAILED,
            window_start_ts=start,
            window_end_ts=end,
            is_final=True,
            last_error=REASON,
        )


@pytest.mark.parametrize("loaded_before", [False, True])
def test_failed_final_extraction_stays_failed(
    db_url: str, engine: Engine, tmp_path: Path, loaded_before: bool
) -> None:
    world = World(sim_config(markets_per_event=2))
    (event,) = closed_events(world, "KXHIGHNY", 1)
    archive_dir = tmp_path / "raw"
    archive = new_archive(archive_dir)
    final = build_window(archive, world, event).manifest
    start, end = final.window_start_ts, final.window_end_ts
    early = build_window(archive, world, event, end_ts=end - 6 * 3600).manifest  # open event
    assert not early.is_final
    key = WindowKey("KXHIGHNY", event, 1, WindowPolicy.FULL_MARKET_WINDOW)
    if loaded_before:
        assert _run(db_url, archive_dir)[0] == 0
        with engine.connect() as conn:
            cp = get_checkpoint(conn, key)
        assert cp is not None and cp.status is CheckpointStatus.SUCCESS
    _fail_final(engine, key, start, end)

    code, output = _run(db_url, archive_dir)
    assert code == 1, output
    assert event in output and "run extract again" in output
    with engine.connect() as conn:
        cp = get_checkpoint(conn, key)
    assert cp is not None
    assert (cp.status, cp.last_error) == (CheckpointStatus.FAILED, REASON)
    assert (cp.window_end_ts, cp.is_final) == (end, True)
    assert cp.lease_owner is None

    # A later extract succeeds: the final manifest, checkpoint EXTRACTED without error.
    build_window(archive, world, event)
    with engine.begin() as conn:
        save_checkpoint(
            conn,
            key,
            status=CheckpointStatus.EXTRACTED,
            window_start_ts=start,
            window_end_ts=end,
            is_final=True,
            last_error=None,
        )
    code, output = _run(db_url, archive_dir)
    assert code == 0, output
    with engine.connect() as conn:
        cp = get_checkpoint(conn, key)
    assert cp is not None and cp.status is CheckpointStatus.SUCCESS and cp.last_error is None
    assert stored(engine) == ground_truth(world, [event])
