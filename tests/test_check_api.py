"""``check-api`` against the simulator: each switch value is named as set, within 20
requests counted by the simulator's own request record (never by check-api's counter)."""

from __future__ import annotations

import gzip
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine

from extract.check import rules
from extract.check.probe import live_extractors
from extract.check.report import CheckResult
from extract.check.rules import Span
from extract.check.runner import CheckApiConfig, CheckReport, run_check_api
from extract.cli import main
from extract.config import ApiConfig, RateLimit
from schemas.processes import KIND_EXTRACT
from schemas.tables import metadata
from schemas.workers import heartbeat
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, SimServer, run_sim_in_thread

NOW = datetime(2025, 11, 20, 15, 0, tzinfo=UTC)
SERIES = "KXHIGHNY"
NESTED = "nested_markets_of_historical_event"


def sim_config(**switches: Any) -> SimConfig:
    """Twelve days of one series, six dense markets an event, the last five days live."""
    base = SimConfig(
        seed=5,
        series=(DEFAULT_SERIES[0],),
        now=NOW,
        first_date=date(2025, 11, 9),
        last_date=date(2025, 11, 21),
        markets_per_event=6,
        historical_cutoff_days=5,
    )
    return replace(base, **switches)


async def check(sim: SimServer, archive: Path, **over: Any) -> CheckReport:
    api = ApiConfig(
        base_url=sim.base_url,
        rate=RateLimit(200, 1.0),
        max_retries=3,
        backoff_base_s=0.001,
        backoff_max_s=0.01,
    )
    config = CheckApiConfig(series=SERIES, api=api, archive_dir=archive, now=NOW, **over)
    return await run_check_api(config)


def observed(report: CheckReport) -> dict[str, str]:
    return {c.name: c.observed for c in report.checks}


async def run(tmp_path: Path, **switches: Any) -> tuple[CheckReport, SimServer]:
    async with SimServer(sim_config(**switches)) as sim:
        report = await check(sim, tmp_path / "raw")
    assert sim.counters.total <= 20, sim.counters.by_route
    assert report.requests == sim.counters.total
    return report, sim


async def test_defaults_are_named_and_exit_0(tmp_path: Path) -> None:
    report, sim = await run(tmp_path)
    assert observed(report) == {
        "candle_fields": "*_dollars/*_fp",
        "uncapped_adjusted_end_ts": "end_ts",
        "market_tickers_scope": "all_markets",
        "event_cap_counts": "returned",
        "paging_direction": "forward",
        "historical_over_cap": "400",
        "batch_over_cap": "400",
        "historical_cutoff": "2025-11-15T15:00:00Z",
        "nested_markets_of_historical_event": "absent",
        "batch_serves_historical": "no",
    }
    assert all(c.status == "held" for c in report.checks)
    assert report.exit_code == 0
    # one over-cap request per over-cap check, and no other request over a cap
    over = [r for r in sim.counters.log if r.status == 400]
    assert sorted(r.route for r in over) == ["batch_candlesticks", "historical_candlesticks"]


#: Every non-default value of every switch, each named as set (check, observed).
SINGLE: list[tuple[str, Any, str, str]] = [
    ("uncapped_adjusted_end", "last_candle", "uncapped_adjusted_end_ts", "last_candle"),
    ("uncapped_adjusted_end", "zero", "uncapped_adjusted_end_ts", "zero"),
    ("uncapped_adjusted_end", "absent", "uncapped_adjusted_end_ts", "absent"),
    ("market_tickers_scope", "with_candles", "market_tickers_scope", "with_candles"),
    ("event_cap_counts", "requested", "event_cap_counts", "requested"),
    ("paging_direction", "backward", "paging_direction", "backward"),
    ("historical_over_cap", "truncated", "historical_over_cap", "truncated"),
    ("historical_over_cap", "served", "historical_over_cap", "served"),
    ("batch_over_cap", "truncated", "batch_over_cap", "truncated"),
    ("batch_over_cap", "served", "batch_over_cap", "served"),
    ("nested_markets_of_historical_event", "empty", "nested_markets_of_historical_event", "empty"),
    (
        "nested_markets_of_historical_event",
        "listed",
        "nested_markets_of_historical_event",
        "listed",
    ),
    ("batch_serves_historical", True, "batch_serves_historical", "yes"),
]


@pytest.mark.parametrize(
    ("switch", "value", "name", "want"), SINGLE, ids=[f"{s[0]}={s[1]}" for s in SINGLE]
)
async def test_each_switch_value_is_named(
    tmp_path: Path, switch: str, value: Any, name: str, want: str
) -> None:
    report, _ = await run(tmp_path, **{switch: value})
    got = observed(report)
    assert got[name] == want
    # the other checks still read the defaults
    defaults = {
        "uncapped_adjusted_end_ts": "end_ts",
        "market_tickers_scope": "all_markets",
        "event_cap_counts": "returned",
        "paging_direction": "forward",
        "historical_over_cap": "400",
        "batch_over_cap": "400",
        "nested_markets_of_historical_event": "absent",
        "batch_serves_historical": "no",
    }
    for other, default in defaults.items():
        if other != name and not (switch == "paging_direction" and other == "event_cap_counts"):
            assert got[other] == default, other
    assert report.exit_code == (1 if want == "backward" else 0)


