"""Load throughput: the loader against the database's ceiling and against a plain script.

Four loads of the SAME rows into MariaDB, one after another in one run:

1. the loader (``load.run.loader.load_windows`` with the CLI's defaults), end to end: read the
   gzipped archive, normalize, compute stats, stage, upsert, checkpoints, commit;
2. ``LOAD DATA LOCAL INFILE`` of those rows, from a CSV written beforehand (not timed),
   into an empty copy of ``kalshi_candle`` (same keys and indexes), plus the commit;
3. ``executemany`` of ``INSERT ... ON DUPLICATE KEY UPDATE`` in batches, from Python
   tuples built beforehand (not timed), into another empty copy, plus the commit;
4. the loader again with every row already present (checkpoints set back to EXTRACTED).

Normalization alone is timed on the way: gunzip and ``load.normalize.pages.normalize_text``
over every window, exactly the loader's pure step, with the bytes already in memory. Its
CPU seconds per million rows are reported beside its wall time: on a shared machine the
CPU time of a step is what stays comparable between runs, the wall time is not.

Then, when dlt is installed, a dlt ``merge`` load of the same rows (:mod:`.dltbench`).

Where the time goes: during the loader run and the raw LOAD DATA, the CPU seconds of
this process (the loader runs in it), of the MariaDB server when it runs on this machine,
and how busy the whole machine was (every process, other sessions' included). A loader
whose CPU plus the server's fills the machine's cores is CPU-bound, not waiting.
"""

from __future__ import annotations

import gzip
import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.engine import make_url

from load.config import LoadConfig
from load.normalize.pages import RawPage, normalize_text
from load.run.loader import load_windows
from schemas.archive import open_archive
from schemas.core import CheckpointStatus
from schemas.db import make_engine, offer_local_file
from schemas.tables import (
    CANDLE_COLUMNS,
    CANDLE_KEY_COLUMNS,
    kalshi_backfill_checkpoint,
    kalshi_candle,
)
from tests.bench.config import BenchError
from tests.bench.dltbench import bench_dlt
from tests.bench.report import Results

REF_LOAD_DATA = "bench_ref_load_data"
REF_EXECUTEMANY = "bench_ref_executemany"
#: Rows per ``executemany`` call (PyMySQL turns each into multi-row INSERTs of ~1 MB).
EXECUTEMANY_BATCH = 10_000
_COLS = ", ".join(CANDLE_COLUMNS)


def normalize_archive(archive_dir: Path) -> tuple[pl.DataFrame, float, float, float]:
    """(every candle, seconds to gunzip + normalize, of which gunzip, CPU seconds of both).

    The files are read first, untimed: this measures the pure step, not the disk.
    """
    archive = open_archive(archive_dir)
    windows = []
    for rel in archive.iter_manifests():
        manifest = archive.read_manifest(rel)
        paths = [f"{manifest.key.dir}/{name}" for name in manifest.pages]
        windows.append((manifest.key, [(p, archive.read_bytes(p)) for p in paths]))
    if not windows:
        raise BenchError(f"no complete window in {archive_dir}")
    frames = []
    gunzip_s = 0.0
    started, cpu_started = time.perf_counter(), _own_cpu_s()
    for key, files in windows:
        t = time.perf_counter()
        pages = [RawPage(p, gzip.decompress(data)) for p, data in files]
        gunzip_s += time.perf_counter() - t
        frames.append(normalize_text(pages, key=key))
    elapsed, cpu_s = time.perf_counter() - started, _own_cpu_s() - cpu_started
    frame = pl.concat(frames)
    if frame.select(CANDLE_KEY_COLUMNS).is_duplicated().any():
        raise BenchError("the bench archive's windows overlap: references would differ")
    return frame, elapsed, gunzip_s, cpu_s


def db_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Each value as text MariaDB parses exactly (the loader's strings as they are, any
    decimals at their scale, UTC times)."""
    return frame.with_columns(
        pl.col("end_period_ts_utc").dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M:%S"),
        pl.col("retrieved_at_utc").dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M:%S%.6f"),
        pl.col(pl.Decimal).cast(pl.String),
    )


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", None)
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuUse:
    """CPU seconds spent while one step ran (see the module docstring)."""

    wall_s: float = 0.0
    own_s: float = 0.0
    server_s: float | None = None
    """The database server's, or None when it is not a process on this machine."""
    machine_busy: float = 0.0
    """Busy share of every core of the machine, 0 to 1."""


