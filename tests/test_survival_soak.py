"""The long survival runs (``make soak``; excluded from ``make test``).

- 200+ SIGKILLs of extract and load at seeded crash points and random times, each
  scenario compared with an uninterrupted reference run (as ``test_survival_crash``);
- the loader's connection killed before EVERY statement and COMMIT of a load;
- a REAL MariaDB restart (``mysqladmin shutdown``, then ``mariadbd`` started again) in
  the middle of a load: the load completes after its retries, or fails its windows with
  a clear reason and a non-zero exit; either way a rerun leaves exactly the ground truth.
  Only here: every other test on this machine shares that server.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

import tests.test_survival_crash as crash
import tests.test_survival_faults as faults
from schemas.crashpoints import LOAD_AFTER_COMMIT
from tests.databases import mariadb_database
from tests.kalshi_sim import SimServer, run_sim_in_thread
from tests.test_survival_support import (
    MULTI,
    MULTI_SIM,
    REPO,
    SIM,
    Reference,
    checked_reference,
    checkpoint_statuses,
    extract_cmd,
    load_cmd,
    stage_env,
    stored_values,
    sync_events,
    truth_values,
)

pytestmark = pytest.mark.slow
SOAK_KILLS = 200
MULTI_SOAK_KILLS = 60


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with run_sim_in_thread(SIM) as server:
        yield server


@pytest.fixture(scope="module")
def reference(sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    with checked_reference(sim, tmp_path_factory.mktemp("reference")) as ref:
        yield ref


def test_soak_200_kills(sim: SimServer, reference: Reference, tmp_path: Path) -> None:
    crash.run_crash_suite(sim, reference, tmp_path, target=SOAK_KILLS, kills_per_stage=6)


@pytest.fixture(scope="module")
def multi_sim() -> Iterator[SimServer]:
    with run_sim_in_thread(MULTI_SIM) as server:
        yield server


def test_soak_kills_of_a_run_of_several_series(
    multi_sim: SimServer, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """Issue 20: 60 kills of one extract run over three series, and of its load."""
    work = tmp_path_factory.mktemp("multi-reference")
    with checked_reference(multi_sim, work, MULTI) as ref:
        crash.run_crash_suite(
            multi_sim, ref, tmp_path, target=MULTI_SOAK_KILLS, kills_per_stage=5,
            backfill=MULTI,
        )  # fmt: skip


def test_connection_killed_before_every_statement_of_a_load(sim: SimServer, tmp_path: Path) -> None:
    archive = tmp_path / "raw"
    with mariadb_database() as db_url:
        sync_events(sim, db_url)
        assert faults.extract(sim, db_url, archive).exit_code == 0
    with mariadb_database() as db_url:
        tried = faults.connection_kill_sweep(sim, archive, db_url, sample=None)
    assert tried > 20


# --- a real server restart ------------------------------------------------------------------


def _ping() -> bool:
    r = subprocess.run(
        ["mysqladmin", "-uroot", "--protocol=tcp", "-h127.0.0.1", "ping"],
        capture_output=True,
        check=False,
    )
    return r.returncode == 0


def restart_mariadb() -> float:
    """Shut the server down and start it again; returns the seconds it was away."""
    started = time.monotonic()
    subprocess.run(
        ["mysqladmin", "-uroot", "--protocol=tcp", "-h127.0.0.1", "shutdown"], check=True
    )
    deadline = time.monotonic() + 60
    # start-stop-daemon --oknodo does nothing while the old server is still exiting
    while subprocess.run(["pgrep", "-x", "mariadbd"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "MariaDB did not stop"
        time.sleep(0.05)
    subprocess.run(
        ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec",
         "/usr/sbin/mariadbd"],
        check=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _ping():
        assert time.monotonic() < deadline, "MariaDB did not come back"
        time.sleep(0.1)
    return time.monotonic() - started


def test_mariadb_restarted_in_the_middle_of_a_load(tmp_path: Path) -> None:
    world = replace(SIM, first_date=date(2025, 11, 6), last_date=date(2025, 11, 17))
    events = [f"KXHIGHNY-25NOV{d:02d}" for d in range(6, 18)]
    archive, tmp = tmp_path / "raw", tmp_path / "tmp"
    tmp.mkdir()
    with run_sim_in_thread(world) as sim, mariadb_database() as db_url:
        sync_events(sim, db_url)
        ex = subprocess.run(
            extract_cmd(sim, db_url, archive), env=stage_env(tmp), capture_output=True,
            text=True, cwd=REPO, timeout=300,
        )  # fmt: skip
        assert ex.returncode == 0, ex.stderr
        trace = tmp_path / "trace"
        proc = subprocess.Popen(
            load_cmd(db_url, archive), env=stage_env(tmp, trace=trace),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        # Restart once the first window is committed: the others are still to come.
        deadline = time.monotonic() + 120
        while not (trace.exists() and LOAD_AFTER_COMMIT in trace.read_text()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        away = restart_mariadb()
        _, err = proc.communicate(timeout=300)
        print(f"MariaDB away {away:.1f}s; load exit {proc.returncode}: {err.strip()[-500:]}")
        status = checkpoint_statuses(db_url)
        if proc.returncode == 0:
            assert set(status.values()) == {"SUCCESS"}
        else:
            # Gave up: one clear line; FAILED where the server was back to record it,
            # else left EXTRACTED (a checkpoint cannot be written to a server that is
            # down); rows exist exactly for the SUCCESS windows.
            last = err.strip().splitlines()[-1]
            assert proc.returncode == 1 and last.startswith("error:"), err
            assert "connect" in last.lower() or "lost connection" in last.lower(), last
            unfinished = [s for s in status.values() if s != "SUCCESS"]
            assert unfinished
            assert all(s.startswith(("FAILED: ", "EXTRACTED")) for s in unfinished)
            done = {e for e, s in status.items() if s == "SUCCESS"}
            assert {m.rsplit("-", 1)[0] for m, _ in stored_values(db_url)} == done
            rerun = subprocess.run(
                load_cmd(db_url, archive),
                env=stage_env(tmp),
                capture_output=True,
                text=True,
                cwd=REPO,
            )
            assert rerun.returncode == 0, rerun.stderr
        assert stored_values(db_url) == truth_values(sim, events)
        assert set(checkpoint_statuses(db_url).values()) == {"SUCCESS"}
