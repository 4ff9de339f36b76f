"""Shared fixtures: real databases (SQLite and MariaDB) and a fresh archive folder.

Every MariaDB test gets its own database, created here and dropped afterwards, so tests
(and engineers running suites side by side) never see each other's rows. MariaDB being
unreachable FAILS the tests: the suite never silently skips the production target.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

MYSQL_SERVER_URL = os.environ.get("KALSHI_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")


def _new_mysql_database() -> str:
    name = f"kalshi_t_{secrets.token_hex(5)}"
    admin = create_engine(MYSQL_SERVER_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    finally:
        admin.dispose()
    return name


def _drop_mysql_database(name: str) -> None:
    admin = create_engine(MYSQL_SERVER_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        admin.dispose()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """URL of a new, empty MariaDB database, dropped after the test."""
    name = _new_mysql_database()
    try:
        yield f"{MYSQL_SERVER_URL}/{name}"
    finally:
        _drop_mysql_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a new SQLite file database."""
    return f"sqlite:///{tmp_path / 'kalshi.db'}"


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs twice: on SQLite and on MariaDB."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def archive_dir(tmp_path: Path) -> Path:
    """An empty archive root."""
    d = tmp_path / "raw"
    d.mkdir()
    return d
