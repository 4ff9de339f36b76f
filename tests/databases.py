"""The MariaDB server the suite runs against, and throwaway databases on it.

One copy of the create / drop / exists helpers for the fixtures in ``conftest.py``, the
survival and scale suites and the bench smoke test. A database is named with a random
suffix, so tests, xdist workers and suites run side by side never share one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

MYSQL_SERVER_URL = os.environ.get("KALSHI_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")


def new_database() -> str:
    """Create an empty utf8mb4 database with a unique name and return the name."""
    name = f"kalshi_t_{secrets.token_hex(5)}"
    admin = create_engine(MYSQL_SERVER_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    finally:
        admin.dispose()
    return name


def drop_database(name: str) -> None:
    admin = create_engine(MYSQL_SERVER_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        admin.dispose()


def database_exists(name: str) -> bool:
    admin = create_engine(MYSQL_SERVER_URL)
    try:
        with admin.connect() as conn:
            found = conn.execute(
                text("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = :n"),
                {"n": name},
            ).scalar_one()
    finally:
        admin.dispose()
    return bool(found)


@contextmanager
def mariadb_database() -> Iterator[str]:
    """URL of a new, empty database, dropped on exit."""
    name = new_database()
    try:
        yield f"{MYSQL_SERVER_URL}/{name}"
    finally:
        drop_database(name)
