"""Schema revisions (Alembic): a new database, a pre-Alembic one, an older revision, and an
upgrade through a second revision, on SQLite and MariaDB.

The truth is the database itself, reflected: never the state our code says it wrote.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import Engine, inspect, text

import schemas.migrations as mig
from load.cli import cli
from schemas.db import make_engine
from schemas.errors import SchemaError
from schemas.migrations.baseline import baseline_metadata
from schemas.tables import metadata
from tests.databases import mariadb_database

T0 = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)

SECOND_REVISION = '''
"""A test-only next revision: what add_missing_columns could never do."""

import sqlalchemy as sa
from alembic import op

revision = "0003_test"
down_revision = "0002_series"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE kalshi_backfill_checkpoint SET lease_owner = '' WHERE lease_owner IS NULL")
    with op.batch_alter_table("kalshi_backfill_checkpoint") as batch:
        batch.add_column(
            sa.Column("attempts", sa.Integer, nullable=False, server_default="0")
        )
        batch.alter_column("lease_owner", existing_type=sa.String(128), nullable=False,
                           server_default="")
        batch.create_index("ix_checkpoint_status", ["status"])


def downgrade() -> None:
    with op.batch_alter_table("kalshi_backfill_checkpoint") as batch:
        batch.drop_index("ix_checkpoint_status")
        batch.alter_column("lease_owner", existing_type=sa.String(128), nullable=True)
        batch.drop_column("attempts")
'''


def _schema(engine: Engine) -> dict[str, Any]:
    """Every table's columns (name, type, nullability), key and indexes, as reflected."""
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for name in sorted(insp.get_table_names()):
        out[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("comment"))
                for c in insp.get_columns(name)
            ],
            "pk": insp.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(name)
            ),
        }
    return out


def _second_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'second.db'}"
    else:
        with mariadb_database() as url:
            yield url


@pytest.fixture
def second_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This version's migrations plus a second revision, as if a newer release shipped."""
    folder = tmp_path / "migrations"
    shutil.copytree(mig.MIGRATIONS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / "0003_test.py").write_text(SECOND_REVISION)
    monkeypatch.setattr(mig, "MIGRATIONS_DIR", folder)
    monkeypatch.setattr(mig, "HEAD", "0003_test")
    mig._script.cache_clear()
    mig._known_revisions.cache_clear()
    yield
    mig._script.cache_clear()
    mig._known_revisions.cache_clear()


def _revision(engine: Engine) -> str | None:
    """What Alembic itself reads as the database's revision."""
    with engine.connect() as conn:
        opts = {"version_table": mig.VERSION_TABLE}
        return MigrationContext.configure(conn, opts=opts).get_current_revision()


def _checkpoint_row() -> dict[str, Any]:
    return {
        "event_ticker": "KXHIGHNY-25NOV20",
        "period_interval_minutes": 1,
        "window_policy": "FULL_MARKET_WINDOW",
        "series_ticker": "KXHIGHNY",
        "window_start_utc": T0,
        "window_end_utc": T0,
        "is_final": True,
        "status": "SUCCESS",
        "pages_archived": 1,
        "requests": 1,
        "retries": 0,
        "candles_archived": 3,
        "rows_loaded": 3,
        "created_at_utc": T0,
        "updated_at_utc": T0,
    }


def _legacy_database(url: str) -> None:
    """Tables exactly as the code before Alembic made them (create_all, no version)."""
    engine = make_engine(url, schema="none")
    try:
        with engine.begin() as conn:
            baseline_metadata().create_all(conn)
            conn.execute(
                baseline_metadata().tables["kalshi_backfill_checkpoint"].insert(),
                [_checkpoint_row()],
            )
    finally:
        engine.dispose()


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


# --- the shipped revisions ----------------------------------------------------------------


def test_head_constant_is_alembics_head() -> None:
    script = ScriptDirectory(str(mig.MIGRATIONS_DIR))
    assert script.get_current_head() == mig.HEAD
    assert [r.revision for r in script.walk_revisions()][-1] == mig.BASELINE


