"""Read-only commands refuse a database without our tables; commands that write create it.

A mistyped ``--db`` used to create an empty SQLite file and exit 0 with nothing to show.
Each read-only command is run through the real ``kalshi-load`` group.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text

from load.cli import cli
from schemas.db import make_engine
from tests.databases import MYSQL_SERVER_URL


def _read_commands(db: str, tmp_path: Path) -> dict[str, list[str]]:
    """Each read-only command with the arguments it needs to reach the database."""
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    return {
        "query": ["query", "--market", "KXHIGHNY-25NOV20-B50.5",
                  "--from", "2025-11-20", "--to", "2025-11-21"],
        "asof": ["asof", "--event", "KXHIGHNY-25NOV20", "--at", "2025-11-20T15:00:00Z"],
        "export": ["export", "--series", "KXHIGHNY", "--from", "2025-11-20",
                   "--to", "2025-11-21", "--out", str(tmp_path / "out")],
        "status": ["status"],
        "verify": ["verify", "--event", "KXHIGHNY-25NOV20", "--archive", str(raw)],
        "coverage": ["coverage", "--series", "KXHIGHNY", "--out", str(tmp_path / "c.png")],
    }  # fmt: skip


@pytest.mark.parametrize("command", ["query", "asof", "export", "status", "verify", "coverage"])
def test_a_mistyped_sqlite_path_is_refused_and_not_created(tmp_path: Path, command: str) -> None:
    db_file = tmp_path / "typo" / "kalsh.db"
    url = f"sqlite:///{db_file}"
    args = _read_commands(url, tmp_path)[command]
    res = CliRunner().invoke(cli, [*args, "--db", url])
    assert res.exit_code == 2, res.output
    assert f"{url}: no such database file: check --db" in res.output
    assert "Traceback" not in res.output
    assert not db_file.exists() and not db_file.parent.exists()
    assert not (tmp_path / "out").exists() and not (tmp_path / "c.png").exists()


def test_an_existing_sqlite_file_without_tables_is_refused(tmp_path: Path) -> None:
    db_file = tmp_path / "other.db"
    with create_engine(f"sqlite:///{db_file}").begin() as conn:  # someone else's database
        conn.execute(text("CREATE TABLE notes (x INTEGER)"))
    res = CliRunner().invoke(cli, ["status", "--db", f"sqlite:///{db_file}"])
    assert res.exit_code == 2, res.output
    assert "has no kalshi tables: check --db" in res.output
    engine = create_engine(f"sqlite:///{db_file}")
    try:
        assert inspect(engine).get_table_names() == ["notes"]
    finally:
        engine.dispose()


@pytest.fixture
def mariadb_user_url(mariadb_url: str) -> Iterator[str]:
    """The test database through a user with a password (to see that it is hidden)."""
    user, password = f"kt_{secrets.token_hex(4)}", f"Pw{secrets.token_hex(8)}"
    database = mariadb_url.rsplit("/", 1)[1]
    admin = create_engine(MYSQL_SERVER_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"))
            conn.execute(text(f"GRANT ALL ON `{database}`.* TO '{user}'@'%'"))
        host = MYSQL_SERVER_URL.split("@", 1)[1]
        yield f"mysql+pymysql://{user}:{password}@{host}/{database}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
        admin.dispose()


@pytest.mark.mariadb
@pytest.mark.parametrize("command", ["query", "status", "coverage"])
def test_an_empty_mariadb_database_is_refused_with_the_password_hidden(
    mariadb_user_url: str, tmp_path: Path, command: str
) -> None:
    password = mariadb_user_url.split(":")[2].split("@")[0]
    args = _read_commands(mariadb_user_url, tmp_path)[command]
    res = CliRunner().invoke(cli, [*args, "--db", mariadb_user_url])
    assert res.exit_code == 2, res.output
    assert password not in res.output
    shown = mariadb_user_url.replace(password, "***")
    assert f"{shown} has no kalshi tables: check --db" in res.output
    engine = create_engine(mariadb_user_url)
    try:
        assert inspect(engine).get_table_names() == []  # nothing created
    finally:
        engine.dispose()


def test_writing_commands_still_create_the_schema(tmp_path: Path) -> None:
    """init-db from nothing (folder included); then the read-only commands work."""
    url = f"sqlite:///{tmp_path / 'new' / 'k.db'}"
    res = CliRunner().invoke(cli, ["init-db", "--db", url])
    assert res.exit_code == 0, res.output
    engine = make_engine(url, schema="none")
    try:
        assert "kalshi_candle" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    status = CliRunner().invoke(cli, ["status", "--db", url])
    assert status.exit_code == 0, status.output


def test_make_engine_for_a_writer_creates_an_empty_database(db_url: str) -> None:
    make_engine(db_url).dispose()
    engine = make_engine(db_url, schema="read")
    try:
        names = set(inspect(engine).get_table_names())
        assert {"kalshi_candle", "kalshi_backfill_checkpoint", "kalshi_schema_version"} <= names
    finally:
        engine.dispose()
