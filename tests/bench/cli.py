"""``python -m tests.bench [--quick] [--db URL] [--out DIR] [size overrides]``.

Runs every step in a fixed order (load and normalization, extract rate, memory), writes
``results.json`` and ``results.md`` under ``--out`` and prints the Markdown table. The exit
code is 0 when the bench ran, whatever the targets say: a MISS is a finding, not a crash.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from schemas.errors import KalshiBackfillError
from tests.bench.config import (
    DEFAULT_OUT_DIR,
    PRESETS,
    BenchConfig,
    BenchError,
    env_db_url,
    with_overrides,
)
from tests.bench.database import bench_database
from tests.bench.dataset import load_archive
from tests.bench.extractbench import bench_extract_rate
from tests.bench.follow import bench_follow
from tests.bench.loadbench import bench_load
from tests.bench.memory import bench_memory
from tests.bench.reads import bench_reads
from tests.bench.report import Results, machine_info, to_json, versions, write
from tests.bench.requests import bench_requests
from tests.bench.seriesbench import bench_series
from tests.bench.startup import bench_startup


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller sizes (about 2 minutes)")
    p.add_argument(
        "--db",
        default=env_db_url(),
        help="MariaDB URL of the bench's own database, DROPPED and recreated; its name "
        "must contain 'bench' (default: $BENCH_DATABASE_URL or %(default)s)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help="results and cached archives")
    p.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    p.add_argument(
        "--drop-reads-db",
        action="store_true",
        help="drop the reads database at the end instead of keeping it for the next run",
    )
    sizes = p.add_argument_group("size overrides (default: the preset's)")
    sizes.add_argument(
        "--load-events", type=int, help="events in the load archive (~13k rows each)"
    )
    sizes.add_argument("--rate-days", type=int, help="events fetched by the follow step")
    sizes.add_argument("--page-days", type=int, help="events of the extract step (full pages)")
    sizes.add_argument("--rate-warmup", type=float, help="seconds before the rate is 'steady'")
    sizes.add_argument("--mem-days", type=int, nargs=2, metavar=("SHORT", "LONG"))
    sizes.add_argument("--mem-markets", type=int, help="markets per event of the memory runs")
    sizes.add_argument("--requests-days", type=int, help="events of the requests-vs-floor run")
    sizes.add_argument("--series-days", type=int, help="days of the five-series rate run")
    sizes.add_argument(
        "--reads-days", type=int, nargs=2, metavar=("SHORT", "LONG"), help="read ranges (days)"
    )
    return p


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    mode = "quick" if args.quick else "full"
    short, long = args.mem_days if args.mem_days else (None, None)
    reads_short, reads_long = args.reads_days if args.reads_days else (None, None)
    sizes = with_overrides(
        PRESETS[mode],
        load_events=args.load_events,
        rate_days=args.rate_days,
        page_days=args.page_days,
        rate_warmup_s=args.rate_warmup,
        mem_short_days=short,
        mem_long_days=long,
        mem_markets=args.mem_markets,
        requests_days=args.requests_days,
        series_days=args.series_days,
        reads_short_days=reads_short,
        reads_days=reads_long,
    )
    if sizes != PRESETS[mode]:
        mode += " (custom sizes)"
    return BenchConfig(
        mode=mode,
        sizes=sizes,
        db_url=args.db,
        out_dir=args.out.resolve(),
        keep_reads_db=not args.drop_reads_db,
    )


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(config: BenchConfig, *, keep_db: bool = False) -> str:
    """Every step; returns the Markdown written to ``results.md``."""
    results = Results(mode=config.mode, sizes=asdict(config.sizes))
    config.out_dir.mkdir(parents=True, exist_ok=True)
    archive, reused = load_archive(config, say)
    results.notes.append(
        f"Load archive {archive.name}: made by the simulator and the real extractor "
        f"({'cached by an earlier run' if reused else 'built by this run'}). "
        f"Memory runs use {config.sizes.mem_markets}-market events; "
        "the extract step full pages (batch requests of 10,000 requested candles, "
        "historical pages of ~2,200), the follow step a 1,000-candle cap (~14 pages an "
        "event). "
        f"Child logs: {config.out_dir / 'logs'}."
    )
    with (
        bench_database(config, keep=keep_db) as db_version,
        tempfile.TemporaryDirectory(prefix="kalshi-bench-") as work,
    ):
        try:
            bench_load(archive, config.db_url, Path(work), results, say)
            bench_extract_rate(config, config.db_url, results, say)
            bench_follow(config, config.db_url, results, say)
            bench_memory(config, config.db_url, results, say)
            bench_requests(config.sizes.requests_days, results, say)
            bench_series(config, results, say)
            bench_startup(archive, config.db_url, results, say)
            bench_reads(config, results, say)
        except (BenchError, KalshiBackfillError) as e:
            # Keep what was measured (a shared MariaDB may be restarted under us), but
            # never over the last complete results.
            results.notes.append(f"INCOMPLETE: a step failed, later metrics are missing: {e}")
            doc = to_json(results, machine_info(), versions(db_version))
            _, md_path, _ = write(config.out_dir, doc, stem="results-incomplete")
            raise BenchError(f"{e}\n(metrics measured before it: {md_path})") from e
    doc = to_json(results, machine_info(), versions(db_version))
    json_path, md_path, markdown = write(config.out_dir, doc)
    for stale in config.out_dir.glob("results-incomplete.*"):
        stale.unlink()
    say(f"wrote {md_path} and {json_path}")
    return markdown


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
        markdown = run(config, keep_db=args.keep_db)
    except BenchError as e:
        print(f"bench failed: {e}", file=sys.stderr)
        return 1
    print(markdown)
    return 0
