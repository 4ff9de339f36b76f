"""Opening the database: one place that builds engines, checks the schema, redacts URLs.

SQLite is the quick-start default; MySQL/MariaDB is the production target. Errors from
the driver are translated to :class:`DatabaseError` with the password removed, so a
wrong password or an unreachable server gives one clear line and never leaks secrets.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import pymysql
from pymysql.connections import MySQLResult
from pymysql.protocol import LoadLocalPacketWrapper
from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from schemas.errors import ConfigError, DatabaseError, LocalFileRequestError, SchemaError
from schemas.migrations import SchemaAccess, check_schema
from schemas.secrets import redact_url

#: MySQL 8's default sql_mode, ONLY_FULL_GROUP_BY included, on every server: MariaDB's
#: default leaves it out, so without it a GROUP BY that MySQL 8 refuses would pass every
#: test here. MariaDB applies it more strictly than MySQL 8 (no functional dependencies),
#: so what passes here passes there.
_MYSQL_SESSION = (
    "SET SESSION sql_mode='ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,"
    "NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', time_zone='+00:00'"
)


def redact_text(message: str, *secrets: str | None) -> str:
    """``message`` with each non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


def is_mysql(engine: Engine) -> bool:
    """True for MySQL, MariaDB (and TiDB, which speaks the MySQL dialect)."""
    return engine.dialect.name in ("mysql", "mariadb")


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory ones)."""
    parsed = make_url(url)
    db = parsed.database
    if parsed.get_backend_name() != "sqlite" or not db or db == ":memory:":
        return None
    return None if db.startswith("file:") else Path(db)


def make_engine(url: str, *, schema: SchemaAccess = "write", local_infile: bool = False) -> Engine:
    """An engine for ``url``, checked by connecting once and by its schema revision.

    ``schema`` says what the command does (see :mod:`schemas.migrations`): ``"write"``
    (the default: extract, load, init-db) creates the tables in an empty database;
    ``"read"`` (query, status, ...) refuses a database without them and never creates a
    SQLite file, so a mistyped ``--db`` is one clear line; ``"none"`` skips the check.
    Both refuse a database at an older revision: ``kalshi-load db upgrade`` migrates it.

    ``local_infile`` lets MySQL connections send files for ``LOAD DATA LOCAL INFILE``,
    and only the file the connection has just offered (:func:`offer_local_file`): the
    *server* names the file the client sends, so without that rule a rogue server, or
    anyone between us and a server reached without TLS, could read any file the process
    can (the Kalshi private key, cloud credentials). Only the loader's staging
    connections ask for it (:func:`make_stage_engine`); every other one leaves it off.

    Raises ConfigError for a URL we cannot use and DatabaseError when the server cannot
    be reached or refuses the login; neither message contains the password.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise ConfigError(f"invalid database URL {redact_url(url)!r}") from e
    password = parsed.password if isinstance(parsed.password, str) else None
    connect_args: dict[str, Any] = {}
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = sqlite_file(url)
        if path is not None:
            if schema == "read" and not path.exists():
                raise SchemaError(f"{redact_url(url)}: no such database file: check --db")
            path.parent.mkdir(parents=True, exist_ok=True)
        connect_args["timeout"] = 30
    elif backend in ("mysql", "mariadb"):
        if parsed.get_driver_name() in ("pymysql", ""):
            connect_args.update(
                local_infile=local_infile, charset="utf8mb4", init_command=_MYSQL_SESSION
            )
            connect_args.setdefault("connect_timeout", 10)
        kwargs["pool_recycle"] = 3600
    else:
        raise ConfigError(
            f"unsupported database {backend!r} in {redact_url(url)}: use sqlite:/// or mysql+pymysql://"
        )
    try:
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
    except (ArgumentError, ImportError) as e:
        raise ConfigError(f"cannot use database URL {redact_url(url)}: {e}") from e
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif local_infile and connect_args.get("local_infile"):
        event.listen(engine, "do_connect", _offering_connect)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))
        check_schema(engine, redact_url(url), schema)
    except SchemaError:
        engine.dispose()
        raise
    except SQLAlchemyError as e:
        engine.dispose()
        raise DatabaseError(
            f"cannot open database {redact_url(url)}: "
            f"{redact_text(str(e.orig if hasattr(e, 'orig') and e.orig else e), password)}"
        ) from None
    return engine


def make_stage_engine(url: str) -> Engine | None:
    """The loader's staging engine: LOAD DATA LOCAL allowed (for offered files only).

    None for SQLite, which stages without files. Its connections do nothing but write
    batches; leases, reads and failure records go through an engine without
    ``local_infile``. The schema was checked by the caller's own engine.
    """
    if make_url(url).get_backend_name() not in ("mysql", "mariadb"):
        return None
    return make_engine(url, schema="none", local_infile=True)


# --- LOAD DATA LOCAL: the server may read only the file the loader offered ---------------


class _OfferingConnection(pymysql.connections.Connection):  # type: ignore[misc]
    """A PyMySQL connection that answers a LOCAL INFILE request only for the file it
    offered for the statement it is running.

    PyMySQL opens whatever path the server's request names
    (``MySQLResult._read_load_local_packet``). This connection holds one offered path,
    set by :func:`offer_local_file` around the LOAD DATA statement and spent by the
    first request: a request for any other path (or with no offer) is refused before
    any file is opened. The reply is then the empty packet that ends a transfer, so no
    byte of any file leaves and the connection stays in step with the server; the
    statement fails with :class:`LocalFileRequestError`, which is not a driver error, so
    no retry or INSERT fallback runs behind it.
    """

    offered: bytes | None = None

    def _read_query_result(self, unbuffered: bool = False) -> int:
        # PyMySQL's own method (1.1), with the guarded result class in place of MySQLResult.
        self._result = None
        result = _GuardedResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return int(result.affected_rows)


