"""Several real processes on one backfill: 3 extractors and 2 loaders, one simulator, one
MariaDB database, the archive on a local folder or on a local S3-compatible server (moto).

Each scenario ends with exactly the rows, window statistics, archive and checkpoints of
a single-process run of the same simulated world (only retrieval and computation times
may differ). The kill scenario SIGKILLs an extractor mid-window under a custom worker id
(so nobody can tell it is dead but its lease): the window stays held until the lease
expires, then another extractor takes it over and finishes it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from extract.config import ApiConfig, ExtractConfig, RateLimit, RouteChoice
from extract.events.sync import sync_events
from extract.run.candles import run_candles
from load.config import LoadConfig
from load.run.loader import load_windows
from schemas.archive import ArchiveStore, WindowKey, open_archive
from schemas.checkpoints import get_checkpoint, list_checkpoints
from schemas.core import CheckpointStatus, WindowPolicy
from schemas.db import make_engine
from schemas.processes import KIND_EXTRACT
from schemas.tables import kalshi_candle, kalshi_window_stats
from schemas.workers import count_live, list_workers
from tests.databases import MYSQL_SERVER_URL, drop_database, new_database
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, SimServer, run_sim_in_thread

pytestmark = pytest.mark.mariadb

REPO = Path(__file__).resolve().parents[1]
SERIES = "KXHIGHNY"
KILLED_EVENT = "KXHIGHNY-25NOV12"
SIM = SimConfig(
    seed=21,
    series=(DEFAULT_SERIES[0],),
    now=datetime(2025, 11, 20, 15, 0, tzinfo=UTC),
    first_date=date(2025, 11, 10),
    last_date=date(2025, 11, 15),
    markets_per_event=2,
    candle_cap=800,  # about 6 pages an event
    historical_cutoff_days=3650,
)
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# --- fixtures: the simulator, the reference run, the archive stores --------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with run_sim_in_thread(SIM) as server:
        yield server


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, in its own process (it then competes with the
    simulator's thread for CPU, not for this process's GIL)."""
    import socket

    from tests.test_archive_stores import _free_port

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until it listens
            assert server.poll() is None, "moto server exited"
            assert time.monotonic() < deadline, "moto server did not start"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


@dataclass(frozen=True)
class Place:
    """Where one scenario's processes write: a database and an archive location."""

    db_url: str
    archive: str
    env: dict[str, str]

    def store(self) -> ArchiveStore:
        if not self.archive.startswith("s3://"):
            return open_archive(self.archive)
        endpoint = self.env["AWS_ENDPOINT_URL"]
        options = {"key": "test", "secret": "test", "client_kwargs": {"endpoint_url": endpoint}}
        return open_archive(self.archive, options)


def _place(request: pytest.FixtureRequest, tmp_path: Path, db: str, where: str) -> Place:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    url = f"{MYSQL_SERVER_URL}/{db}"
    if where == "local":
        return Place(url, str(tmp_path / "raw"), env)
    import boto3

    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"scale-{secrets.token_hex(4)}"
    env |= S3_ENV | {"AWS_ENDPOINT_URL": endpoint}
    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)  # fmt: skip
    return Place(url, f"s3://{bucket}/raw", env)


