"""Schema versions: the Alembic revisions in ``versions/`` and the check made on opening.

Every engine from :func:`schemas.db.make_engine` is checked here first, with a table list
and one SELECT (Alembic itself is imported only to migrate):

- at :data:`HEAD`: go on;
- EMPTY (none of our tables): a command that writes creates the tables at head and records
  the revision, so a first run stays one command; a read-only command refuses, since an
  empty database there is almost always a mistyped ``--db``;
- made before Alembic existed (our tables, no version table) and matching the
  baseline: that IS revision ``0001_baseline``. While head is the baseline a writer records
  it (one INSERT, no ALTER); otherwise ``db upgrade`` records it and migrates;
- an older revision: refused with the ``kalshi-load db upgrade`` line to run, never altered
  silently (a production table may be large, and the user picks the moment);
- a revision this code does not know: refused (a newer version wrote it).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    delete,
    insert,
    inspect,
    text,
)

from schemas.errors import SchemaError
from schemas.migrations.baseline import baseline_metadata
from schemas.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

#: The newest revision in ``versions/`` (a test checks it against Alembic's own head):
#: a constant so the check on every start needs no Alembic import (~0.2-0.4 s).
HEAD = "0002_series"
BASELINE = "0001_baseline"
MIGRATIONS_DIR = Path(__file__).resolve().parent
#: Alembic's version table under our own name: a database shared with another
#: Alembic-managed application already has an ``alembic_version`` of its own.
VERSION_TABLE = "kalshi_schema_version"

#: What a command does with the database: ``write`` creates an empty one at head,
#: ``read`` refuses an empty one, ``none`` skips the check (``db`` commands, tests).
SchemaAccess = Literal["write", "read", "none"]
StateKind = Literal["current", "empty", "legacy", "behind", "unknown"]


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands, read without changing it."""

    revision: str | None
    """The recorded Alembic revision; None when the version table has no row."""
    tables: frozenset[str]
    """Our tables (baseline or current) that exist."""
    legacy_missing: tuple[str, ...] = ()
    """For a pre-Alembic database: baseline tables and ``table.column`` it lacks."""

    @property
    def kind(self) -> StateKind:
        if self.revision is None:
            return "legacy" if self.tables else "empty"
        if self.revision == HEAD:
            return "current"
        return "behind" if self.revision in _known_revisions() else "unknown"

    @property
    def effective_revision(self) -> str | None:
        """The recorded revision, or the baseline for a complete pre-Alembic database."""
        if self.revision is None and self.tables and not self.legacy_missing:
            return BASELINE
        return self.revision

    def describe(self) -> str:
        """One line for ``db current``."""
        kind = self.kind
        if kind == "current":
            return f"{HEAD} (head)"
        if kind == "empty":
            return "no tables (empty database): any writing command or `db upgrade` creates them"
        if kind == "legacy":
            if self.legacy_missing:
                return (
                    "made before schema versions, older than the baseline (lacks "
                    f"{', '.join(self.legacy_missing)}): `db upgrade` completes it"
                )
            return (
                f"made before schema versions: matches {BASELINE}, not recorded yet; head is {HEAD}"
            )
        if kind == "behind":
            return f"{self.revision}; head is {HEAD}: run `kalshi-load db upgrade`"
        return f"{self.revision}: unknown to this version (written by a newer kalshi-candles?)"


def read_state(conn: Connection) -> SchemaState:
    """The database's schema state (two or three metadata queries, nothing written)."""
    names = set(inspect(conn).get_table_names())
    revision: str | None = None
    if VERSION_TABLE in names:
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        revision = str(rows[0]) if len(rows) == 1 else None
        if len(rows) > 1:
            raise SchemaError(f"{VERSION_TABLE} holds several revisions {rows}: a branched schema")
    ours = names & (set(metadata.tables) | set(_baseline_tables()))
    missing: tuple[str, ...] = ()
    if revision is None and ours:
        missing = _legacy_missing(conn, names)
    return SchemaState(revision, frozenset(ours), missing)


def check_schema(engine: Engine, url_shown: str, access: SchemaAccess) -> None:
    """Make sure ``engine``'s database can be used by a command of kind ``access``.

    Raises SchemaError (one line naming ``url_shown``, the redacted URL) otherwise.
    """
    if access == "none":
        return
    with engine.connect() as conn:
        state = read_state(conn)
    if state.kind == "current" or (access == "read" and state.effective_revision == HEAD):
        return
    # Decide under the lock: another process may be creating the tables right now, and
    # what we saw may be its half-made schema.
    with _schema_lock(engine) as conn:
        state = read_state(conn)
        if access == "write" and _writer_may_prepare(state):
            _prepare(conn, state)
            state = read_state(conn)
    if state.effective_revision != HEAD:
        raise SchemaError(_refusal(state, url_shown, access))


