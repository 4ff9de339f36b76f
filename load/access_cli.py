"""Backtest-access commands: ``query``, ``asof``, ``export``, ``status``, ``inspect``,
``verify``, ``coverage``.

Standalone click commands (``load/cli.py`` adds them to the ``load`` group) built on the
shared options of :mod:`schemas.cli`. Each parses its options, calls one library function
and prints; library errors become one line on stderr through
:func:`schemas.cli.run_command` (exit 2 for bad input, 1 otherwise). ``verify`` exits 1
when the archive and the database differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click
import polars as pl
from sqlalchemy import Engine

from load.coverage import build_coverage, render_coverage, require_plot_extra
from load.export import export_series, write_parquet_atomic
from load.query import asof_snapshots, parse_time, query_candles
from load.report_inspect import WindowPages, inspect_event
from load.report_status import SeriesStatus, series_status, workers
from load.report_verify import VerifyReport, verify_event
from schemas.archive import open_archive
from schemas.cli import (
    F,
    archive_option,
    command_body,
    db_option,
    event_option,
    period_option,
    series_option,
    to_json,
)
from schemas.db import make_engine
from schemas.errors import InputError
from schemas.workers import WorkerRow

FRAME_FORMATS = ("table", "csv", "json", "parquet")


# --- shared helpers -----------------------------------------------------------------------


def frame_to_json(frame: pl.DataFrame) -> str:
    """A JSON array of row objects; Decimal columns as strings so no digit is lost."""
    decimals = [n for n, t in frame.schema.items() if isinstance(t, pl.Decimal)]
    rows = frame.with_columns(pl.col(decimals).cast(pl.String)).to_dicts()
    return to_json(rows)


def emit_frame(frame: pl.DataFrame, fmt: str, out: str | None) -> None:
    """Print or write ``frame``: table/csv/json to stdout (or --out), parquet to --out."""
    if fmt == "parquet":
        if not out:
            raise InputError("--format parquet needs --out FILE")
        write_parquet_atomic(frame, Path(out))
        click.echo(f"wrote {frame.height} rows to {out}", err=True)
        return
    if fmt == "csv":
        text = frame.write_csv()
    elif fmt == "json":
        text = frame_to_json(frame) + "\n"
    else:
        with pl.Config(
            tbl_rows=-1,
            tbl_cols=-1,
            tbl_width_chars=10_000,
            fmt_str_lengths=200,
            tbl_hide_dataframe_shape=True,
            tbl_hide_column_data_types=True,
        ):
            text = f"{frame}\n({frame.height} rows)\n"
    if out:
        Path(out).write_text(text)
    else:
        click.echo(text, nl=False)


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


def _date(value: str | None, what: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise InputError(f"{what} {value!r} is not a date (YYYY-MM-DD)") from e


@contextmanager
def _engine(db_url: str) -> Iterator[Engine]:
    """Every command here only reads: a database without our tables is refused (exit 2)."""
    engine = make_engine(db_url, schema="read")
    try:
        yield engine
    finally:
        engine.dispose()


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


@click.command("query")
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
    lo, hi = parse_time(start, "--from"), parse_time(end, "--to", whole_day=True)
    with _engine(db_url) as engine:
        frame = query_candles(engine, market, lo, hi, period)
    emit_frame(frame, fmt, out)


@click.command("asof")
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
    times = [parse_time(t, "--at") for t in at]
    with _engine(db_url) as engine:
        frame = asof_snapshots(
            engine, event, times, period, lookback=timedelta(minutes=lookback_minutes)
        )
    emit_frame(frame, fmt, out)


@click.command("export")
@series_option
@event_dates_options(required=True)
@click.option("--out", "out_dir", required=True, help="Folder for series=/date= partitions.")
@period_option
@db_option
@command_body
def export_cmd(
    series: str,
    date_from: str,
    date_to: str,
    out_dir: str,
    period: int,
    db_url: str,
) -> None:
    """Parquet files partitioned by series and event date, one day at a time."""
    lo, hi = _date(date_from, "--from"), _date(date_to, "--to")
    assert lo is not None and hi is not None
    with _engine(db_url) as engine:
        parts = export_series(engine, series, lo, hi, out_dir, period)
    for p in parts:
        click.echo(f"{p.path}\t{p.rows} rows\t{','.join(p.events)}")
    click.echo(f"{len(parts)} files, {sum(p.rows for p in parts)} rows", err=True)


# --- status / inspect / verify ------------------------------------------------------------


def format_status(statuses: list[SeriesStatus]) -> str:
    """The human status table, then failed windows and leases under it."""
    if not statuses:
        return "no windows, statistics or candles yet\n"
    states = list(statuses[0].windows)
    head = ["series", "period", *[s.lower() for s in states], "open", "rows", "missing%", "maint."]
    rows = [
        [
            s.series_ticker,
            f"{s.period_interval}m",
            *[str(s.windows.get(k, 0)) for k in states],
            str(sum(s.open_windows.values())),
            str(s.rows_stored),
            "-" if s.missing_pct is None else f"{s.missing_pct}%",
            str(s.missing_in_maintenance),
        ]
        for s in statuses
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    for s in statuses:
        if any(s.open_windows.values()):
            by = ", ".join(f"{n} {k.lower()}" for k, n in s.open_windows.items() if n)
            lines.append(
                f"OPEN {s.series_ticker} p{s.period_interval}: {by} "
                "(events not closed yet: the columns before 'open' count final windows only)"
            )
        for n in s.failed:
            lines.append(
                f"FAILED {n.event_ticker} p{n.period_interval} {n.window_policy}: {n.last_error}"
            )
        for n in s.leased:
            expires = n.lease_expires_utc.isoformat() if n.lease_expires_utc else "?"
            since = n.lease_claimed_utc.isoformat() if n.lease_claimed_utc else "?"
            lines.append(
                f"LEASED {n.event_ticker} p{n.period_interval} {n.window_policy} ({n.status}) "
                f"by {n.lease_owner} since {since} until {expires}"
            )
    return "\n".join(lines) + "\n"


def format_workers(rows: list[WorkerRow], now: datetime) -> str:
    """One line per registered extract/load process: live or gone, since when."""
    return "".join(
        f"WORKER {w.worker_id} {w.kind} {'live' if w.live(now) else 'gone'}: "
        f"started {w.started_at_utc.isoformat()}, last heartbeat {w.heartbeat_utc.isoformat()}\n"
        for w in rows
    )


@click.command("status")
@click.option("--series", default=None, help="Only this series.")
@format_options(("table", "json"))
@db_option
@command_body
def status_cmd(series: str | None, fmt: str, out: str | None, db_url: str) -> None:
    """Per series: windows by status, rows stored, missing minutes, failures, leases."""
    with _engine(db_url) as engine:
        statuses = series_status(engine, series)
        procs = workers(engine)
    text = (
        to_json([s.to_json() for s in statuses]) + "\n"
        if fmt == "json"
        else format_status(statuses) + format_workers(procs, datetime.now(UTC))
    )
    _write(text, out)


def _write(text: str, out: str | None) -> None:
    if out:
        Path(out).write_text(text)
    else:
        click.echo(text, nl=False)


def format_inspect(windows: list[WindowPages]) -> str:
    """One block per window, one line per page (and its body when asked)."""
    lines: list[str] = []
    for w in windows:
        m = w.manifest
        state = (
            f"complete, {m.window_start_ts}..{m.window_end_ts}, final={m.is_final}"
            if m
            else "INCOMPLETE (no manifest)"
        )
        lines.append(f"== {w.dir}  [{state}]  {len(w.pages)} pages")
        for p in w.pages:
            if p.error is not None:
                lines.append(f"  {p.file}: ERROR {p.error}")
                continue
            params = "&".join(f"{k}={v}" for k, v in p.params.items())
            counts = " ".join(f"{k}={v}" for k, v in p.candles.items())
            flag = "" if p.in_manifest else "  (not in manifest)"
            retrieved = p.retrieved_at_utc.isoformat() if p.retrieved_at_utc else "?"
            lines.append(
                f"  {p.file}{flag}\n    GET {p.path}?{params} -> {p.status} at {retrieved}"
                f"  adjusted_end_ts={p.adjusted_end_ts}\n"
                f"    candles: {sum(p.candles.values())} ({counts})"
            )
            if p.body is not None:
                lines.append(to_json(p.body))
    return "\n".join(lines) + "\n"


@click.command("inspect")
@event_option
@click.option("--start-ts", type=int, default=None, help="Only the page requested from this ts.")
@click.option("--body", "with_body", is_flag=True, help="Also print each page's raw body.")
@format_options(("table", "json"))
@archive_option
@command_body
def inspect_cmd(
    event: str,
    start_ts: int | None,
    with_body: bool,
    fmt: str,
    out: str | None,
    archive_dir: str,
) -> None:
    """The archived raw pages of an event: request, status, time, candles per market."""
    windows = inspect_event(open_archive(archive_dir), event, start_ts, with_body)
    text = (
        to_json([w.to_json() for w in windows]) + "\n" if fmt == "json" else format_inspect(windows)
    )
    _write(text, out)


def format_verify(report: VerifyReport, limit: int = 200) -> str:
    c = report.counts()
    lines = [
        f"{report.event_ticker}: {len(report.windows_checked)} complete windows, "
        f"{report.archive_rows} archived rows, {report.db_rows} stored rows",
        *[f"  incomplete (not compared): {d}" for d in report.windows_incomplete],
    ]
    for d in report.differences[:limit]:
        where = f"{d.market_ticker} {d.end_period_ts_utc.isoformat()} p{d.period_interval}"
        if d.kind == "differs":
            lines.append(f"  DIFFERS {where} {d.column}: archive={d.archive_value} db={d.db_value}")
        else:
            lines.append(f"  {d.kind.upper()} {where}")
    if len(report.differences) > limit:
        lines.append(f"  ... {len(report.differences) - limit} more (use --format json)")
    verdict = (
        "OK: archive and database agree"
        if report.ok
        else f"DIFFERENT: {c['missing']} missing, {c['extra']} extra, {c['differs']} values"
    )
    lines.append(verdict)
    return "\n".join(lines) + "\n"


@click.command("verify")
@event_option
@format_options(("table", "json"))
@db_option
@archive_option
@command_body
def verify_cmd(
    event: str,
    fmt: str,
    out: str | None,
    db_url: str,
    archive_dir: str,
) -> int:
    """Compare an event's archive with the database; exit 1 on any difference."""
    with _engine(db_url) as engine:
        report = verify_event(engine, open_archive(archive_dir), event)
    text = to_json(report.to_json()) + "\n" if fmt == "json" else format_verify(report)
    _write(text, out)
    return 0 if report.ok else 1


# --- coverage -----------------------------------------------------------------------------


@click.command("coverage")
@series_option
@event_dates_options(required=False)
@click.option("--out", required=True, help="PNG file to write.")
@period_option
@db_option
@command_body
def coverage_cmd(
    series: str,
    date_from: str | None,
    date_to: str | None,
    out: str,
    period: int,
    db_url: str,
) -> None:
    """A PNG of completeness: one row an event, holes and maintenance pauses coloured."""
    lo, hi = _date(date_from, "--from"), _date(date_to, "--to")
    require_plot_extra()
    with _engine(db_url) as engine:
        matrix = build_coverage(engine, series, lo, hi, period)
    path = render_coverage(matrix, out)
    click.echo(f"wrote {path} ({len(matrix.events)} events)", err=True)


ACCESS_COMMANDS: tuple[click.Command, ...] = (
    query_cmd,
    asof_cmd,
    export_cmd,
    status_cmd,
    inspect_cmd,
    verify_cmd,
    coverage_cmd,
)
"""Every command of this module (``load/cli.py`` registers each on the ``load`` group)."""
