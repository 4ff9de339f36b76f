"""The backfill under every answer to the open points, end to end into real MariaDB.

``extract events`` → ``extract candles`` → ``load run`` against the simulator set to each
alternative of each open-point switch (``tests/kalshi_sim/config.py``, ``SWITCHES``) and to
a few seeded random mixes, on the real weather schedule with sparse markets. Every test
compares what MariaDB holds with the simulator's own candles value by value (nothing
missing, wrong or extra) and reruns both stages: nothing is fetched and nothing changes.
Servers that break the contract (backward paging, a stall, values outside it) end FAILED
with the reason and a non-zero exit.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from extract.cli import main as extract_main
from extract.config import ApiConfig, ExtractConfig, RateLimit, RouteChoice
from extract.events.sync import sync_events
from extract.run.candles import run_candles
from extract.run.outcome import CandlesSummary
from load.config import LoadConfig
from load.run.loader import load_windows
from schemas.archive import LocalArchive, Manifest
from schemas.checkpoints import list_checkpoints
from schemas.core import CheckpointStatus
from schemas.db import make_engine
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, SimServer, World, run_sim_in_thread
from tests.test_load_support import Truth, full_rows, stored, truth_row

SERIES = "KXHIGHNY"
NOW = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
EVENTS = ("KXHIGHNY-25NOV14", "KXHIGHNY-25NOV15", "KXHIGHNY-25NOV16")

pytestmark = pytest.mark.mariadb


def sim_config(**over: Any) -> SimConfig:
    """Three closed weather events, three markets each, half of them sparse, small pages."""
    base = SimConfig(
        seed=5,
        series=(DEFAULT_SERIES[0],),
        now=NOW,
        first_date=date(2025, 11, 14),
        last_date=date(2025, 11, 16),
        markets_per_event=3,
        candle_cap=1500,
        historical_cutoff_days=3650,
        schedule="weather",
        sparse_market_rate=0.5,
    )
    return replace(base, **over)


def extract_config(sim: SimServer, db_url: str, archive: Path, **over: Any) -> ExtractConfig:
    api = ApiConfig(
        base_url=sim.base_url,
        rate=RateLimit(1000, 1.0),
        timeout_s=20,
        max_retries=2,
        backoff_base_s=0.001,
        backoff_max_s=0.01,
    )
    return ExtractConfig(
        route=RouteChoice.EVENT,
        series=SERIES,
        db_url=db_url,
        archive_dir=archive,
        api=api,
        now=sim.world.now,
        concurrency=2,
        **over,
    )


def load(db_url: str, archive: Path) -> int:
    cfg = LoadConfig(db_url=db_url, archive_dir=archive, retry_backoff_s=0, batch_windows=20)
    return load_windows(cfg).rows


def manifests(archive: Path) -> dict[str, Manifest]:
    store = LocalArchive(archive)
    return {m.key.event_ticker: m for m in map(store.read_manifest, store.iter_manifests())}


def truth(world: World, archive: Path) -> Truth:
    """Every candle the simulator holds for every market of the three events.

    A market the manifest says came from the historical route has NULL price min/max
    (that route's shape has none); everything else is the live candle's value.
    """
    hist = {
        x.market_ticker
        for m in manifests(archive).values()
        for x in m.markets
        if x.route == "historical"
    }
    out: Truth = {}
    for event in EVENTS:
        for m in world.market_infos(event):
            for c in world.candles(m.ticker, 1):
                row = truth_row(c)
                if m.ticker in hist:
                    row = (*row[:14], None, None, *row[16:])
                out[(m.ticker, c["end_period_ts"])] = row
    return out


def by_route(sim: SimServer) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in sim.counters.log:
        out[r.route] = out.get(r.route, 0) + 1
    return out


async def backfill_and_compare(
    sim: SimServer, db_url: str, archive: Path, **over: Any
) -> tuple[CandlesSummary, Engine]:
    """sync → extract → load; the database equals the simulator; a rerun changes nothing."""
    cfg = extract_config(sim, db_url, archive, **over)
    await sync_events(cfg)
    sim.reset()
    summary = await run_candles(cfg)
    assert (summary.done, summary.failed) == (len(EVENTS), 0), summary.failures
    want = truth(sim.world, archive)
    assert load(db_url, archive) == len(want)
    engine = make_engine(db_url)
    got = stored(engine)
    assert set(got) - set(want) == set(), "extra candles"
    assert set(want) - set(got) == set(), "missing candles"
    assert got == want, "wrong values"

    before = full_rows(engine)
    sim.reset()
    again = await run_candles(cfg)
    assert (again.done, again.skipped, again.requests) == (0, len(EVENTS), 0)
    assert sim.counters.total == 0
    load(db_url, archive)
    assert full_rows(engine) == before
    return summary, engine


# --- each alternative alone --------------------------------------------------------------------


@pytest.mark.parametrize(
    "switch",
    [
        {"uncapped_adjusted_end": "end_ts"},
        {"uncapped_adjusted_end": "last_candle"},
        {"uncapped_adjusted_end": "zero"},
        {"uncapped_adjusted_end": "absent"},
        {"market_tickers_scope": "with_candles"},
        {"event_cap_counts": "requested"},
    ],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
async def test_each_alternative_backfills_every_candle(
    mariadb_url: str, archive_dir: Path, switch: dict[str, Any]
) -> None:
    async with SimServer(sim_config(**switch)) as sim:
        summary, engine = await backfill_and_compare(sim, mariadb_url, archive_dir)
        engine.dispose()
    assert summary.rerouted == 0  # nothing moved tier: everything is far from the cutoff


async def test_with_candles_scope_costs_no_request_for_sparse_markets(
    mariadb_url: str, archive_dir: Path
) -> None:
    """Markets missing from pages only for want of candles: no cutoff re-read, no
    historical request, at most one lookup per market absent from all its window's pages."""
    config = sim_config(market_tickers_scope="with_candles", sparse_market_rate=0.8, candle_cap=300)
    async with SimServer(config) as sim:
        cfg = extract_config(sim, mariadb_url, archive_dir)
        await sync_events(cfg)
        sim.reset()
        summary = await run_candles(cfg)
        assert (summary.done, summary.failed) == (len(EVENTS), 0), summary.failures
        routes = by_route(sim)
        # the archived pages themselves say which markets each page and window listed
        store = LocalArchive(archive_dir)
        lacking_pages, never_listed = 0, set()
        for m in manifests(archive_dir).values():
            markets = {x.market_ticker for x in m.markets}
            listed: set[str] = set()
            for p in m.pages:
                tickers = set(store.read_page(f"{m.key.dir}/{p}").body["market_tickers"])
                lacking_pages += tickers != markets
                listed |= tickers
            never_listed |= markets - listed
        assert lacking_pages > 0  # the scope did leave markets out of pages
        assert routes.get("historical_candlesticks", 0) == 0
        assert routes.get("historical_cutoff", 0) == 1 == summary.cutoff_reads
        assert routes.get("market", 0) == len(never_listed)  # one lookup each, no more
        want = truth(sim.world, archive_dir)
        assert load(mariadb_url, archive_dir) == len(want)
        engine = make_engine(mariadb_url)
        assert stored(engine) == want
        engine.dispose()


# --- seeded mixes, across the historical cutoff ------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_mixes_backfill_every_candle(
    mariadb_url: str, archive_dir: Path, seed: int
) -> None:
    rng = random.Random(seed)
    mix: dict[str, Any] = {
        "uncapped_adjusted_end": rng.choice(["end_ts", "last_candle", "zero", "absent"]),
        "market_tickers_scope": rng.choice(["all_markets", "with_candles"]),
        "event_cap_counts": rng.choice(["returned", "requested"]),
        "sparse_market_rate": rng.choice([0.0, 0.5, 1.0]),
        "candle_cap": rng.choice([600, 1500, 5000]),
        # the cutoff inside the range: the oldest event's markets are historical
        "historical_cutoff_days": rng.choice([3650.0, 4.5]),
        "seed": seed,
    }
    async with SimServer(sim_config(**mix)) as sim:
        _, engine = await backfill_and_compare(sim, mariadb_url, archive_dir)
        engine.dispose()


