"""``check-api``'s report as evidence for ``extract candles --route auto``.

Without it, ``auto`` learns what the event cap counts only from a CAPPED event page, and
it fetches none while it prices the event route at its worst case: on a server whose cap
counts returned candles, sparse markets would stay on batch for the whole run. The
report archived by ``check-api`` settles both route-pricing points before the first
window. Truth: the simulator's own request log and world (never the extractor's
counters), and hand-written reports for the reading rules.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from extract.check.probe import CHECK_DIR
from extract.check.report import REPORT_FILE, checked_evidence, evidence_from_report
from extract.check.runner import CheckApiConfig, run_check_api
from extract.config import ApiConfig, RateLimit, RouteChoice
from extract.plan.auto import Answer, CapCounts
from schemas.archive import LocalArchive
from schemas.db import make_engine
from tests.databases import mariadb_database
from tests.kalshi_sim import RequestRecord, SimServer
from tests.test_batch_route import backfill, e2e_world, historical_markets, same_rows
from tests.test_load_support import ground_truth, stored

SERIES = "KXHIGHNY"
BASE = "https://api.elections.kalshi.com/trade-api/v2"


def report(api_base: str = BASE, **observed: str) -> dict[str, Any]:
    return {
        "api_base": api_base,
        "requests": 11,
        "checks": [{"name": k, "status": "held", "observed": v} for k, v in observed.items()],
    }


def put_report(root: Path, stamp: str, doc: Any) -> None:
    folder = root / CHECK_DIR / SERIES / stamp
    folder.mkdir(parents=True, exist_ok=True)
    data = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    (folder / REPORT_FILE).write_bytes(data)


# --- reading a report -----------------------------------------------------------------------


def test_only_observed_answers_are_taken() -> None:
    e = evidence_from_report(report(event_cap_counts="returned", batch_serves_historical="yes"))
    assert (e.event_cap_counts, e.batch_serves_historical) == (CapCounts.RETURNED, Answer.YES)
    e = evidence_from_report(report(event_cap_counts="requested", batch_serves_historical="no"))
    assert (e.event_cap_counts, e.batch_serves_historical) == (CapCounts.REQUESTED, Answer.NO)
    for silent in (
        report(event_cap_counts="unknown", batch_serves_historical="unknown"),
        report(candle_fields="*_dollars/*_fp"),
        report(event_cap_counts="sideways", batch_serves_historical="maybe"),
        {"checks": "not a list of checks"},
        {"checks": [None, 3]},
    ):
        e = evidence_from_report(silent)
        assert (e.event_cap_counts, e.batch_serves_historical) == (
            CapCounts.UNKNOWN,
            Answer.UNKNOWN,
        ), silent
    assert evidence_from_report(report()).candles_requested == 0  # no density is invented


def test_the_newest_report_of_the_same_api_and_series_wins(tmp_path: Path) -> None:
    put_report(tmp_path, "20260101T000000.000000Z", report(event_cap_counts="requested"))
    put_report(tmp_path, "20260102T000000.000000Z", report(event_cap_counts="returned"))
    put_report(  # newer, but of another server
        tmp_path, "20260103T000000.000000Z", report("http://127.0.0.1:1/trade-api/v2",
                                                    event_cap_counts="requested"),
    )  # fmt: skip
    put_report(tmp_path, "20260104T000000.000000Z", b"{not json")  # newest: unreadable
    archive = LocalArchive(tmp_path)
    assert checked_evidence(archive, SERIES, BASE).event_cap_counts is CapCounts.RETURNED
    assert checked_evidence(archive, "KXHIGHCHI", BASE).event_cap_counts is CapCounts.UNKNOWN
    empty = LocalArchive(tmp_path / "nothing-here")
    assert checked_evidence(empty, SERIES, BASE).batch_serves_historical is Answer.UNKNOWN


# --- end to end against the simulator -------------------------------------------------------


def sparse_world() -> Any:
    """Six markets an event (6 x 2,341 candidates: two batch requests), all illiquid; the
    simulator's event cap counts RETURNED candles (its default), so one event page holds
    a whole window, and batch does not serve historical markets (its default)."""
    return replace(e2e_world(sparse_market_rate=1.0), markets_per_event=6, seed=47)


def candle_requests(log: list[RequestRecord]) -> list[RequestRecord]:
    return [r for r in log if r.route.endswith("candlesticks")]


async def test_check_api_archives_its_report_as_it_prints_it(tmp_path: Path) -> None:
    async with SimServer(replace(sparse_world(), first_date=date(2025, 10, 17))) as sim:
        api = ApiConfig(base_url=sim.base_url, rate=RateLimit(200, 1.0))
        config = CheckApiConfig(series=SERIES, api=api, archive_dir=tmp_path, now=sim.world.now)
        printed = (await run_check_api(config)).to_json()
    (path,) = (tmp_path / CHECK_DIR / SERIES).glob(f"*/{REPORT_FILE}")
    assert orjson.loads(path.read_bytes()) == printed
    assert path.parent.as_posix() == printed["evidence_dir"]


@pytest.mark.mariadb
async def test_auto_prices_routes_with_the_check_api_report(tmp_path: Path) -> None:
    with mariadb_database() as plain_db, mariadb_database() as checked_db:
        async with SimServer(sparse_world()) as sim:
            plain = await backfill(sim, plain_db, tmp_path / "plain", RouteChoice.AUTO)
            plain_log = candle_requests(list(sim.counters.log))
            sim.reset()
            api = ApiConfig(base_url=sim.base_url, rate=RateLimit(200, 1.0))
            check = CheckApiConfig(
                series=SERIES, api=api, archive_dir=tmp_path / "checked", now=sim.world.now
            )
            observed = {c.name: c.observed for c in (await run_check_api(check)).checks}
            assert observed["event_cap_counts"] == "returned"
            assert observed["batch_serves_historical"] == "no"
            sim.reset()
            checked = await backfill(sim, checked_db, tmp_path / "checked", RouteChoice.AUTO)
            checked_log = candle_requests(list(sim.counters.log))
            world = sim.world
        plain_rows, checked_rows = stored(make_engine(plain_db)), stored(make_engine(checked_db))

    # Without the report: batch only (the event cap never showed what it counts), and
    # one window asked batch for its historical markets.
    assert plain.route_requests.get("event", 0) == 0
    historical = {
        m.ticker for e in world.event_tickers(SERIES) for m in world.market_infos(e)
        if world.is_historical(m)
    }  # fmt: skip
    assert historical

    def probes(log: list[RequestRecord]) -> list[RequestRecord]:
        return [
            r for r in log
            if r.route == "batch_candlesticks"
            and historical & set(r.params["market_tickers"].split(","))
        ]  # fmt: skip

    assert probes(plain_log)
    # With it: no probe, and live windows on the event route once batch pages showed
    # how sparse the markets are; fewer requests in all, by the simulator's own count.
    assert not probes(checked_log)
    on_event = sum(1 for r in checked_log if r.route == "event_candlesticks")
    assert on_event > 0 and checked.route_requests.get("event") == on_event
    assert len(checked_log) < len(plain_log), (len(checked_log), len(plain_log))

    # The same candles either way, every one of the world's and none extra.
    truth = ground_truth(world, world.event_tickers(SERIES))
    assert set(checked_rows) == set(truth)
    hist = historical_markets(tmp_path / "plain")
    assert hist == historical_markets(tmp_path / "checked")
    same_rows(plain_rows, checked_rows, hist, hist)
