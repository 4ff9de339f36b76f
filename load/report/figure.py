"""What the two pictures (``coverage``, ``plot``) share: the ``[plot]`` extra, a bare
matplotlib Figure, and writing the PNG atomically.

matplotlib is imported inside these functions only: it costs a noticeable start-up time
that ``load run`` and the other commands registered beside the pictures should not pay.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.errors import ConfigError, MissingExtraError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def require_plot_extra(command: str) -> None:
    """Raise MissingExtraError (one line naming the ``pip install``) without matplotlib:
    the [plot] extra, which a plain ``pip install kalshi-candles`` does not pull in. The
    commands call it before any database work, so the user learns it first."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise MissingExtraError(command, "matplotlib", "plot") from e


def new_figure(width_in: float, height_in: float, command: str) -> Figure:
    """A bare Figure on the Agg canvas: no pyplot, so no global backend or figure registry."""
    require_plot_extra(command)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, out: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``out`` (temporary file, then rename); returns the path.

    ConfigError when ``out`` cannot be written; no partial file is ever left.
    """
    dest = Path(out)
    tmp = dest.with_name(f".tmp-{dest.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(tmp, format="png", bbox_inches="tight")
        os.replace(tmp, dest)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {dest}: {e.strerror or e}") from e
    return dest
