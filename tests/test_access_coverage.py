"""``coverage``: the cell classes (pure), the matrix from window records and binned counts,
and the PNG checked pixel by pixel against a palette written out here."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib import image as mpimg
from sqlalchemy import Engine, delete

from load.normalize.stats import maintenance_mask
from load.report.cli import coverage_cmd
from load.report.coverage import (
    Cell,
    Counts,
    CoverageMatrix,
    EventKinds,
    build_coverage,
    classify,
)
from load.report.coverage_png import render_coverage
from schemas.archive import WindowKey
from schemas.checkpoints import save_checkpoint
from schemas.core import CheckpointStatus, WindowPolicy
from schemas.errors import InputError
from schemas.tables import kalshi_candle
from tests.test_access_data import EVENTS, SERIES, WORLD, seed

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: The palette a reader is promised (README), written out here rather than read from the
#: code: white nothing open, grey not backfilled, red extracted with no candle, blue the
#: maintenance pause, orange some missing, green complete, four purples by share.
PALETTE = {
    Cell.OUTSIDE: (255, 255, 255),
    Cell.NOT_BACKFILLED: (0x9E, 0x9E, 0x9E),
    Cell.MISSING: (0xD3, 0x2F, 0x2F),
    Cell.MAINTENANCE: (0x1E, 0x88, 0xE5),
    Cell.PARTIAL: (0xFF, 0x98, 0x00),
    Cell.COMPLETE: (0x4C, 0xAF, 0x50),
    Cell.SHARE_1: (0xDA, 0xDA, 0xEB),
    Cell.SHARE_2: (0xBC, 0xBD, 0xDC),
    Cell.SHARE_3: (0x80, 0x7D, 0xBA),
    Cell.SHARE_4: (0x54, 0x27, 0x8F),
}


def _counts(
    expected: list[int], backfilled: list[int], present: list[int], paused: list[int]
) -> Counts:
    return Counts(*(np.array(v, dtype=np.int64) for v in (expected, backfilled, present, paused)))


def test_cell_classes_by_hand() -> None:
    counts = _counts(
        expected=[0, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20],
        backfilled=[0, 0, 20, 20, 20, 20, 20, 20, 20, 20, 20],
        present=[0, 0, 0, 20, 1, 5, 12, 19, 15, 0, 21],
        paused=[0, 0, 0, 0, 0, 0, 0, 0, 20, 20, 0],
    )
    o, n, m, c, x = Cell.OUTSIDE, Cell.NOT_BACKFILLED, Cell.MISSING, Cell.COMPLETE, Cell.MAINTENANCE
    p = Cell.PARTIAL
    assert classify(counts, "presence").tolist() == [o, n, m, c, p, p, p, p, x, x, c]
    s1, s2, s3, s4 = Cell.SHARE_1, Cell.SHARE_2, Cell.SHARE_3, Cell.SHARE_4
    # shares 5 % → under 10 %, 25 % → 10-50 %, 60 % → 50-90 %, 95 % → 90-100 %; more
    # present than expected (a stray candle) never makes a cell more than complete
    assert classify(counts, "density").tolist() == [o, n, m, c, s1, s2, s3, s4, x, x, c]


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
    assert not maintenance_mask(ts - 86400).any()


def _loaded(engine: Engine, events: tuple[str, ...]) -> None:
    """A SUCCESS checkpoint over each event's whole market life (as load leaves it)."""
    with engine.begin() as conn:
        for ev in events:
            infos = WORLD.market_infos(ev)
            save_checkpoint(
                conn,
                WindowKey(SERIES, ev, 1, WindowPolicy.FULL_MARKET_WINDOW),
                status=CheckpointStatus.SUCCESS,
                window_start_ts=min(m.open_ts for m in infos),
                window_end_ts=max(m.close_ts for m in infos),
                is_final=True,
            )


def _origin(event: str) -> int:
    """The event's row start: the minute at or before its earliest market open."""
    first = min(m.open_ts for m in WORLD.market_infos(event))
    return first - first % 60


