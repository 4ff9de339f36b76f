"""Bad input: one clear error line naming the problem, a non-zero exit, nothing wrong written.

Every case goes through the real command line (click's CliRunner); the shared checks are
in :func:`assert_refused`: exit code, exactly one ``error:`` line, no traceback, the
problem named, and no candle, checkpoint or archive page written. A corrupt file in the
archive is the one case where the rest still loads: that window is quarantined, FAILED
and reported, and the run exits non-zero.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from extract.cli import main as extract_main
from load.cli import cli as load_cli
from schemas.archive import QUARANTINE_DIR, LocalArchive
from tests.kalshi_sim import SimServer, run_sim_in_thread
from tests.test_survival_support import (
    EVENTS,
    SERIES,
    SIM,
    checkpoint_statuses,
    stored_values,
    sync_events,
    truth_values,
)

WRONG_PASSWORD = "Wr0ng-pa55word-7f3a"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with run_sim_in_thread(SIM) as server:
        yield server


def invoke(main: object, args: list[str]) -> Result:
    return CliRunner().invoke(main, args)  # type: ignore[arg-type]


def assert_refused(r: Result, *named: str, code: int | None = None) -> None:
    out = r.output
    assert r.exit_code != 0 and (code is None or r.exit_code == code), out
    # ours: "error: ..."; click's own usage errors: "Error: Invalid value for ..."
    errors = [ln for ln in out.splitlines() if ln.lower().startswith("error:")]
    assert len(errors) == 1, out
    assert "Traceback" not in out and isinstance(r.exception, SystemExit), out
    for word in named:
        assert word in errors[0], out


def nothing_written(db_url: str, archive: Path) -> None:
    pages = list(archive.rglob("*.json.gz")) if archive.exists() else []
    assert pages == []
    assert checkpoint_statuses(db_url) == {}
    assert stored_values(db_url) == {}


def candles(db_url: str, archive: Path, *args: str, sim: SimServer | None = None) -> Result:
    base = ["--api-base", sim.base_url] if sim is not None else []
    return invoke(
        extract_main, ["candles", "--db", db_url, "--archive", str(archive), *base, *args]
    )


@pytest.mark.parametrize(
    ("args", "named", "code"),
    [
        (["--series", "KXNOPE"], ["no events for series KXNOPE"], 2),
        (["--series", SERIES, "--event", "KXHIGHNY-25DEC30"], ["KXHIGHNY-25DEC30", "not in"], 2),
        (["--series", "../KXHIGHNY"], ["invalid series ticker"], 2),
        (["--series", "KX'; DROP TABLE kalshi_event;--"], ["invalid series ticker"], 2),
        (["--series", "KX HIGH"], ["invalid series ticker"], 2),
        (["--series", SERIES, "--event", "KXHIGHNY-../../x"], ["invalid event ticker"], 2),
        (["--series", SERIES, "--event", 'KXHIGHNY-"25NOV15"'], ["invalid event ticker"], 2),
        (["--series", SERIES, "--event", "KXHIGHNY-25 NOV15"], ["invalid event ticker"], 2),
        (["--series", SERIES, "--period", "5"], ["5 is not a candle period"], 2),
        (
            ["--series", SERIES, "--from", "2025-11-17", "--to", "2025-11-15"],
            ["--from 2025-11-17 is after --to 2025-11-15"],
            2,
        ),
    ],
)
def test_extract_refuses_bad_input(
    args: list[str],
    named: list[str],
    code: int,
    sim: SimServer,
    sqlite_url: str,
    archive_dir: Path,
) -> None:
    """(SQLite: validation does not depend on the database; the cases below use MariaDB.)"""
    sync_events(sim, sqlite_url)
    sim.reset()
    r = candles(sqlite_url, archive_dir, *args, sim=sim)
    assert_refused(r, *named, code=code)
    nothing_written(sqlite_url, archive_dir)
    assert sim.counters.by_route["event_candlesticks"] == 0


def test_unknown_series_at_the_api(sim: SimServer, sqlite_url: str) -> None:
    r = invoke(
        extract_main,
        ["events", "--series", "KXNOPE", "--db", sqlite_url, "--api-base", sim.base_url],
    )
    assert_refused(r, "unknown series KXNOPE", code=2)


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("mysql+pymysql://root@127.0.0.1:1/kalshi", ["cannot open database", "127.0.0.1"]),
        (
            f"mysql+pymysql://root:{WRONG_PASSWORD}@127.0.0.1:3306/mysql",
            ["cannot open database", "Access denied"],
        ),
    ],
)
def test_unusable_database_is_one_line_without_the_password(
    url: str, named: list[str], sim: SimServer, archive_dir: Path
) -> None:
    for r in (
        candles(url, archive_dir, "--series", SERIES, sim=sim),
        invoke(load_cli, ["run", "--db", url, "--archive", str(archive_dir)]),
        invoke(
            extract_main, ["events", "--series", SERIES, "--db", url, "--api-base", sim.base_url]
        ),
    ):
        assert_refused(r, *named, code=1)
        assert WRONG_PASSWORD not in r.output
    assert list(archive_dir.iterdir()) == []


def test_unwritable_or_missing_archive(sim: SimServer, mariadb_url: str, tmp_path: Path) -> None:
    sync_events(sim, mariadb_url)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    r = candles(mariadb_url, blocker / "raw", "--series", SERIES, sim=sim)
    assert_refused(r, "is not writable", code=1)
    r = invoke(load_cli, ["run", "--db", mariadb_url, "--archive", str(tmp_path / "nowhere")])
    assert_refused(r, "does not exist", code=1)
    r = invoke(load_cli, ["run", "--db", mariadb_url, "--series", "../x", "--archive", "x"])
    assert_refused(r, "invalid series ticker", code=2)
    assert checkpoint_statuses(mariadb_url) == {}


@pytest.mark.parametrize("damage", ["corrupt_gzip", "invalid_json"])
def test_a_corrupt_archive_file_is_quarantined_and_the_rest_loads(
    damage: str, sim: SimServer, sqlite_url: str, archive_dir: Path
) -> None:
    db = sqlite_url  # quarantine does not depend on the database: keep it fast
    sync_events(sim, db)
    assert candles(db, archive_dir, "--series", SERIES, sim=sim).exit_code == 0
    store = LocalArchive(archive_dir)
    bad_event = EVENTS[1]
    manifest = next(
        m
        for m in map(store.read_manifest, store.iter_manifests())
        if m.key.event_ticker == bad_event
    )
    bad = f"{manifest.key.dir}/{manifest.pages[1]}"
    data = (archive_dir / bad).read_bytes()
    broken = data[: len(data) // 2] if damage == "corrupt_gzip" else gzip.compress(b"{not json")
    (archive_dir / bad).write_bytes(broken)

    r = invoke(load_cli, ["run", "--db", db, "--archive", str(archive_dir), "-q"])
    assert_refused(r, "1 window(s) failed", bad, code=1)
    others = [e for e in EVENTS if e != bad_event]
    assert stored_values(db) == truth_values(sim, others)  # the rest loaded
    status = checkpoint_statuses(db)
    assert status[bad_event].startswith("FAILED") and bad in status[bad_event]
    assert list((archive_dir / QUARANTINE_DIR).rglob(Path(bad).name + ".*"))

    # The next extract refetches exactly that window; the next load completes the table.
    assert candles(db, archive_dir, "--series", SERIES, sim=sim).exit_code == 0
    r = invoke(load_cli, ["run", "--db", db, "--archive", str(archive_dir), "-q"])
    assert r.exit_code == 0, r.output
    assert stored_values(db) == truth_values(sim, EVENTS)
    assert set(checkpoint_statuses(db).values()) == {"SUCCESS"}
