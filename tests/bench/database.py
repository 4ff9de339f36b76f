"""The bench's own MariaDB database: created empty at the start, dropped at the end."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from schemas.secrets import redact_url
from tests.bench.config import BenchConfig, BenchError


def _admin(config: BenchConfig, *statements: str) -> str:
    """Run ``statements`` on the server (no database); returns the server's version."""
    engine = create_engine(config.server_url)
    try:
        with engine.begin() as conn:
            for sql in statements:
                conn.execute(text(sql))
            return str(conn.execute(text("SELECT VERSION()")).scalar_one())
    except SQLAlchemyError as e:
        raise BenchError(
            f"MariaDB at {redact_url(config.server_url)}: {e.__cause__ or e}"
        ) from None
    finally:
        engine.dispose()


@contextmanager
def bench_database(config: BenchConfig, *, keep: bool = False) -> Iterator[str]:
    """A new, empty database named by ``--db`` (any old one dropped); yields the server version."""
    name = config.db_name  # checked by BenchConfig: contains "bench", [A-Za-z0-9_] only
    version = _admin(
        config,
        f"DROP DATABASE IF EXISTS `{name}`",
        f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4",
    )
    try:
        yield version
    except BaseException:
        if not keep:
            # The failed step's own error is the one to show, even if the server is gone.
            with contextlib.suppress(BenchError):
                _admin(config, f"DROP DATABASE IF EXISTS `{name}`")
        raise
    if not keep:
        _admin(config, f"DROP DATABASE IF EXISTS `{name}`")