# --- the event cap and the dry run -------------------------------------------------------------


@pytest.mark.parametrize("counts", ["returned", "requested"])
async def test_the_dry_run_bounds_the_event_requests(
    mariadb_url: str, archive_dir: Path, counts: str
) -> None:
    config = sim_config(event_cap_counts=counts, candle_cap=5000, sparse_market_rate=0.0)
    async with SimServer(config) as sim:
        cfg = extract_config(sim, mariadb_url, archive_dir)
        await sync_events(cfg)
        plan = (await run_candles(replace(cfg, dry_run=True))).plan
        planned = int(plan[-1].split("~")[1].split()[0])
        sim.reset()
        summary = await run_candles(cfg)
        assert summary.failed == 0
        asked = by_route(sim)["event_candlesticks"]
        if counts == "requested":
            assert asked == planned  # the estimate is exact for a requested-counting cap
        else:
            assert asked <= planned  # and an upper bound for a returned-counting one


# --- late candles and the grace period ---------------------------------------------------------


async def test_late_candles_are_fetched_after_the_grace(
    mariadb_url: str, archive_dir: Path
) -> None:
    """Candles published 5 minutes late: a run 2 minutes after the close archives a
    window that is not final yet; a run after the grace fetches its last pages again."""
    close = datetime(2025, 11, 17, 5, 0, tzinfo=UTC)  # NOV16's close (midnight EST)
    config = sim_config(now=close + timedelta(minutes=2), publication_delay_s=300)
    async with SimServer(config) as sim:
        cfg = extract_config(sim, mariadb_url, archive_dir)
        await sync_events(cfg)
        first = await run_candles(cfg)
        assert first.failed == 0
        assert manifests(archive_dir)["KXHIGHNY-25NOV16"].is_final is False

        later = close + timedelta(hours=2)
        sim.set_now(later)
        sim.reset()
        second = await run_candles(replace(cfg, now=later))
        assert (second.done, second.skipped) == (1, 2)  # only the event within its grace
        assert manifests(archive_dir)["KXHIGHNY-25NOV16"].is_final is True
        want = truth(sim.world, archive_dir)
        assert load(mariadb_url, archive_dir) == len(want)
        engine = make_engine(mariadb_url)
        assert stored(engine) == want
        engine.dispose()