def test_a_new_database_equals_one_migrated_from_nothing(db_url: str, tmp_path: Path) -> None:
    """create_all + stamp (the fast path) and replaying every revision give one schema,
    and that schema is exactly what schemas/tables.py declares."""
    created = make_engine(db_url)
    for other in _second_url(db_url, tmp_path):
        migrated = make_engine(other, schema="none")
        try:
            with migrated.begin() as conn:
                command.upgrade(mig.alembic_config(conn), "head")
            assert _revision(created) == _revision(migrated) == mig.HEAD
            assert _schema(created) == _schema(migrated)
            with migrated.connect() as conn:
                diff = compare_metadata(
                    MigrationContext.configure(
                        conn, opts={"compare_type": True, "version_table": mig.VERSION_TABLE}
                    ),
                    metadata,
                )
            assert diff == []
        finally:
            migrated.dispose()
    created.dispose()


def test_alembic_reads_the_version_we_record(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        assert _revision(engine) == mig.HEAD
        with engine.begin() as conn:  # nothing left to run
            command.upgrade(mig.alembic_config(conn), "head")
        assert _revision(engine) == mig.HEAD
    finally:
        engine.dispose()


def test_concurrent_first_runs_create_the_schema_once(db_url: str) -> None:
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            make_engine(db_url).dispose()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = make_engine(db_url, schema="none")
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT version_num FROM {mig.VERSION_TABLE}")).all()
        assert [r[0] for r in rows] == [mig.HEAD]
        assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# --- databases made before Alembic --------------------------------------------------------


def test_a_pre_alembic_database_is_the_baseline(db_url: str) -> None:
    """Recognised as 0001_baseline; the head is beyond it, so every command refuses it,
    touching nothing, until ``db upgrade`` records the baseline and migrates."""
    _legacy_database(db_url)
    before = make_engine(db_url, schema="none")
    schema_before = _schema(before)
    for access in ("read", "write"):
        with pytest.raises(SchemaError, match="before schema versions") as err:
            make_engine(db_url, schema=access)
        assert mig.BASELINE in str(err.value) and "db upgrade" in str(err.value)
    assert _schema(before) == schema_before and _revision(before) is None
    res = _invoke("db", "upgrade", "--db", db_url)
    assert res.exit_code == 0, res.output
    assert _revision(before) == mig.HEAD
    with before.connect() as conn:
        count = conn.execute(text("SELECT COUNT(*) FROM kalshi_backfill_checkpoint"))
        assert count.scalar_one() == 1  # kept
    assert "kalshi_series" in inspect(before).get_table_names()
    before.dispose()


def test_an_older_pre_alembic_database_is_completed_by_db_upgrade(db_url: str) -> None:
    """A column a pre-Alembic version lacked: refused at start, added by `db upgrade`."""
    _legacy_database(db_url)
    engine = make_engine(db_url, schema="none")
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE kalshi_backfill_checkpoint DROP COLUMN lease_claimed_utc")
    with pytest.raises(SchemaError, match=r"lacks kalshi_backfill_checkpoint\.lease_claimed_utc"):
        make_engine(db_url)
    cols = {c["name"] for c in inspect(engine).get_columns("kalshi_backfill_checkpoint")}
    assert "lease_claimed_utc" not in cols  # no silent ALTER
    res = _invoke("db", "upgrade", "--db", db_url)
    assert res.exit_code == 0, res.output
    assert f"made before schema versions -> {mig.HEAD} (head)" in res.output
    cols = {c["name"] for c in inspect(engine).get_columns("kalshi_backfill_checkpoint")}
    assert "lease_claimed_utc" in cols
    assert _revision(engine) == mig.HEAD
    engine.dispose()
    make_engine(db_url).dispose()


@pytest.mark.parametrize("start", ["recorded", "pre_alembic"])
def test_upgrade_from_the_baseline_through_a_second_revision(
    db_url: str, start: str, request: pytest.FixtureRequest
) -> None:
    if start == "recorded":
        engine = make_engine(db_url)  # at the shipped head
        with engine.begin() as conn:
            conn.execute(
                metadata.tables["kalshi_backfill_checkpoint"].insert(), [_checkpoint_row()]
            )
        engine.dispose()
    else:
        _legacy_database(db_url)
    request.getfixturevalue("second_head")  # a newer release, head 0003_test
    before = make_engine(db_url, schema="none")
    schema_before = _schema(before)

    for access in ("write", "read"):
        with pytest.raises(SchemaError, match="run `kalshi-load db upgrade --db") as err:
            make_engine(db_url, schema=access)
        assert "0003_test" in str(err.value) or "before schema versions" in str(err.value)
    assert _schema(before) == schema_before  # refused without touching anything
    res = _invoke("status", "--db", db_url)
    assert res.exit_code == 2 and "db upgrade" in res.output

    current = _invoke("db", "current", "--db", db_url)
    assert current.exit_code == 0
    assert "head is 0003_test" in current.output

    res = _invoke("db", "upgrade", "--db", db_url)
    assert res.exit_code == 0, res.output
    assert "0003_test (head)" in res.output
    assert _revision(before) == "0003_test"
    cols = {c["name"]: c for c in inspect(before).get_columns("kalshi_backfill_checkpoint")}
    assert cols["attempts"]["nullable"] is False
    assert cols["lease_owner"]["nullable"] is False
    indexes = {i["name"] for i in inspect(before).get_indexes("kalshi_backfill_checkpoint")}
    assert "ix_checkpoint_status" in indexes
    with before.connect() as conn:
        row = conn.execute(
            text("SELECT event_ticker, rows_loaded, attempts FROM kalshi_backfill_checkpoint")
        ).one()
    assert tuple(row) == ("KXHIGHNY-25NOV20", 3, 0)  # kept, new column filled
    before.dispose()
    make_engine(db_url, schema="read").dispose()  # usable again
    again = _invoke("db", "upgrade", "--db", db_url)
    assert again.exit_code == 0 and "already at 0003_test (head)" in again.output


def test_init_db_upgrades_too(sqlite_url: str, request: pytest.FixtureRequest) -> None:
    make_engine(sqlite_url).dispose()  # at the shipped head
    request.getfixturevalue("second_head")
    res = _invoke("init-db", "--db", sqlite_url)
    assert res.exit_code == 0, res.output
    assert "0002_series -> 0003_test (head)" in res.output
    engine = make_engine(sqlite_url)
    try:
        assert _revision(engine) == "0003_test"
    finally:
        engine.dispose()


def test_a_revision_from_a_newer_version_is_refused(sqlite_url: str) -> None:
    make_engine(sqlite_url).dispose()
    engine = make_engine(sqlite_url, schema="none")
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {mig.VERSION_TABLE} SET version_num = '0099_future'"))
    engine.dispose()
    with pytest.raises(SchemaError, match="0099_future, unknown to this version"):
        make_engine(sqlite_url)
    res = _invoke("db", "upgrade", "--db", sqlite_url)
    assert res.exit_code == 2 and "unknown to this version" in res.output


def test_db_current_on_an_empty_database(mariadb_url: str) -> None:
    res = _invoke("db", "current", "--db", mariadb_url)
    assert res.exit_code == 0, res.output
    assert "no tables (empty database)" in res.output
    engine = make_engine(mariadb_url, schema="none")
    try:
        assert inspect(engine).get_table_names() == []  # looking created nothing
    finally:
        engine.dispose()


def test_another_applications_alembic_version_is_left_alone(db_url: str) -> None:
    """A database shared with another Alembic-managed app: its alembic_version is not ours."""
    engine = make_engine(db_url, schema="none")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('their_rev_42')"))
    make_engine(db_url).dispose()  # an empty database to us: created at head
    assert _revision(engine) == mig.HEAD
    with engine.connect() as conn:
        theirs = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert theirs == ["their_rev_42"]
    engine.dispose()
