"""End-to-end time of a backfill: extract + ``load run --follow`` ÷ extract alone.

The same extraction as the extract-rate run (the throttled simulator at the key's budget)
runs twice from an empty archive and empty tables: once alone, once with a loader
following it (``make backfill``). The second time counts until BOTH children have
ended, so it includes loading the last window and the loader noticing that extract is
done. Target: at most 1.10, i.e. loading costs the backfill almost no wall time.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import delete

from schemas.db import make_engine
from schemas.tables import kalshi_backfill_checkpoint, kalshi_candle, kalshi_window_stats
from tests.bench.config import (
    RATE_BUDGET_RPS,
    RATE_SERIES,
    BenchConfig,
    BenchError,
    days_back,
    rate_world,
)
from tests.bench.procs import REPO_ROOT, extract_candles_args, run_child, stage_env, sync_series
from tests.bench.report import Results
from tests.kalshi_sim import run_sim_in_thread

TARGET_RATIO = 1.10  # the same as the follow.ratio Target in tests/bench/report.py


def _empty_tables(db_url: str) -> None:
    """Forget the previous run's windows (events and markets stay: they are the plan)."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            for table in (kalshi_candle, kalshi_window_stats, kalshi_backfill_checkpoint):
                conn.execute(delete(table))
    finally:
        engine.dispose()


def bench_follow(
    config: BenchConfig, db_url: str, results: Results, say: Callable[[str], None]
) -> None:
    """Adds follow.extract_alone_s, follow.end_to_end_s and follow.ratio."""
    first, last = days_back(config.sizes.rate_days)
    logs = config.out_dir / "logs"
    extract_args = extract_candles_args(RATE_SERIES, first, last, RATE_BUDGET_RPS)
    with (
        tempfile.TemporaryDirectory(prefix="kalshi-bench-follow-") as tmp,
        run_sim_in_thread(rate_world(config.sizes)) as sim,
    ):
        sync_series(RATE_SERIES, api_base=sim.base_url, db_url=db_url)
        _empty_tables(db_url)
        sim.reset()
        say(f"extract alone, then extract + load --follow ({config.sizes.rate_days} events) ...")
        env = stage_env(api_base=sim.base_url, db_url=db_url, archive=Path(tmp) / "alone")
        alone = run_child(extract_args, env=env, log=logs / "follow-extract-alone.log").elapsed_s

        _empty_tables(db_url)
        sim.reset()
        env = stage_env(api_base=sim.base_url, db_url=db_url, archive=Path(tmp) / "follow")
        loader_log = logs / "follow-loader.log"
        started = time.perf_counter()
        with loader_log.open("wb") as out:
            loader = subprocess.Popen(
                [sys.executable, "-m", "load", "run", "--follow", "--idle-exit", "300"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
            try:
                run_child(extract_args, env=env, log=logs / "follow-extract.log")
                code = loader.wait(timeout=600)
            finally:
                if loader.poll() is None:
                    loader.kill()
        both = time.perf_counter() - started
    if code != 0:
        raise BenchError(f"load run --follow exited {code}; see {loader_log}")
    results.add("follow.extract_alone_s", "follow", "extract alone", alone, "s")
    results.add("follow.end_to_end_s", "follow", "extract + load --follow, both ended", both, "s")
    results.add(
        "follow.ratio",
        "follow",
        "end to end ÷ extract alone",
        both / alone,
        "×",
        f"target <= {TARGET_RATIO:.2f}",
    )