async def test_without_a_grace_late_candles_are_lost(sqlite_url: str, archive_dir: Path) -> None:
    """The same server with ``--final-grace 0``: the window is final at once and the late
    candles are never fetched (why the grace exists)."""
    close = datetime(2025, 11, 17, 5, 0, tzinfo=UTC)
    config = sim_config(now=close + timedelta(minutes=2), publication_delay_s=300)
    async with SimServer(config) as sim:
        cfg = extract_config(sim, sqlite_url, archive_dir, final_grace_minutes=0)
        await sync_events(cfg)
        await run_candles(cfg)
        later = close + timedelta(hours=2)
        sim.set_now(later)
        assert (await run_candles(replace(cfg, now=later))).skipped == 3
        load(sqlite_url, archive_dir)
        engine = make_engine(sqlite_url)
        missing = set(truth(sim.world, archive_dir)) - set(stored(engine))
        engine.dispose()
    assert missing and all(ts > int(close.timestamp()) - 300 for _, ts in missing)


# --- servers that break the contract -----------------------------------------------------------


def _cli_candles(
    config: SimConfig, db_url: str, archive: Path, *extra: str
) -> tuple[Any, SimConfig, list[Any]]:
    with run_sim_in_thread(config) as sim:
        common = ["--series", SERIES, "--db", db_url, "--api-base", sim.base_url]
        synced = CliRunner().invoke(extract_main, ["events", *common])
        assert synced.exit_code == 0, synced.output
        r = CliRunner().invoke(
            extract_main,
            ["candles", *common, "--archive", str(archive), "--max-retries", "1", *extra],
        )
        log = list(sim.counters.log)
    return r, config, log


def _failed(db_url: str) -> dict[str, str | None]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        out = {
            c.key.event_ticker: c.last_error
            for c in list_checkpoints(conn)
            if c.status is CheckpointStatus.FAILED
        }
    engine.dispose()
    return out


def test_backward_paging_fails_every_capped_window_with_the_reason(
    mariadb_url: str, archive_dir: Path
) -> None:
    config = sim_config(paging_direction="backward", sparse_market_rate=0.0)
    r, _, _ = _cli_candles(config, mariadb_url, archive_dir, "--route", "event")
    assert r.exit_code == 1, r.output
    assert "paging semantics differ from the contract" in r.output
    failed = _failed(mariadb_url)
    assert set(failed) == set(EVENTS)
    assert all("paging semantics differ from the contract" in (e or "") for e in failed.values())
    assert manifests(archive_dir) == {}  # never marked complete
    assert list((archive_dir / "_rejected").rglob("*.json.gz.*"))


@pytest.mark.parametrize("fault", ["bad_price", "number_value"])
async def test_values_outside_the_contract_fail_the_window_and_are_kept(
    mariadb_url: str, archive_dir: Path, fault: str
) -> None:
    async with SimServer(sim_config()) as sim:
        cfg = extract_config(sim, mariadb_url, archive_dir, event=EVENTS[1])
        await sync_events(cfg)
        sim.fail_next("/candlesticks", fault)  # type: ignore[arg-type]
        summary = await run_candles(cfg)
        assert (summary.done, summary.failed) == (0, 1)
        reason = summary.failures[0][1]
        assert "values outside the contract" in reason
        assert (
            "not a price in [0, 1]" if fault == "bad_price" else "where the contract has a string"
        ) in reason
        assert sim.counters.by_route["event_candlesticks"] == 1  # refused, not retried
        store = LocalArchive(archive_dir)
        assert len(store.glob("_rejected/**/*.json.gz.*")) == 1
        assert not store.glob(f"{SERIES}/{EVENTS[1]}/p1/full/*.json.gz")  # not archived
        assert _failed(mariadb_url)[EVENTS[1]] == reason

        # The server mends its ways: the rerun completes the window.
        sim.reset()
        again = await run_candles(cfg)
        assert (again.done, again.failed) == (1, 0)


async def test_a_stalled_server_still_fails_loudly(mariadb_url: str, archive_dir: Path) -> None:
    for alt in ("last_candle", "zero"):
        async with SimServer(sim_config(uncapped_adjusted_end=alt, sparse_market_rate=0.0)) as sim:
            cfg = extract_config(sim, mariadb_url, archive_dir / alt, event=EVENTS[0])
            await sync_events(cfg)
            sim.fail_next(f"/events/{EVENTS[0]}/candlesticks", "stuck_end", times=100)
            summary = await run_candles(cfg)
            assert (summary.done, summary.failed) == (0, 1)
            assert "does not advance past start_ts" in summary.failures[0][1]
            assert "gave up after 3 attempts" in summary.failures[0][1]


def test_a_400_is_never_retried_and_historical_requests_stay_under_the_cap(
    mariadb_url: str, archive_dir: Path
) -> None:
    """The historical route's real 400 above its cap: under 5,000 requested candles our
    chunks pass; with the server's cap lowered to 1,000 the same request is a 400, asked
    once and never again, and the window fails with it."""
    config = sim_config(historical_cutoff_days=0.5, market_candle_cap=5000)
    r, _, log = _cli_candles(config, mariadb_url, archive_dir)
    assert r.exit_code == 0, r.output
    hist = [x for x in log if x.route == "historical_candlesticks"]
    assert hist and all(x.status == 200 for x in hist)

    low = replace(config, market_candle_cap=1000)
    r, _, log = _cli_candles(low, mariadb_url, archive_dir / "low")
    assert r.exit_code == 1, r.output
    hist = [x for x in log if x.route == "historical_candlesticks"]
    assert [x.status for x in hist] == [400] * len(EVENTS)  # one per window, no retry
    assert "HTTP 400" in r.output