@pytest.fixture(params=["local", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    db = new_database()
    try:
        yield _place(request, tmp_path, db, str(request.param))
    finally:
        drop_database(db)


@pytest.fixture(scope="module")
def reference(sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Everything a single extractor and a single loader leave behind."""
    db = new_database()
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        ref = Place(f"{MYSQL_SERVER_URL}/{db}", str(tmp_path_factory.mktemp("ref") / "raw"), env)
        cfg = replace(_events(sim, ref), archive_dir=ref.archive, worker_id="solo")
        summary = asyncio.run(run_candles(cfg))
        assert (summary.done, summary.failed) == (6, 0)
        load_windows(LoadConfig(db_url=ref.db_url, archive_dir=ref.archive, worker_id="solo"))
        outcome = _outcome(ref)
        # The reference is itself checked against the simulator's truth, so a defect that
        # every run shares (the single process included) cannot pass as "the same".
        assert _candle_values(ref) == _truth_values(sim)
        yield outcome
    finally:
        drop_database(db)


# --- commands -------------------------------------------------------------------------------------


def _extract(sim: SimServer, p: Place, worker: str, *extra: str, rps: float = 300) -> list[str]:
    return [
        sys.executable, "-m", "extract", "candles", "--series", SERIES, "--db", p.db_url,
        "--archive", p.archive, "--api-base", sim.base_url, "--rps", str(rps),
        "--worker-id", worker, "--lease-seconds", "4", "--max-retries", "10", *extra,
    ]  # fmt: skip


def _load(p: Place, worker: str) -> list[str]:
    return [
        sys.executable, "-m", "load", "run", "--db", p.db_url, "--archive", p.archive,
        "--worker-id", worker, "--lease-seconds", "4",
    ]  # fmt: skip


def _run(cmd: list[str], p: Place) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, env=p.env, capture_output=True, text=True, timeout=180)


def _spawn(cmd: list[str], p: Place) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd, cwd=REPO, env=p.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, r.stderr
    return r.stderr


def _events(sim: SimServer, p: Place) -> ExtractConfig:
    """Sync the series' events in process (what ``extract events`` does) and return its config."""
    api = ApiConfig(base_url=sim.base_url, rate=RateLimit(500, 1.0))
    cfg = ExtractConfig(
        series=SERIES, db_url=p.db_url, api=api, now=SIM.now, route=RouteChoice.EVENT
    )
    asyncio.run(sync_events(cfg))
    return cfg


def _wait_registered(p: Place, n: int, finished: threading.Event) -> None:
    """Wait until ``n`` extractors have registered their heartbeat (or all have ended)."""
    engine = make_engine(p.db_url)
    try:
        deadline = time.monotonic() + 60
        while not finished.is_set() and time.monotonic() < deadline:
            with engine.connect() as conn:
                if count_live(conn, KIND_EXTRACT) >= n:
                    return
            time.sleep(0.1)
    finally:
        engine.dispose()


def _loaders(p: Place, names: list[str], until: threading.Event) -> list[str]:
    """Run ``python -m load run`` in a loop per name until ``until`` is set, then once more.

    Returns every run's stderr (an exception in a loop thread fails the caller).
    """
    logs: list[str] = []
    errors: list[str] = []

    def loop(name: str) -> None:
        while True:
            last = until.is_set()
            r = _run(_load(p, name), p)
            logs.append(r.stderr)
            if r.returncode != 0:
                errors.append(r.stderr)
                return
            if last:
                return
            until.wait(0.5)  # pacing only: leave the two cores to the extractors

    threads = [threading.Thread(target=loop, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    return logs


# --- the outcome of a run -------------------------------------------------------------------------


def _outcome(p: Place) -> dict[str, Any]:
    """Rows (but retrieval times), stats (but computation times), checkpoints, archive."""
    engine = make_engine(p.db_url)
    with engine.connect() as conn:
        rows = [
            tuple(r)[:-1]  # retrieved_at_utc is the last column
            for r in conn.execute(select(kalshi_candle).order_by(*kalshi_candle.primary_key))
        ]
        stats = [
            tuple(r)[:-1]  # computed_at_utc too
            for r in conn.execute(
                select(kalshi_window_stats).order_by(*kalshi_window_stats.primary_key)
            )
        ]
        cps = {
            c.key.event_ticker: (
                c.status, c.window_start_ts, c.window_end_ts, c.pages_archived,
                c.candles_archived, c.rows_loaded, c.lease_owner, c.lease_expires_utc,
            )
            for c in list_checkpoints(conn, SERIES)
        }  # fmt: skip
    engine.dispose()
    store = p.store()
    files: dict[str, Any] = {}
    for rel in store.glob("*/*/p*/*/*.json.gz"):
        env = store.read_page(rel)
        files[rel] = (env.path, env.params, env.status, env.body)
    for rel in store.iter_manifests():
        doc = orjson.loads(store.read_bytes(rel))
        doc.pop("completed_at_utc")
        files[rel] = doc
    files["archive.json"] = store.read_bytes("archive.json")
    return {"rows": rows, "stats": stats, "checkpoints": cps, "archive": files}


_BOOK = ("open", "high", "low", "close")


def _candle_values(p: Place) -> list[tuple[Any, ...]]:
    """(market, end ts, yes bid/ask OHLC, volume, open interest) of every stored candle."""
    c = kalshi_candle.c
    cols = [c.market_ticker, c.end_period_ts_utc]
    cols += [c[f"yes_{side}_{k}"] for side in ("bid", "ask") for k in _BOOK]
    cols += [c.volume, c.open_interest, c.price_close, c.price_previous]
    engine = make_engine(p.db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).order_by(c.market_ticker, c.end_period_ts_utc)).all()
    engine.dispose()
    return [(r[0], int(r[1].replace(tzinfo=UTC).timestamp()), *r[2:]) for r in rows]


def _truth_values(sim: SimServer) -> list[tuple[Any, ...]]:
    """The same columns straight from the simulated world (what Kalshi would serve)."""

    def dec(v: Any) -> Decimal | None:
        return None if v is None else Decimal(v)

    out: list[tuple[Any, ...]] = []
    for event in sim.world.event_tickers(SERIES):
        for m in sorted(sim.world.market_infos(event), key=lambda m: m.ticker):
            for k in sim.world.candles(m.ticker, 1):
                book = [dec(k[side].get(f"{x}_dollars")) for side in ("yes_bid", "yes_ask")
                        for x in _BOOK]  # fmt: skip
                out.append(
                    (
                        m.ticker,
                        k["end_period_ts"],
                        *book,
                        dec(k.get("volume_fp")),
                        dec(k.get("open_interest_fp")),
                        dec(k["price"].get("close_dollars")),
                        dec(k["price"].get("previous_dollars")),
                    )
                )
    return sorted(out, key=lambda r: (r[0], r[1]))


def _assert_same_as(reference: dict[str, Any], p: Place) -> None:
    got = _outcome(p)
    assert len(got["rows"]) == len(reference["rows"]) > 0
    assert got["rows"] == reference["rows"]
    assert got["stats"] == reference["stats"]
    assert sorted(got["archive"]) == sorted(reference["archive"])
    assert got["archive"] == reference["archive"]
    assert got["checkpoints"] == reference["checkpoints"]
    statuses = {c[0] for c in got["checkpoints"].values()}
    assert statuses == {CheckpointStatus.SUCCESS}
    assert all(c[6] is None and c[7] is None for c in got["checkpoints"].values())


# --- the scenarios ---------------------------------------------------------------------------


def test_three_extractors_and_two_loaders_equal_one_of_each(
    sim: SimServer, reference: dict[str, Any], place: Place
) -> None:
    _events(sim, place)
    place.store().ensure_writable()  # the loaders may start before any extractor wrote
    sim.reset()
    done = threading.Event()
    extractors = [
        _spawn(_extract(sim, place, f"ext-{i}", "--concurrency", "2"), place) for i in range(3)
    ]

    def wait_extractors() -> None:
        for proc in extractors:
            proc.wait()
        done.set()

    waiter = threading.Thread(target=wait_extractors)
    waiter.start()
    # A loader that finds no complete window exits 0 only while an extractor is alive (else
    # it names what it found and exits 2): start the loaders once the extractors are.
    _wait_registered(place, len(extractors), done)
    load_logs = _loaders(place, ["load-a", "load-b"], done)  # alongside, then once more
    waiter.join()
    for proc in extractors:
        _, err = proc.communicate()
        assert proc.returncode == 0, err
    _assert_same_as(reference, place)

    # Each window was extracted by one worker: no page was requested twice across the three.
    requests = [
        (r.path, r.params["start_ts"]) for r in sim.counters.log if r.route == "event_candlesticks"
    ]
    pages = [k for k in reference["archive"] if k.endswith(".json.gz")]
    assert len(requests) == len(set(requests)) == len(pages)
    engine = make_engine(place.db_url)
    with engine.connect() as conn:
        assert list_workers(conn) == []  # all unregistered at exit
    engine.dispose()
    assert any("windows loaded" in log for log in load_logs)


def test_a_killed_extractors_window_is_finished_by_another_after_its_lease(
    sim: SimServer, reference: dict[str, Any], place: Place
) -> None:
    _events(sim, place)
    engine = make_engine(place.db_url)
    killed_key = WindowKey(SERIES, KILLED_EVENT, 1, WindowPolicy.FULL_MARKET_WINDOW)
    store = place.store()

    # One slow extractor on one event: 1 request/s after a 2-request burst.
    victim = _spawn(_extract(sim, place, "ext-killed", "--event", KILLED_EVENT, rps=1), place)
    try:
        deadline = time.monotonic() + 60
        while len(store.list_files(killed_key.dir, ".json.gz")) < 3:
            assert victim.poll() is None, victim.communicate()[1]
            assert time.monotonic() < deadline, "the extractor made no progress"
            time.sleep(0.02)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    with engine.connect() as conn:
        cp = get_checkpoint(conn, killed_key)
    assert cp is not None and cp.status is CheckpointStatus.RUNNING
    assert cp.lease_owner == "ext-killed" and cp.lease_expires_utc is not None
    assert store.manifest_for(killed_key) is None

    # Two extractors and a loader go through the series; rerun until the kill is healed.
    logs: list[str] = []
    for _round in range(10):
        names = ("ext-b", "ext-c") if _round == 0 else ("ext-b",)
        runs = [_spawn(_extract(sim, place, name), place) for name in names]
        for proc in runs:
            _, err = proc.communicate()
            assert proc.returncode == 0, err
            logs.append(err)
        with engine.connect() as conn:
            cp = get_checkpoint(conn, killed_key)
        assert cp is not None
        if cp.status is CheckpointStatus.EXTRACTED:
            break
        # Still held by the dead worker: wait for its lease to run out (no renewals come).
        assert cp.lease_owner == "ext-killed" and cp.lease_expires_utc is not None
        while datetime.now(UTC) <= cp.lease_expires_utc:
            time.sleep(0.1)
    assert cp.status is CheckpointStatus.EXTRACTED
    takeovers = [log for log in logs if f"{killed_key}: taken over from ext-killed" in log]
    assert len(takeovers) == 1
    engine.dispose()

    _ok(_run(_load(place, "load-a"), place))
    _assert_same_as(reference, place)
