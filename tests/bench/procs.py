"""Running the project's own commands as child processes, and syncing events in-process.

Each stage runs as ``python -m extract ...`` / ``python -m load ...``, exactly what a user
runs, in a FRESH child started by a small launcher (:mod:`tests.bench.peak_rss`) that
reports that one child's peak RSS and CPU time. The simulator serves from a thread of the
bench process, never from the measured child, so it never counts.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from extract.config import ApiConfig, ExtractConfig, RateLimit
from extract.events.sync import sync_events
from tests.bench.config import BenchError

#: Where ``python -m tests.bench.peak_rss`` resolves, whatever the bench's working folder.
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ChildRun:
    """What one child process cost."""

    elapsed_s: float
    cpu_s: float
    max_rss_mb: float
    log: Path


def run_child(args: Sequence[str], *, env: dict[str, str], log: Path) -> ChildRun:
    """``python -m <args>``, output to ``log``; BenchError with the log's tail if it fails.

    Goes through :mod:`tests.bench.peak_rss`, so the peak RSS is the command's own.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    usage_file = log.with_suffix(".rusage.json")
    usage_file.unlink(missing_ok=True)
    launcher = [sys.executable, "-m", "tests.bench.peak_rss", str(usage_file), "--"]
    started = time.perf_counter()
    with log.open("wb") as out:
        code = subprocess.call(
            [*launcher, sys.executable, "-m", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
    elapsed = time.perf_counter() - started
    if code != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        raise BenchError(f"`python -m {' '.join(args)}` exited {code}; {log}:\n" + "\n".join(tail))
    usage = json.loads(usage_file.read_text())
    usage_file.unlink()
    # Linux reports ru_maxrss in KiB.
    return ChildRun(elapsed, float(usage["cpu_s"]), usage["max_rss_kib"] / 1024, log)


def stage_env(*, api_base: str, db_url: str, archive: Path) -> dict[str, str]:
    """The environment both stages read their settings from (no key: unsigned requests)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KALSHI_API_KEY_ID", "KALSHI_PRIVATE_KEY_PATH")
    }
    env.update(KALSHI_API_BASE=api_base, DATABASE_URL=db_url, KALSHI_ARCHIVE_DIR=str(archive))
    return env


def extract_candles_args(
    series: str, first: object, last: object, rps: float, route: str = "event"
) -> list[str]:
    """``extract candles`` for a series (or several, comma-separated) and an event-date
    range at ``rps`` (default concurrency).

    On the event route by default: the follow run's small event cap is what makes its
    many requests, and the load archive is made of event pages; the extract step takes
    ``auto`` (batch pages for live events, historical pages for the old ones).
    """
    return [
        "extract",
        "candles",
        "--series",
        series,
        "--from",
        str(first),
        "--to",
        str(last),
        "--rps",
        f"{rps:g}",
        "--route",
        route,
    ]


def sync_series(series: str, *, api_base: str, db_url: str) -> int:
    """``extract events`` in-process (a few requests): the events the candles run plans.
    ``series`` is one ticker or several, comma-separated (as ``--series`` takes them)."""
    config = ExtractConfig(
        series=tuple(series.split(",")),
        db_url=db_url,
        api=ApiConfig(base_url=api_base, rate=RateLimit(50, 1.0)),
    )
    return asyncio.run(sync_events(config)).events
