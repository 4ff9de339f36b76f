"""The reads database: a year of two series (6-market events, ~10M candles), built once.

What the read commands (``status``, ``export``, ``grid``, ``coverage``) are measured on.
Events and markets come from the real ``extract events`` against the simulator; candles,
window statistics and SUCCESS checkpoints are written straight from the simulator's
truth, the way the loader writes them (its staged ``LOAD DATA`` and its statistics
function), because pushing ten million candles through HTTP and the archive would cost
the bench half an hour and measure nothing the load step does not already measure.

Built under its own name, ``<bench db>_reads_<hash>`` (the hash covers the world and the
schema revision), and kept between runs like the load archive: ``data/bench/reads-<hash>.json``
is written only once the build finished, and the next run reuses the database while that
record and the database's checkpoint count agree.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from load.normalize.pages import CANDLE_SCHEMA
from load.normalize.stats import stats_rows, window_stats
from load.run.writer import write_candles
from schemas.archive import Manifest, ManifestMarket, WindowKey
from schemas.checkpoints import save_checkpoint
from schemas.core import CheckpointStatus, WindowPolicy
from schemas.db import make_engine, upsert
from schemas.migrations import HEAD
from schemas.tables import kalshi_backfill_checkpoint, kalshi_candle, kalshi_window_stats
from tests.bench.config import SEED, SIM_NOW, BenchConfig, BenchError, days_back
from tests.bench.procs import sync_series
from tests.kalshi_sim import SeriesSpec, SimConfig, World, run_sim_in_thread
from tests.kalshi_sim.candles import MICRO, Series

READS_SERIES = (
    SeriesSpec("KXHIGHNY", "America/New_York", "New York City"),
    SeriesSpec("KXHIGHCHI", "America/Chicago", "Chicago"),
)
RETRIEVED = datetime(2025, 12, 1, tzinfo=UTC)
EVENTS_PER_BATCH = 8


@dataclass(frozen=True)
class ReadsDb:
    """The built database: its URL and what it holds."""

    url: str
    days: int
    series: tuple[str, ...]
    events: int
    rows: int
    reused: bool


def reads_world(days: int) -> SimConfig:
    """The simulated year (or ``days``) of both series, every market live and final."""
    first, last = days_back(days)
    return SimConfig(
        seed=SEED + 3,
        now=SIM_NOW,
        first_date=first,
        last_date=last,
        historical_cutoff_days=10_000.0,
        series=READS_SERIES,
    )


def _hash(world: SimConfig) -> str:
    return hashlib.sha256(f"{HEAD}|{world!r}".encode()).hexdigest()[:10]


def reads_db(config: BenchConfig, days: int, say: Callable[[str], None]) -> ReadsDb:
    """The reads database of ``days`` days, reused when an earlier run built it."""
    world = reads_world(days)
    digest = _hash(world)
    name = f"{config.db_name}_reads_{digest}"
    url = make_url(config.db_url).set(database=name).render_as_string(hide_password=False)
    record = config.out_dir / f"reads-{digest}.json"
    series = tuple(s.ticker for s in READS_SERIES)
    if record.is_file():
        doc = json.loads(record.read_text())
        if _checkpoints(config, name) == doc["events"]:
            return ReadsDb(url, days, series, doc["events"], doc["rows"], reused=True)
    say(f"building the reads database {name} ({days} days of {', '.join(series)}) ...")
    # A build cut short (a server restart) resumes: each batch of events is one
    # transaction with its SUCCESS checkpoints, so the events already there are whole.
    _admin(config, f"CREATE DATABASE IF NOT EXISTS `{name}`")
    events, rows = _build(url, world, say)
    record.write_text(json.dumps({"events": events, "rows": rows, "database": name}) + "\n")
    return ReadsDb(url, days, series, events, rows, reused=False)


def drop_reads_db(config: BenchConfig, db: ReadsDb) -> None:
    """Drop a reads database and forget its record (``--drop-reads-db``)."""
    name = make_url(db.url).database
    _admin(config, f"DROP DATABASE IF EXISTS `{name}`")
    for record in config.out_dir.glob(f"reads-{str(name).rsplit('_', 1)[-1]}.json"):
        record.unlink()


def _admin(config: BenchConfig, *statements: str) -> None:
    engine = create_engine(config.server_url)
    try:
        with engine.begin() as conn:
            for sql in statements:
                conn.execute(text(sql))
    finally:
        engine.dispose()


def _checkpoints(config: BenchConfig, name: str) -> int | None:
    """SUCCESS checkpoints in the database ``name``, None when it is not there."""
    engine = create_engine(config.server_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SHOW DATABASES LIKE :n"), {"n": name}).first()
            if found is None:
                return None
            cp = kalshi_backfill_checkpoint.c
            stmt = select(func.count()).where(cp.status == CheckpointStatus.SUCCESS.value)
            conn.execute(text(f"USE `{name}`"))
            return int(conn.execute(stmt).scalar_one())
    except SQLAlchemyError:  # a damaged cache is rebuilt
        return None
    finally:
        engine.dispose()


def _build(url: str, world_config: SimConfig, say: Callable[[str], None]) -> tuple[int, int]:
    """Fill the database; returns (events, candle rows)."""
    world = World(world_config)
    with run_sim_in_thread(world_config) as sim:
        for spec in READS_SERIES:
            sync_series(spec.ticker, api_base=sim.base_url, db_url=url)
    engine = make_engine(url, local_infile=True)
    cp = kalshi_backfill_checkpoint.c
    with engine.connect() as conn:
        done = set(
            conn.execute(
                select(cp.event_ticker).where(cp.status == CheckpointStatus.SUCCESS.value)
            ).scalars()
        )
    events = [e for e in world.event_tickers() if e not in done]
    try:
        with tempfile.TemporaryDirectory(prefix="kalshi-bench-reads-") as work:
            for i in range(0, len(events), EVENTS_PER_BATCH):
                batch = events[i : i + EVENTS_PER_BATCH]
                with engine.begin() as conn:
                    for event in batch:
                        frame, manifest = event_frame(world, event)
                        write_candles(conn, frame, work_dir=Path(work))
                        upsert(
                            conn,
                            kalshi_window_stats,
                            stats_rows(window_stats(frame, manifest), RETRIEVED),
                        )
                        save_checkpoint(
                            conn,
                            manifest.key,
                            status=CheckpointStatus.SUCCESS,
                            window_start_ts=manifest.window_start_ts,
                            window_end_ts=manifest.window_end_ts,
                            is_final=True,
                            rows_loaded=frame.height,
                            loaded_at_utc=RETRIEVED,
                        )
                if (i // EVENTS_PER_BATCH) % 20 == 0:
                    say(f"  reads database: {i + len(batch)} of {len(events)} events to write")
        with engine.connect() as conn:
            rows = int(conn.execute(select(func.count()).select_from(kalshi_candle)).scalar_one())
    finally:
        engine.dispose()
    if rows == 0:
        raise BenchError("the reads database came out empty")
    return len(world.event_tickers()), rows


def event_frame(world: World, event: str) -> tuple[pl.DataFrame, Manifest]:
    """The event's 1-minute candles as the loader's frame, and the manifest of its window."""
    infos = world.market_infos(event)
    frames = [market_frame(m.ticker, event, world.minutes(m.ticker)) for m in infos]
    start = min(m.open_ts for m in infos)
    end = max(m.close_ts for m in infos)
    series = event.split("-")[0]
    key = WindowKey(series, event, 1, WindowPolicy.FULL_MARKET_WINDOW)
    manifest = Manifest(
        key=key,
        window_start_ts=start,
        window_end_ts=end,
        is_final=True,
        markets=tuple(ManifestMarket(m.ticker, m.open_ts, m.close_ts) for m in infos),
        pages=(),
    )
    return pl.concat(frames), manifest


def _dollars(values: object, keep: object = None) -> pl.Expr:
    """Micro-dollar integers to DECIMAL(10,6), exactly (through text), null where not kept."""
    col = pl.lit(pl.Series(values=values, dtype=pl.Int64))
    text_ = pl.format("{}.{}", col // MICRO, (col % MICRO).cast(pl.String).str.zfill(6))
    out = text_.cast(CANDLE_SCHEMA["yes_bid_open"])
    return out if keep is None else pl.when(pl.lit(pl.Series(values=keep))).then(out)


def _count(values: object) -> pl.Expr:
    col = pl.lit(pl.Series(values=values, dtype=pl.Int64))
    text_ = pl.format("{}.{}", col // 100, (col % 100).cast(pl.String).str.zfill(2))
    return text_.cast(CANDLE_SCHEMA["volume"])


def market_frame(ticker: str, event: str, s: Series) -> pl.DataFrame:
    """One market's candles (a simulator :class:`Series`) in ``kalshi_candle``'s shape."""
    book = ~s.null_book
    cols = {
        "market_ticker": pl.lit(ticker, pl.String),
        "end_period_ts_utc": pl.lit(pl.Series(values=s.ts * 1_000_000, dtype=pl.Int64)).cast(
            CANDLE_SCHEMA["end_period_ts_utc"]
        ),
        "period_interval_minutes": pl.lit(1, pl.Int16),
        "event_ticker": pl.lit(event, pl.String),
        "yes_bid_open": _dollars(s.bid_o, book),
        "yes_bid_high": _dollars(s.bid_h, book),
        "yes_bid_low": _dollars(s.bid_l, book),
        "yes_bid_close": _dollars(s.bid_c, book),
        "yes_ask_open": _dollars(s.ask_o, book),
        "yes_ask_high": _dollars(s.ask_h, book),
        "yes_ask_low": _dollars(s.ask_l, book),
        "yes_ask_close": _dollars(s.ask_c, book),
        "price_open": _dollars(s.p_o, s.traded),
        "price_high": _dollars(s.p_h, s.traded),
        "price_low": _dollars(s.p_l, s.traded),
        "price_close": _dollars(s.p_c, s.traded),
        "price_mean": _dollars(s.p_mean, s.traded),
        "price_previous": _dollars(s.prev.clip(0), s.prev >= 0),
        "price_min": _dollars(s.p_l, s.traded),
        "price_max": _dollars(s.p_h, s.traded),
        "volume": _count(s.vol),
        "open_interest": _count(s.oi),
        "retrieved_at_utc": pl.lit(RETRIEVED, CANDLE_SCHEMA["retrieved_at_utc"]),
    }
    frame = pl.select(**cols) if len(s) else pl.DataFrame(schema=CANDLE_SCHEMA)
    return frame.cast(CANDLE_SCHEMA)  # type: ignore[arg-type]


def event_dates(days: int) -> Iterator[date]:
    first, last = days_back(days)
    d = first
    while d <= last:
        yield d
        d = date.fromordinal(d.toordinal() + 1)
