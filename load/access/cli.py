"""Backtest-access commands ``query``, ``asof``, ``export`` and ``grid``, and the options and output
helpers every read-only command shares.

Standalone click commands (``load/cli.py`` adds them to the ``load`` group) built on the
shared options of :mod:`schemas.cli`. Each parses its options, calls one library function
and prints; library errors become one line on stderr through
:func:`schemas.cli.run_command` (exit 2 for bad input, 1 otherwise). The report commands
(``status``, ``inspect``, ``verify``, ``coverage``) are in :mod:`load.report.cli`, which
uses the helpers here: this module holds the commands that hand candles out, that one the
commands that look at how the backfill went.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from schemas.cli import (
    F,
    KalshiCommand,
    SeriesOptions,
    command_body,
    db_option,
    event_option,
    period_option,
    series_options,
)
from schemas.errors import InputError

if TYPE_CHECKING:
    import polars as pl

    from load.access.export import ExportResult

FRAME_FORMATS = ("table", "csv", "json", "parquet")


# --- helpers every read-only command uses (load/report/cli.py too) ------------------------


def emit_text(text: str, out: str | None) -> None:
    """Print ``text``, or write it to ``out`` when given (every --out but parquet's)."""
    if out:
        Path(out).write_text(text)
    else:
        click.echo(text, nl=False)


def emit_frame(frame: pl.DataFrame, fmt: str, out: str | None) -> None:
    """Print or write ``frame``: table/csv/json to stdout (or --out), parquet to --out."""
    from load.access.output import frame_text, write_parquet

    if fmt == "parquet":
        write_parquet(frame, out)
    else:
        emit_text(frame_text(frame, fmt), out)


def format_options(choices: tuple[str, ...], default: str = "table") -> Callable[[F], F]:
    """``--format`` among ``choices`` and ``--out FILE``."""

    def deco(f: F) -> F:
        f = click.option("--out", default=None, help="Write to this file instead of stdout.")(f)
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(choices),
            default=default,
            show_default=True,
            help="Output format.",
        )(f)

    return deco


def parse_date(value: str | None, what: str) -> date | None:
    """``value`` (an option's YYYY-MM-DD text, or None) as a date; ``what`` names the option."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise InputError(f"{what} {value!r} is not a date (YYYY-MM-DD)") from e


def event_dates_options(required: bool) -> Callable[[F], F]:
    """``--from`` / ``--to``: the first and last event date (YYYY-MM-DD), as text."""

    def deco(f: F) -> F:
        help_to = "Last event date, YYYY-MM-DD."
        f = click.option("--to", "date_to", required=required, help=help_to)(f)
        return click.option(
            "--from", "date_from", required=required, help="First event date, YYYY-MM-DD."
        )(f)

    return deco


# --- query / asof / export ----------------------------------------------------------------


@click.command("query", cls=KalshiCommand)
@click.option("--market", required=True, help="Market ticker, e.g. KXHIGHNY-25NOV20-B50.5.")
@click.option(
    "--from", "start", required=True, help="ISO-8601 start (inclusive, UTC if no offset)."
)
@click.option(
    "--to",
    "end",
    required=True,
    help="ISO-8601 end (inclusive); a date without a time includes that whole day.",
)
@period_option
@format_options(FRAME_FORMATS)
@db_option
@command_body
def query_cmd(
    market: str,
    start: str,
    end: str,
    period: int,
    fmt: str,
    out: str | None,
    db_url: str,
) -> None:
    """Candles of one market whose period ends in [--from, --to]."""
    from load.access.output import read_only_engine
    from load.access.query import parse_time, query_candles

    lo, hi = parse_time(start, "--from"), parse_time(end, "--to", whole_day=True)
    with read_only_engine(db_url) as engine:
        frame = query_candles(engine, market, lo, hi, period)
    emit_frame(frame, fmt, out)


@click.command("asof", cls=KalshiCommand)
@event_option
@click.option("--at", "at", multiple=True, required=True, help="ISO-8601 time; repeatable.")
@click.option(
    "--lookback-minutes",
    type=click.IntRange(min=1),
    default=24 * 60,
    show_default=True,
    help="A market with no candle this long before --at gets empty quotes.",
)
@period_option
@format_options(FRAME_FORMATS)
@db_option
@command_body
def asof_cmd(
    event: str,
    at: tuple[str, ...],
    lookback_minutes: int,
    period: int,
    fmt: str,
    out: str | None,
    db_url: str,
) -> None:
    """Yes bid/ask of every market of an event at each --at (close of the last candle ending
    at or before it: no look-ahead)."""
    from load.access.output import read_only_engine
    from load.access.query import asof_snapshots, parse_time

    times = [parse_time(t, "--at") for t in at]
    with read_only_engine(db_url) as engine:
        frame = asof_snapshots(
            engine, event, times, period, lookback=timedelta(minutes=lookback_minutes)
        )
    emit_frame(frame, fmt, out)


@click.command("export", cls=KalshiCommand)
@series_options(required=True)
@event_dates_options(required=True)
@click.option("--out", "out_dir", required=True, help="Folder for series=/date= partitions.")
@period_option
@db_option
@command_body
def export_cmd(
    series: SeriesOptions,
    date_from: str,
    date_to: str,
    out_dir: str,
    period: int,
    db_url: str,
) -> None:
    """Parquet files partitioned by series and event date, one day at a time, and each
    series' markets.parquet (strikes, times, results)."""
    from load.access.export import export_series
    from load.access.output import read_only_engine
    from schemas.series import resolve_stored

    selection = series.selection()
    lo, hi = parse_date(date_from, "--from"), parse_date(date_to, "--to")
    assert lo is not None and hi is not None
    with read_only_engine(db_url) as engine:
        tickers = resolve_stored(engine, selection, required=True)
        done = export_series(engine, tickers, lo, hi, out_dir, period)
    _echo_written(done)


