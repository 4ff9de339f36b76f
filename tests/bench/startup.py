"""Start-up: what a command costs before it does anything, against a small load's time.

Each tool's ``--version`` and ``-h``, and ``load run`` on an archive holding no window,
run as the user runs them (the console scripts of this venv), five times each; the
median is reported. ``load run`` of about 190,000 rows (the first events of the load
archive, copied into a folder of their own) is timed the same way, as one command, so
the share of its wall time that start-up takes is measured, not estimated. Target:
``--version`` at most 0.25 s (issue 19: it was 0.83-0.89 s when every command imported
every library).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import delete, func, select

from schemas.archive import ROOT_FILE
from schemas.db import make_engine
from schemas.tables import kalshi_backfill_checkpoint, kalshi_candle, kalshi_window_stats
from tests.bench.config import LOAD_SERIES, BenchError
from tests.bench.report import Results

RUNS = 5
#: Rows of the "small load" whose wall time start-up is compared with (issue 19's figure).
SMALL_LOAD_ROWS = 190_000
#: Candles in one event of the load archive (6 markets x ~38 h); the copy takes enough
#: events for SMALL_LOAD_ROWS, and the rows actually loaded are counted.
ROWS_PER_EVENT = 13_000


def _script(name: str) -> str:
    """The console script of the venv running the bench (``kalshi-load``...)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise BenchError(f"{path} is missing: run `make install`")
    return str(path)


def _median_wall(argv: Sequence[str], ok: tuple[int, ...] = (0,)) -> float:
    """Median wall time of ``argv`` over RUNS runs; BenchError on an unexpected exit."""
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode not in ok:
            raise BenchError(f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr[-500:]}")
    return statistics.median(times)


def _small_archive(archive: Path, dest: Path) -> int:
    """Copy enough events of the load archive for SMALL_LOAD_ROWS into ``dest`` (all of
    them when it holds fewer: the rows loaded are counted and shown either way)."""
    events = sorted(p for p in (archive / LOAD_SERIES).iterdir() if p.is_dir())
    wanted = min(len(events), -(-SMALL_LOAD_ROWS // ROWS_PER_EVENT))
    if wanted == 0:
        raise BenchError(f"the load archive {archive} holds no event")
    dest.mkdir(parents=True)
    shutil.copy2(archive / ROOT_FILE, dest / ROOT_FILE)
    for event in events[:wanted]:
        shutil.copytree(event, dest / LOAD_SERIES / event.name)
    return wanted


def _empty_tables(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            for table in (kalshi_candle, kalshi_window_stats, kalshi_backfill_checkpoint):
                conn.execute(delete(table))
    finally:
        engine.dispose()


def _rows(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(kalshi_candle)).scalar_one())
    finally:
        engine.dispose()


def bench_startup(archive: Path, db_url: str, results: Results, say: Callable[[str], None]) -> None:
    """Adds the startup.* metrics."""
    extract, load = _script("kalshi-extract"), _script("kalshi-load")
    say(f"start-up: --version and -h of both tools, median of {RUNS} ...")
    for key, argv in (
        ("startup.extract_version_s", [extract, "--version"]),
        ("startup.load_version_s", [load, "--version"]),
        ("startup.extract_help_s", [extract, "-h"]),
        ("startup.load_help_s", [load, "-h"]),
    ):
        shown = " ".join([Path(argv[0]).name, *argv[1:]])
        results.add(key, "startup", f"`{shown}`", _median_wall(argv), "s", f"median of {RUNS}")

    with tempfile.TemporaryDirectory(prefix="kalshi-bench-startup-") as tmp:
        empty = Path(tmp) / "empty"
        empty.mkdir()
        shutil.copy2(archive / ROOT_FILE, empty / ROOT_FILE)
        say("start-up: load run on an archive holding no window ...")
        # Exit 2: "no complete window" (nothing to load, no extractor alive), by design.
        run_empty = [load, "--no-bar", "run", "--db", db_url, "--archive", str(empty)]
        empty_s = _median_wall(run_empty, ok=(2,))
        results.add(
            "startup.load_run_empty_s",
            "startup",
            "`kalshi-load run` on an archive holding no window",
            empty_s,
            "s",
            f"median of {RUNS}; opens the database and checks its schema",
        )

        small = Path(tmp) / "small"
        n_events = _small_archive(archive, small)
        times, rows = [], 0
        say(f"start-up: load run of {n_events} events (~{SMALL_LOAD_ROWS:,} rows), 3 times ...")
        for _ in range(3):
            _empty_tables(db_url)
            started = time.perf_counter()
            subprocess.run(
                [load, "--no-bar", "run", "--db", db_url, "--archive", str(small)],
                capture_output=True,
                check=True,
            )
            times.append(time.perf_counter() - started)
            rows = _rows(db_url)
        small_s = statistics.median(times)
        _empty_tables(db_url)
    results.add(
        "startup.small_load_s",
        "startup",
        f"`kalshi-load run` of {rows:,} rows ({n_events} events)",
        small_s,
        "s",
        "median of 3, the whole command",
    )
    results.add(
        "startup.version_share_of_small_load",
        "startup",
        "`kalshi-load --version` ÷ that load",
        results.value("startup.load_version_s") / small_s,
        "",
    )
    results.add(
        "startup.empty_run_share_of_small_load",
        "startup",
        "`load run` with nothing to load ÷ that load",
        empty_s / small_s,
        "",
    )
