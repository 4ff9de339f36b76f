"""Alembic's environment: migrations run on the connection that ``schemas.migrations``
hands over (``config.attributes["connection"]``), in batch mode so SQLite can alter tables
(it copies them), comparing types so ``--autogenerate`` sees column type changes."""

from __future__ import annotations

from alembic import context

from schemas.migrations import VERSION_TABLE
from schemas.tables import metadata

_connection = context.config.attributes.get("connection")
if _connection is None or context.is_offline_mode():
    raise RuntimeError("run migrations through `kalshi-load db upgrade` (it passes the connection)")
context.configure(
    connection=_connection,
    target_metadata=metadata,
    render_as_batch=True,
    compare_type=True,
    version_table=VERSION_TABLE,
)
with context.begin_transaction():
    context.run_migrations()
