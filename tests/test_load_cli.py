"""``python -m load`` as a user runs it: real subprocesses, real databases, no network.

The SIGKILL test kills a real ``python -m load run`` on MariaDB while it writes, checks
that no SUCCESS checkpoint exists without all of its rows (and no rows exist without
their SUCCESS), then reruns and compares with an uninterrupted load.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, inspect, select

from load.cli import cli
from load.config import LoadConfig
from load.run.loader import load_windows
from schemas.checkpoints import list_checkpoints
from schemas.core import CheckpointStatus
from schemas.db import make_engine
from schemas.processes import KIND_EXTRACT
from schemas.tables import kalshi_candle
from schemas.workers import heartbeat, unregister
from tests.databases import MYSQL_SERVER_URL, drop_database, new_database
from tests.kalshi_sim import World
from tests.test_load_support import (
    T0,
    build_window,
    closed_events,
    full_rows,
    ground_truth,
    new_archive,
    sim_config,
    stored,
)

REPO = Path(__file__).resolve().parent.parent
UNROUTABLE = "http://10.255.255.1:9/trade-api/v2"


def _env() -> dict[str, str]:
    """The API and any proxy point nowhere: a load that touched the network would fail."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "KALSHI_API_BASE": UNROUTABLE,
        "HTTP_PROXY": UNROUTABLE,
        "HTTPS_PROXY": UNROUTABLE,
        "ALL_PROXY": UNROUTABLE,
    }


def _load(db: str, archive: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "load", "run", "--db", db, "--archive", str(archive), *extra]