@pytest.mark.parametrize(
    "switches",
    [
        {"schedule": "weather", "sparse_market_rate": 0.5},
        {
            "schedule": "weather",
            "sparse_market_rate": 0.3,
            "uncapped_adjusted_end": "last_candle",
            "market_tickers_scope": "with_candles",
            "event_cap_counts": "requested",
            "historical_over_cap": "truncated",
            "batch_over_cap": "truncated",
            "nested_markets_of_historical_event": "listed",
            "batch_serves_historical": True,
        },
    ],
    ids=["weather-sparse-defaults", "weather-sparse-mixed"],
)
async def test_real_schedule_sparse_markets_and_mixes(
    tmp_path: Path, switches: dict[str, Any]
) -> None:
    report, _ = await run(tmp_path, **switches)
    want = {
        "uncapped_adjusted_end_ts": switches.get("uncapped_adjusted_end", "end_ts"),
        "market_tickers_scope": switches.get("market_tickers_scope", "all_markets"),
        "event_cap_counts": switches.get("event_cap_counts", "returned"),
        "paging_direction": "forward",
        "historical_over_cap": switches.get("historical_over_cap", "400"),
        "batch_over_cap": switches.get("batch_over_cap", "400"),
        "nested_markets_of_historical_event": switches.get(
            "nested_markets_of_historical_event", "absent"
        ),
        "batch_serves_historical": "yes" if switches.get("batch_serves_historical") else "no",
    }
    got = observed(report)
    assert {k: got[k] for k in want} == want
    assert report.exit_code == 0


# --- the command line, the evidence, the budget -----------------------------------------------


def test_cli_table_json_and_evidence(tmp_path: Path) -> None:
    archive = tmp_path / "raw"
    runner = CliRunner()
    now = datetime.now(UTC).replace(second=0, microsecond=0)  # the command reads the clock
    today = now.date()
    config = sim_config(
        paging_direction="backward",
        now=now,
        first_date=today - timedelta(days=11),
        last_date=today + timedelta(days=1),
    )
    with run_sim_in_thread(config) as sim:
        base = ["check-api", "--series", SERIES, "--api-base", sim.base_url]
        base += ["--archive", str(archive), "--rps", "100", "--db", f"sqlite:///{tmp_path}/k.db"]
        res = runner.invoke(main, [*base, "--format", "json"])
        requests = sim.counters.total
        log = list(sim.counters.log)
        res_table = runner.invoke(main, base)
    assert res.exit_code == 1, res.output  # backward paging is not handled: exit 1
    doc = orjson.loads(res.stdout)
    assert doc["api_base"] == sim.base_url and doc["requests"] == requests <= 20
    names = [c["name"] for c in doc["checks"]]
    assert names == [
        "candle_fields",
        "uncapped_adjusted_end_ts",
        "market_tickers_scope",
        "event_cap_counts",
        "paging_direction",
        "historical_over_cap",
        "batch_over_cap",
        "historical_cutoff",
        "nested_markets_of_historical_event",
        "batch_serves_historical",
    ]
    by_name = {c["name"]: c for c in doc["checks"]}
    assert by_name["paging_direction"] == {**by_name["paging_direction"], "status": "differs"}
    assert by_name["paging_direction"]["observed"] == "backward"
    assert not by_name["paging_direction"]["handled"]
    assert all(set(c) >= {"name", "status", "observed", "evidence"} for c in doc["checks"])
    assert "grace period" in " ".join(doc["notes"])
    # every answer archived under _check/, with the bytes the server sent
    files = sorted(Path(doc["evidence_dir"]).glob("*.json.gz"))
    assert Path(doc["evidence_dir"]).parent == archive / "_check" / SERIES
    assert len(files) == len([r for r in log if r.status != 0]) >= 11
    over = [f for f in files if "historical-over-cap" in f.name]
    (over_file,) = over
    envelope = orjson.loads(gzip.decompress(over_file.read_bytes()))
    assert envelope["status"] == 400
    assert envelope["body"]["error"]["details"].startswith("requested time range with")
    assert res_table.exit_code == 1, res_table.output
    assert "paging_direction" in res_table.stdout and "backward" in res_table.stdout
    assert "error: paging_direction is 'backward'" in res_table.stdout
    assert "grace period" in res_table.stdout


