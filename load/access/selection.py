"""Which series a read covers: one ticker, several, or all of them.

Every read of several series (``export``, ``grid``, ``status``, ``coverage``) takes its
series through :func:`series_tuple`, so a library caller may pass one ticker or a
sequence, and a command line's shared ``--series A,B`` option has one place to land.
Stored tickers of a series start with ``SERIES-`` (events and markets alike), which
:func:`ticker_prefixes` turns into range conditions on the tables' first key column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, or_

from schemas.errors import InputError
from schemas.tickers import validate_series_ticker


def series_tuple(series: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``series`` as a tuple of checked, distinct tickers in the order given (None: all).

    Raises InputError for a malformed ticker, an empty sequence or a ticker named twice.
    """
    if series is None:
        return None
    given = (series,) if isinstance(series, str) else tuple(series)
    if not given:
        raise InputError("give at least one series")
    seen: set[str] = set()
    for s in given:
        validate_series_ticker(s)
        if s in seen:
            raise InputError(f"series {s} is named twice")
        seen.add(s)
    return given


def ticker_prefixes(column: Any, series: Sequence[str] | None) -> ColumnElement[bool] | None:
    """``column`` starts with ``S-`` for one of ``series`` (None when every series is read).

    On a key's first column each prefix is a range scan, not a full one.
    """
    if series is None:
        return None
    return or_(*(column.startswith(f"{s}-", autoescape=True) for s in series))
