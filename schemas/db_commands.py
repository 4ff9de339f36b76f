"""``kalshi-load db upgrade`` / ``db current``, and the ``init-db`` both tools share.

The schema is one thing for both stages, so its commands live in ``schemas``; each tool's
``cli.py`` only attaches them. Outside :mod:`schemas.migrations` (whose package imports
SQLAlchemy), and SQLAlchemy and the revisions imported in the commands' bodies, so
attaching them costs a tool's start-up nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from schemas.cli import KalshiCommand, KalshiSubgroup, command_body, db_option
from schemas.errors import SchemaError
from schemas.secrets import redact_url

if TYPE_CHECKING:
    from schemas.migrations import SchemaState


def upgrade_database(db_url: str) -> tuple[SchemaState, SchemaState]:
    """Bring ``db_url`` to head (see :func:`schemas.migrations.upgrade`)."""
    from sqlalchemy.exc import SQLAlchemyError

    from schemas.db import make_engine, translate_db_error
    from schemas.migrations import upgrade

    engine = make_engine(db_url, schema="none")
    try:
        return upgrade(engine)
    except SQLAlchemyError as e:
        raise translate_db_error(e, db_url, "schema upgrade") from None
    finally:
        engine.dispose()


def _upgrade_line(db_url: str, before: SchemaState, after: SchemaState) -> str:
    shown = redact_url(db_url)
    if before.kind == "current":
        return f"{shown}: already at {after.describe()}"
    was = {"empty": "empty", "legacy": "made before schema versions"}.get(
        before.kind, before.revision or before.kind
    )
    return f"{shown}: {was} -> {after.describe()}"


@click.command("init-db", cls=KalshiCommand)
@db_option
@command_body
def init_db(db_url: str) -> None:
    """Create every table, or bring the schema to head (harmless when it is there)."""
    click.echo(_upgrade_line(db_url, *upgrade_database(db_url)), err=True)


@click.group("db", cls=KalshiSubgroup)
def db_group() -> None:
    """The database's schema revision (Alembic): where it stands, and upgrading it."""


@db_group.command("upgrade")
@db_option
@command_body
def db_upgrade(db_url: str) -> None:
    """Bring the database to this version's schema (creates it when empty).

    A database made before schema versions existed is recognised as the baseline and
    recorded, then migrated. Back up a production database first.
    """
    click.echo(_upgrade_line(db_url, *upgrade_database(db_url)))


@db_group.command("current")
@db_option
@command_body
def db_current(db_url: str) -> None:
    """Print the database's schema revision and whether it is this version's head."""
    from schemas.db import make_engine, sqlite_file
    from schemas.migrations import read_state

    path = sqlite_file(db_url)
    if path is not None and not path.exists():  # looking must not create the file
        raise SchemaError(f"{redact_url(db_url)}: no such database file: check --db")
    engine = make_engine(db_url, schema="none")
    try:
        with engine.connect() as conn:
            state = read_state(conn)
    finally:
        engine.dispose()
    click.echo(f"{redact_url(db_url)}: {state.describe()}")