def server_pid(db_url: str) -> int | None:
    """The local MariaDB/MySQL server's pid (None if remote, not found, or several)."""
    if make_url(db_url).host not in _LOCAL_HOSTS:
        return None
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in ("mariadbd", "mysqld"):
                pids.append(int(comm.parent.name))
        except OSError:
            continue
    return pids[0] if len(pids) == 1 else None


def _proc_cpu_s(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of every core since boot."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks) - idle) / _TICK, sum(ticks) / _TICK


def _own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@contextmanager
def cpu_use(server: int | None) -> Iterator[CpuUse]:
    """Fills the yielded CpuUse when the block ends."""
    use = CpuUse()
    wall, own, srv, (busy, total) = (
        time.perf_counter(),
        _own_cpu_s(),
        _proc_cpu_s(server),
        _machine_cpu_s(),
    )
    yield use
    use.wall_s = time.perf_counter() - wall
    use.own_s = _own_cpu_s() - own
    srv_end = _proc_cpu_s(server)
    use.server_s = srv_end - srv if srv is not None and srv_end is not None else None
    busy_end, total_end = _machine_cpu_s()
    use.machine_busy = (busy_end - busy) / (total_end - total) if total_end > total else 0.0


def _timed_loader(db_url: str, archive_dir: Path, expected: int, what: str) -> float:
    """Seconds one loader run took; checks it loaded every row."""
    started = time.perf_counter()
    summary = load_windows(LoadConfig(db_url=db_url, archive_dir=archive_dir))
    elapsed = time.perf_counter() - started
    if summary.rows != expected or summary.windows_failed:
        raise BenchError(f"{what}: loaded {summary.rows} rows, expected {expected}")
    return elapsed


def _timed_load_data(engine: Engine, csv: Path) -> float:
    raw: Any = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"CREATE TABLE {REF_LOAD_DATA} LIKE {kalshi_candle.name}")
        raw.commit()
        started = time.perf_counter()
        with offer_local_file(raw, csv):
            cur.execute(
                f"LOAD DATA LOCAL INFILE %s INTO TABLE {REF_LOAD_DATA} CHARACTER SET utf8mb4 "
                "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' "
                f"LINES TERMINATED BY '\\n' ({_COLS})",
                (str(csv),),
            )
        raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()


def _timed_executemany(engine: Engine, rows: list[tuple[Any, ...]]) -> float:
    marks = ", ".join(["%s"] * len(CANDLE_COLUMNS))
    values = [c for c in CANDLE_COLUMNS if c not in CANDLE_KEY_COLUMNS]
    sql = (
        f"INSERT INTO {REF_EXECUTEMANY} ({_COLS}) VALUES ({marks}) ON DUPLICATE KEY UPDATE "
        + ", ".join(f"{c} = VALUES({c})" for c in values)
    )
    raw: Any = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"CREATE TABLE {REF_EXECUTEMANY} LIKE {kalshi_candle.name}")
        raw.commit()
        started = time.perf_counter()
        for i in range(0, len(rows), EXECUTEMANY_BATCH):
            cur.executemany(sql, rows[i : i + EXECUTEMANY_BATCH])
        raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()


