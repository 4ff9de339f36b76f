"""Kill a packed run anywhere; the rerun must equal an uninterrupted run.

The crash suite of ``tests/test_survival_crash.py`` on a backfill whose windows share
their batch requests: eleven weather events at 60 minutes, four markets each, so one
request carries nine events' markets and another the last two. Both stages are killed
with SIGKILL at named crash points and at random moments, again and again, then rerun:
the archive (each packed page kept once, every manifest naming it), the rows, the window
statistics and the checkpoints must be those of the uninterrupted reference, and the
reference itself the simulator's truth. A killed group resumes from the packed pages it
archived (same plan, same file names); a window complete before the kill is not fetched
again, and none is loaded twice (rows equal the checkpoints' counts after every kill).

Replay a failure with ``KALSHI_CRASH_SEED=<seed printed in the message>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from schemas.archive import PACKED_DIR
from schemas.crashpoints import EXTRACT_POINTS, LOAD_POINTS
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, SimServer, run_sim_in_thread
from tests.test_survival_crash import run_crash_suite
from tests.test_survival_support import NOW, Backfill, Reference, checked_reference

PACKED = Backfill(
    SimConfig(
        seed=41,
        series=(DEFAULT_SERIES[0],),
        now=NOW,
        first_date=date(2025, 11, 5),
        last_date=date(2025, 11, 15),
        markets_per_event=4,
        schedule="weather",
        historical_cutoff_days=3650,
    ),
    tuple(f"KXHIGHNY-25NOV{d:02d}" for d in range(5, 16)),
    ("--period", "60", "--route", "auto"),
    60,
)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with run_sim_in_thread(PACKED.sim) as server:
        yield server


@pytest.fixture(scope="module")
def reference(sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    with checked_reference(sim, tmp_path_factory.mktemp("reference"), PACKED) as ref:
        yield ref


def test_the_reference_is_packed_and_reaches_every_crash_point(reference: Reference) -> None:
    packed = [rel for rel in reference.archive if rel.startswith(f"{PACKED_DIR}/")]
    assert len(packed) == 2  # 9 events (36 tickers x 233 periods), then 2
    named = [
        p
        for rel, doc in reference.archive.items()
        if rel.endswith("manifest.json") and isinstance(doc, dict)
        for p in doc["packed_pages"]
    ]
    assert sorted(set(named)) == sorted(packed) and len(named) == len(PACKED.events)
    missing = [p for p in (*EXTRACT_POINTS, *LOAD_POINTS) if not reference.hits.get(p)]
    assert missing == []
    assert sorted(reference.checkpoints) == list(PACKED.events)
    assert set(reference.checkpoints.values()) == {"SUCCESS"}


def test_a_killed_packed_run_reruns_to_the_uninterrupted_one(
    sim: SimServer, reference: Reference, tmp_path: Path
) -> None:
    run_crash_suite(sim, reference, tmp_path, target=8, kills_per_stage=3, backfill=PACKED)


@pytest.mark.slow
def test_a_packed_run_survives_many_kills(
    sim: SimServer, reference: Reference, tmp_path: Path
) -> None:
    run_crash_suite(sim, reference, tmp_path, target=40, kills_per_stage=6, backfill=PACKED)