def _echo_written(done: ExportResult) -> None:
    """A line per Parquet file written (path, rows, events) and per markets file; the
    total on stderr. ``done`` is what ``export_series`` or ``write_grid`` returned."""
    for p in done.parts:
        click.echo(f"{p.path}\t{p.rows} rows\t{','.join(p.events)}")
    for path, rows in done.markets:
        click.echo(f"{path}\t{rows} markets")
    rows = sum(p.rows for p in done.parts)
    click.echo(f"{len(done.parts)} files, {rows} rows", err=True)


GRID_FORMATS = (*FRAME_FORMATS, "partitioned")


@click.command("grid", cls=KalshiCommand)
@click.option("--market", default=None, help="One market ticker.")
@click.option("--event", default=None, help="One event ticker: every market of it.")
@series_options(required=False)
@click.option(
    "--from",
    "date_from",
    default=None,
    help="--series: first event date (YYYY-MM-DD); --market/--event: ISO start time.",
)
@click.option(
    "--to",
    "date_to",
    default=None,
    help="--series: last event date; --market/--event: ISO end time (a date: that whole day).",
)
@period_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(GRID_FORMATS),
    default=None,
    help="Output format [default: partitioned with --series (--out DIR), else table].",
)
@click.option("--out", default=None, help="File to write (partitioned: a folder).")
@db_option
@command_body
def grid_cmd(
    market: str | None,
    event: str | None,
    series: SeriesOptions,
    date_from: str | None,
    date_to: str | None,
    period: int,
    fmt: str | None,
    out: str | None,
    db_url: str,
) -> None:
    """The book at every period of each market's life: yes bid/ask from the last candle
    ending at or before it (no look-ahead), its age, volume, open interest, trade close."""
    from load.access.book import book_grid, write_grid
    from load.access.output import check_out_dir, read_only_engine
    from load.access.query import parse_time
    from schemas.series import resolve_stored

    selection = series.selection()
    by_series = not selection.empty
    days: tuple[date | None, date | None] = (None, None)
    times: tuple[datetime | None, datetime | None] = (None, None)
    if sum(bool(x) for x in (market, event, by_series)) != 1:
        raise InputError("give exactly one of --market, --event or --series (or --category)")
    fmt = fmt or ("partitioned" if by_series else "table")
    if by_series:
        days = parse_date(date_from, "--from"), parse_date(date_to, "--to")
        if days[0] and days[1] and days[0] > days[1]:
            raise InputError(f"--from {days[0]} is after --to {days[1]}")
    else:
        times = (
            parse_time(date_from, "--from") if date_from else None,
            parse_time(date_to, "--to", whole_day=True) if date_to else None,
        )
    if fmt == "partitioned":
        if not out:
            raise InputError("--format partitioned needs --out DIR")
        check_out_dir(out)
    with read_only_engine(db_url) as engine:
        chosen = resolve_stored(engine, selection, required=False)
        if fmt == "partitioned":
            if not chosen:
                raise InputError("--format partitioned goes with --series (use parquet)")
            done = write_grid(engine, chosen, days[0], days[1], str(out), period)
            _echo_written(done)
            return
        frame = book_grid(
            engine,
            market=market,
            event=event,
            series=chosen or None,
            date_from=days[0],
            date_to=days[1],
            start=times[0],
            end=times[1],
            period=period,
        )
    emit_frame(frame, fmt, out)


ACCESS_COMMANDS: tuple[click.Command, ...] = (query_cmd, asof_cmd, export_cmd, grid_cmd)
"""Every command of this module (``load/cli.py`` registers each on the ``load`` group)."""