def upgrade(engine: Engine) -> tuple[SchemaState, SchemaState]:
    """Bring the database to head: create, record a pre-Alembic one, or migrate.

    Returns the states before and after. Refuses a revision this code does not know.
    """
    with _schema_lock(engine) as conn:
        before = read_state(conn)
        if before.kind == "unknown":
            raise SchemaError(before.describe())
        if before.kind == "empty":
            _prepare(conn, before)
        elif before.kind != "current":
            if before.kind == "legacy":
                _complete_legacy(conn)
                _stamp(conn, BASELINE)
            from alembic import command

            command.upgrade(alembic_config(conn), "head")
            conn.commit()
        after = read_state(conn)
    return before, after


# --- internals ----------------------------------------------------------------------------


def _writer_may_prepare(state: SchemaState) -> bool:
    """Empty, or a complete pre-Alembic database while head is still the baseline."""
    return state.kind == "empty" or (state.kind == "legacy" and state.effective_revision == HEAD)


def _prepare(conn: Connection, state: SchemaState) -> None:
    """Create every table at head and record it (empty), or record the baseline."""
    if state.kind == "empty":
        # create_all + stamp is Alembic's own recipe for a new database: one round of
        # CREATE TABLE instead of replaying history (tests prove the two schemas equal).
        metadata.create_all(conn)
        _stamp(conn, HEAD)
    else:
        _stamp(conn, BASELINE)
    conn.commit()


#: Alembic's own version table, as its MigrationContext creates it (``version_table_pk``).
#: Written here directly so that creating a database needs no Alembic import (0.4 s of CPU
#: per process; the test suite creates hundreds); a test checks Alembic reads it back.
_version_table = Table(
    VERSION_TABLE,
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)


def _stamp(conn: Connection, revision: str) -> None:
    """Record ``revision`` as the database's schema revision (what ``alembic stamp`` does)."""
    _version_table.create(conn, checkfirst=True)
    conn.execute(delete(_version_table))
    conn.execute(insert(_version_table).values(version_num=revision))


def _refusal(state: SchemaState, url_shown: str, access: SchemaAccess) -> str:
    upgrade_line = f"run `kalshi-load db upgrade --db '{url_shown}'`"
    kind = state.kind
    if kind == "empty":
        return (
            f"{url_shown} has no kalshi tables: check --db / DATABASE_URL "
            "(a command that writes, such as `kalshi-load init-db`, creates them)"
        )
    if kind == "unknown":
        return (
            f"{url_shown} is at schema revision {state.revision}, unknown to this version "
            "of kalshi-candles: upgrade kalshi-candles"
        )
    if kind == "legacy":
        what = (
            f"was made by an older version and lacks {', '.join(state.legacy_missing)}"
            if state.legacy_missing
            else f"was made before schema versions (it matches {BASELINE}; head is {HEAD})"
        )
        return f"{url_shown} {what}: {upgrade_line}"
    verb = "read" if access == "read" else "write"
    return (
        f"{url_shown} is at schema revision {state.revision}, this version needs {HEAD} "
        f"to {verb} it: {upgrade_line}"
    )


@contextmanager
def _schema_lock(engine: Engine) -> Iterator[Connection]:
    """A connection holding the database's schema lock, so concurrent first runs create
    the tables once: a named lock on MySQL/MariaDB (per database), the write lock on
    SQLite (``BEGIN IMMEDIATE``: other writers wait, up to the busy timeout)."""
    with engine.connect() as conn:
        if conn.dialect.name in ("mysql", "mariadb"):
            name = "CONCAT('kalshi_schema:', DATABASE())"
            got = conn.execute(text(f"SELECT GET_LOCK({name}, 120)")).scalar()
            if got != 1:
                raise SchemaError("timed out waiting for another process changing the schema")
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text(f"SELECT RELEASE_LOCK({name})"))
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            finally:
                conn.rollback()  # a no-op after the caller's commit


def _complete_legacy(conn: Connection) -> None:
    """Give a pre-Alembic database everything the baseline has (what older versions did
    at every start: create missing tables, add missing nullable columns)."""
    base = _baseline_metadata()
    base.create_all(conn)
    insp = inspect(conn)
    for table in base.sorted_tables:
        present = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name in present:
                continue
            if not col.nullable:
                raise SchemaError(
                    f"{table.name} lacks the NOT NULL column {col.name}: "
                    "this database is too old to upgrade in place"
                )
            sql_type = col.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {col.name} {sql_type}")


def _legacy_missing(conn: Connection, names: set[str]) -> tuple[str, ...]:
    insp = inspect(conn)
    missing: list[str] = []
    for table in _baseline_metadata().sorted_tables:
        if table.name not in names:
            missing.append(table.name)
            continue
        present = {c["name"] for c in insp.get_columns(table.name)}
        missing += [f"{table.name}.{c.name}" for c in table.columns if c.name not in present]
    return tuple(missing)


@functools.cache
def _baseline_metadata() -> MetaData:
    return baseline_metadata()


def _baseline_tables() -> tuple[str, ...]:
    return tuple(_baseline_metadata().tables)


@functools.cache
def _known_revisions() -> frozenset[str]:
    """Every revision id in ``versions/`` (Alembic's script directory, read once)."""
    return frozenset(rev.revision for rev in _script().walk_revisions())


@functools.cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR))


def alembic_config(conn: Connection | None = None) -> Config:
    """Alembic's configuration for our ``migrations`` folder, bound to ``conn``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg
