"""``export``: Parquet partitioned by series and event date, exact decimals, atomic files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from load.access.cli import export_cmd
from load.access.export import export_series, partition_path
from load.normalize.pages import CANDLE_SCHEMA
from schemas.errors import InputError
from schemas.tables import CANDLE_COLUMNS
from tests.test_access_data import EVENTS, SERIES, seed, truth_rows


def test_export_partitions_by_event_date(db_url: str, tmp_path: Path) -> None:
    engine = seed(db_url, EVENTS)
    out = tmp_path / "export"
    parts = export_series(engine, SERIES, date(2025, 11, 19), date(2025, 11, 20), out).parts
    assert [p.event_date for p in parts] == [date(2025, 11, 19), date(2025, 11, 20)]
    for part, event in zip(parts, EVENTS, strict=True):
        assert part.path == out / f"series={SERIES}" / f"date={part.event_date}" / "part-0.parquet"
        frame = pl.read_parquet(part.path)
        assert frame.schema == pl.Schema(CANDLE_SCHEMA)  # decimals stay decimals
        assert frame.columns == list(CANDLE_COLUMNS)
        assert frame.height == part.rows
        # the whole event in its date's file, although it spans two UTC days
        assert frame.to_dicts() == truth_rows(event)
        assert frame["end_period_ts_utc"].dt.date().n_unique() >= 2
    # no temporary file is left behind
    files = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert files == ["markets.parquet"] + ["part-0.parquet"] * 2
    # the Hive layout reads back as one dataset with the partition columns
    ds = pl.scan_parquet(out / "**/part-0.parquet", hive_partitioning=True).collect()
    assert ds.height == sum(p.rows for p in parts)
    assert set(ds["series"]) == {SERIES}
    engine.dispose()


def test_export_range_and_rerun(sqlite_url: str, tmp_path: Path) -> None:
    engine = seed(sqlite_url, EVENTS)
    out = tmp_path / "x"
    assert export_series(engine, SERIES, date(2025, 11, 21), date(2025, 11, 30), out).parts == []
    first = export_series(engine, SERIES, date(2025, 11, 20), date(2025, 11, 20), out).parts
    assert [p.events for p in first] == [(EVENTS[1],)]
    assert not partition_path(out, SERIES, date(2025, 11, 19)).exists()
    again = export_series(engine, SERIES, date(2025, 11, 20), date(2025, 11, 20), out).parts
    assert pl.read_parquet(again[0].path).equals(pl.read_parquet(first[0].path))
    with pytest.raises(InputError):
        export_series(engine, SERIES, date(2025, 11, 21), date(2025, 11, 20), out)
    with pytest.raises(InputError):
        export_series(engine, "bad series", date(2025, 11, 20), date(2025, 11, 20), out)
    engine.dispose()


def test_export_cli(db_url: str, tmp_path: Path) -> None:
    seed(db_url, EVENTS).dispose()
    out = tmp_path / "cli"
    args = ["--series", SERIES, "--from", "2025-11-19", "--to", "2025-11-20", "--out", str(out)]
    res = CliRunner().invoke(export_cmd, [*args, "--db", db_url])
    assert res.exit_code == 0, res.output
    assert len(res.stdout.splitlines()) == 3 and "2 files" in res.stderr
    assert res.stdout.splitlines()[-1].endswith("markets.parquet\t6 markets")
    assert partition_path(out, SERIES, date(2025, 11, 20)).is_file()
    bad = ["--series", SERIES, "--from", "11/19/2025", "--to", "2025-11-20", "--out", str(out)]
    res = CliRunner().invoke(export_cmd, [*bad, "--db", db_url])
    assert res.exit_code == 2 and "YYYY-MM-DD" in res.stderr


def test_export_refuses_an_out_that_is_a_file(sqlite_url: str, tmp_path: Path) -> None:
    seed(sqlite_url, EVENTS).dispose()
    (tmp_path / "out").mkdir()
    taken = tmp_path / "out" / "taken"
    taken.write_text("mine")
    args = ["--series", SERIES, "--from", "2025-11-19", "--to", "2025-11-20", "--out", str(taken)]
    res = CliRunner().invoke(export_cmd, [*args, "--db", sqlite_url])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "error:" in res.stderr
    assert taken.read_text() == "mine" and list(taken.parent.iterdir()) == [taken]


def test_export_of_several_series(sqlite_url: str, tmp_path: Path) -> None:
    engine = seed(sqlite_url, EVENTS)
    done = export_series(
        engine, [SERIES, "KXHIGHCHI"], date(2025, 11, 1), date(2025, 11, 30), tmp_path
    )
    assert {p.series_ticker for p in done.parts} == {SERIES}
    # a series without markets in the database gets no folder at all
    assert [(p.parent.name, rows) for p, rows in done.markets] == [(f"series={SERIES}", 6)]
    assert not (tmp_path / "series=KXHIGHCHI").exists()
    with pytest.raises(InputError, match="twice"):
        export_series(engine, [SERIES, SERIES], date(2025, 11, 1), date(2025, 11, 30), tmp_path)
    engine.dispose()
