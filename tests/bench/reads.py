"""Reads at scale: ``status``, ``export``, ``grid`` and ``coverage`` on a database of about
ten million candles (a year of two series, 6-market events: :mod:`tests.bench.readsdb`).

Every command runs as a fresh child (``python -m load ...``, through the peak-RSS
launcher), as a user runs it; the ratios compare figures of the same run:

- ``status`` on the large database against ``status`` on a small one (~100,000 rows):
  it reads per-window records, so its time must not grow with the candles (≤ 1.5 ×);
- ``export`` of the last month of one series against the database's own client dumping
  the same rows the same way (``mariadb --batch``, one SELECT per event through the key
  range, as export reads them): ≥ 0.5 × its speed;
- ``grid`` of one series over the whole range against ``export`` of the same range: the
  grid holds every minute, yet takes ≤ 2 × the time;
- peak RSS of ``grid`` and ``coverage`` over the long range against the short one
  (≤ 1.2 ×), and under 300 MB.

Each timing is the median of :data:`RUNS` runs (``status``: :data:`STATUS_RUNS`, the
two databases in turn; one run for the long ones).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.bench.config import BenchConfig, BenchError, days_back
from tests.bench.procs import ChildRun, run_child
from tests.bench.readsdb import ReadsDb, drop_reads_db, reads_db
from tests.bench.report import Results
from tests.kalshi_sim.model import event_ticker_for

RUNS = 3
#: status is about a second, mostly start-up: more runs for a steadier median.
STATUS_RUNS = 7
#: Days of the small database status is compared with (~100,000 rows: 2 series, 4 days).
SMALL_DAYS = 4


def _child(config: BenchConfig, name: str, args: list[str], db: ReadsDb) -> ChildRun:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return run_child(
        ["load", *args, "--db", db.url], env=env, log=config.out_dir / "logs" / f"reads-{name}.log"
    )


def _median(runs: list[ChildRun]) -> float:
    return statistics.median(r.elapsed_s for r in runs)


def _raw_dump(db: ReadsDb, series: str, first: date, last: date, out: Path) -> float:
    """Seconds for ``mariadb --batch`` to write the candles of the series' events dated in
    [first, last] to ``out``: one SELECT per event through the market-key range."""
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        raise BenchError("the reads step needs the mariadb (or mysql) command-line client")
    url = make_url(db.url)
    days = (last - first).days + 1
    sql = "".join(
        f"SELECT * FROM kalshi_candle WHERE market_ticker LIKE '{ev}-%' "
        f"AND event_ticker = '{ev}' AND period_interval_minutes = 1 "
        "ORDER BY market_ticker, end_period_ts_utc;\n"
        for ev in (
            event_ticker_for(series, date.fromordinal(first.toordinal() + i)) for i in range(days)
        )
    )
    argv = [client, "--batch", "-h", url.host or "127.0.0.1", "-P", str(url.port or 3306)]
    argv += ["-u", url.username or "root", url.database or ""]
    env = {**os.environ, **({"MYSQL_PWD": str(url.password)} if url.password else {})}
    started = time.perf_counter()
    with out.open("wb") as fh:
        done = subprocess.run(argv, input=sql.encode(), stdout=fh, env=env, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"{client} --batch exited {done.returncode}")
    return elapsed


def _rows_written(run: ChildRun) -> int:
    """The rows an export or grid child reported on its last line (``N files, M rows``)."""
    for line in reversed(run.log.read_text(errors="replace").splitlines()):
        if line.endswith(" rows") and " files, " in line:
            return int(line.rsplit(" ", 2)[1])
    raise BenchError(f"no 'N files, M rows' line in {run.log}")


def bench_reads(config: BenchConfig, results: Results, say: Callable[[str], None]) -> None:
    """Adds the reads.* metrics."""
    sizes = config.sizes
    large = reads_db(config, sizes.reads_days, say)
    small = reads_db(config, min(SMALL_DAYS, sizes.reads_days), say)
    try:
        _measure(config, large, small, results, say)
    finally:
        if not config.keep_reads_db:
            for db in {large.url: large, small.url: small}.values():
                drop_reads_db(config, db)


def _measure(
    config: BenchConfig,
    large: ReadsDb,
    small: ReadsDb,
    results: Results,
    say: Callable[[str], None],
) -> None:
    sizes = config.sizes
    series = large.series[0]
    long_first, last = days_back(sizes.reads_days)
    short_first, _ = days_back(sizes.reads_short_days)
    results.notes.append(
        f"Reads database: {large.rows:,} candles, {large.events} events of "
        f"{', '.join(large.series)} ({'reused' if large.reused else 'built by this run'}); "
        f"the small one {small.rows:,} candles."
    )
    say(f"reads: status on {small.rows:,} then {large.rows:,} rows ...")
    # Interleaved, so a change in the machine's load between them does not decide the
    # ratio: both are mostly start-up, which a busy machine stretches.
    runs: dict[str, list[ChildRun]] = {"small": [], "large": []}
    for _ in range(STATUS_RUNS):
        for label, db in (("small", small), ("large", large)):
            runs[label].append(_child(config, f"status-{label}", ["status"], db))
    status_small, status_large = _median(runs["small"]), _median(runs["large"])
    results.add("reads.rows", "reads", "candles in the reads database", large.rows, "")
    results.add("reads.status_small_s", "reads", f"status, {small.rows:,} rows", status_small, "s")
    results.add("reads.status_large_s", "reads", f"status, {large.rows:,} rows", status_large, "s")
    results.add(
        "reads.status_large_vs_small",
        "reads",
        "status: large ÷ small",
        status_large / status_small,
        "×",
    )

    with tempfile.TemporaryDirectory(prefix="kalshi-bench-reads-") as tmp:
        work = Path(tmp)
        say(f"reads: export of {sizes.reads_short_days} days of {series}, and mariadb --batch")
        month = ["--series", series, "--from", str(short_first), "--to", str(last)]
        exports, dumps = [], []
        for i in range(RUNS):
            exports.append(
                _child(
                    config, "export-month", ["export", *month, "--out", str(work / f"m{i}")], large
                )
            )
            dumps.append(_raw_dump(large, series, short_first, last, work / f"dump{i}.tsv"))
            shutil.rmtree(work / f"m{i}")
        export_rows = _rows_written(exports[0])
        export_s, dump_s = _median(exports), statistics.median(dumps)
        results.add(
            "reads.export_rows",
            "reads",
            f"export, {sizes.reads_short_days} days of {series}",
            export_rows,
            "rows",
        )
        results.add("reads.export_rows_per_s", "reads", "export", export_rows / export_s, "rows/s")
        results.add(
            "reads.raw_dump_rows_per_s",
            "reads",
            "mariadb --batch, same rows",
            export_rows / dump_s,
            "rows/s",
        )
        results.add(
            "reads.export_vs_raw_dump",
            "reads",
            "export ÷ raw client dump (speed)",
            dump_s / export_s,
            "×",
        )

        say(f"reads: export and grid of {sizes.reads_days} days of {series} ...")
        year = ["--series", series, "--from", str(long_first), "--to", str(last)]
        export_year = _child(
            config, "export-year", ["export", *year, "--out", str(work / "ey")], large
        )
        grid_long = _child(config, "grid-long", ["grid", *year, "--out", str(work / "gy")], large)
        shutil.rmtree(work / "ey")
        shutil.rmtree(work / "gy")
        short = ["--series", series, "--from", str(short_first), "--to", str(last)]
        grid_short = _child(
            config, "grid-short", ["grid", *short, "--out", str(work / "gm")], large
        )
        results.add(
            "reads.export_long_s",
            "reads",
            f"export, {sizes.reads_days} days of {series}",
            export_year.elapsed_s,
            "s",
        )
        results.add(
            "reads.grid_long_s",
            "reads",
            f"grid, {sizes.reads_days} days of {series}",
            grid_long.elapsed_s,
            "s",
        )
        results.add(
            "reads.grid_vs_export",
            "reads",
            "grid ÷ export, same range (time)",
            grid_long.elapsed_s / export_year.elapsed_s,
            "×",
        )

        say(f"reads: coverage of {series} over the short and the long range ...")
        cov = {}
        for label, first in (("short", short_first), ("long", long_first)):
            args = ["coverage", "--series", series, "--from", str(first), "--to", str(last)]
            cov[label] = _child(
                config, f"coverage-{label}", [*args, "--out", str(work / f"c-{label}.png")], large
            )
        results.add(
            "reads.coverage_long_s",
            "reads",
            f"coverage, {sizes.reads_days} days of {series}",
            cov["long"].elapsed_s,
            "s",
        )
    span = {"short": sizes.reads_short_days, "long": sizes.reads_days}
    for what, runs in (("grid", {"short": grid_short, "long": grid_long}), ("coverage", cov)):
        for label in ("short", "long"):
            results.add(
                f"reads.{what}_{label}_mb",
                "reads",
                f"peak RSS, {what}, {span[label]} day(s)",
                runs[label].max_rss_mb,
                "MB",
            )
        results.add(
            f"reads.{what}_long_vs_short",
            "reads",
            f"{what}: {span['long']} ÷ {span['short']} day(s) (peak RSS)",
            runs["long"].max_rss_mb / runs["short"].max_rss_mb,
            "×",
        )
