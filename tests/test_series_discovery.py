"""Series discovery (issue 20 item 1): ``kalshi-extract series --category``, the
``kalshi_series`` table, the archived answer, and ``--category`` in the load commands.

The truth is the simulator's own list (``World.series_list``) and the bytes it served;
the tables are read back from real databases.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from extract.cli import main as extract_main
from load.cli import cli as load_cli
from schemas.archive import SERIES_DIR, exact_body
from schemas.db import make_engine
from schemas.tables import kalshi_series
from tests.kalshi_sim import CATEGORY_SERIES, WEATHER, SimConfig, run_sim_in_thread

NOW = datetime(2025, 11, 20, 15, 0, tzinfo=UTC)
SIM = SimConfig(
    seed=13,
    series=CATEGORY_SERIES,
    now=NOW,
    first_date=date(2025, 11, 17),
    last_date=date(2025, 11, 18),
    markets_per_event=2,
    historical_cutoff_days=3650,
)
WEATHER_TICKERS = ["KXHIGHCHI", "KXHIGHNY", "KXHIGHTHNL", "KXLOWTNYC", "KXRAINNYCM", "KXTEMPNYCH"]


def extract(*args: str) -> Result:
    return CliRunner().invoke(extract_main, list(args), catch_exceptions=False)


def load(*args: str) -> Result:
    return CliRunner().invoke(load_cli, list(args), catch_exceptions=False)


def stored_series(db_url: str) -> dict[str, dict[str, object]]:
    engine = make_engine(db_url, schema="none")
    try:
        with engine.connect() as conn:
            return {r.series_ticker: dict(r._mapping) for r in conn.execute(select(kalshi_series))}
    finally:
        engine.dispose()


def test_series_lists_stores_and_archives_a_category(db_url: str, archive_dir: Path) -> None:
    with run_sim_in_thread(SIM) as sim:
        r = extract(
            "series", "--category", WEATHER, "--db", db_url, "--archive", str(archive_dir),
            "--api-base", sim.base_url,
        )  # fmt: skip
        truth = sim.world.series_list(WEATHER)
        assert sim.counters.by_route == {"series_list": 1}
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["series", "frequency", "time", "zone", "tags", "title"]
    assert [ln.split()[0] for ln in lines[1:-1]] == WEATHER_TICKERS
    hnl = next(ln for ln in lines if ln.startswith("KXHIGHTHNL"))
    assert hnl.split()[1:3] == ["daily", "-"]  # outside the zone table
    assert "America/Phoenix" not in r.stdout and "KXINXD" not in r.stdout
    assert lines[-1].startswith("6 series; 1 outside the zone table")

    rows = stored_series(db_url)
    assert sorted(rows) == WEATHER_TICKERS
    for doc in truth:
        row = rows[doc["ticker"]]
        assert (row["title"], row["category"], row["frequency"]) == (
            doc["title"],
            doc["category"],
            doc["frequency"],
        )
        assert json.loads(str(row["tags"])) == doc["tags"]
        assert json.loads(str(row["settlement_sources"])) == doc["settlement_sources"]
        updated = row["last_updated_ts_utc"]
        assert isinstance(updated, datetime)
        assert (
            updated.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z") == doc["last_updated_ts"]
        )

    (archived,) = (archive_dir / SERIES_DIR).glob("*.json.gz")
    text = gzip.decompress(archived.read_bytes())
    doc = orjson.loads(text)
    assert doc["request"]["path"] == "/trade-api/v2/series"
    assert doc["request"]["params"] == {"category": WEATHER}
    # The body exactly as served: the simulator writes orjson.dumps of its list.
    assert exact_body(text, doc["body_bytes"]) == orjson.dumps({"series": truth})


def test_series_json_and_tags(sqlite_url: str, archive_dir: Path) -> None:
    with run_sim_in_thread(SIM) as sim:
        r = extract(
            "series", "--tags", "Rain", "--format", "json", "--db", sqlite_url,
            "--archive", str(archive_dir), "--api-base", sim.base_url,
        )  # fmt: skip
    assert r.exit_code == 0, r.output
    (doc,) = orjson.loads(r.stdout)
    assert doc["ticker"] == "KXRAINNYCM" and doc["frequency"] == "monthly"
    assert doc["tags"] == ["Rain"] and doc["time_zone"] == "America/New_York"


def test_an_unknown_category_is_one_error_and_writes_nothing(
    sqlite_url: str, archive_dir: Path
) -> None:
    with run_sim_in_thread(SIM) as sim:
        for command in ("series", "events", "candles"):
            r = extract(
                command, "--category", "Sports", "--db", sqlite_url,
                "--archive", str(archive_dir), "--api-base", sim.base_url,
            )  # fmt: skip
            assert r.exit_code == 2, r.output
            (line,) = r.output.strip().splitlines()
            assert line.startswith("error: ") and "'Sports'" in line, line
    assert not (archive_dir / SERIES_DIR).exists()
    assert stored_series(sqlite_url) == {}


def test_a_server_that_ignores_the_filter_backfills_only_the_category(
    sqlite_url: str, archive_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with run_sim_in_thread(replace(SIM, series_list_filter="ignored")) as sim:
        r = extract(
            "series", "--category", WEATHER, "--db", sqlite_url, "--archive", str(archive_dir),
            "--api-base", sim.base_url,
        )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert sorted(stored_series(sqlite_url)) == WEATHER_TICKERS  # KXINXD left out
    assert "KXINXD" not in r.stdout
    assert "outside category 'Climate and Weather' (the server ignored the filter)" in caplog.text


def test_the_load_commands_take_a_category_from_kalshi_series_without_the_api(
    sqlite_url: str, archive_dir: Path, tmp_path: Path
) -> None:
    with run_sim_in_thread(SIM) as sim:
        base = ["--db", sqlite_url, "--archive", str(archive_dir), "--api-base", sim.base_url]
        assert extract("events", "--series", "KXHIGHNY,KXHIGHTHNL", *base).exit_code == 0
        # events stored each series' row; a category nobody listed: the load side does not
        # ask the API, it says what to do.
        asked = sim.counters.total
        r = load("status", "--category", "Financials", "--db", sqlite_url)
        assert r.exit_code == 2
        assert "no series of category 'Financials' in kalshi_series" in r.output
        assert "kalshi-extract series --category 'Financials'" in r.output
        r = load("status", "--category", WEATHER, "--format", "json", "--db", sqlite_url)
        assert r.exit_code == 0 and sim.counters.total == asked
        assert extract("candles", "--category", WEATHER, *base).exit_code == 0
        assert load("run", "--category", WEATHER, "--db", sqlite_url,
                    "--archive", str(archive_dir)).exit_code == 0  # fmt: skip
        calls = sim.counters.total
        status = load("status", "--category", WEATHER, "--db", sqlite_url, "--format", "json")
        out = tmp_path / "parquet"
        export = load(
            "export", "--category", WEATHER, "--from", "2025-11-17", "--to", "2025-11-18",
            "--out", str(out), "--db", sqlite_url,
        )  # fmt: skip
        assert sim.counters.total == calls  # the load side never called the API
        assert calls > asked
    assert status.exit_code == 0, status.output
    assert {s["series_ticker"] for s in orjson.loads(status.stdout)} == {"KXHIGHNY", "KXHIGHTHNL"}
    assert export.exit_code == 0, export.output
    assert sorted(p.name for p in out.iterdir()) == ["series=KXHIGHNY", "series=KXHIGHTHNL"]
