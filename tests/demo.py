"""``make demo``: the whole job, offline, against the simulator, into SQLite.

It starts the Kalshi simulator on 127.0.0.1, then runs exactly the commands a user runs
against the real API (``extract series``, ``extract events``, ``extract candles``, ``load
run``, ``load status``, ``load query``) for every weather series of the category, only
pointed at the simulator, and prints what was stored. The days backfilled end on the
last day of the previous month, so the monthly series' event is among them. Everything lands in
``data/demo/`` (or ``--out``), deleted and rebuilt each time, so the demo never touches
real data. It only ever deletes a folder it made itself: each run leaves a marker file
there, and ``--out`` naming any other non-empty folder is refused (exit 2) untouched.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from schemas.db import make_engine
from schemas.tables import kalshi_backfill_checkpoint, kalshi_candle, kalshi_window_stats
from tests.kalshi_sim import CATEGORY_SERIES, WEATHER, SimConfig, run_sim_in_thread


def _run(args: list[str], env: dict[str, str]) -> None:
    print(f"\n$ {shlex.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", *args], env=env, check=True)


#: Written into every folder the demo makes: only such a folder is ever deleted.
MARKER = ".kalshi-demo-folder"


class NotADemoFolderError(Exception):
    """``--out`` names a folder the demo did not make: deleting it could lose real data."""


def prepare_out(out: Path) -> None:
    """Empty ``out`` for a new run and mark it as the demo's; refuse anyone else's folder.

    A missing or empty folder is taken. A folder holding the marker is one an earlier demo
    made: it is deleted and made again. Anything else (a file, a folder without the
    marker) raises NotADemoFolderError and is left exactly as it was.
    """
    if out.exists() or out.is_symlink():
        if out.is_symlink() or not out.is_dir():
            raise NotADemoFolderError(f"--out {out} is not a folder: refusing to replace it")
        if any(out.iterdir()):
            if not (out / MARKER).is_file():
                raise NotADemoFolderError(
                    f"--out {out} is a folder the demo did not create (no {MARKER} in it): "
                    "refusing to delete it; name a new or empty folder, or delete it yourself"
                )
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `python -m tests.demo`: deleted and rebuilt by each run\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--category", default=WEATHER)
    parser.add_argument("--days", type=int, default=3, help="event days to backfill")
    parser.add_argument(
        "--out",
        default="data/demo",
        help="folder for the demo database/archive: new, empty, or made by an earlier demo",
    )
    opts = parser.parse_args(argv)

    out = Path(opts.out)
    try:
        prepare_out(out)
    except NotADemoFolderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    db_url = f"sqlite:///{out / 'kalshi.db'}"
    today = datetime.now(UTC).date()
    last = today.replace(day=1) - timedelta(days=1)  # the previous month's last day
    first = last - timedelta(days=opts.days - 1)
    series = tuple(
        replace(s, hours=(9, 12, 15, 18)) if s.cadence == "hourly" else s for s in CATEGORY_SERIES
    )
    config = SimConfig(
        seed=7,
        series=series,
        first_date=first - timedelta(days=2),
        last_date=today,
        markets_per_event=3,  # the category's six series, a month-long one among them: quick
        rate_limit_rps=20,
        schedule="weather",
    )
    selection = ["--category", opts.category]
    with run_sim_in_thread(config) as sim:
        env = {
            **os.environ,
            "KALSHI_API_BASE": sim.base_url,
            "DATABASE_URL": db_url,
            "KALSHI_ARCHIVE_DIR": str(out / "raw"),
        }
        print(f"Kalshi simulator serving at {sim.base_url} (20 requests/s, like a Basic key)")
        _run(["extract", "series", *selection], env)
        _run(["extract", "events", *selection], env)
        _run(
            [
                "extract",
                "--log-file",
                str(out / "extract.jsonl"),
                "candles",
                *selection,
                "--from",
                first.isoformat(),
                "--to",
                last.isoformat(),
                "--rps",
                "20",
            ],
            env,
        )
        _run(["load", "--log-file", str(out / "load.log"), "run", *selection], env)
        requests = sim.counters.total
    _run(["load", "status", *selection], env)

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
        f"Database: {db_url}   Archive: {out / 'raw'}   Per-window logs: {out}/*.log*"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
