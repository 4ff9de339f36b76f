"""Opening the database: one place that builds engines, creates tables and redacts URLs.

SQLite is the quick-start default; MySQL/MariaDB is the production target. Errors from
the driver are translated to :class:`DatabaseError` with the password removed, so a
wrong password or an unreachable server gives one clear line and never leaks secrets.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, create_engine, event, inspect, text
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from schemas.errors import ConfigError, DatabaseError
from schemas.tables import metadata

DEFAULT_DATABASE_URL = "sqlite:///data/kalshi.db"

_MYSQL_SESSION = (
    "SET SESSION sql_mode='STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', time_zone='+00:00'"
)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe for logs and errors)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def redact_text(message: str, *secrets: str | None) -> str:
    """``message`` with each non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


def is_mysql(engine: Engine) -> bool:
    """True for MySQL, MariaDB (and TiDB, which speaks the MySQL dialect)."""
    return engine.dialect.name in ("mysql", "mariadb")


def make_engine(url: str, *, create_tables: bool = True, local_infile: bool = False) -> Engine:
    """An engine for ``url``, checked by connecting once, with every table created.

    ``local_infile`` lets MySQL connections send files for ``LOAD DATA LOCAL INFILE``.
    Only the loader asks for it: with it on, the *server* names the file the client
    sends, so a rogue or compromised server could read any file the process can (the
    extractor's private key, say). Every other connection leaves it off.

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
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).parent.mkdir(parents=True, exist_ok=True)
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
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))
            if create_tables:
                metadata.create_all(conn)
                add_missing_columns(conn)
    except SQLAlchemyError as e:
        engine.dispose()
        raise DatabaseError(
            f"cannot open database {redact_url(url)}: "
            f"{redact_text(str(e.orig if hasattr(e, 'orig') and e.orig else e), password)}"
        ) from None
    return engine


def add_missing_columns(conn: Connection) -> list[str]:
    """Add nullable columns a newer version defined to tables an older one created.

    ``create_all`` creates missing tables but never alters existing ones; new columns are
    only ever added as nullable, so ``ALTER TABLE ... ADD COLUMN`` is all an upgrade
    needs. Returns ``table.column`` of each column added.
    """
    insp = inspect(conn)
    added: list[str] = []
    for table in metadata.sorted_tables:
        if not insp.has_table(table.name):
            continue
        present = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name in present or not col.nullable:
                continue
            sql_type = col.type.compile(dialect=conn.dialect)
            try:  # a failed ALTER aborts only itself on MySQL and SQLite, not the transaction
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {col.name} {sql_type}")
            except SQLAlchemyError:
                # Several workers upgrading at once: another one added it first.
                if col.name not in {c["name"] for c in inspect(conn).get_columns(table.name)}:
                    raise
                continue
            added.append(f"{table.name}.{col.name}")
    return added


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL lets a reader (status, query) run while a load writes; the busy timeout waits."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
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
