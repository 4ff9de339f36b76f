"""The ``extract`` command line: validation errors, exit codes, and a SIGKILL mid-run.

Validation runs through click's CliRunner (one clear line, exit 2 for bad input, 1 for
bad configuration); the kill test runs ``python -m extract candles`` as a real subprocess
against the simulator served from a thread, kills it with SIGKILL once pages exist,
reruns it, and compares the archive with an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from extract.cli import main
from schemas.archive import LocalArchive
from schemas.checkpoints import list_checkpoints
from schemas.core import CheckpointStatus
from schemas.db import make_engine
from schemas.tables import kalshi_event, kalshi_market
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, SimServer, run_sim_in_thread

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2025, 11, 20, 15, 0, tzinfo=UTC)
SIM = SimConfig(
    seed=5,
    series=(DEFAULT_SERIES[0],),
    now=NOW,
    first_date=date(2025, 11, 8),
    last_date=date(2025, 11, 18),
    markets_per_event=2,
    candle_cap=500,
    historical_cutoff_days=3650,
)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _base(sim: SimServer) -> list[str]:
    return ["--api-base", sim.base_url]


def sync(sim: SimServer, db: str, *extra: str) -> Result:
    return invoke("events", "--series", "KXHIGHNY", "--db", db, *_base(sim), *extra)


# --- validation -----------------------------------------------------------------------------


def test_bad_period_is_refused_before_any_request(sqlite_url: str, archive_dir: Path) -> None:
    r = invoke("candles", "--series", "KXHIGHNY", "--period", "5", "--db", sqlite_url)
    assert r.exit_code == 2
    assert "5 is not a candle period the API serves" in r.output


def test_from_after_to(sqlite_url: str, archive_dir: Path) -> None:
    r = invoke(
        "candles", "--series", "KXHIGHNY", "--from", "2025-11-20", "--to", "2025-11-01",
        "--db", sqlite_url, "--archive", str(archive_dir),
    )  # fmt: skip
    assert r.exit_code == 2
    assert "error: --from 2025-11-20 is after --to 2025-11-01" in r.output


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--series", "../KXHIGHNY"),
        ("--series", "KXHIGHNY'; DROP TABLE x;--"),
        ("--event", "KXHIGHNY-../../etc"),
        ("--event", 'KXHIGHNY-"25NOV20"'),
    ],
)
def test_hostile_tickers_are_refused(
    option: str, value: str, sqlite_url: str, archive_dir: Path
) -> None:
    series = value if option == "--series" else "KXHIGHNY"
    args = ["candles", "--series", series, "--db", sqlite_url, "--archive", str(archive_dir)]
    if option == "--event":
        args += ["--event", value]
    r = invoke(*args)
    assert r.exit_code == 2
    assert "invalid" in r.output and "ticker" in r.output
    assert not (archive_dir.parent / "etc").exists()
    assert list(archive_dir.iterdir()) == []


@pytest.mark.parametrize("url", ["ftp://api.kalshi.com/trade-api/v2", "not a url", "https://"])
def test_bad_api_base(url: str, sqlite_url: str) -> None:
    r = invoke("events", "--series", "KXHIGHNY", "--db", sqlite_url, "--api-base", url)
    assert r.exit_code == 1
    assert r.output.strip().startswith("error: invalid API base URL")
    assert len(r.output.strip().splitlines()) == 1


def test_bad_api_base_from_the_environment(sqlite_url: str) -> None:
    r = CliRunner(env={"KALSHI_API_BASE": "kalshi.com"}).invoke(
        main, ["events", "--series", "KXHIGHNY", "--db", sqlite_url]
    )
    assert r.exit_code == 1 and "invalid API base URL 'kalshi.com'" in r.output


def test_unwritable_archive(sqlite_url: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with run_sim_in_thread(SIM) as sim:
        assert sync(sim, sqlite_url).exit_code == 0
        r = invoke(
            "candles", "--series", "KXHIGHNY", "--db", sqlite_url,
            "--archive", str(blocker / "raw"), *_base(sim),
        )  # fmt: skip
    assert r.exit_code == 1
    assert "is not writable" in r.output and "Traceback" not in r.output


def test_unknown_event_and_unsynced_series(sqlite_url: str, archive_dir: Path) -> None:
    common = ["--db", sqlite_url, "--archive", str(archive_dir)]
    r = invoke("candles", "--series", "KXHIGHNY", *common)
    assert r.exit_code == 2 and "run `extract events --series KXHIGHNY` first" in r.output
    with run_sim_in_thread(SIM) as sim:
        assert sync(sim, sqlite_url).exit_code == 0
        r = invoke(
            "candles", "--series", "KXHIGHNY", "--event", "KXHIGHNY-25DEC30", *common, *_base(sim)
        )
    assert r.exit_code == 2 and "event KXHIGHNY-25DEC30 is not in kalshi_event" in r.output


def test_unknown_series_and_rate_options(sqlite_url: str) -> None:
    with run_sim_in_thread(SIM) as sim:
        r = invoke("events", "--series", "KXFOO", "--db", sqlite_url, *_base(sim))
        assert r.exit_code == 2 and "error: unknown series KXFOO" in r.output
        r = invoke(
            "events",
            "--series",
            "KXHIGHNY",
            "--db",
            sqlite_url,
            "--rps",
            "5",
            "--tier",
            "basic",
            *_base(sim),
        )
        assert r.exit_code == 2 and "either --rps or --tier" in r.output
        r = invoke(
            "events",
            "--series",
            "KXHIGHNY",
            "--db",
            sqlite_url,
            "--trade-start",
            "10:00",
            *_base(sim),
        )
        assert r.exit_code == 2 and "invalid day offset '10:00'" in r.output
        assert sim.counters.total == 1  # only the series lookup of KXFOO


def test_init_db_and_events_and_dry_run(sqlite_url: str, archive_dir: Path) -> None:
    assert invoke("init-db", "--db", sqlite_url).exit_code == 0
    with run_sim_in_thread(SIM) as sim:
        r = invoke(
            "events", "--series", "KXHIGHNY", "--db", sqlite_url, *_base(sim),
            "--trade-start", "-1d09:00", "--trade-end", "0d18:30",
        )  # fmt: skip
        assert r.exit_code == 0 and "11 events, 22 markets synced" in r.output
        r = invoke(
            "candles", "--series", "KXHIGHNY", "--db", sqlite_url, "--archive", str(archive_dir),
            "--dry-run", "--tier", "advanced", "--from", "2025-11-10", "--to", "2025-11-12",
            *_base(sim),
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        assert sim.counters.by_route["event_candlesticks"] == 0
    lines = r.output.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines[:3]] == [
        "KXHIGHNY-25NOV10", "KXHIGHNY-25NOV11", "KXHIGHNY-25NOV12",
    ]  # fmt: skip
    assert lines[-1].startswith("plan: 3 events, ~3 candle requests at 30 req/s")
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        ev = conn.execute(
            select(kalshi_event).where(kalshi_event.c.event_ticker == "KXHIGHNY-25NOV10")
        ).one()
    engine.dispose()
    assert ev.trade_start_utc == datetime(2025, 11, 9, 14, tzinfo=UTC)  # 09:00 EST
    assert ev.trade_end_utc == datetime(2025, 11, 10, 23, 30, tzinfo=UTC)  # 18:30 EST


def test_failed_windows_exit_non_zero_with_a_summary(sqlite_url: str, archive_dir: Path) -> None:
    with run_sim_in_thread(SIM) as sim:
        assert sync(sim, sqlite_url).exit_code == 0
        sim.fail_next("/events/KXHIGHNY-25NOV12/candlesticks", "500", times=50)
        _add_event_unknown_to_the_api(sqlite_url, "KXHIGHNY-25NOV13X", date(2025, 11, 13))
        r = invoke(
            "candles", "--series", "KXHIGHNY", "--db", sqlite_url, "--archive", str(archive_dir),
            "--from", "2025-11-11", "--to", "2025-11-14", "--max-retries", "2",
            "--backoff-base", "0.001", *_base(sim),
        )  # fmt: skip
    assert r.exit_code == 1
    assert "windows: 3 done, 0 skipped (already archived), 2 failed" in r.output
    assert "FAILED KXHIGHNY-25NOV12 p1 FULL_MARKET_WINDOW" in r.output
    assert "FAILED KXHIGHNY-25NOV13X p1 FULL_MARKET_WINDOW: HTTP 404" in r.output
    assert "2 event windows FAILED" in r.output
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        status = {c.key.event_ticker: c.status for c in list_checkpoints(conn, "KXHIGHNY")}
    engine.dispose()
    assert status == {
        "KXHIGHNY-25NOV11": CheckpointStatus.EXTRACTED,
        "KXHIGHNY-25NOV12": CheckpointStatus.FAILED,
        "KXHIGHNY-25NOV13": CheckpointStatus.EXTRACTED,
        "KXHIGHNY-25NOV13X": CheckpointStatus.FAILED,
        "KXHIGHNY-25NOV14": CheckpointStatus.EXTRACTED,
    }


def _add_event_unknown_to_the_api(db_url: str, event: str, day: date) -> None:
    """An event (and a market) in our tables that the API answers 404 for."""
    now = datetime.now(UTC)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            kalshi_event.insert().values(
                event_ticker=event, series_ticker="KXHIGHNY", event_date=day, updated_at_utc=now
            )
        )
        conn.execute(
            kalshi_market.insert().values(
                market_ticker=f"{event}-T50",
                event_ticker=event,
                series_ticker="KXHIGHNY",
                open_time_utc=datetime(2025, 11, 12, 15, tzinfo=UTC),
                close_time_utc=datetime(2025, 11, 14, 4, 59, tzinfo=UTC),
                is_historical=False,
                updated_at_utc=now,
            )
        )
    engine.dispose()


# --- SIGKILL mid-run ----------------------------------------------------------------------------


def _extract(sim: SimServer, db: str, archive: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "extract", "candles", "--series", "KXHIGHNY", "--db", db,
        "--archive", str(archive), "--api-base", sim.base_url, "-q", *extra,
    ]  # fmt: skip


def _snapshot(archive: Path) -> dict[str, object]:
    """Every file of the archive: pages by (params, body), manifests without their time."""
    store = LocalArchive(archive)
    out: dict[str, object] = {}
    for p in sorted(archive.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(archive).as_posix()
        if rel.endswith(".json.gz"):
            env = store.read_page(rel)
            out[rel] = (env.path, env.params, env.status, env.body)
        elif rel.endswith("manifest.json"):
            doc = orjson.loads(p.read_bytes())
            doc.pop("completed_at_utc")
            out[rel] = doc
        else:
            out[rel] = p.read_bytes()
    return out


def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed_db = f"sqlite:///{tmp_path / 'killed.db'}"
    clean_db = f"sqlite:///{tmp_path / 'clean.db'}"
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    with run_sim_in_thread(replace(SIM, candle_cap=1000)) as sim:
        for db in (killed_db, clean_db):
            assert sync(sim, db).exit_code == 0

        # 11 events x 5 pages; a slow pace so the kill lands mid-run.
        log_path = tmp_path / "killed.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                _extract(sim, killed_db, killed, "--rps", "8", "--concurrency", "3"),
                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 60
                while len(list(killed.rglob("*.json.gz"))) < 12:
                    assert proc.poll() is None, log_path.read_text()
                    assert time.monotonic() < deadline, "extractor made no progress"
                    time.sleep(0.01)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        assert proc.returncode == -signal.SIGKILL

        before = {
            (p.parts[-5], int(p.name.removesuffix(".json.gz"))) for p in killed.rglob("*.json.gz")
        }
        # Killed mid-run: not everything is there, and every manifest is complete.
        store = LocalArchive(killed)
        manifests = [store.read_manifest(m) for m in store.iter_manifests()]
        assert len(manifests) < 11
        for m in manifests:
            assert all(store.exists(f"{m.key.dir}/{p}") for p in m.pages)
        engine = make_engine(killed_db)
        with engine.connect() as conn:
            cps = {c.key.event_ticker: c for c in list_checkpoints(conn, "KXHIGHNY")}
        engine.dispose()
        done = {m.key.event_ticker for m in manifests}
        # EXTRACTED implies a written manifest (a kill between the manifest and the
        # checkpoint update may leave a manifest beside RUNNING: the rerun fixes that).
        assert {e for e, c in cps.items() if c.status is CheckpointStatus.EXTRACTED} <= done

        sim.reset()
        rerun = subprocess.run(
            _extract(sim, killed_db, killed, "--rps", "500"),
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr
        again = {
            (r.path.split("/")[-2], int(r.params["start_ts"]))
            for r in sim.counters.log
            if r.route == "event_candlesticks"
        }
        assert again, "the rerun fetched the missing pages"
        engine = make_engine(killed_db)
        with engine.connect() as conn:
            statuses = {c.status for c in list_checkpoints(conn, "KXHIGHNY")}
        engine.dispose()
        assert statuses == {CheckpointStatus.EXTRACTED}
        assert not again & before, "the rerun requested pages already archived"

        sim.reset()
        uninterrupted = subprocess.run(
            _extract(sim, clean_db, clean, "--rps", "500"),
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert uninterrupted.returncode == 0, uninterrupted.stderr

    a, b = _snapshot(killed), _snapshot(clean)
    assert sorted(a) == sorted(b)
    assert a == b
    assert sum(1 for k in a if k.endswith("manifest.json")) == 11
