"""``make demo``: the whole job, offline, against the simulator, into SQLite.

It starts the Kalshi simulator on 127.0.0.1, then runs exactly the commands a user runs
against the real API (``extract events``, ``extract candles``, ``load run``, ``load
query``), only pointed at the simulator, and prints what was stored. Everything lands in
``data/demo/`` (deleted and rebuilt each time), so the demo never touches real data.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from schemas.db import make_engine
from schemas.tables import kalshi_backfill_checkpoint, kalshi_candle, kalshi_window_stats
from tests.kalshi_sim import SimConfig, run_sim_in_thread


def _run(args: list[str], env: dict[str, str]) -> None:
    print(f"\n$ {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", *args], env=env, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", default="KXHIGHNY")
    parser.add_argument("--days", type=int, default=3, help="events (days) to backfill")
    parser.add_argument("--out", default="data/demo", help="folder for the demo database/archive")
    opts = parser.parse_args()

    out = Path(opts.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    db_url = f"sqlite:///{out / 'kalshi.db'}"
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=opts.days + 2), today - timedelta(days=3)
    config = SimConfig(
        seed=7, first_date=first - timedelta(days=2), last_date=today, rate_limit_rps=20
    )
    with run_sim_in_thread(config) as sim:
        env = {
            **os.environ,
            "KALSHI_API_BASE": sim.base_url,
            "DATABASE_URL": db_url,
            "KALSHI_ARCHIVE_DIR": str(out / "raw"),
        }
        print(f"Kalshi simulator serving at {sim.base_url} (20 requests/s, like a Basic key)")
        _run(["extract", "events", "--series", opts.series], env)
        _run(
            [
                "extract",
                "candles",
                "--series",
                opts.series,
                "--from",
                first.isoformat(),
                "--to",
                last.isoformat(),
                "--rps",
                "20",
            ],
            env,
        )
        _run(["load", "run"], env)
        requests = sim.counters.total

    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(kalshi_candle)).scalar_one()
        windows = conn.execute(
            select(kalshi_backfill_checkpoint.c.status, func.count()).group_by(
                kalshi_backfill_checkpoint.c.status
            )
        ).all()
        expected, missing, maint = conn.execute(
            select(
                func.sum(kalshi_window_stats.c.expected_candles),
                func.sum(kalshi_window_stats.c.missing_candles),
                func.sum(kalshi_window_stats.c.missing_in_maintenance),
            )
        ).one()
        market = conn.execute(select(func.min(kalshi_candle.c.market_ticker))).scalar_one()
        first_ts, last_ts = conn.execute(
            select(
                func.min(kalshi_candle.c.end_period_ts_utc),
                func.max(kalshi_candle.c.end_period_ts_utc),
            ).where(kalshi_candle.c.market_ticker == market)
        ).one()
    engine.dispose()
    _run(
        [
            "load",
            "query",
            "--market",
            market,
            "--from",
            str(first_ts).replace(" ", "T"),
            "--to",
            (datetime.fromisoformat(str(first_ts)) + timedelta(minutes=9)).isoformat(),
            "--format",
            "table",
        ],
        {**os.environ, "DATABASE_URL": db_url},
    )
    print(
        f"\nStored {rows:,} one-minute candles from {requests} API requests; windows: "
        + ", ".join(f"{n} {s}" for s, n in windows)
        + f"; missing minutes {missing or 0:,} of {expected or 0:,} expected "
        f"({maint or 0:,} inside the Thursday maintenance pause).\n"
        f"{market} spans {first_ts} .. {last_ts} UTC.\n"
        f"Database: {db_url}   Archive: {out / 'raw'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
