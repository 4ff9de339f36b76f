"""Shared fixtures: real databases (SQLite and MariaDB) and a fresh archive folder.

Every MariaDB test gets its own database, created here and dropped afterwards, so tests
(and engineers running suites side by side) never see each other's rows. MariaDB being
unreachable FAILS the tests: the suite never silently skips the production target.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import mariadb_database

#: ``extract candles --route`` (and ``ExtractConfig.route``) defaults to ``auto`` for
#: users; the suite's command-line runs (in-process and child processes, which inherit
#: this environment) were written for the event route: its faults, pinned request counts
#: and page files. Tests that build an ``ExtractConfig`` pass ``route=RouteChoice.EVENT``
#: likewise; tests of the other routes pass ``--route`` (tests/test_batch_route.py).
os.environ.setdefault("KALSHI_EXTRACT_CANDLES_ROUTE", "event")


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """URL of a new, empty MariaDB database, dropped after the test."""
    with mariadb_database() as url:
        yield url


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
