"""``inspect``: the archived raw pages of an event, request by request."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from load.access_cli import inspect_cmd
from load.report import inspect_event
from schemas.errors import InputError
from tests.test_access_data import EVENTS, SERIES, WORLD, archive_event, market_tickers

EVENT = EVENTS[1]


def test_inspect_lists_every_page(archive_dir: Path) -> None:
    archive, key, names = archive_event(archive_dir, EVENT, cap=4000)
    assert len(names) >= 2  # the cap cut the window: several pages
    (window,) = inspect_event(archive, EVENT)
    assert window.dir == key.dir and window.manifest is not None
    assert [p.file.rsplit("/", 1)[-1] for p in window.pages] == names
    total = 0
    for page in window.pages:
        assert page.in_manifest and page.status == 200 and page.error is None
        assert page.path == f"/series/{SERIES}/events/{EVENT}/candlesticks"
        assert set(page.candles) == set(market_tickers(EVENT))
        assert page.adjusted_end_ts is not None and page.body is None
        truth = WORLD.event_candles(EVENT, page.params["start_ts"], page.params["end_ts"], 1, 4000)
        assert page.candles == {
            t: len(cs)
            for t, cs in zip(truth.market_tickers, truth.market_candlesticks, strict=True)
        }
        total += sum(page.candles.values())
    # pages overlap by one boundary timestamp: at least every candle once
    assert total >= sum(len(WORLD.candles(m)) for m in market_tickers(EVENT))


def test_inspect_start_ts_body_and_incomplete(archive_dir: Path) -> None:
    archive, key, names = archive_event(archive_dir, EVENT, cap=4000, complete=False)
    archive.write_atomic(f"{key.dir}/.tmp-junk", b"half a page")
    second = int(names[1].split(".")[0])
    (window,) = inspect_event(archive, EVENT, start_ts=second, with_body=True)
    assert window.manifest is None  # an interrupted extract: shown, flagged
    (page,) = window.pages
    assert not page.in_manifest and page.params["start_ts"] == second
    assert page.body["market_tickers"] == list(page.candles)
    assert page.body["adjusted_end_ts"] == page.adjusted_end_ts
    with pytest.raises(InputError, match="no archived window"):
        inspect_event(archive, EVENTS[0])


def test_inspect_cli(archive_dir: Path) -> None:
    archive, key, names = archive_event(archive_dir, EVENT, cap=4000)
    archive.write_atomic(f"{key.dir}/{names[0]}", b"not gzip")  # a corrupt page is shown
    runner = CliRunner()
    res = runner.invoke(inspect_cmd, ["--event", EVENT, "--archive", str(archive_dir)])
    assert res.exit_code == 0, res.output
    assert f"== {key.dir}  [complete" in res.stdout
    assert "ERROR" in res.stdout and "not a valid gzip" in res.stdout
    assert res.stdout.count("-> 200 at") == len(names) - 1
    assert "adjusted_end_ts=" in res.stdout and "candles:" in res.stdout

    start = names[1].split(".")[0]
    args = ["--event", EVENT, "--start-ts", start, "--body", "--format", "json"]
    res = runner.invoke(inspect_cmd, [*args, "--archive", str(archive_dir)])
    assert res.exit_code == 0, res.output
    (window,) = orjson.loads(res.stdout)
    (page,) = window["pages"]
    assert page["params"]["start_ts"] == int(start) and page["status"] == 200
    assert page["body"]["market_tickers"] == list(page["candles"])
    assert page["candles_total"] == sum(len(c) for c in page["body"]["market_candlesticks"])

    res = runner.invoke(inspect_cmd, ["--event", "../etc", "--archive", str(archive_dir)])
    assert res.exit_code == 2
