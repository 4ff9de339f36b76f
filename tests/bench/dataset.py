"""The load archive: built once by the simulator and the real extractor, then reused.

Built in ``archive-<hash>.partial/`` and renamed to ``archive-<hash>/`` only when the
extractor finished, so a bench killed while building never leaves a half archive that a
later run would mistake for a complete one.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.bench.config import (
    BULK_RPS,
    LOAD_SERIES,
    BenchConfig,
    archive_hash,
    days_back,
    load_world,
)
from tests.bench.procs import extract_candles_args, run_child, stage_env, sync_series
from tests.kalshi_sim import run_sim_in_thread


def load_archive(config: BenchConfig, say: Callable[[str], None]) -> tuple[Path, bool]:
    """(the archive root, True if it was reused from an earlier run)."""
    world = load_world(config.sizes)
    final = config.out_dir / f"archive-{archive_hash(world)}"
    if (final / "archive.json").is_file():
        return final, True
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    first, last = days_back(config.sizes.load_events)
    say(f"building the load archive ({config.sizes.load_events} events) in {final} ...")
    with tempfile.TemporaryDirectory(prefix="kalshi-bench-build-") as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'extract.db'}"
        with run_sim_in_thread(world) as sim:
            sync_series(LOAD_SERIES, api_base=sim.base_url, db_url=db_url)
            run_child(
                extract_candles_args(LOAD_SERIES, first, last, BULK_RPS),
                env=stage_env(api_base=sim.base_url, db_url=db_url, archive=partial),
                log=config.out_dir / "logs" / "build-archive.log",
            )
    partial.rename(final)
    return final, False