def bench_load(
    archive_dir: Path, db_url: str, work: Path, results: Results, say: Callable[[str], None]
) -> None:
    """Normalization alone, then the four loads; adds the load.* and normalize.* metrics."""
    say("normalizing the archive (normalization alone) ...")
    frame, norm_s, gunzip_s, norm_cpu_s = normalize_archive(archive_dir)
    n = frame.height
    results.add("normalize.candles", "normalize", "candles normalized", n, "")
    results.add(
        "normalize.candles_per_s",
        "normalize",
        "gzipped pages → Polars frame (normalize_text)",
        n / norm_s,
        "candles/s",
        f"{norm_s:.1f} s, gunzip {100 * gunzip_s / norm_s:.0f}% of it",
    )
    results.add(
        "normalize.cpu_s_per_m_rows",
        "normalize",
        "CPU of gunzip + normalize_text per million candles",
        norm_cpu_s * 1e6 / n,
        "CPU-s",
        f"{norm_cpu_s:.1f} CPU-s in all",
    )

    # The references' inputs, prepared before any clock starts.
    csv = work / "candles.csv"
    as_text = db_text(frame)
    as_text.write_csv(
        csv, include_header=False, null_value="\\N", quote_style="necessary", line_terminator="\n"
    )
    rows: list[tuple[Any, ...]] = as_text.rows()
    del as_text

    engine = make_engine(db_url, local_infile=True)
    server = server_pid(db_url)
    try:
        say(f"loader: {n:,} rows from the gzipped archive ...")
        load_average = os.getloadavg()[0]
        with cpu_use(server) as loader_cpu:
            loader_s = _timed_loader(db_url, archive_dir, n, "loader")
        if _count(engine, kalshi_candle.name) != n:
            raise BenchError("the loader did not leave every row in kalshi_candle")

        say("reference: LOAD DATA LOCAL INFILE of the same rows ...")
        with cpu_use(server) as load_data_cpu:
            load_data_s = _timed_load_data(engine, csv)
        csv.unlink()
        say("reference: executemany INSERT ... ON DUPLICATE KEY UPDATE ...")
        executemany_s = _timed_executemany(engine, rows)
        del rows
        for table in (REF_LOAD_DATA, REF_EXECUTEMANY):
            if _count(engine, table) != n:
                raise BenchError(f"{table} does not hold the {n} rows after its load")

        say("loader again, every row already present ...")
        with engine.begin() as conn:
            conn.execute(
                update(kalshi_backfill_checkpoint).values(status=CheckpointStatus.EXTRACTED.value)
            )
        reload_s = _timed_loader(db_url, archive_dir, n, "second loader run")
        with engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(kalshi_candle)).scalar_one()
        if total != n:
            raise BenchError(f"the second load left {total} rows, not {n}")
        with engine.begin() as conn:
            for table in (REF_LOAD_DATA, REF_EXECUTEMANY):
                conn.execute(text(f"DROP TABLE {table}"))
    finally:
        engine.dispose()

    rate = {k: n / s for k, s in (("loader", loader_s), ("load_data", load_data_s))}
    rate["executemany"] = n / executemany_s
    rate["reload"] = n / reload_s
    results.add("load.rows", "load", "candle rows (MariaDB)", n, "rows")
    results.add(
        "load.loader_rows_per_s",
        "load",
        "loader, archive → MariaDB, empty table",
        rate["loader"],
        "rows/s",
        f"{loader_s:.1f} s",
    )
    if loader_cpu.server_s is not None and load_data_cpu.server_s is not None:
        server_note = (
            f"MariaDB {loader_cpu.server_s:.1f} s for stage + merge, "
            f"{load_data_cpu.server_s:.1f} s for the raw LOAD DATA"
        )
    else:
        server_note = "MariaDB's CPU not measured: not a process on this machine"
    results.add(
        "load.loader_cpu_s",
        "load",
        "loader's own CPU (read, normalize, CSV, driver)",
        loader_cpu.own_s,
        "s",
        f"in {loader_cpu.wall_s:.1f} s; {server_note}",
    )
    results.add(
        "load.loader_cpu_s_per_m_rows",
        "load",
        "loader's own CPU per million rows",
        loader_cpu.own_s * 1e6 / n,
        "CPU-s",
        (
            f"MariaDB {loader_cpu.server_s * 1e6 / n:.1f} CPU-s per million rows"
            if loader_cpu.server_s is not None
            else "MariaDB's CPU not measured"
        ),
    )
    results.add(
        "load.loader_machine_busy",
        "load",
        "machine CPU busy during the loader (every process)",
        100 * loader_cpu.machine_busy,
        "%",
        f"{100 * load_data_cpu.machine_busy:.0f}% during the raw LOAD DATA",
    )
    results.add(
        "load.load_data_rows_per_s",
        "load",
        "raw LOAD DATA LOCAL INFILE + commit",
        rate["load_data"],
        "rows/s",
        f"{load_data_s:.1f} s",
    )
    results.add(
        "load.executemany_rows_per_s",
        "load",
        f"executemany upsert, {EXECUTEMANY_BATCH:,}-row batches",
        rate["executemany"],
        "rows/s",
        f"{executemany_s:.1f} s",
    )
    results.add(
        "load.reload_rows_per_s",
        "load",
        "loader again, every row present",
        rate["reload"],
        "rows/s",
        f"{reload_s:.1f} s",
    )
    results.add(
        "load.loader_vs_load_data",
        "load",
        "loader ÷ LOAD DATA",
        rate["loader"] / rate["load_data"],
        "×",
        f"load average {load_average:.1f} when the loader started ({os.cpu_count()} cores)",
    )
    results.add(
        "load.loader_vs_executemany",
        "load",
        "loader ÷ executemany",
        rate["loader"] / rate["executemany"],
        "×",
    )
    results.add(
        "load.reload_vs_load_data",
        "load",
        "second load ÷ LOAD DATA",
        rate["reload"] / rate["load_data"],
        "×",
    )
    bench_dlt(frame, db_url, rate["loader"], results, say)