async def test_a_failing_server_never_costs_more_than_20_requests(tmp_path: Path) -> None:
    """Every candle request fails with 503: retries are cut so the budget holds."""
    async with SimServer(sim_config()) as sim:
        sim.fail_next("/candlesticks", "503", times=1000)
        report = await check(sim, tmp_path / "raw")
    assert sim.counters.total == 20 and report.requests == 20
    got = observed(report)
    assert got["paging_direction"] == "unknown" and got["historical_over_cap"] == "unknown"
    assert got["historical_cutoff"] == "2025-11-15T15:00:00Z"  # what could be seen, was
    assert report.exit_code == 0 and report.unknown  # unknowns are warnings, not failures


def test_check_api_shares_the_key_with_live_extractors(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    assert live_extractors(f"sqlite:///{missing}") == 0 and not missing.exists()
    url = f"sqlite:///{tmp_path / 'k.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE unrelated (x INTEGER)")
    assert live_extractors(url) == 0  # no kalshi_worker table yet: a first run
    metadata.create_all(engine)
    with engine.begin() as conn:
        heartbeat(conn, "host:1", KIND_EXTRACT, 60)
        heartbeat(conn, "host:2", KIND_EXTRACT, 60)
        heartbeat(conn, "host:3", KIND_EXTRACT, -1)  # expired: a dead extractor
    engine.dispose()
    assert live_extractors(url) == 2


# --- the rules on hand-made pages -------------------------------------------------------------


def page(candles: dict[str, list[int]], adjusted: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "market_tickers": list(candles),
        "market_candlesticks": [[{"end_period_ts": t} for t in ts] for ts in candles.values()],
    }
    if adjusted is not None:
        body["adjusted_end_ts"] = adjusted
    return body


def test_rules_read_hand_made_pages() -> None:
    span = Span(6000, 9600)
    assert rules.uncapped_adjusted_end(page({"A": [6060, 9000]}, 9600), span) == "end_ts"
    assert rules.uncapped_adjusted_end(page({"A": [6060, 9000]}, 9000), span) == "last_candle"
    assert rules.uncapped_adjusted_end(page({"A": [9600]}, 9600), span) == "end_ts?"
    assert rules.uncapped_adjusted_end(page({"A": [9000]}, 0), span) == "zero"
    assert rules.uncapped_adjusted_end(page({"A": [9000]}, None), span) == "absent"
    assert rules.uncapped_adjusted_end(page({"A": [9000]}, 7000), span) == "other"
    assert rules.resolve_uncapped("end_ts?", "last_candle") == "last_candle"
    assert rules.resolve_uncapped("end_ts?", "end_ts") == "end_ts"
    # scope: a page where market B has no candle
    assert rules.market_tickers_scope(page({"A": [6060], "B": []}, 9600), "AB") == "all_markets"
    assert rules.market_tickers_scope(page({"A": [6060]}, 9600), "AB") == "with_candles"
    assert rules.market_tickers_scope(page({"A": [6060], "B": [6120]}, 9600), "AB") == "unknown"
    # direction: candles after the announced cut = the page was cut from the end
    full = Span(0, 600_000)
    capped = page({"A": list(range(60, 3060, 60))}, 3000)
    assert rules.paging_direction(capped, full, 80, False) == "forward"
    assert rules.paging_direction(page({"A": [3000, 3060]}, 3000), full, 80, False) == "backward"
    assert rules.paging_direction(page({"A": [60]}, 600_000), full, 80, False) == "unknown"
    # over cap: the reference tells truncated from served
    ref = {("A", 60), ("A", 120)}
    assert rules.over_cap(400, {}, ref, batch=False) == "400"
    body = {"ticker": "A", "candlesticks": [{"end_period_ts": 60}, {"end_period_ts": 120}]}
    assert rules.over_cap(200, body, ref, batch=False) == "served"
    body["candlesticks"] = body["candlesticks"][:1]
    assert rules.over_cap(200, body, ref, batch=False) == "truncated"
    assert rules.over_cap(503, None, ref, batch=False) == "unknown"


def test_an_unparseable_cutoff_is_not_handled() -> None:
    result = CheckResult("historical_cutoff", "unparseable", "GET ... -> 200")
    report = CheckReport("http://x", 3, [result], "_check/X/1")
    assert (result.status, result.handled, report.exit_code) == ("differs", False, 1)
    assert any(line.startswith("error: historical_cutoff") for line in report.lines())


async def test_listing_fallbacks(tmp_path: Path) -> None:
    """The series-wide historical listing refused: one event's listing stands in for it."""
    report, sim = await run(tmp_path / "a", historical_series_filter=False)
    got = observed(report)
    assert got[NESTED] == "absent"
    assert got["historical_over_cap"] == "400" and got["batch_serves_historical"] == "no"
    listings = [r.params for r in sim.counters.log if r.route == "historical_markets"]
    assert [("series_ticker" in p, "event_ticker" in p) for p in listings] == [
        (True, False),
        (False, True),
    ]
    # an events listing without the all-historical events: that point is unknown, a warning
    report, _ = await run(tmp_path / "b", events_list_drops_historical=True)
    got = observed(report)
    assert got[NESTED] == "unknown" and report.exit_code == 0
    assert got["historical_over_cap"] == "400"
