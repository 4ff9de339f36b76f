"""The coverage matrix (:mod:`load.report.coverage`) drawn as a PNG.

One colour per cell class, written out in :data:`COLOURS` (the README and the pixel test
promise them), one legend entry each for the classes of the view shown, and a title that
states the counts of each kind of event. The figure's size is bounded: the rows share at
most :data:`MAX_AREA_IN` inches, so a year is as tall as a month.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from load.report.coverage import DENSITY_STEPS, Cell, CoverageMatrix
from load.report.figure import new_figure, save_png

COLOURS: dict[Cell, str] = {
    Cell.OUTSIDE: "#ffffff",
    Cell.NOT_BACKFILLED: "#9e9e9e",
    Cell.MISSING: "#d32f2f",
    Cell.MAINTENANCE: "#1e88e5",
    Cell.PARTIAL: "#ff9800",
    Cell.COMPLETE: "#4caf50",
    Cell.SHARE_1: "#dadaeb",
    Cell.SHARE_2: "#bcbddc",
    Cell.SHARE_3: "#807dba",
    Cell.SHARE_4: "#54278f",
}
ROW_IN = 0.28
"""Height of a row while few rows are drawn."""
MAX_AREA_IN = 9.0
"""The drawn area never gets taller than this (about 900 pixels)."""


def _pct(x: float) -> str:
    return f"{round(100 * x)} %"


def labels(view: str) -> dict[Cell, str]:
    """Legend text of each class drawn in ``view``."""
    steps = (0.0, *DENSITY_STEPS, 1.0)
    shares = {
        cell: f"candles in {_pct(steps[i])}–{_pct(steps[i + 1])} of market-minutes"
        for i, cell in enumerate((Cell.SHARE_1, Cell.SHARE_2, Cell.SHARE_3, Cell.SHARE_4))
    }
    out = {
        Cell.COMPLETE: "every market-minute has a candle",
        **(shares if view == "density" else {Cell.PARTIAL: "some market-minutes missing"}),
        Cell.MISSING: "extracted, no candle",
        Cell.MAINTENANCE: "missing in maintenance pause",
        Cell.NOT_BACKFILLED: "not backfilled",
        Cell.OUTSIDE: "no market open",
    }
    return out


def title(matrix: CoverageMatrix) -> str:
    """What the picture shows, with the count of each kind of event."""
    k = matrix.kinds
    share = (
        "no candle" if k.share is None else f"candles in {100 * k.share:.1f} % of market-minutes"
    )
    rows = {"event": "one row an event", "day": "one row a day", "week": "one row a week"}
    by = rows.get(matrix.row_kind, f"one row per {matrix.rows and matrix.rows[0].split('+')[-1]}")
    backfilled = k.events - k.not_backfilled - k.empty
    return (
        f"{matrix.label}: {k.events} events: {backfilled} backfilled ({k.sparse} sparse), "
        f"{k.empty} extracted with no candle, {k.not_backfilled} not backfilled; {share}\n"
        f"{matrix.period_minutes}-minute candles, {matrix.bin_minutes}-minute columns, "
        f"{by}, {matrix.view} view"
    )


def render_coverage(matrix: CoverageMatrix, out: str | Path) -> Path:
    """Draw the matrix as a PNG at ``out`` (temporary file, then rename); returns the path."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    n_rows, n_cols = matrix.cells.shape
    area = min(MAX_AREA_IN, ROW_IN * n_rows)
    top, bottom = 0.7, 1.3  # inches: the two-line title; the x labels and the legend
    height = top + area + bottom
    fig = new_figure(12, height, "coverage")
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.14, right=0.98, top=1 - top / height, bottom=bottom / height)
    cmap = ListedColormap([COLOURS[c] for c in Cell])
    ax.imshow(
        matrix.cells,
        aspect="auto",
        interpolation="nearest",
        cmap=cmap,
        vmin=0,
        vmax=len(Cell) - 1,
    )
    for spine in ax.spines.values():  # a frame would hide the edge cells
        spine.set_visible(False)
    step = max(1, n_rows // 40)
    ax.set_yticks(range(0, n_rows, step))
    ax.set_yticklabels(matrix.rows[::step], fontsize=7)
    hours = n_cols * matrix.bin_minutes / 60
    tick_h = 6 if hours > 24 else 2
    ticks = np.arange(0, hours + 1e-9, tick_h)
    ax.set_xticks(ticks * 60 / matrix.bin_minutes - 0.5)
    ax.set_xticklabels([f"{int(h)}h" for h in ticks], fontsize=7)
    ax.set_xlabel("time since the event's first market opened")
    ax.set_title(title(matrix), fontsize=9)
    shown = labels(matrix.view)
    ax.legend(
        handles=[
            Patch(facecolor=COLOURS[c], edgecolor="#999999", label=t) for c, t in shown.items()
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.5 / area),  # below the x axis' label, whatever the height
        ncol=4,
        fontsize=7,
        frameon=False,
    )
    fig.tight_layout()
    return save_png(fig, out)
