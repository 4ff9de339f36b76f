"""``plot``: one market's book as a PNG, drawn from the grid a backtest reads."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib import image as mpimg

from load.report.cli import plot_cmd
from load.report.plot import runs
from tests.test_access_grid import EVENTS, WORLD, seed
from tests.test_extras import _error_lines, _run

#: The colours the picture promises, written out here: the pause band, the shading of
#: periods without a candle, the bid and ask lines.
PAUSE, NO_CANDLE = (0xBB, 0xDE, 0xFB), (0xEE, 0xEE, 0xEE)
BID, ASK = (0x15, 0x65, 0xC0), (0xC6, 0x28, 0x28)


def test_runs_by_hand() -> None:
    mask = np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype=bool)
    assert runs(mask) == [(1, 2), (4, 4), (7, 7)]
    assert runs(np.zeros(3, dtype=bool)) == []


def _colours(png: Path) -> set[tuple[int, ...]]:
    rgb = (mpimg.imread(png)[:, :, :3] * 255).round().astype(int)
    return {tuple(int(v) for v in p) for p in np.unique(rgb.reshape(-1, 3), axis=0)}


def test_plot_of_a_market_across_the_pause(db_url: str, tmp_path: Path) -> None:
    seed(db_url, EVENTS[1:]).dispose()
    market = sorted(m.ticker for m in WORLD.market_infos(EVENTS[1]))[0]
    out = tmp_path / "png" / "m.png"
    db = ["--db", db_url]
    res = CliRunner().invoke(plot_cmd, ["--market", market, "--out", str(out), *db])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["m.png"]  # no temp file left
    colours = _colours(out)
    assert {PAUSE, NO_CANDLE, BID, ASK} <= colours
    found = re.search(r"\((\d+) periods, (\d+) with a candle\)", res.stderr)
    assert found is not None, res.stderr
    periods, with_candle = int(found[1]), int(found[2])
    assert periods > with_candle == len(WORLD.candles(market))
    # an hour before the pause: no band
    early = tmp_path / "early.png"
    args = ["--from", "2025-11-20T06:00Z", "--to", "2025-11-20T07:00Z", "--out", str(early)]
    res = CliRunner().invoke(plot_cmd, ["--market", market, *args, *db])
    assert res.exit_code == 0, res.output
    assert PAUSE not in _colours(early) and BID in _colours(early)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--market", "KXHIGHNY-25NOV20-B99"], "not in the database"),
        (["--market", "bad market"], "invalid market ticker"),
        (["--from", "2025-11-21", "--to", "2025-11-20"], "after"),
    ],
)
def test_plot_bad_input(sqlite_url: str, tmp_path: Path, args: list[str], message: str) -> None:
    seed(sqlite_url, EVENTS[1:]).dispose()
    if args[0] != "--market":
        args = ["--market", WORLD.market_infos(EVENTS[1])[0].ticker, *args]
    out = tmp_path / "m.png"
    res = CliRunner().invoke(plot_cmd, [*args, "--out", str(out), "--db", sqlite_url])
    assert res.exit_code == 2 and message in res.stderr, res.output
    assert res.stderr.startswith("error:") and res.stderr.count("\n") == 1
    assert not out.exists()


def test_plot_without_matplotlib_names_the_plot_extra(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.db'}"
    seed(db, EVENTS[1:]).dispose()
    out = tmp_path / "m.png"
    market = WORLD.market_infos(EVENTS[1])[0].ticker
    res = _run("matplotlib", "load", "plot", "--market", market, "--out", str(out), "--db", db)
    assert res.returncode == 2, res.stderr
    assert _error_lines(res.stderr) == [
        "error: plot needs matplotlib, which is not installed: pip install 'kalshi-candles[plot]'"
    ]
    assert not out.exists()
