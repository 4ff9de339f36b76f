"""``load run --follow``: the stop rule (pure), and a loader following a real extractor.

The end-to-end test runs ``python -m extract candles`` against the simulator while
``python -m load run --follow`` runs beside it: the loader must load windows while the
extractor still works, stop by itself once the extractor is gone, and leave exactly the
simulator's candles in the database.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from load.config import LoadConfig
from load.run.follow import START_GRACE_S, FollowState
from load.run.outcome import LoadSummary
from schemas.checkpoints import list_checkpoints
from schemas.core import CheckpointStatus
from schemas.db import make_engine
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, run_sim_in_thread
from tests.test_load_cli import REPO, _env
from tests.test_load_support import ground_truth, stored

CONFIG = LoadConfig(follow=True, idle_exit_s=100.0)


def _part(loaded: int = 0, held: int = 0, failures: tuple[str, ...] = ()) -> LoadSummary:
    return LoadSummary(
        windows_loaded=loaded,
        windows_held=held,
        windows_failed=len(failures),
        failures=list(failures),
    )


def test_stops_once_no_extractor_is_alive_and_nothing_is_left() -> None:
    state = FollowState(started=0.0, last_loaded=0.0)
    assert state.stop_reason(1.0, extractor_alive=True, part=_part(), config=CONFIG) is None
    assert state.stop_reason(2.0, extractor_alive=True, part=_part(3), config=CONFIG) is None
    # The extractor is gone, but this pass still loaded (or saw held) windows: one more.
    assert state.stop_reason(3.0, extractor_alive=False, part=_part(1), config=CONFIG) is None
    assert state.stop_reason(4.0, extractor_alive=False, part=_part(0, 1), config=CONFIG) is None
    reason = state.stop_reason(5.0, extractor_alive=False, part=_part(), config=CONFIG)
    assert reason is not None and "no extractor" in reason


def test_failed_windows_are_not_left_to_load() -> None:
    state = FollowState(started=0.0, last_loaded=0.0, seen_extractor=True)
    part = _part(failures=("w: corrupt",))
    assert state.stop_reason(1.0, extractor_alive=False, part=part, config=CONFIG) is not None


def test_waits_for_an_extractor_started_alongside() -> None:
    state = FollowState(started=0.0, last_loaded=0.0)
    early = START_GRACE_S - 1
    assert state.stop_reason(early, extractor_alive=False, part=_part(), config=CONFIG) is None
    late = START_GRACE_S + 1
    assert state.stop_reason(late, extractor_alive=False, part=_part(), config=CONFIG) is not None


def test_idle_exit_is_a_backstop_even_with_an_extractor_alive() -> None:
    state = FollowState(started=0.0, last_loaded=0.0)
    assert state.stop_reason(50.0, extractor_alive=True, part=_part(1), config=CONFIG) is None
    assert state.stop_reason(149.0, extractor_alive=True, part=_part(), config=CONFIG) is None
    reason = state.stop_reason(150.0, extractor_alive=True, part=_part(), config=CONFIG)
    assert reason is not None and "--idle-exit" in reason
    never = LoadConfig(follow=True, idle_exit_s=0)
    assert state.stop_reason(1e9, extractor_alive=True, part=_part(), config=never) is None


def test_follow_beside_a_running_extractor_equals_the_truth(db_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    first, last = now.date() - timedelta(days=7), now.date() - timedelta(days=3)
    config = SimConfig(
        seed=31,
        series=(DEFAULT_SERIES[0],),
        now=now,
        first_date=first,
        last_date=last,
        markets_per_event=3,
        candle_cap=1000,  # several pages a window: the extraction takes a while
    )
    archive = tmp_path / "raw"
    common = ["--series", "KXHIGHNY", "--db", db_url, "-q"]
    engine = make_engine(db_url)
    loaded_while_extracting = False
    with run_sim_in_thread(config) as sim:
        api = ["--api-base", sim.base_url]
        env = {**_env(), "KALSHI_API_BASE": sim.base_url}
        res = subprocess.run(
            [sys.executable, "-m", "extract", "events", *common, *api, "--rps", "500"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        loader = subprocess.Popen(
            [sys.executable, "-m", "load", "run", "--follow", "--idle-exit", "120",
             "--db", db_url, "--archive", str(archive)],
            cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        extract = subprocess.Popen(
            [sys.executable, "-m", "extract", "candles", *common, *api, "--rps", "4",
             "--archive", str(archive), "--from", str(first), "--to", str(last)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            while extract.poll() is None:
                with engine.connect() as conn:
                    done = [
                        c for c in list_checkpoints(conn) if c.status is CheckpointStatus.SUCCESS
                    ]
                loaded_while_extracting = loaded_while_extracting or (
                    bool(done) and extract.poll() is None
                )
                time.sleep(0.5)
            _, extract_err = extract.communicate(timeout=60)
            assert extract.returncode == 0, extract_err
            _, load_err = loader.communicate(timeout=180)  # it must stop by itself
        finally:
            for proc in (extract, loader):
                if proc.poll() is None:
                    proc.kill()
        world = sim.world
        historical: set[str] = set()
        for e in world.event_tickers("KXHIGHNY"):
            info = world.event_info(e)
            assert info is not None
            historical |= {m.ticker for m in info.markets if world.is_historical(m)}
    try:
        assert loader.returncode == 0, load_err
        assert "no extractor is alive" in load_err
        assert loaded_while_extracting
        events = list(world.event_tickers("KXHIGHNY"))
        truth = ground_truth(world, events)
        for k, v in truth.items():
            if k[0] in historical:  # the historical route has no price min/max
                truth[k] = (*v[:14], None, None, *v[16:])
        assert stored(engine) == truth
        with engine.connect() as conn:
            cps = list_checkpoints(conn, "KXHIGHNY")
        assert cps and {cp.status for cp in cps} == {CheckpointStatus.SUCCESS}
    finally:
        engine.dispose()
