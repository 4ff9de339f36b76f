"""The staged bulk upsert of normalized candles, per dialect.

Both dialects: fill a TEMPORARY staging table with the same columns as ``kalshi_candle``
(no keys, no indexes: filling it is then a plain append), then merge it with ONE
``INSERT ... SELECT`` that updates rows already there. The caller owns the transaction:
the loader writes the window stats and the checkpoint SUCCESS on the same connection
before it commits, so SUCCESS can never exist without its rows.

- MySQL / MariaDB / TiDB: the frame is written by Polars as CSV (``\\N`` for NULL, exact
  decimal text, ``YYYY-MM-DD HH:MM:SS[.ffffff]`` UTC) into a private folder the loader
  created, then ``LOAD DATA LOCAL INFILE``; the merge uses ``ON DUPLICATE KEY UPDATE``
  with ``VALUES(c)``: deprecated since MySQL 8.0.20 but still served there and on TiDB,
  while the replacement ``AS new`` row alias is a syntax error on MariaDB, so ``VALUES()``
  is the one form all three run. ``staging="insert"`` fills the staging table with
  multi-row INSERTs instead (slower; kept for servers that refuse LOCAL INFILE).
- SQLite: ``executemany`` into a TEMP table, then ``INSERT ... SELECT ... WHERE true ON
  CONFLICT DO UPDATE ... WHERE`` (the conditional merge below). Values are stored as
  the text ``schemas.tables`` stores through SQLAlchemy (``"0.560000"``, ``"2.50"``,
  ``"2025-11-20 10:01:00.000000"``), so rows written here and rows written through
  SQLAlchemy compare equal.

The merge is conditional: "the later retrieval wins". A stored row is replaced only by a
row retrieved at the same time or later (``retrieved_at_utc``), so the result does not
depend on which window, batch, policy or run is loaded last. Within one batch
``dedupe_candles`` applies the same rule before the merge.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Column, Connection, MetaData, String, Table, literal, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

from load.config import StagingMethod
from load.normalize.fields import COUNT_DTYPE, PRICE_DTYPE
from schemas.crashpoints import (
    LOAD_AFTER_MERGE,
    LOAD_BEFORE_MERGE,
    LOAD_STAGE_FILLED,
    crashpoint,
)
from schemas.db import offer_local_file
from schemas.tables import (
    CANDLE_COLUMNS,
    CANDLE_COUNT_COLUMNS,
    CANDLE_KEY_COLUMNS,
    CANDLE_PRICE_COLUMNS,
    kalshi_candle,
)

STAGE_TABLE = "kalshi_candle_stage"
#: Server/client errors that mean "LOAD DATA LOCAL is disabled here" (MySQL 5.7/8,
#: the MySQL client library, MariaDB): fall back to INSERTs.
LOCAL_INFILE_REFUSED = frozenset({1148, 2068, 3948, 4166})

log = logging.getLogger(__name__)

_stage_metadata = MetaData()
_stage = Table(
    STAGE_TABLE,
    _stage_metadata,
    *(Column(c.name, c.type, nullable=c.nullable) for c in kalshi_candle.columns),
    prefixes=["TEMPORARY"],
)

_COLS = ", ".join(CANDLE_COLUMNS)
_VALUE_COLUMNS = [c for c in CANDLE_COLUMNS if c not in CANDLE_KEY_COLUMNS]
_DATETIME_COLUMNS = ("end_period_ts_utc", "retrieved_at_utc")
_MYSQL_TIME_FORMATS = {
    "end_period_ts_utc": "%Y-%m-%d %H:%M:%S",
    "retrieved_at_utc": "%Y-%m-%d %H:%M:%S%.6f",
}
_MEMORY_ROW_BYTES = 512
_SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S%.6f"  # SQLAlchemy's SQLite DATETIME storage


def write_candles(
    conn: Connection,
    frame: pl.DataFrame,
    *,
    work_dir: Path,
    staging: StagingMethod = "load_data",
) -> int:
    """Upsert ``frame`` (normalized, unique keys) into ``kalshi_candle``; returns its rows.

    Runs inside the caller's transaction and commits nothing. ``work_dir`` is a private
    folder the loader created: the only place LOAD DATA LOCAL reads from.
    """
    if frame.height == 0:
        return 0
    frame = frame.select(CANDLE_COLUMNS)
    if conn.dialect.name in ("mysql", "mariadb"):
        _create_stage(conn, frame.height)
        if staging == "load_data":
            _mysql_load_data_or_insert(conn, frame, work_dir)
        else:
            _mysql_insert(conn, frame)
        crashpoint(LOAD_STAGE_FILLED)
        crashpoint(LOAD_BEFORE_MERGE)
        conn.exec_driver_sql(_mysql_merge_sql(skip_unchanged=_has_rows(conn, frame)))
    else:
        _create_stage(conn, frame.height)
        _sqlite_insert(conn, frame)
        crashpoint(LOAD_STAGE_FILLED)
        crashpoint(LOAD_BEFORE_MERGE)
        conn.exec_driver_sql(_sqlite_merge_sql())
    crashpoint(LOAD_AFTER_MERGE)
    conn.exec_driver_sql(f"DROP {_temporary(conn)} TABLE IF EXISTS {STAGE_TABLE}")
    return frame.height


def _temporary(conn: Connection) -> str:
    # MySQL's DROP TEMPORARY TABLE never commits the transaction (a plain DROP would).
    return "TEMPORARY" if conn.dialect.name in ("mysql", "mariadb") else ""


def _create_stage(conn: Connection, rows: int) -> None:
    """A fresh, empty staging table (a previous failed attempt may have left one)."""
    conn.exec_driver_sql(f"DROP {_temporary(conn)} TABLE IF EXISTS {STAGE_TABLE}")
    if conn.dialect.name not in ("mysql", "mariadb"):
        conn.exec_driver_sql(str(CreateTable(_stage).compile(dialect=conn.dialect)))
        return
    # Measured on MariaDB 10.11 (387k rows, 30 windows): a MEMORY staging table with
    # ASCII tickers (they are validated ASCII) loads and merges in half the time of an
    # InnoDB one (60k vs 29k rows/s end to end). MEMORY tables are capped by the session's
    # max_heap_table_size, so it is raised to fit the batch (rows are fixed-size, < 400
    # bytes). A server that refuses either (TiDB ignores ENGINE) gets the default engine.
    engine = ""
    try:
        conn.exec_driver_sql(
            f"SET SESSION max_heap_table_size = {max(16 << 20, rows * _MEMORY_ROW_BYTES)}"
        )
        engine = " ENGINE=MEMORY"
    except DBAPIError as e:
        if e.connection_invalidated:
            raise  # the server went away: the loader retries the batch, not this engine
        engine = ""
    conn.exec_driver_sql(_mysql_stage_ddl(conn) + engine)


def _mysql_stage_ddl(conn: Connection) -> str:
    cols = []
    for c in kalshi_candle.columns:
        if isinstance(c.type, String) and c.type.length:
            sql_type = f"VARCHAR({c.type.length}) CHARACTER SET ascii"
        else:
            sql_type = c.type.compile(dialect=conn.dialect)
        cols.append(f"{c.name} {sql_type}{'' if c.nullable else ' NOT NULL'}")
    return f"CREATE TEMPORARY TABLE {STAGE_TABLE} ({', '.join(cols)})"


def _as_text(frame: pl.DataFrame, time_formats: dict[str, str]) -> pl.DataFrame:
    """Every column as the exact text the database stores: decimals at their column's
    scale (``"0.5600"`` → ``"0.560000"``, what SQLite compares as text), UTC times."""
    return frame.with_columns(
        *(
            pl.col(c).dt.convert_time_zone("UTC").dt.strftime(fmt)
            for c, fmt in time_formats.items()
        ),
        *(pl.col(c).cast(PRICE_DTYPE).cast(pl.String) for c in CANDLE_PRICE_COLUMNS),
        *(pl.col(c).cast(COUNT_DTYPE).cast(pl.String) for c in CANDLE_COUNT_COLUMNS),
    )


def _mysql_load_data_or_insert(conn: Connection, frame: pl.DataFrame, work_dir: Path) -> None:
    """LOAD DATA LOCAL, or multi-row INSERTs where the server or client refuses it.

    MySQL 8 ships with ``local_infile`` OFF; the refusal comes before any row is read
    and fails only that statement, so the same transaction goes on with INSERTs.
    """
    try:
        _mysql_load_data(conn, frame, work_dir)
    except DBAPIError as e:
        code = getattr(e.orig, "args", (None,))[0]
        if code not in LOCAL_INFILE_REFUSED:
            raise
        log.warning("LOAD DATA LOCAL INFILE refused (%s): staging with INSERTs instead", code)
        conn.exec_driver_sql(f"DELETE FROM {STAGE_TABLE}")
        _mysql_insert(conn, frame)


def write_stage_csv(frame: pl.DataFrame, path: Path) -> None:
    """``frame`` as the CSV that LOAD DATA reads: ``\\N`` for NULL, values as their text.

    The loader's prices and counts are the text the API sent ("0.5600", "2.50"), checked
    by normalize to hold no more decimals than their column (MySQL would round the rest
    with only a note), so the server parses each into its DECIMAL exactly; a frame of
    Decimals is written as their exact text too. Only the two times need formatting.
    """
    frame.with_columns(
        pl.col(c).dt.convert_time_zone("UTC").dt.strftime(fmt)
        for c, fmt in _MYSQL_TIME_FORMATS.items()
    ).write_csv(
        path,
        include_header=False,
        null_value="\\N",
        quote_style="necessary",
        line_terminator="\n",
    )


def _mysql_load_data(conn: Connection, frame: pl.DataFrame, work_dir: Path) -> None:
    path = work_dir / f"stage-{secrets.token_hex(6)}.csv"
    try:
        write_stage_csv(frame, path)
        # The file is ASCII (validated tickers, digits, times): read as ascii into the
        # ascii staging columns, the server converts nothing (5-10% of its LOAD DATA CPU).
        # The server may read this one file and no other (schemas.db.offer_local_file).
        with offer_local_file(conn, path):
            conn.exec_driver_sql(
                f"LOAD DATA LOCAL INFILE %s INTO TABLE {STAGE_TABLE} CHARACTER SET ascii "
                "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' "
                f"LINES TERMINATED BY '\\n' ({_COLS})",
                (str(path),),
            )
    finally:
        path.unlink(missing_ok=True)


def _mysql_insert(conn: Connection, frame: pl.DataFrame) -> None:
    marks = ", ".join(["%s"] * len(CANDLE_COLUMNS))
    rows = _as_text(frame, _MYSQL_TIME_FORMATS).rows()
    # pymysql's executemany rewrites this into multi-row INSERTs of up to ~1 MB each.
    conn.exec_driver_sql(f"INSERT INTO {STAGE_TABLE} ({_COLS}) VALUES ({marks})", rows)


def _has_rows(conn: Connection, frame: pl.DataFrame) -> bool:
    """Whether any of the frame's markets already has a row (one index probe)."""
    markets = frame["market_ticker"].unique().to_list()
    probe = select(literal(1)).where(kalshi_candle.c.market_ticker.in_(markets)).limit(1)
    return conn.execute(probe).first() is not None


