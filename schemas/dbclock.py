"""The database server's clock, for every lease and heartbeat time.

Workers on several hosts compare each other's lease and heartbeat expiries. Written from
each host's own clock, two hosts whose clocks differ by more than a heartbeat's lifetime
(15 s) would see each other dead or alive wrongly: too few live extractors (and so an
overspent API budget), or a live worker's window taken over. Every such time is
therefore computed BY the database, inside the statement that writes or compares it,
from the one clock all workers share. No host's clock is read.

:class:`db_now` and :func:`db_after` are SQL expressions compiled per dialect:

- MySQL 8, MariaDB and TiDB: ``UTC_TIMESTAMP(6)`` and ``DATE_ADD(UTC_TIMESTAMP(6),
  INTERVAL n MICROSECOND)`` (independent of the session's time zone);
- SQLite (one host by nature): ``strftime('%Y-%m-%d %H:%M:%f', 'now')`` padded to
  microseconds, the text SQLAlchemy itself stores for a DATETIME, so stored times compare
  as text in the right order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from schemas.tables import UtcDateTime


class db_now(FunctionElement[datetime]):  # lower case: an SQL function, named like one
    """The database server's current UTC time (microseconds where the server has them)."""

    type = UtcDateTime(6)
    inherit_cache = True
    name = "db_now"


class _db_after(FunctionElement[datetime]):
    type = UtcDateTime(6)
    inherit_cache = True
    name = "db_after"


def db_after(seconds: float) -> _db_after:
    """The database server's UTC time plus ``seconds`` (a lease's or heartbeat's expiry)."""
    return _db_after(bindparam(None, micros(seconds), unique=True))


def db_after_param(name: str) -> _db_after:
    """:func:`db_after` with the offset bound later as ``name`` (in :func:`micros`), for a
    statement built once and run many times."""
    return _db_after(bindparam(name))


def micros(seconds: float) -> int:
    """Whole microseconds: the unit :func:`db_after_param` binds."""
    return round(seconds * 1_000_000)


_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now'{}) || '000'"


@compiles(db_now)
def _now_default(element: db_now, compiler: Any, **kw: Any) -> str:
    raise NotImplementedError(f"db_now on {compiler.dialect.name}")


@compiles(db_now, "mysql")
@compiles(db_now, "mariadb")
def _now_mysql(element: db_now, compiler: Any, **kw: Any) -> str:
    return "UTC_TIMESTAMP(6)"


@compiles(db_now, "sqlite")
def _now_sqlite(element: db_now, compiler: Any, **kw: Any) -> str:
    return _SQLITE_NOW.format("")


@compiles(_db_after)
def _after_default(element: _db_after, compiler: Any, **kw: Any) -> str:
    raise NotImplementedError(f"db_after on {compiler.dialect.name}")


@compiles(_db_after, "mysql")
@compiles(_db_after, "mariadb")
def _after_mysql(element: _db_after, compiler: Any, **kw: Any) -> str:
    micros = compiler.process(element.clauses, **kw)
    return f"DATE_ADD(UTC_TIMESTAMP(6), INTERVAL {micros} MICROSECOND)"


@compiles(_db_after, "sqlite")
def _after_sqlite(element: _db_after, compiler: Any, **kw: Any) -> str:
    # SQLite's modifier is text: '+N seconds' with N in seconds (to the millisecond).
    micros = compiler.process(element.clauses, **kw)
    return _SQLITE_NOW.format(f", printf('%+.3f seconds', ({micros}) / 1000000.0)")
