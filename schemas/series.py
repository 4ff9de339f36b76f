"""Which series a command works on: ``--series A,B`` (repeatable) or ``--category C``.

Every command that takes series takes them the same way (:func:`schemas.cli.series_options`)
and turns them into tickers through :func:`resolve_series`, the one resolution both
stages share. Where a category's series come from is the caller's: the extract commands
ask ``GET /series`` (and store the answer in ``kalshi_series``), the load commands read
``kalshi_series`` and never call the API (:func:`resolve_stored`). The rules are pure:
the catalog is a function handed in. SQLAlchemy is imported only by the function that
reads the table, so every command's ``-h`` stays fast (:mod:`schemas.cli`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas.errors import InputError
from schemas.tickers import validate_series_ticker

if TYPE_CHECKING:
    from sqlalchemy import Engine


@dataclass(frozen=True)
class SeriesSelection:
    """What the command line asked for: tickers, or a category (and tags), or nothing."""

    tickers: tuple[str, ...] = ()
    """``--series`` values, in the order given (each validated, none twice)."""
    category: str | None = None
    """``--category``: every series Kalshi lists under it (``Climate and Weather``)."""
    tags: tuple[str, ...] = ()
    """``--tags``: only series with at least one of these tags (with or without a category)."""

    @classmethod
    def parse(
        cls, series: Iterable[str] = (), category: str | None = None, tags: Iterable[str] = ()
    ) -> SeriesSelection:
        """From the options' raw values: each ``--series`` may hold several tickers
        separated by commas. InputError for a malformed ticker, a series listed twice,
        or ``--series`` together with ``--category``/``--tags``."""
        tickers = [t.strip() for value in series for t in value.split(",") if t.strip()]
        seen: set[str] = set()
        for ticker in tickers:
            validate_series_ticker(ticker)
            if ticker in seen:
                raise InputError(f"series {ticker} is listed twice in --series")
            seen.add(ticker)
        category = (category or "").strip() or None
        tag_list = tuple(t.strip() for value in tags for t in value.split(",") if t.strip())
        if tickers and (category is not None or tag_list):
            given = "--category" if category is not None else "--tags"
            raise InputError(f"give --series or {given}, not both")
        return cls(tuple(tickers), category, tag_list)

    @property
    def by_catalog(self) -> bool:
        """True when the series come from a category or tags, not from tickers."""
        return self.category is not None or bool(self.tags)

    @property
    def empty(self) -> bool:
        """Nothing asked: a command that needs series refuses, one that may take every
        series takes them all."""
        return not self.tickers and not self.by_catalog

    def describe(self) -> str:
        """``category 'Climate and Weather' with tags Rain``, for messages."""
        parts = []
        if self.category is not None:
            parts.append(f"category {self.category!r}")
        if self.tags:
            parts.append(f"tag{'s' if len(self.tags) > 1 else ''} {', '.join(self.tags)}")
        return " with ".join(parts) if parts else ", ".join(self.tickers)


#: Lists the tickers of a category (and tags): the API for extract, kalshi_series for load.
Catalog = Callable[[SeriesSelection], Sequence[str]]


def resolve_series(
    selection: SeriesSelection, catalog: Catalog, *, required: bool, where: str
) -> tuple[str, ...]:
    """The tickers of ``selection``: its own, or the catalog's for its category.

    ``required``: a command that needs at least one series refuses an empty selection
    (InputError); otherwise an empty selection resolves to no tickers, which the caller
    reads as every series. A category with no series is an InputError naming it and
    ``where`` the list came from (``GET /series`` or ``kalshi_series``).
    """
    if selection.empty:
        if required:
            raise InputError("give --series (e.g. --series KXHIGHNY,KXHIGHCHI) or --category")
        return ()
    if not selection.by_catalog:
        return selection.tickers
    tickers = tuple(catalog(selection))
    if not tickers:
        raise InputError(f"no series of {selection.describe()} in {where}")
    for ticker in tickers:
        validate_series_ticker(ticker)
    return tickers


def tags_of(value: Any) -> tuple[str, ...]:
    """A series' tags as stored (JSON text in ``kalshi_series.tags``) or served (a list)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return ()
    if not isinstance(value, list):
        return ()
    return tuple(str(t) for t in value)


def matches(category: str | None, tags: Sequence[str], selection: SeriesSelection) -> bool:
    """Whether a series of ``category`` and ``tags`` is one ``selection`` asks for: the
    same category (when asked) and any of the tags (when asked)."""
    if selection.category is not None and category != selection.category:
        return False
    return not selection.tags or bool(set(selection.tags) & set(tags))


def select_listed(
    listed: Iterable[Mapping[str, Any]], selection: SeriesSelection
) -> tuple[list[str], list[str]]:
    """(tickers ``selection`` asks for, tickers listed outside it): a ``GET /series``
    answer or ``kalshi_series`` rows (``ticker``/``series_ticker``, ``category``,
    ``tags``), kept in their order."""
    kept, outside = [], []
    for row in listed:
        ticker = str(row.get("series_ticker") or row.get("ticker") or "")
        if matches(row.get("category"), tags_of(row.get("tags")), selection):
            kept.append(ticker)
        else:
            outside.append(ticker)
    return kept, outside


# --- the load commands' catalog: kalshi_series, no API call ---------------------------------


def stored_series(engine: Engine, selection: SeriesSelection) -> list[str]:
    """The ``kalshi_series`` tickers ``selection`` asks for, in ticker order."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from schemas.db import translate_db_error
    from schemas.tables import kalshi_series

    t = kalshi_series.c
    stmt = select(t.series_ticker, t.category, t.tags).order_by(t.series_ticker)
    if selection.category is not None:
        stmt = stmt.where(t.category == selection.category)
    try:
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
    except SQLAlchemyError as e:
        url = engine.url.render_as_string(hide_password=False)
        raise translate_db_error(e, url, "reading kalshi_series") from e
    return select_listed(rows, selection)[0]


def resolve_stored(
    engine: Engine, selection: SeriesSelection, *, required: bool
) -> tuple[str, ...]:
    """:func:`resolve_series` from ``kalshi_series`` (the load commands: no API call)."""
    hint = " --category " + repr(selection.category) if selection.category else ""
    hint += "".join(f" --tags {t}" for t in selection.tags)
    return resolve_series(
        selection,
        lambda sel: stored_series(engine, sel),
        required=required,
        where=f"kalshi_series: run `kalshi-extract series{hint}` first",
    )
