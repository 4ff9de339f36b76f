"""Shared helpers of the survival suites (crash, faults, bad input, security). No tests.

The stages run as real subprocesses (``python -m extract`` / ``python -m load``) so a
SIGKILL is a real one; the simulator is served from a thread over real HTTP; databases
are real MariaDB databases created per scenario. What a run left behind is read back
with :func:`snapshot_archive`, :func:`candle_rows`, :func:`stats_rows` and
:func:`checkpoint_statuses` and compared with an uninterrupted reference run.
"""

from __future__ import annotations

import asyncio
import os
import select as io_select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from sqlalchemy import Engine, func, select

from extract.config import ApiConfig, ExtractConfig, RateLimit
from extract.events.sync import sync_events as events_sync
from load.normalize.fields import exact_decimals
from load.run.loader import read_window
from schemas.archive import TEMP_MARKER, LocalArchive
from schemas.crashpoints import (
    ARCHIVE_BEFORE_RENAME,
    ENV_PLAN,
    ENV_TRACE,
    EXTRACT_POINTS,
    LOAD_POINTS,
)
from schemas.db import make_engine
from schemas.tables import (
    CANDLE_COLUMNS,
    CANDLE_COUNT_COLUMNS,
    CANDLE_PRICE_COLUMNS,
    kalshi_backfill_checkpoint,
    kalshi_candle,
    kalshi_window_stats,
)
from tests.databases import mariadb_database
from tests.kalshi_sim import CATEGORY_SERIES, DEFAULT_SERIES, SimConfig, SimServer, World

REPO = Path(__file__).resolve().parents[1]
SERIES = "KXHIGHNY"
NOW = datetime(2025, 11, 20, 15, 0, tzinfo=UTC)

#: Three closed events, two markets each, four pages a window (cap 1500 candles).
SIM = SimConfig(
    seed=23,
    series=(DEFAULT_SERIES[0],),
    now=NOW,
    first_date=date(2025, 11, 15),
    last_date=date(2025, 11, 17),
    markets_per_event=2,
    candle_cap=1500,
    historical_cutoff_days=3650,
)
EVENTS = ("KXHIGHNY-25NOV15", "KXHIGHNY-25NOV16", "KXHIGHNY-25NOV17")

_BY_TICKER = {s.ticker: s for s in CATEGORY_SERIES}
#: Several series in ONE run (issue 20): a daily series, an hourly one (two short events a
#: day) and one outside the zone table; two markets each, the same small pages.
MULTI_SIM = replace(
    SIM,
    seed=29,
    series=(
        _BY_TICKER["KXHIGHNY"],
        replace(_BY_TICKER["KXTEMPNYCH"], hours=(10, 14)),
        _BY_TICKER["KXHIGHTHNL"],
    ),
    first_date=date(2025, 11, 16),
    last_date=date(2025, 11, 17),
)
MULTI_SERIES = ("KXHIGHNY", "KXTEMPNYCH", "KXHIGHTHNL")
MULTI_EVENTS = tuple(sorted(t for s in MULTI_SERIES for t in World(MULTI_SIM).event_tickers(s)))

CandleRow = tuple[Any, ...]


@dataclass(frozen=True)
class Backfill:
    """What a crash suite backfills: the simulated world, its series and events, and
    extract's options (a packed run: ``--period 60 --route auto``)."""

    sim: SimConfig
    events: tuple[str, ...]
    extract_args: tuple[str, ...] = ()
    period: int = 1
    series: tuple[str, ...] = (SERIES,)


#: The default suite: three one-minute windows of one series, each its own requests.
DEFAULT = Backfill(SIM, EVENTS)
#: Three series in one run: a daily, an hourly and a zone-less one.
MULTI = Backfill(MULTI_SIM, MULTI_EVENTS, series=MULTI_SERIES)


# --- databases --------------------------------------------------------------------------


def sync_events(sim: SimServer, db_url: str, series: Sequence[str] = (SERIES,)) -> None:
    """``extract events`` in-process (cheap, thread-safe); the stages under test run as
    subprocesses."""
    api = ApiConfig(base_url=sim.base_url, rate=RateLimit(1000, 1.0))
    asyncio.run(events_sync(ExtractConfig(series=tuple(series), db_url=db_url, api=api)))


# --- running a stage --------------------------------------------------------------------


def extract_cmd(
    sim: SimServer, db_url: str, archive: Path, *extra: str, series: Sequence[str] = (SERIES,)
) -> list[str]:
    return [
        sys.executable, "-m", "extract", "candles", "--series", ",".join(series),
        "--db", db_url, "--archive", str(archive), "--api-base", sim.base_url,
        "--rps", "1000", "-q", *extra,
    ]  # fmt: skip


