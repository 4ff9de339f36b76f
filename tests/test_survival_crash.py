"""Kill both stages with SIGKILL at seeded moments; the rerun must equal an uninterrupted run.

One reference run (simulator → ``python -m extract candles`` → ``python -m load run`` on
MariaDB) per module; then scenarios, each on a fresh database and archive, kill the
extractor and the loader again and again (named crash points from
:mod:`schemas.crashpoints`, and timed SIGKILLs from outside), rerun until they finish,
and compare: identical ``kalshi_candle`` rows (``retrieved_at_utc`` aside, which must
instead equal the pages of the run's own archive), identical archive, identical window
stats, every checkpoint SUCCESS, no stray temporary file. Invariants are also checked
after every single kill (manifest ⇒ pages, rows ⇔ SUCCESS).

Replay a failure with ``KALSHI_CRASH_SEED=<seed printed in the message>``.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from schemas.crashpoints import ARCHIVE_BEFORE_RENAME, EXTRACT_POINTS, LOAD_POINTS
from tests.kalshi_sim import SimServer, run_sim_in_thread
from tests.test_survival_support import (
    DEFAULT,
    EVENTS,
    MULTI,
    MULTI_EVENTS,
    MULTI_SIM,
    SIM,
    Backfill,
    Reference,
    Zygote,
    checked_reference,
    crash_scenario,
    extract_cmd,
    run_stage,
    stage_env,
    stray_temp_files,
    sync_events,
)

SEED = int(os.environ.get("KALSHI_CRASH_SEED") or secrets.randbelow(2**31))
FAST_KILLS = 20
MULTI_KILLS = 6


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with run_sim_in_thread(SIM) as server:
        yield server


@pytest.fixture(scope="module")
def reference(sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    with checked_reference(sim, tmp_path_factory.mktemp("reference")) as ref:
        yield ref


def test_reference_reaches_every_crash_point(reference: Reference) -> None:
    """A crash point never reached would make its kills silently test nothing."""
    missing = [p for p in (*EXTRACT_POINTS, *LOAD_POINTS) if not reference.hits.get(p)]
    assert missing == []
    assert all(v == "SUCCESS" for v in reference.checkpoints.values())
    assert sorted(reference.checkpoints) == list(EVENTS)


@pytest.fixture(scope="module")
def multi_sim() -> Iterator[SimServer]:
    with run_sim_in_thread(MULTI_SIM) as server:
        yield server


@pytest.fixture(scope="module")
def multi_reference(
    multi_sim: SimServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Reference]:
    work = tmp_path_factory.mktemp("multi-reference")
    with checked_reference(multi_sim, work, MULTI) as ref:
        yield ref


def run_crash_suite(
    sim: SimServer,
    reference: Reference,
    tmp_path: Path,
    *,
    target: int,
    kills_per_stage: int,
    backfill: Backfill = DEFAULT,
) -> None:
    """Scenarios two at a time (one per core) until ``target`` kills have landed.

    Scenario ``i`` draws from ``Random(f"{SEED}:{i}")``, so each replays on its own.
    """
    print(f"crash suite seed {SEED} (replay: KALSHI_CRASH_SEED={SEED})")
    logs: dict[int, list[str]] = {}

    def scenario(i: int) -> int:
        logs[i] = log = []
        work = tmp_path / f"s{i}"
        work.mkdir()
        zygote = Zygote(work)
        try:
            rng = random.Random(f"{SEED}:{i}")
            return crash_scenario(
                sim, reference, rng, work, kills_per_stage, log, zygote.run, backfill
            )
        except AssertionError as e:
            plan = "\n".join(log)
            raise AssertionError(f"seed {SEED} scenario {i}, kill plan so far:\n{plan}\n{e}") from e
        finally:
            zygote.close()

    landed, started = 0, 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        while landed < target:
            assert started < 4 * target, f"seed {SEED}: only {landed} kills landed"
            wave = [pool.submit(scenario, started + k) for k in range(2)]
            started += 2
            landed += sum(f.result() for f in wave)
    for i in sorted(logs):
        print(f"-- scenario {i}", *logs[i], sep="\n")
    print(f"seed {SEED}: {landed} kills landed in {started} scenarios")


def test_killed_anywhere_then_rerun_equals_an_uninterrupted_run(
    sim: SimServer, reference: Reference, tmp_path: Path
) -> None:
    run_crash_suite(sim, reference, tmp_path, target=FAST_KILLS, kills_per_stage=4)


def test_a_run_of_several_series_killed_anywhere_then_rerun_equals_an_uninterrupted_one(
    multi_sim: SimServer, multi_reference: Reference, tmp_path: Path
) -> None:
    """Issue 20: one extract run over three series (daily, hourly, zone-less), killed at
    seeded crash points and times, then rerun: the same table, no duplicate."""
    assert sorted(multi_reference.checkpoints) == list(MULTI_EVENTS)
    run_crash_suite(
        multi_sim, multi_reference, tmp_path, target=MULTI_KILLS, kills_per_stage=3,
        backfill=MULTI,
    )  # fmt: skip


def test_killed_while_creating_the_archive_root_leaves_no_temporary_file(
    sim: SimServer, sqlite_url: str, tmp_path: Path
) -> None:
    """The first atomic write of a new archive is ``archive.json``, at the root, where no
    window's cleanup looks: found by the soak (seed 1363712044, scenario 21)."""
    archive, tmp = tmp_path / "raw", tmp_path / "tmp"
    tmp.mkdir()
    sync_events(sim, sqlite_url)
    cmd = extract_cmd(sim, sqlite_url, archive)
    killed = run_stage(cmd, stage_env(tmp, crash=f"{ARCHIVE_BEFORE_RENAME}:1"))
    assert killed.killed
    assert [p.name[:18] for p in archive.iterdir()] == [".tmp-archive.json."]
    assert run_stage(cmd, stage_env(tmp)).returncode == 0
    assert stray_temp_files(archive, tmp) == []
