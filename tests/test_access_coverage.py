"""``coverage``: the completeness matrix (pure) and the PNG it is drawn as."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib import image as mpimg

from load.normalize.stats import maintenance_mask
from load.report.cli import coverage_cmd
from load.report.coverage import (
    Cell,
    CoverageMatrix,
    MarketSpan,
    build_coverage,
    event_coverage_row,
    render_coverage,
)
from schemas.errors import InputError
from tests.test_access_data import EVENTS, SERIES, WORLD, seed

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_row_classes_by_hand() -> None:
    # two markets: A open (0, 600], B open (120, 480]; 60-second periods from ts 0
    spans = [MarketSpan("A", 0, 600), MarketSpan("B", 120, 480)]
    candles = {"A": np.array([60, 120, 180, 240, 360, 420, 600]), "B": np.array([180, 300, 420])}
    row = event_coverage_row(spans, candles, 0, 12, 60)
    want = [
        Cell.COMPLETE,  # 60: only A expected, present
        Cell.COMPLETE,  # 120
        Cell.COMPLETE,  # 180: A and B
        Cell.PARTIAL,  # 240: B missing
        Cell.PARTIAL,  # 300: A missing
        Cell.PARTIAL,  # 360: B missing
        Cell.COMPLETE,  # 420
        Cell.MISSING,  # 480: both missing
        Cell.MISSING,  # 540: A missing, B closed
        Cell.COMPLETE,  # 600
        Cell.OUTSIDE,  # 660: nothing open
        Cell.OUTSIDE,
    ]
    assert row.tolist() == [int(c) for c in want]


def test_maintenance_mask_is_thursday_03_to_05_new_york() -> None:
    # 2025-11-20 is a Thursday (EST, UTC-5): the pause is (08:00, 10:00] UTC
    ts = np.array(
        [
            datetime(2025, 11, 20, h, m, tzinfo=UTC).timestamp()
            for h, m in ((8, 0), (8, 1), (9, 59), (10, 0), (10, 1))
        ],
        dtype=np.int64,
    )
    assert maintenance_mask(ts).tolist() == [False, True, True, True, False]
    wednesday = ts - 86400
    assert not maintenance_mask(wednesday).any()


def test_matrix_from_the_database(db_url: str, tmp_path: Path) -> None:
    infos = WORLD.market_infos(EVENTS[0])
    hole = infos[0].open_ts - infos[0].open_ts % 60 + 600  # the 10th minute of market 0
    engine = seed(db_url, EVENTS, drop=[(infos[0].ticker, hole)])
    matrix = build_coverage(engine, SERIES, date(2025, 11, 1), date(2025, 11, 30))
    assert matrix.events == EVENTS
    assert matrix.cells.shape[0] == 2 and matrix.cells.shape[1] >= 37 * 60
    start = matrix.window_start_ts[0]
    assert matrix.cells[0, (hole - start) // 60 - 1] in (Cell.PARTIAL, Cell.MISSING)
    # the Thursday pause of the second event: a two-hour block of blue, none in the first
    pause_start = int(datetime(2025, 11, 20, 8, 1, tzinfo=UTC).timestamp())
    col = (pause_start - matrix.window_start_ts[1]) // 60 - 1
    assert (matrix.cells[1, col : col + 120] == Cell.MAINTENANCE).all()
    assert matrix.count(Cell.MAINTENANCE) == 120
    assert matrix.count(Cell.COMPLETE) > matrix.count(Cell.PARTIAL) > 0

    png = render_coverage(matrix, tmp_path / "out" / "coverage.png")
    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    pixels = mpimg.imread(png)
    assert pixels.shape[0] > 0 and pixels.shape[1] > 0
    assert [p.name for p in png.parent.iterdir()] == ["coverage.png"]  # no temp file left
    engine.dispose()


#: The palette a reader is promised (README: green complete, orange partial, red missing,
#: blue maintenance, white nothing open), written out here rather than read from the code.
PALETTE = {
    Cell.OUTSIDE: (255, 255, 255),
    Cell.COMPLETE: (0x4C, 0xAF, 0x50),
    Cell.PARTIAL: (0xFF, 0x98, 0x00),
    Cell.MISSING: (0xD3, 0x2F, 0x2F),
    Cell.MAINTENANCE: (0x1E, 0x88, 0xE5),
}


def test_picture_has_the_known_colour_in_each_known_cell(tmp_path: Path) -> None:
    # Two events, ten columns; every class somewhere, none at the edges white, so the
    # drawn area can be found from the pixels alone.
    c, p, m, x, o = Cell.COMPLETE, Cell.PARTIAL, Cell.MISSING, Cell.MAINTENANCE, Cell.OUTSIDE
    rows = [[c, c, p, m, o, x, x, m, p, c], [m, x, c, o, o, p, c, c, x, m]]
    cells = np.array([[int(v) for v in r] for r in rows], dtype=np.int8)
    matrix = CoverageMatrix(SERIES, 60, ("E1", "E2"), (0, 0), cells)
    png = render_coverage(matrix, tmp_path / "known.png")
    rgb = (mpimg.imread(png)[:, :, :3] * 255).round().astype(int)

    # The drawn area: the rows and columns where cell colours other than white fill most of
    # the width (the legend's small patches below never do).
    coloured = np.zeros(rgb.shape[:2], dtype=bool)
    for cell, colour in PALETTE.items():
        if cell is not Cell.OUTSIDE:
            coloured |= (rgb == colour).all(axis=2)
    area_rows = np.flatnonzero(coloured.sum(axis=1) > rgb.shape[1] * 0.4)
    top, bottom = area_rows.min(), area_rows.max()
    cols = np.flatnonzero(coloured[top : bottom + 1].any(axis=0))
    left, right = cols.min(), cols.max()
    height, width = bottom - top + 1, right - left + 1
    for i, row in enumerate(rows):
        y = top + int((i + 0.5) * height / len(rows))
        for j, cell in enumerate(row):
            xpix = left + int((j + 0.5) * width / len(row))
            assert tuple(rgb[y, xpix]) == PALETTE[cell], (i, j, cell)


def test_coverage_cli(db_url: str, tmp_path: Path) -> None:
    seed(db_url, EVENTS).dispose()
    out = tmp_path / "c.png"
    res = CliRunner().invoke(
        coverage_cmd, ["--series", SERIES, "--out", str(out), "--db", db_url, "--to", "2025-11-19"]
    )
    assert res.exit_code == 0, res.output
    assert "1 events" in res.stderr
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    res = CliRunner().invoke(
        coverage_cmd, ["--series", "KXHIGHCHI", "--out", str(out), "--db", db_url]
    )
    assert res.exit_code == 2 and "no event" in res.stderr


def test_coverage_input_errors(sqlite_url: str) -> None:
    engine = seed(sqlite_url, EVENTS[:1])
    with pytest.raises(InputError):
        build_coverage(engine, SERIES, date(2025, 11, 21), date(2025, 11, 20))
    with pytest.raises(InputError):
        build_coverage(engine, "bad/series")
    engine.dispose()


def test_close_off_the_grid_is_one_rule_with_the_stats() -> None:
    # Hand truth as in test_load_stats: open 10:00, close 23:59 the next day, hourly:
    # 38 periods are expected, the last one (ending at midnight) holds the close.
    open_ts = int(datetime(2025, 11, 3, 10, tzinfo=UTC).timestamp())
    close_ts = int(datetime(2025, 11, 4, 23, 59, tzinfo=UTC).timestamp())
    spans = [MarketSpan("A", open_ts, close_ts)]
    ends = np.array([open_ts + 3600 * i for i in range(1, 39)], dtype=np.int64)
    row = event_coverage_row(spans, {"A": ends}, open_ts, 40, 3600)
    assert row.tolist() == [int(Cell.COMPLETE)] * 38 + [int(Cell.OUTSIDE)] * 2