class _GuardedResult(MySQLResult):  # type: ignore[misc]
    def _read_load_local_packet(self, first_packet: Any) -> None:
        conn: _OfferingConnection = self.connection
        offered, conn.offered = conn.offered, None
        requested = LoadLocalPacketWrapper(first_packet).filename
        if offered is not None and requested == offered:
            super()._read_load_local_packet(first_packet)
            return
        conn.write_packet(b"")  # the end of an empty transfer: nothing of any file
        with suppress(pymysql.err.MySQLError):
            conn._read_packet()  # the server's answer to the empty transfer
        shown = requested.decode("utf-8", "replace")
        raise LocalFileRequestError(
            f"the database server asked for the local file {shown!r}, which the loader "
            "did not offer: refused, nothing was sent (a server that asks for other "
            "files is not to be trusted; reach remote databases over TLS)"
        )


def _offering_connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """``do_connect`` hook of a ``local_infile`` engine: its connections guard LOCAL."""
    return _OfferingConnection(*cargs, **cparams)


@contextmanager
def offer_local_file(conn: Any, path: Path) -> Iterator[None]:
    """Let ``conn`` send ``path`` to one LOCAL INFILE request of the statement run inside.

    ``conn`` is a SQLAlchemy Connection or a pool's raw connection. On a connection
    without ``local_infile`` this does nothing (the server refuses LOCAL itself).
    """
    inner = getattr(conn, "connection", conn)
    dbapi = getattr(inner, "dbapi_connection", inner)
    guarded = dbapi if isinstance(dbapi, _OfferingConnection) else None
    if guarded is not None:
        guarded.offered = os.fsencode(path)
    try:
        yield
    finally:
        if guarded is not None:
            guarded.offered = None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL lets a reader (status, query) run while a load writes; the busy timeout waits.

    Switching a new file to WAL needs it alone, and SQLite answers "database is locked"
    at once, without its busy handler, when several processes open a new database
    together (concurrent first runs): the switch is retried for as long as the timeout.
    """
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    deadline = time.monotonic() + 30
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def translate_db_error(e: SQLAlchemyError, url: str, what: str) -> DatabaseError:
    """A DatabaseError for a failed statement, with the URL's password kept out of it."""
    password = make_url(url).password if url else None
    orig = getattr(e, "orig", None) or e
    return DatabaseError(
        f"{what} failed on {redact_url(url)}: "
        f"{redact_text(str(orig), password if isinstance(password, str) else None)}"
    )


def fetch_all(engine: Engine, stmt: Any, what: str) -> list[Any]:
    """Every row of ``stmt`` on a connection of its own; a failure is a DatabaseError
    that says ``what`` was being done (the read commands' one way to read)."""
    try:
        with engine.connect() as conn:
            return list(conn.execute(stmt).all())
    except SQLAlchemyError as e:
        raise translate_db_error(e, engine.url.render_as_string(hide_password=False), what) from e


#: Lock conflicts after which the same transaction can simply run again: InnoDB's
#: deadlock victim (1213) and lock wait timeout (1205), TiDB's write conflict (9007).
LOCK_CONFLICT_CODES = frozenset({1205, 1213, 9007})

T = TypeVar("T")


def is_lock_conflict(e: SQLAlchemyError) -> bool:
    """True when the statement lost a lock race, so rerunning its transaction is safe."""
    orig: Any = getattr(e, "orig", None)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in LOCK_CONFLICT_CODES
    return "database is locked" in str(orig or e)  # SQLite, past its busy timeout


def run_transaction(
    engine: Engine,
    work: Callable[[Connection], T],
    *,
    attempts: int = 8,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``work(conn)`` in its own transaction, rerun after a lock conflict.

    Several workers upserting neighbouring checkpoint rows at once can deadlock on
    InnoDB's gap locks even though each touches only its own row: the server rolls one
    back, and running it again is the documented answer. Short jittered waits (under a
    second in all) keep the workers from colliding again. Other errors propagate.
    """
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                return work(conn)
        except DBAPIError as e:
            if attempt == attempts or not is_lock_conflict(e):
                raise
            sleep(random.uniform(0, min(0.25, 0.01 * 2**attempt)))
    raise AssertionError("unreachable")


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    update: Sequence[str] | None = None,
) -> None:
    """Insert ``rows``, updating ``update`` columns (default: all non-key) on a key clash.

    The one portable upsert for small row counts (events, markets, checkpoints, stats):
    ``ON DUPLICATE KEY UPDATE`` on MySQL/MariaDB/TiDB, ``ON CONFLICT DO UPDATE`` on SQLite.
    Bulk candle loads use the staged path in ``load/`` instead.
    """
    if not rows:
        return
    keys = [c.name for c in table.primary_key.columns]
    cols = list(update) if update is not None else [c for c in rows[0] if c not in keys]
    if conn.dialect.name in ("mysql", "mariadb"):
        ins = mysql_insert(table)
        stmt: Any = (
            ins.on_duplicate_key_update({c: ins.inserted[c] for c in cols})
            if cols
            else ins.prefix_with("IGNORE")
        )
    else:
        sins = sqlite_insert(table)
        stmt = (
            sins.on_conflict_do_update(
                index_elements=keys, set_={c: sins.excluded[c] for c in cols}
            )
            if cols
            else sins.on_conflict_do_nothing(index_elements=keys)
        )
    conn.execute(stmt, list(rows))
