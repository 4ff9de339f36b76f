"""Many rows out of the database without a Python object per value.

A DB-API driver hands each value over as a Python object (PyMySQL builds a ``Decimal``
per price: 22 of them a candle), which capped ``export`` at about 25,000 rows/s while
the database's own client dumps the same rows ten times faster. Here the database
writes each row as ONE tab-separated text (``CONCAT`` of every column cast to text,
``''`` for NULL), rows stream from the server in partitions, and Polars parses the text
and casts each column to its type in Rust: a decimal's text is exactly its value, so
nothing is rounded, and the cost per value is Polars', not the interpreter's.

The same statement works on SQLite (``||``), MariaDB, MySQL and TiDB (``CONCAT``):
SQLAlchemy's string ``+`` compiles to each. Text columns must never hold an empty
string or a tab (tickers cannot): an empty field is read back as NULL.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import polars as pl
from sqlalchemy import Connection, Engine, Select, String, cast, func, literal
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from schemas.db import translate_db_error

T = TypeVar("T")
R = TypeVar("R")

#: Items (event dates, events) read ahead while the caller works on one: two keep both
#: of a small server's cores busy with our queries.
READ_AHEAD = 2
#: Rows fetched from the server at a time (a few MB of text).
PARTITION_ROWS = 50_000
#: How the database writes a DATETIME as text (MySQL without fraction for DATETIME(0)).
TIME_FORMAT = "%Y-%m-%d %H:%M:%S%.f"


def text_rows(stmt: Select[Any]) -> Select[Any]:
    """``stmt`` with its columns replaced by one tab-separated text a row (same WHERE,
    ORDER BY and index hints)."""
    line: Any = None
    for col in stmt.selected_columns:
        value = func.coalesce(cast(col, String), literal("", String))
        # String + String: `a || b` on SQLite, `concat(a, b)` on MySQL (SQLAlchemy flattens
        # the chain into one call).
        line = value if line is None else line + literal("\t", String) + value
    return stmt.with_only_columns(line, maintain_column_froms=True)


def parse_rows(lines: bytes, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Tab-separated rows (no header) as a frame of ``schema``, every cast vectorized."""
    names = list(schema)
    if not lines:
        return pl.DataFrame(schema=dict(schema))
    raw = pl.read_csv(
        io.BytesIO(lines),
        separator="\t",
        has_header=False,
        new_columns=names,
        schema=dict.fromkeys(names, pl.String()),
        quote_char=None,
    )
    return raw.select(_cast(name, dtype) for name, dtype in schema.items())


def _cast(name: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        return col.str.to_datetime(
            TIME_FORMAT, time_unit=dtype.time_unit, time_zone=dtype.time_zone, strict=True
        )
    if isinstance(dtype, pl.Date):
        return col.str.to_date("%Y-%m-%d", strict=True)
    if isinstance(dtype, pl.Boolean):
        return col.cast(pl.Int8).cast(pl.Boolean)
    return col.cast(dtype, strict=True)


def _lines(conn: Connection, stmt: Select[Any], partition_rows: int) -> Iterator[list[str]]:
    """The rows of :func:`text_rows` of ``stmt``, ``partition_rows`` texts at a time.

    On PyMySQL straight from an unbuffered DB-API cursor: SQLAlchemy's result rows cost
    about as much CPU per row as the driver itself, and here each row is one text. The
    statement is still compiled by SQLAlchemy, and each parameter passes through its
    type's bind processor (aware times become naive UTC), as ``execute`` would do.
    Other drivers (SQLite) go through ``execute`` with ``stream_results``.
    """
    sql = text_rows(stmt)
    if conn.dialect.driver != "pymysql":
        result = conn.execution_options(stream_results=True, yield_per=partition_rows).execute(sql)
        for part in result.partitions():
            yield [r[0] for r in part]
        return
    import pymysql
    from pymysql.cursors import SSCursor

    compiled = sql.compile(dialect=conn.dialect)
    named = {}
    for name, value in compiled.params.items():
        process = compiled.binds[name].type.bind_processor(conn.dialect)
        named[name] = process(value) if process is not None else value
    params: Any = [named[n] for n in compiled.positiontup or ()] if compiled.positional else named
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        with raw.cursor(SSCursor) as cursor:
            cursor.execute(str(compiled), params)
            while rows := cursor.fetchmany(partition_rows):
                yield [r[0] for r in rows]
    except pymysql.Error as e:
        # The driver's own error, as SQLAlchemy would have wrapped it.
        raise DBAPIError(str(compiled), params, e) from e


def iter_frames(
    engine: Engine,
    stmt: Select[Any],
    schema: Mapping[str, pl.DataType],
    what: str,
    partition_rows: int = PARTITION_ROWS,
) -> Iterator[pl.DataFrame]:
    """Frames of ``schema`` (the columns of ``stmt`` in order), ``partition_rows`` at a time.

    The rows stream from the server (an unbuffered cursor on MySQL), so memory holds one
    partition's text and frame, whatever the query returns.
    """
    if len(stmt.selected_columns) != len(schema):
        raise ValueError("the statement's columns and the schema differ")
    try:
        with engine.connect() as conn:
            for lines in _lines(conn, stmt, partition_rows):
                yield parse_rows(("\n".join(lines) + "\n").encode(), schema)
    except SQLAlchemyError as e:
        raise translate_db_error(e, engine.url.render_as_string(hide_password=False), what) from e


def read_frame(
    engine: Engine, stmt: Select[Any], schema: Mapping[str, pl.DataType], what: str
) -> pl.DataFrame:
    """Every row of ``stmt`` as one frame of ``schema`` (see :func:`iter_frames`)."""
    frames = list(iter_frames(engine, stmt, schema, what))
    if not frames:
        return pl.DataFrame(schema=dict(schema))
    return frames[0] if len(frames) == 1 else pl.concat(frames)


def read_ahead(
    items: Iterable[T], read: Callable[[T], R], depth: int = READ_AHEAD
) -> Iterator[tuple[T, R]]:
    """``(item, read(item))`` in order, the next ``depth`` items read in threads meanwhile.

    While the caller parses, computes or writes one item (Polars releases the GIL), the
    next ones stream from the database on their own connections: the server's work (on
    its own cores) and ours overlap instead of taking turns. At most ``depth + 1`` items
    are held at once, so memory stays flat; an error of ``read`` comes out where its item
    would have.
    """
    pending = deque(items)
    in_flight: deque[tuple[T, Future[R]]] = deque()
    with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="read-ahead") as pool:
        while pending or in_flight:
            while pending and len(in_flight) < depth:
                item = pending.popleft()
                in_flight.append((item, pool.submit(read, item)))
            item, future = in_flight.popleft()
            yield item, future.result()
