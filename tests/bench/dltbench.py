"""The loader against dlt, the tool a data engineer would otherwise pick (optional step).

dlt's ``sqlalchemy`` destination loads the SAME normalized rows (handed over as an Arrow
table, so dlt does not parse the archive's JSON at all) into the same MariaDB with
``write_disposition="merge"`` on the candle key: dlt's own extract, normalize and
delete-insert merge through a staging dataset, each dataset being a MariaDB database of
its own (``<bench db>_dlt`` and ``<bench db>_dlt_staging``, dropped before and after).
The table is dlt's own (dlt creates it from the Arrow schema), as a user of dlt gets it.

dlt is given at most the first :data:`DLT_ROWS` rows: it inserts about 7 times slower than
the loader here (850 rows/s against 5,600 on 206k rows with the machine busy), so the
whole million would take the bench 20 minutes. Its fixed cost (about 5 s) is then a larger
share of its time, which makes the ratio slightly kinder to the loader, not more.

dlt is NOT a dependency of the project: without it installed this step is skipped with a
note in the results (``pip install "dlt[sqlalchemy]"`` to run it).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
import warnings
from collections.abc import Callable

import polars as pl
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from schemas.db import make_engine
from schemas.tables import CANDLE_KEY_COLUMNS, kalshi_candle
from tests.bench.config import BenchError
from tests.bench.report import Results

#: Rows dlt loads (the first ones of the frame); see the module docstring.
DLT_ROWS = 200_000


def dlt_installed() -> bool:
    return importlib.util.find_spec("dlt") is not None


def bench_dlt(
    frame: pl.DataFrame,
    db_url: str,
    loader_rows_per_s: float,
    results: Results,
    say: Callable[[str], None],
) -> None:
    """Times a dlt merge load of ``frame``; adds the load.*dlt* metrics, or a note."""
    if not dlt_installed():
        results.notes.append(
            "dlt comparison skipped: dlt is not installed (it is a bench-only comparison, "
            'not a project dependency: `.venv/bin/pip install "dlt[sqlalchemy]"` to run it).'
        )
        return
    # Before dlt is imported: no telemetry (no network here) and no log lines of its own.
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    import dlt

    dataset = f"{make_url(db_url).database}_dlt"
    engine = make_engine(db_url)
    frame = frame.head(DLT_ROWS)
    n = frame.height
    try:
        _drop_datasets(engine, dataset)
        say(f"dlt: merge load of the same {n:,} rows (sqlalchemy destination) ...")
        table = frame.to_arrow()
        with tempfile.TemporaryDirectory(prefix="kalshi-bench-dlt-") as pipelines_dir:
            pipeline = dlt.pipeline(
                pipeline_name="kalshi_bench_dlt",
                pipelines_dir=pipelines_dir,
                destination=dlt.destinations.sqlalchemy(credentials=db_url),
                dataset_name=dataset,
            )
            with warnings.catch_warnings():
                # dlt's merge job trips a SQLAlchemy deprecation warning: not ours to fix.
                warnings.simplefilter("ignore")
                started = time.perf_counter()
                info = pipeline.run(
                    table,
                    table_name=kalshi_candle.name,
                    write_disposition="merge",
                    primary_key=list(CANDLE_KEY_COLUMNS),
                )
                elapsed = time.perf_counter() - started
        if info.has_failed_jobs:
            raise BenchError(f"dlt's load has failed jobs: {info}")
        with engine.connect() as conn:
            loaded = conn.execute(
                text(f"SELECT COUNT(*) FROM `{dataset}`.`{kalshi_candle.name}`")
            ).scalar_one()
        if loaded != n:
            raise BenchError(f"dlt left {loaded} rows, not {n}")
    finally:
        _drop_datasets(engine, dataset)
        engine.dispose()

    rate = n / elapsed
    results.add(
        "load.dlt_rows_per_s",
        "load",
        f"dlt {dlt.__version__} merge load (sqlalchemy destination), rows given as Arrow",
        rate,
        "rows/s",
        f"{elapsed:.1f} s for the first {n:,} rows",
    )
    results.add(
        "load.loader_vs_dlt",
        "load",
        "loader ÷ dlt merge",
        loader_rows_per_s / rate,
        "×",
        "dlt starts from rows already parsed; the loader from the gzipped archive",
    )


def _drop_datasets(engine: Engine, dataset: str) -> None:
    with engine.begin() as conn:
        for name in (dataset, f"{dataset}_staging"):
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
