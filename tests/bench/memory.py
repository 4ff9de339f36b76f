"""Peak memory of each stage's command for a short and a long range of one series.

Each run is a fresh child (``python -m extract candles`` then ``python -m load run``) with
the same settings; only the range differs. Its peak RSS comes from ``os.wait4`` on that
child alone. The simulator serves from a thread of the bench process, not the child.
Both ranges share one database, so the series' checkpoints are cleared before each range
(otherwise the long range would skip the windows the short one loaded).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete

from schemas.db import make_engine
from schemas.tables import kalshi_backfill_checkpoint
from tests.bench.config import (
    BULK_RPS,
    LAST_EVENT_DAY,
    MEMORY_SERIES,
    BenchConfig,
    memory_world,
)
from tests.bench.procs import ChildRun, extract_candles_args, run_child, stage_env, sync_series
from tests.bench.report import Results
from tests.kalshi_sim import run_sim_in_thread


def _clear_checkpoints(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                delete(kalshi_backfill_checkpoint).where(
                    kalshi_backfill_checkpoint.c.series_ticker == MEMORY_SERIES
                )
            )
    finally:
        engine.dispose()


def bench_memory(
    config: BenchConfig, db_url: str, results: Results, say: Callable[[str], None]
) -> None:
    """Adds the memory.* metrics."""
    sizes = config.sizes
    runs: dict[tuple[str, str], ChildRun] = {}
    logs = config.out_dir / "logs"
    with (
        tempfile.TemporaryDirectory(prefix="kalshi-bench-mem-") as tmp,
        run_sim_in_thread(memory_world(sizes)) as sim,
    ):
        sync_series(MEMORY_SERIES, api_base=sim.base_url, db_url=db_url)
        for label, days in (("short", sizes.mem_short_days), ("long", sizes.mem_long_days)):
            _clear_checkpoints(db_url)
            archive = Path(tmp) / f"raw-{label}"
            env = stage_env(api_base=sim.base_url, db_url=db_url, archive=archive)
            first = LAST_EVENT_DAY - timedelta(days=days - 1)
            say(f"memory: extract then load {days} day(s) of {MEMORY_SERIES} ...")
            runs["extract", label] = run_child(
                extract_candles_args(MEMORY_SERIES, first, LAST_EVENT_DAY, BULK_RPS),
                env=env,
                log=logs / f"memory-extract-{label}.log",
            )
            runs["load", label] = run_child(
                ["load", "run", "--series", MEMORY_SERIES],
                env=env,
                log=logs / f"memory-load-{label}.log",
            )
    span = {"short": sizes.mem_short_days, "long": sizes.mem_long_days}
    for stage in ("extract", "load"):
        for label in ("short", "long"):
            run = runs[stage, label]
            results.add(
                f"memory.{stage}_{label}_mb",
                "memory",
                f"peak RSS, {stage}, {span[label]} day(s)",
                run.max_rss_mb,
                "MB",
                f"{run.elapsed_s:.0f} s",
            )
        results.add(
            f"memory.{stage}_long_vs_short",
            "memory",
            f"{stage}: {span['long']} ÷ {span['short']} day(s)",
            runs[stage, "long"].max_rss_mb / runs[stage, "short"].max_rss_mb,
            "×",
        )