def test_matrix_from_window_records_and_binned_counts(db_url: str) -> None:
    infos = WORLD.market_infos(EVENTS[0])
    hole = infos[0].open_ts - infos[0].open_ts % 60 + 600  # the 10th minute of market 0
    engine = seed(db_url, EVENTS, drop=[(infos[0].ticker, hole)])
    _loaded(engine, EVENTS)
    matrix = build_coverage(engine, SERIES, date(2025, 11, 1), date(2025, 11, 30), view="presence")
    engine.dispose()
    assert matrix.rows == EVENTS and matrix.row_kind == "event"
    assert matrix.bin_minutes == 4 and matrix.cells.shape == (2, 570)  # 38 h in 4-minute bins
    assert matrix.cells[0, (hole - _origin(EVENTS[0]) - 1) // 240] == Cell.PARTIAL
    # the Thursday pause of the second event, minutes ending in (08:00, 10:00] UTC: every
    # bin wholly inside it is blue, and none of the first event
    pause = int(datetime(2025, 11, 20, 8, tzinfo=UTC).timestamp()) - _origin(EVENTS[1])
    inside = matrix.cells[1, -(-pause // 240) : (pause + 7200) // 240]
    assert inside.size >= 29 and (inside == Cell.MAINTENANCE).all()
    assert not (matrix.cells[0] == Cell.MAINTENANCE).any()
    # the counts: every market-minute of every market's life backfilled, each served
    # candle present but the one dropped
    k = matrix.kinds
    assert (k.events, k.not_backfilled, k.empty, k.sparse) == (2, 0, 0, 0)
    markets = [m for ev in EVENTS for m in WORLD.market_infos(ev)]
    assert k.backfilled_minutes == sum((m.close_ts - m.open_ts) // 60 for m in markets)
    assert k.present_minutes == sum(len(WORLD.candles(m.ticker)) for m in markets) - 1


def _three_kinds(url: str) -> Engine:
    """A never-backfilled event, an extracted one with no candle and a sparse one."""
    never, empty, sparse = "KXHIGHNY-25NOV18", "KXHIGHNY-25NOV19", "KXHIGHNY-25NOV21"
    engine = seed(url, (never, empty, sparse))
    _loaded(engine, (empty, sparse))
    c = kalshi_candle.c
    with engine.begin() as conn:
        conn.execute(delete(kalshi_candle).where(c.event_ticker.in_((never, empty))))
        for m in WORLD.market_infos(sparse):
            ends = [cd["end_period_ts"] for cd in WORLD.candles(m.ticker)]
            gone = [datetime.fromtimestamp(t, UTC) for i, t in enumerate(ends) if i % 5]
            for i in range(0, len(gone), 500):
                conn.execute(
                    delete(kalshi_candle).where(
                        c.market_ticker == m.ticker, c.end_period_ts_utc.in_(gone[i : i + 500])
                    )
                )
    return engine


def _drawn_area(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the cells: the rows and columns where palette colours
    other than white fill most of the width (the legend's small patches never do)."""
    coloured = np.zeros(rgb.shape[:2], dtype=bool)
    for cell, colour in PALETTE.items():
        if cell is not Cell.OUTSIDE:
            coloured |= (rgb == colour).all(axis=2)
    area_rows = np.flatnonzero(coloured.sum(axis=1) > rgb.shape[1] * 0.4)
    top, bottom = area_rows.min(), area_rows.max()
    # columns mostly coloured down the area (antialiased label text can hit a palette grey)
    cols = np.flatnonzero(coloured[top : bottom + 1].mean(axis=0) > 0.5)
    return top, bottom, cols.min(), cols.max()


def _check_pixels(png: Path, cells: np.ndarray) -> None:
    """The centre pixel of every cell has exactly its class's written colour (the two
    edge columns excepted: the image's border pixels are blended with the frame)."""
    rgb = (mpimg.imread(png)[:, :, :3] * 255).round().astype(int)
    top, bottom, left, right = _drawn_area(rgb)
    height, width = bottom - top + 1, right - left + 1
    n_rows, n_cols = cells.shape
    assert width >= n_cols  # one pixel column at least per cell: none is skipped
    for i in range(n_rows):
        y = top + int((i + 0.5) * height / n_rows)
        for j in range(1 if n_cols > 2 else 0, n_cols - 1 if n_cols > 2 else n_cols):
            x = left + int((j + 0.5) * width / n_cols)
            assert tuple(rgb[y, x]) == PALETTE[Cell(cells[i, j])], (i, j, Cell(cells[i, j]))


def test_never_backfilled_empty_and_sparse_each_get_their_colour(
    db_url: str, tmp_path: Path
) -> None:
    engine = _three_kinds(db_url)
    matrix = build_coverage(engine, SERIES, date(2025, 11, 18), date(2025, 11, 21))
    engine.dispose()
    assert matrix.view == "density"  # sparse candles: the default view
    assert matrix.kinds.events == 3
    assert (matrix.kinds.not_backfilled, matrix.kinds.empty, matrix.kinds.sparse) == (1, 1, 1)
    never, empty, sparse = (set(Cell(v) for v in row) for row in matrix.cells)
    assert never == {Cell.NOT_BACKFILLED, Cell.OUTSIDE} or never == {Cell.NOT_BACKFILLED}
    assert empty <= {Cell.MISSING, Cell.OUTSIDE} and Cell.MISSING in empty
    # a fifth of the candles kept: cells shaded by share (a bin may hold none of them)
    assert (
        {Cell.SHARE_1, Cell.SHARE_2}
        <= sparse
        <= {Cell.SHARE_1, Cell.SHARE_2, Cell.SHARE_3, Cell.MISSING, Cell.OUTSIDE}
    )
    png = render_coverage(matrix, tmp_path / "png" / "kinds.png")
    _check_pixels(png, matrix.cells)
    assert [p.name for p in png.parent.iterdir()] == ["kinds.png"]  # no temp file left


def test_picture_has_the_known_colour_in_each_known_cell(tmp_path: Path) -> None:
    # Two rows, twelve columns; every class somewhere, none at the edges white, so the
    # drawn area can be found from the pixels alone.
    rows = [[5, 5, 4, 2, 0, 3, 1, 2, 6, 7, 8, 9], [2, 3, 5, 0, 1, 4, 5, 9, 3, 8, 7, 2]]
    cells = np.array(rows, dtype=np.int8)
    matrix = CoverageMatrix(SERIES, 60, 60, "event", ("E1", "E2"), cells, "density", EventKinds(2))
    png = render_coverage(matrix, tmp_path / "known.png")
    _check_pixels(png, cells)


def test_a_year_stays_a_readable_picture(tmp_path: Path) -> None:
    """365 rows are drawn in at most the bounded area: the PNG stays about a screen tall."""
    cells = np.full((365, 570), Cell.COMPLETE, dtype=np.int8)
    matrix = CoverageMatrix(
        SERIES,
        1,
        4,
        "event",
        tuple(f"E{i}" for i in range(365)),
        cells,
        "presence",
        EventKinds(365),
    )
    png = render_coverage(matrix, tmp_path / "year.png")
    assert mpimg.imread(png).shape[0] < 1400


def test_coverage_cli(db_url: str, tmp_path: Path) -> None:
    engine = seed(db_url, EVENTS)
    _loaded(engine, EVENTS[:1])
    engine.dispose()
    out = tmp_path / "c.png"
    args = ["--series", SERIES, "--out", str(out), "--db", db_url]
    res = CliRunner().invoke(coverage_cmd, [*args, "--to", "2025-11-20", "--presence"])
    assert res.exit_code == 0, res.output
    assert "2 events: 1 not backfilled" in res.stderr and "presence view" in res.stderr
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    res = CliRunner().invoke(coverage_cmd, [*args, "--density"])
    assert res.exit_code == 0 and "density view" in res.stderr
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


def test_many_events_are_drawn_by_day_then_by_week(sqlite_url: str) -> None:
    engine = seed(sqlite_url, EVENTS)
    _loaded(engine, EVENTS)
    matrix = build_coverage(engine, SERIES, max_rows=1)
    assert matrix.row_kind == "week" and matrix.rows == ("2025-11-19 +7d",)
    assert matrix.kinds.events == 2 and matrix.cells.shape[0] == 1
    engine.dispose()
