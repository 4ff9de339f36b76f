"""The whole pipeline as a user runs it: simulator (real HTTP) → ``python -m extract`` →
archive → ``python -m load run`` (with the API gone) → database = the simulator's truth.

The historical cutoff falls between the two events' settlements: the older event is
fetched market by market from the historical tier, the newer one from the live event
route, so both page kinds go through the real extractor into one load."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.checkpoints import list_checkpoints
from schemas.core import CheckpointStatus
from schemas.db import make_engine
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, run_sim_in_thread
from tests.test_load_cli import REPO, _env
from tests.test_load_support import ground_truth, stored


def test_simulator_to_extract_to_load_equals_ground_truth(db_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    first, last = now.date() - timedelta(days=4), now.date() - timedelta(days=3)
    config = SimConfig(
        seed=23,
        series=(DEFAULT_SERIES[0],),
        now=now,
        first_date=first,
        last_date=last,
        markets_per_event=3,
        candle_cap=2000,  # several pages per window: boundary candles come back twice
        legacy_fields=True,
    )
    archive = tmp_path / "raw"
    common = ["--series", "KXHIGHNY", "--db", db_url, "-q"]
    with run_sim_in_thread(config) as sim:
        old, new = (sim.world.event_info(t) for t in reversed(sim.world.event_tickers()))
        assert old is not None and new is not None
        sim.set_cutoff(datetime.fromtimestamp((old.settlement_ts + new.settlement_ts) // 2, UTC))
        historical = {m.ticker for m in old.markets}
        assert all(sim.world.is_historical(m) for m in old.markets)
        assert not any(sim.world.is_historical(m) for m in new.markets)
        api = ["--api-base", sim.base_url, "--rps", "500"]
        for args in (
            ["events", *common, *api],
            ["candles", *common, *api, "--archive", str(archive), "--from", str(first),
             "--to", str(last)],
        ):  # fmt: skip
            res = subprocess.run(
                [sys.executable, "-m", "extract", *args],
                cwd=REPO, env={**_env(), "KALSHI_API_BASE": sim.base_url},
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert res.returncode == 0, res.stderr
        world = sim.world
    events = list(world.event_tickers("KXHIGHNY"))
    assert len(events) == 2
    assert len(list(archive.rglob("*.json.gz"))) > 2 * 2  # really paged
    assert len(list(archive.rglob("markets/*/*.json.gz"))) >= len(historical)

    # The simulator is stopped and the API points nowhere: load reads only the archive.
    load = subprocess.run(
        [sys.executable, "-m", "load", "run", "--db", db_url, "--archive", str(archive)],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert load.returncode == 0, load.stderr
    assert "2 windows loaded, 0 skipped, 0 failed" in load.stderr

    engine = make_engine(db_url)
    try:
        truth = ground_truth(world, events)
        for k, v in truth.items():
            if k[0] in historical:  # the historical route has no price min/max
                truth[k] = (*v[:14], None, None, *v[16:])
        assert stored(engine) == truth
        with engine.connect() as conn:
            cps = [cp for cp in list_checkpoints(conn, "KXHIGHNY")]
        assert {cp.status for cp in cps} == {CheckpointStatus.SUCCESS}
        assert sum(cp.rows_loaded for cp in cps) == len(truth)
    finally:
        engine.dispose()