def _mysql_updates() -> str:
    """The ON DUPLICATE KEY UPDATE list that keeps the later retrieval of a row.

    MySQL and MariaDB evaluate these assignments left to right, each later one seeing the
    columns already assigned. So every value column is assigned first, each comparing the
    incoming retrieval time with the STORED one, and ``retrieved_at_utc`` (the column that
    decides) is assigned last. Columns are qualified with the table name: the SELECT's
    staging table has the same column names.
    """
    t, r = kalshi_candle.name, "retrieved_at_utc"
    newer = f"VALUES({r}) >= {t}.{r}"
    values = [f"{c} = IF({newer}, VALUES({c}), {t}.{c})" for c in _VALUE_COLUMNS if c != r]
    return ", ".join([*values, f"{r} = GREATEST({t}.{r}, VALUES({r}))"])


def _mysql_merge_sql(*, skip_unchanged: bool = False) -> str:
    """The one upsert from staging; ``skip_unchanged`` for markets already loaded.

    A row already stored takes ON DUPLICATE KEY's slow path (failed insert, read,
    compare) even when nothing changed, as on a replay or an extended open window where
    all but the last candles are the same. With ``skip_unchanged`` an anti-join leaves
    out rows whose every value is equal (NULL-safe ``<=>``) before the insert: the same
    result, measured 30% faster on a full replay. It costs a lookup per row on a first
    load, so it is used only when the markets already have rows. Its anti-join also leaves
    out rows retrieved before the stored ones (they would not win the merge anyway).
    """
    updates = _mysql_updates()
    if not skip_unchanged:
        return (
            f"INSERT INTO {kalshi_candle.name} ({_COLS}) SELECT {_COLS} FROM {STAGE_TABLE} "
            f"ON DUPLICATE KEY UPDATE {updates}"
        )
    on = " AND ".join(f"k.{c} = s.{c}" for c in CANDLE_KEY_COLUMNS)
    changed = " OR ".join(f"NOT (k.{c} <=> s.{c})" for c in _VALUE_COLUMNS)
    cols = ", ".join(f"s.{c}" for c in CANDLE_COLUMNS)
    return (
        f"INSERT INTO {kalshi_candle.name} ({_COLS}) SELECT {cols} FROM {STAGE_TABLE} s "
        f"LEFT JOIN {kalshi_candle.name} k ON {on} "
        f"WHERE k.{CANDLE_KEY_COLUMNS[0]} IS NULL "
        f"OR (s.retrieved_at_utc >= k.retrieved_at_utc AND ({changed})) "
        f"ON DUPLICATE KEY UPDATE {updates}"
    )


def _sqlite_insert(conn: Connection, frame: pl.DataFrame) -> None:
    marks = ", ".join(["?"] * len(CANDLE_COLUMNS))
    text = _as_text(frame, dict.fromkeys(_DATETIME_COLUMNS, _SQLITE_TIME_FORMAT))
    rows: list[tuple[Any, ...]] = text.rows()
    conn.exec_driver_sql(f"INSERT INTO {STAGE_TABLE} ({_COLS}) VALUES ({marks})", rows)


def _sqlite_merge_sql() -> str:
    """The upsert from staging; a stored row is replaced only by a retrieval as late.

    The times are fixed-width text (``_SQLITE_TIME_FORMAT``), so comparing them as text
    compares the instants.
    """
    updates = ", ".join(f"{c} = excluded.{c}" for c in _VALUE_COLUMNS)
    keys = ", ".join(CANDLE_KEY_COLUMNS)
    t = kalshi_candle.name
    return (
        f"INSERT INTO {t} ({_COLS}) SELECT {_COLS} FROM {STAGE_TABLE} "
        f"WHERE true ON CONFLICT ({keys}) DO UPDATE SET {updates} "
        f"WHERE excluded.retrieved_at_utc >= {t}.retrieved_at_utc"
    )