def test_load_never_imports_aiohttp() -> None:
    code = (
        "import sys, load.cli, load.run.loader, load.run.writer, load.normalize.pages,"
        " load.normalize.stats;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'extract')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_init_db_and_run_with_the_api_unreachable(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.db'}"
    world = World(sim_config())
    events = closed_events(world, "KXHIGHNY", 2)
    archive = new_archive(tmp_path / "raw")
    for e in events:
        build_window(archive, world, e)
    init = subprocess.run(
        [sys.executable, "-m", "load", "init-db", "--db", db],
        cwd=REPO, env=_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    engine = make_engine(db, schema="none")
    try:
        assert "kalshi_candle" in inspect(engine).get_table_names()
        run = subprocess.run(
            _load(db, tmp_path / "raw"), cwd=REPO, env=_env(), capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        assert "2 windows loaded, 0 skipped, 0 failed" in run.stderr
        assert stored(engine) == ground_truth(world, events)
    finally:
        engine.dispose()


def test_bad_arguments_are_one_clear_line(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["run", "--series", "../x", "--archive", str(tmp_path)])
    assert res.exit_code == 2 and "invalid series ticker" in res.output
    res = runner.invoke(cli, ["run", "--archive", str(tmp_path / "nope"), "--db", "sqlite://"])
    assert res.exit_code == 1 and "does not exist" in res.output
    res = runner.invoke(cli, ["run", "--batch-windows", "0"])
    assert res.exit_code == 2
    res = runner.invoke(
        cli, ["run", "--archive", str(tmp_path), "--db", "mysql+pymysql://u:s3cret@127.0.0.1:1/x"]
    )
    assert res.exit_code == 1 and "s3cret" not in res.output and "***" in res.output


def _event_counts(engine: Engine) -> Counter[str]:
    c = kalshi_candle.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.event_ticker, func.count()).group_by(c.event_ticker)).all()
    return Counter({e: n for e, n in rows})


def test_sigkill_mid_load_then_rerun_equals_an_uninterrupted_load(
    mariadb_url: str, tmp_path: Path
) -> None:
    world = World(sim_config(markets_per_event=3))
    events = closed_events(world, "KXHIGHNY", 5) + closed_events(world, "KXHIGHCHI", 5)
    archive_dir = tmp_path / "raw"
    archive = new_archive(archive_dir)
    for i, e in enumerate(events):
        build_window(archive, world, e, retrieved_at=T0 + timedelta(minutes=i))
    per_event = Counter(k[0].rsplit("-", 1)[0] for k in ground_truth(world, events))

    engine = make_engine(mariadb_url)
    clean_name = new_database()
    clean_url = f"{MYSQL_SERVER_URL}/{clean_name}"
    try:
        proc = subprocess.Popen(
            _load(mariadb_url, archive_dir, "--batch-windows", "2"),
            cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        done = False
        while not done and time.monotonic() < deadline and proc.poll() is None:
            with engine.connect() as conn:
                done = any(cp.status is CheckpointStatus.SUCCESS for cp in list_checkpoints(conn))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, f"the load ended before the kill: {err!r}"
        assert done

        # Right after the kill: every SUCCESS has all its rows, no rows without a SUCCESS.
        with engine.connect() as conn:
            success = {
                cp.key.event_ticker: cp
                for cp in list_checkpoints(conn)
                if cp.status is CheckpointStatus.SUCCESS
            }
        counts = _event_counts(engine)
        assert 0 < len(success) < len(events)
        assert set(counts) == set(success)
        for event_ticker, cp in success.items():
            assert counts[event_ticker] == per_event[event_ticker] == cp.rows_loaded

        rerun = subprocess.run(
            _load(mariadb_url, archive_dir), cwd=REPO, env=_env(), capture_output=True, text=True
        )
        assert rerun.returncode == 0, rerun.stderr
        assert (
            f"{len(events) - len(success)} windows loaded, {len(success)} skipped" in rerun.stderr
        )

        clean_engine = make_engine(
            clean_url, local_infile=True
        )  # an uninterrupted load, in-process
        try:
            load_windows(LoadConfig(db_url=clean_url, archive_dir=archive_dir), engine=clean_engine)
            expected = full_rows(clean_engine)
        finally:
            clean_engine.dispose()
        assert len(expected) == sum(per_event.values())
        assert full_rows(engine) == expected
    finally:
        engine.dispose()
        drop_database(clean_name)


def test_writers_option_reaches_the_writer_pool(
    mariadb_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``--writers 1`` writes in the command's own thread; ``--writers 3`` on up to three
    ``load-write`` threads (the pool sized by it). Both load the simulator's truth."""
    world = World(sim_config(markets_per_event=2))
    events = closed_events(world, "KXHIGHNY", 6)
    archive_dir = tmp_path / "raw"
    archive = new_archive(archive_dir)
    for e in events:
        build_window(archive, world, e)
    truth = ground_truth(world, events)
    for writers, url in ((1, mariadb_url), (3, None)):
        name = None if url else new_database()
        db = url or f"{MYSQL_SERVER_URL}/{name}"
        caplog.clear()
        try:
            with caplog.at_level(logging.INFO, logger="load"):
                res = CliRunner().invoke(
                    cli,
                    ["run", "--db", db, "--archive", str(archive_dir), "--writers", str(writers)],
                )
            assert res.exit_code == 0, res.output
            threads = {r.threadName for r in caplog.records if r.getMessage().startswith("loaded ")}
            if writers == 1:
                assert threads == {"MainThread"}
            else:
                assert threads and all((t or "").startswith("load-write") for t in threads)
                assert len(threads) <= 3
            assert any(f"with {writers} writer" in r.getMessage() for r in caplog.records), (
                caplog.text
            )
            engine = make_engine(db)
            try:
                assert stored(engine) == truth
            finally:
                engine.dispose()
        finally:
            if name:
                drop_database(name)


def test_nothing_matching_exits_2_and_says_what_was_found(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.db'}"
    archive_dir = tmp_path / "raw"
    archive = new_archive(archive_dir)
    runner = CliRunner()
    res = runner.invoke(cli, ["run", "--db", db, "--archive", str(archive_dir)])
    assert res.exit_code == 2, res.output
    assert "no complete window" in res.output and "no complete window at all" in res.output

    # While an extractor is alive its windows are not complete YET: nothing left to load.
    engine = make_engine(db)
    with engine.begin() as conn:
        heartbeat(conn, "ext-1", KIND_EXTRACT, 60)
    res = runner.invoke(cli, ["run", "--db", db, "--archive", str(archive_dir)])
    assert res.exit_code == 0, res.output
    assert "1 extractor(s) alive: nothing to load yet" in res.output
    with engine.begin() as conn:
        unregister(conn, "ext-1")
    engine.dispose()

    world = World(sim_config(markets_per_event=2))
    events = closed_events(world, "KXHIGHNY", 2)
    for e in events:
        build_window(archive, world, e)
    args = ["run", "--db", db, "--archive", str(archive_dir)]
    res = runner.invoke(cli, [*args, "--series", "KXHIGHCHI"])
    assert res.exit_code == 2, res.output
    assert "of series KXHIGHCHI" in res.output and "KXHIGHNY (2)" in res.output

    # Nothing LEFT to load is not an error: every window SUCCESS already.
    assert runner.invoke(cli, args).exit_code == 0
    res = runner.invoke(cli, args)
    assert res.exit_code == 0 and "0 windows loaded, 2 skipped" in res.output