def load_cmd(db_url: str, archive: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "load", "run", "--db", db_url, "--archive", str(archive),
        "-q", *extra,
    ]  # fmt: skip


@dataclass(frozen=True)
class StageRun:
    """How one subprocess ended."""

    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL


def stage_env(tmp: Path, crash: str | None = None, trace: Path | None = None) -> dict[str, str]:
    """The subprocess environment: this repo importable, a private TMPDIR, a crash plan."""
    env = {k: v for k, v in os.environ.items() if k not in (ENV_PLAN, ENV_TRACE)}
    env["PYTHONPATH"] = str(REPO)
    env["TMPDIR"] = str(tmp)
    if crash:
        env[ENV_PLAN] = crash
    if trace is not None:
        env[ENV_TRACE] = str(trace)
    return env


def run_stage(
    cmd: Sequence[str],
    env: dict[str, str],
    *,
    kill_after_s: float | None = None,
    timeout_s: float = 120,
) -> StageRun:
    """Run ``cmd``; with ``kill_after_s`` SIGKILL it from outside after that delay."""
    started = time.monotonic()
    proc = subprocess.Popen(
        list(cmd), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        if kill_after_s is not None:
            try:
                proc.wait(timeout=kill_after_s)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return StageRun(proc.returncode, out, err, time.monotonic() - started)


# --- what a run left behind -------------------------------------------------------------


def snapshot_archive(archive: Path) -> dict[str, object]:
    """Every file: pages by (path, params, status, body), manifests without their time.

    Envelopes differ between runs only in ``retrieved_at_utc``, manifests only in
    ``completed_at_utc``; everything else (including which files exist) must be equal.
    """
    store = LocalArchive(archive)
    out: dict[str, object] = {}
    for p in sorted(archive.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(archive).as_posix()
        if rel.endswith(".json.gz") and TEMP_MARKER not in p.name:
            env = store.read_page(rel)
            out[rel] = (env.path, env.params, env.status, env.body)
        elif rel.endswith("manifest.json"):
            doc = orjson.loads(p.read_bytes())
            doc.pop("completed_at_utc")
            out[rel] = doc
        else:
            out[rel] = p.read_bytes()
    return out


def stray_temp_files(*roots: Path) -> list[str]:
    """Temporary files or folders a killed run left (archive temp files, load work dirs)."""
    found: list[str] = []
    for root in roots:
        if root.exists():
            found += [
                str(p)
                for p in root.rglob("*")
                if TEMP_MARKER in p.name or p.name.startswith("kalshi-load-")
            ]
    return sorted(found)


def _engine(db_url: str) -> Engine:
    return make_engine(db_url, schema="none")


def candle_rows(db_url: str) -> list[CandleRow]:
    """Every kalshi_candle row, every column, in key order."""
    eng = _engine(db_url)
    try:
        with eng.connect() as conn:
            t = kalshi_candle.c
            stmt = select(kalshi_candle).order_by(
                t.market_ticker, t.end_period_ts_utc, t.period_interval_minutes
            )
            return [tuple(r) for r in conn.execute(stmt)]
    finally:
        eng.dispose()


_RETRIEVED = CANDLE_COLUMNS.index("retrieved_at_utc")


def without_retrieved(rows: Sequence[CandleRow]) -> list[CandleRow]:
    """Rows minus ``retrieved_at_utc`` (legitimately different between two runs)."""
    return [r[:_RETRIEVED] + r[_RETRIEVED + 1 :] for r in rows]


def stats_rows(db_url: str) -> list[CandleRow]:
    """kalshi_window_stats without ``computed_at_utc``, in key order."""
    eng = _engine(db_url)
    try:
        with eng.connect() as conn:
            cols = [c for c in kalshi_window_stats.c if c.name != "computed_at_utc"]
            stmt = select(*cols).order_by(*kalshi_window_stats.primary_key.columns)
            return [tuple(r) for r in conn.execute(stmt)]
    finally:
        eng.dispose()


def checkpoint_statuses(db_url: str) -> dict[str, str]:
    """event → checkpoint status (with its last_error when not SUCCESS)."""
    eng = _engine(db_url)
    try:
        with eng.connect() as conn:
            c = kalshi_backfill_checkpoint.c
            rows = conn.execute(select(c.event_ticker, c.status, c.last_error)).all()
    finally:
        eng.dispose()
    return {
        r.event_ticker: r.status if r.status == "SUCCESS" else f"{r.status}: {r.last_error}"
        for r in rows
    }


def rows_from_archive(archive: Path) -> list[CandleRow]:
    """What the loader must have stored for this archive, computed without a database.

    Uses the loader's pure read + normalize step, so ``retrieved_at_utc`` is the value
    of the page each row came from: a reload of the same archive must give exactly it.
    (Its prices and counts are the text received; as decimals they compare with rows.)
    """
    store = LocalArchive(archive)
    frames = []
    for rel in store.iter_manifests():
        prepared = read_window(store, rel, store.read_manifest(rel))
        assert not hasattr(prepared, "error"), prepared
        frames.append(exact_decimals(prepared.candles))  # type: ignore[union-attr]
    frame = pl.concat(frames).select(CANDLE_COLUMNS).sort(list(CANDLE_COLUMNS[:3]))
    return [tuple(r) for r in frame.iter_rows()]


def truth_values(
    sim: SimServer, events: Sequence[str], period: int = 1
) -> dict[tuple[str, int], tuple[Any, ...]]:
    """The simulator's ground truth as (market, end ts) → exact values (None = NULL)."""

    def dec(v: Any) -> Decimal | None:
        return None if v is None else Decimal(v)

    out: dict[tuple[str, int], tuple[Any, ...]] = {}
    for event in events:
        for info in sim.world.market_infos(event):
            for c in sim.world.candles(info.ticker, period):
                values = [
                    dec(c[col.rpartition("_")[0]].get(f"{col.rpartition('_')[2]}_dollars"))
                    for col in CANDLE_PRICE_COLUMNS
                ]
                values += [dec(c["volume_fp"]), dec(c["open_interest_fp"])]
                out[(info.ticker, c["end_period_ts"])] = tuple(values)
    return out


def stored_values(db_url: str) -> dict[tuple[str, int], tuple[Any, ...]]:
    """kalshi_candle as (market, end ts) → exact values, comparable with truth_values."""
    value_cols = (*CANDLE_PRICE_COLUMNS, *CANDLE_COUNT_COLUMNS)
    idx = [CANDLE_COLUMNS.index(c) for c in value_cols]
    return {(r[0], int(r[1].timestamp())): tuple(r[i] for i in idx) for r in candle_rows(db_url)}


# --- crash scenarios --------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """An uninterrupted run of both stages, and how often each crash point was reached."""

    archive: dict[str, object]
    rows: list[CandleRow]
    stats: list[CandleRow]
    checkpoints: dict[str, str]
    hits: dict[str, int]
    extract_s: float
    load_s: float


def _hits(trace: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    if trace.exists():
        for name in trace.read_text().split():
            out[name] = out.get(name, 0) + 1
    return out


Runner = Callable[..., StageRun]


def reference_run(
    sim: SimServer,
    db_url: str,
    work: Path,
    runner: Runner = run_stage,
    backfill: Backfill = DEFAULT,
) -> Reference:
    """Extract then load with no crash plan, tracing every crash point reached."""
    archive, tmp = work / "raw", work / "tmp"
    tmp.mkdir(parents=True)
    sync_events(sim, db_url, backfill.series)
    trace = work / "trace"
    cmd = extract_cmd(sim, db_url, archive, *backfill.extract_args, series=backfill.series)
    ex = runner(cmd, stage_env(tmp, trace=trace))
    assert ex.returncode == 0, ex.stderr
    ld = runner(load_cmd(db_url, archive), stage_env(tmp, trace=trace))
    assert ld.returncode == 0, ld.stderr
    return Reference(
        snapshot_archive(archive),
        candle_rows(db_url),
        stats_rows(db_url),
        checkpoint_statuses(db_url),
        _hits(trace),
        ex.elapsed_s,
        ld.elapsed_s,
    )


@contextmanager
def checked_reference(
    sim: SimServer, work: Path, backfill: Backfill = DEFAULT
) -> Iterator[Reference]:
    """The reference of a crash suite (a module fixture): an uninterrupted run through
    the fork server on its own database, checked against the simulator's ground truth."""
    zygote = Zygote(work)
    try:
        with mariadb_database() as db_url:
            ref = reference_run(sim, db_url, work, zygote.run, backfill)
            # The reference itself is right: the simulator's ground truth, value for value.
            want = truth_values(sim, backfill.events, backfill.period)
            assert stored_values(db_url) == want
    finally:
        zygote.close()
    yield ref


@dataclass
class Kill:
    """One planned kill: a crash point and its occurrence, or a delay for a timed SIGKILL."""

    stage: str
    plan: str | None = None
    delay_s: float | None = None
    options: tuple[str, ...] = ()
    outcome: str = "planned"

    def __str__(self) -> str:
        how = self.plan if self.plan else f"SIGKILL after {self.delay_s:.2f}s"
        opts = f" {' '.join(self.options)}" if self.options else ""
        return f"{self.stage}[{how}{opts}] -> {self.outcome}"


def _invariants_after_kill(db_url: str, archive: Path) -> None:
    """What must hold at ANY moment, whatever was killed where.

    - a manifest only lists pages that exist (it is written last);
    - EXTRACTED/SUCCESS only for windows whose manifest exists or that were loaded;
    - rows exist only for SUCCESS windows, and exactly ``rows_loaded`` of them.
    """
    store = LocalArchive(archive)
    manifests = {}
    if archive.exists():
        for rel in store.iter_manifests():
            m = store.read_manifest(rel)
            manifests[m.key.event_ticker] = m
            missing = [p for p in m.page_paths() if not store.exists(p)]
            assert not missing, f"{rel} lists pages that do not exist: {missing}"
    eng = _engine(db_url)
    try:
        with eng.connect() as conn:
            c = kalshi_backfill_checkpoint.c
            cps = conn.execute(select(c.event_ticker, c.status, c.rows_loaded)).all()
            t = kalshi_candle.c
            stmt = select(t.event_ticker, func.count()).group_by(t.event_ticker)
            counts: dict[str, int] = {r[0]: r[1] for r in conn.execute(stmt)}
    finally:
        eng.dispose()
    for cp in cps:
        if cp.status == "EXTRACTED":
            assert cp.event_ticker in manifests, f"{cp.event_ticker} EXTRACTED without manifest"
        if cp.status == "SUCCESS":
            assert counts.get(cp.event_ticker) == cp.rows_loaded, (
                f"{cp.event_ticker} SUCCESS with {counts.get(cp.event_ticker)} rows, "
                f"checkpoint says {cp.rows_loaded}"
            )
    success = {cp.event_ticker for cp in cps if cp.status == "SUCCESS"}
    assert set(counts) <= success, f"rows without SUCCESS: {sorted(set(counts) - success)}"


def _choose(
    rng: Any, stage: str, ref: Reference, first: bool, batch: int
) -> tuple[str | None, float | None]:
    """A named crash point (N-th occurrence) or, sometimes, a timed kill."""
    if not first and rng.random() < 0.3:
        duration = ref.extract_s if stage == "extract" else ref.load_s
        return None, rng.uniform(0.45 * duration, duration)
    names = EXTRACT_POINTS if stage == "extract" else LOAD_POINTS
    name = rng.choice(names)
    total = ref.hits.get(name, 0)
    if stage == "load":
        total = -(-total // batch)  # one hit per batch
    if name == ARCHIVE_BEFORE_RENAME:
        total -= 1  # archive.json is written only by the first run
    n = rng.randint(1, max(1, total if first else max(1, total // 2)))
    return f"{name}:{n}", None


def crash_scenario(
    sim: SimServer,
    ref: Reference,
    rng: Any,
    work: Path,
    kills_per_stage: int,
    log: list[str],
    runner: Runner = run_stage,
    backfill: Backfill = DEFAULT,
) -> int:
    """One fresh database and archive: both stages killed again and again, then finished.

    Returns the number of kills that landed (the process really died by SIGKILL). Every
    planned kill is appended to ``log`` (printed with the seed on failure).
    """
    archive, tmp = work / "raw", work / "tmp"
    tmp.mkdir(parents=True)
    landed = 0
    loaded_between = False
    with mariadb_database() as db_url:
        sync_events(sim, db_url, backfill.series)
        for stage in ("extract", "load"):
            if stage == "extract":
                opts: tuple[str, ...] = ("--concurrency", str(rng.choice((1, 2, 4))))
                cmd = extract_cmd(
                    sim, db_url, archive, *backfill.extract_args, *opts, series=backfill.series
                )
                batch = 1
            else:
                batch = rng.choice((1, 1, 2, 3))
                staging = rng.choice(("load_data", "load_data", "insert"))
                opts = ("--batch-windows", str(batch), "--staging", staging)
                cmd = load_cmd(db_url, archive, *opts)
            for i in range(kills_per_stage):
                plan, delay = _choose(rng, stage, ref, i == 0, batch)
                kill = Kill(stage, plan, delay, opts)
                log.append(str(kill))
                run = runner(cmd, stage_env(tmp, crash=plan), kill_after_s=delay)
                kill.outcome = "killed" if run.killed else f"exit {run.returncode}"
                log[-1] = str(kill)
                assert run.returncode in (0, -signal.SIGKILL), f"{kill}: {run.stderr}"
                if plan is not None and i == 0 and not loaded_between:
                    # a fresh stage reaches every point as often as the reference did
                    assert run.killed, f"{kill}: the crash point was never reached"
                landed += run.killed
                _invariants_after_kill(db_url, archive)
                if stage == "extract" and rng.random() < 0.2:
                    # a cron'd load may run between a killed extract and its rerun
                    loaded_between = True
                    between = runner(load_cmd(db_url, archive), stage_env(tmp))
                    log.append(f"load between -> exit {between.returncode}")
                    # Exit 2 only for an archive with no complete window at all, once the
                    # killed extractor's heartbeat has expired (#15.11); until then, and
                    # whenever a window is complete, it is "nothing LEFT to load": exit 0.
                    nothing = not any(
                        not m.parts[len(archive.parts)].startswith("_")
                        for m in archive.glob("*/*/p*/*/manifest.json")
                    )
                    said_nothing = "no complete window" in between.stderr
                    assert between.returncode == 0 or (
                        nothing and between.returncode == 2 and said_nothing
                    ), between.stderr
                    _invariants_after_kill(db_url, archive)
            final = runner(cmd, stage_env(tmp))
            log.append(f"{stage} rerun -> exit {final.returncode}")
            assert final.returncode == 0, f"{stage} rerun failed: {final.stderr}"

        assert stray_temp_files(archive, tmp) == [], "stray temporary files"
        assert snapshot_archive(archive) == ref.archive, "archive differs from the reference"
        rows = candle_rows(db_url)
        assert without_retrieved(rows) == without_retrieved(ref.rows), "kalshi_candle differs"
        assert rows == rows_from_archive(archive), "rows differ from their own archive"
        assert stats_rows(db_url) == ref.stats, "kalshi_window_stats differs"
        assert checkpoint_statuses(db_url) == ref.checkpoints, "checkpoints differ"
    return landed


# --- a fork server: real processes, real SIGKILLs, without paying the imports each time ---


def zygote_main() -> None:
    """Serve stage runs forever: read a JSON request a line, fork, report pid then status.

    Every run is a fresh child process forked from this single-threaded one after the
    heavy imports (SQLAlchemy, Polars, aiohttp: about 1.5 s a run otherwise); the child
    gets the request's argv, environment and output files, runs the stage's click
    command and exits. A crash point SIGKILLs the child, exactly as in a normal process.
    """
    import tempfile

    import extract.cli
    import load.cli
    import schemas.crashpoints

    mains = {"extract": extract.cli.main, "load": load.cli.cli}
    for line in sys.stdin:
        req = orjson.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: become the stage
            code = 1
            try:
                fd = os.open(os.devnull, os.O_RDONLY)
                os.dup2(fd, 0)
                for target, path in ((1, req["stdout"]), (2, req["stderr"])):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                    os.dup2(fd, target)
                os.environ.clear()
                os.environ.update(req["env"])
                tempfile.tempdir = None
                schemas.crashpoints.reset_for_tests()
                sys.argv = [req["module"], *req["argv"]]
                try:
                    mains[req["module"]](req["argv"], prog_name=req["module"])
                    code = 0
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        if req["kill_after_s"] is not None:
            # The child is not reaped yet, so its pid cannot be reused: killing it by
            # pid after the timeout is race-free (it may already be a zombie: harmless).
            pidfd = os.pidfd_open(pid)
            exited, _, _ = io_select.select([pidfd], [], [], req["kill_after_s"])
            if not exited:
                os.kill(pid, signal.SIGKILL)
            os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(f"{os.waitstatus_to_exitcode(status)}\n")
        sys.stdout.flush()


class Zygote:
    """The test side of :func:`zygote_main`: ``run`` has the same contract as run_stage."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.n = 0
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from tests.test_survival_support import zygote_main as z; z()"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(
        self, cmd: Sequence[str], env: dict[str, str], *, kill_after_s: float | None = None
    ) -> StageRun:
        assert cmd[1] == "-m"
        self.n += 1
        out, err = self.work / f"run{self.n}.out", self.work / f"run{self.n}.err"
        req = {
            "module": cmd[2],
            "argv": list(cmd[3:]),
            "env": env,
            "stdout": str(out),
            "stderr": str(err),
            "kill_after_s": kill_after_s,
        }
        assert self.proc.stdin is not None and self.proc.stdout is not None
        started = time.monotonic()
        self.proc.stdin.write(orjson.dumps(req).decode() + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the fork server died"
        return StageRun(int(line), out.read_text(), err.read_text(), time.monotonic() - started)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
