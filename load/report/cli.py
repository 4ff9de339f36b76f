"""Report commands: ``status``, ``inspect``, ``verify``, ``coverage``, ``plot``, and their tables.

Standalone click commands (``load/cli.py`` adds them to the ``load`` group), one per
report module (:mod:`load.report.status`, :mod:`load.report.inspect`,
:mod:`load.report.verify`, :mod:`load.report.coverage`), each with the formatter that turns its
report into the human table. They use the options and output helpers of
:mod:`load.access.cli`; errors become one line on stderr the same way. ``verify`` exits 1
when the archive and the database differ.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from load.access.cli import (
    emit_text,
    event_dates_options,
    format_options,
    parse_date,
)
from schemas.cli import (
    KalshiCommand,
    SeriesOptions,
    archive_option,
    command_body,
    db_option,
    event_option,
    period_option,
    series_options,
    to_json,
)

if TYPE_CHECKING:
    from load.report.inspect import WindowPages
    from load.report.status import SeriesStatus
    from load.report.verify import VerifyReport
    from schemas.workers import WorkerRow


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


@click.command("status", cls=KalshiCommand)
@series_options(required=False)
@format_options(("table", "json"))
@db_option
@command_body
def status_cmd(series: SeriesOptions, fmt: str, out: str | None, db_url: str) -> None:
    """Per series: windows by status, rows stored, missing minutes, failures, leases."""
    from load.access.output import read_only_engine
    from load.report.status import series_status, workers
    from schemas.series import resolve_stored

    selection = series.selection()
    with read_only_engine(db_url) as engine:
        tickers = resolve_stored(engine, selection, required=False)
        statuses = series_status(engine, tickers or None)
        procs = workers(engine)
    text = (
        to_json([s.to_json() for s in statuses]) + "\n"
        if fmt == "json"
        else format_status(statuses) + format_workers(procs, datetime.now(UTC))
    )
    emit_text(text, out)


def format_inspect(windows: list[WindowPages]) -> str:
    """One line per window, one line per page (and its body when asked): the page's file,
    request, status, time and candles per market (named by what follows the event's
    ticker, ``B50.5=2280``)."""
    lines: list[str] = []
    for w in windows:
        m = w.manifest
        state = (
            f"complete, {m.window_start_ts}..{m.window_end_ts}, final={m.is_final}"
            if m
            else "INCOMPLETE (no manifest)"
        )
        lines.append(f"== {w.dir}  [{state}]  {len(w.pages)} pages")
        event = w.dir.split("/")[1] + "-" if w.dir.count("/") >= 1 else ""
        for p in w.pages:
            if p.error is not None:
                lines.append(f"  {p.file}: ERROR {p.error}")
                continue
            params = "&".join(f"{k}={v}" for k, v in p.params.items())
            counts = " ".join(f"{k.removeprefix(event)}={v}" for k, v in p.candles.items())
            flag = " (not in manifest)" if not p.in_manifest else ""
            retrieved = p.retrieved_at_utc.isoformat() if p.retrieved_at_utc else "?"
            lines.append(
                f"  {p.file}{flag}: GET {p.path}?{params} -> {p.status} at {retrieved}, "
                f"adjusted_end_ts={p.adjusted_end_ts}, {sum(p.candles.values())} candles "
                f"({counts})"
            )
            if p.body is not None:
                lines.append(to_json(p.body))
    return "\n".join(lines) + "\n"


@click.command("inspect", cls=KalshiCommand)
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
    from load.report.inspect import inspect_event
    from schemas.archive import open_archive

    windows = inspect_event(open_archive(archive_dir), event, start_ts, with_body)
    text = (
        to_json([w.to_json() for w in windows]) + "\n" if fmt == "json" else format_inspect(windows)
    )
    emit_text(text, out)


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


@click.command("verify", cls=KalshiCommand)
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
    from load.access.output import read_only_engine
    from load.report.verify import verify_event
    from schemas.archive import open_archive

    with read_only_engine(db_url) as engine:
        report = verify_event(engine, open_archive(archive_dir), event)
    text = to_json(report.to_json()) + "\n" if fmt == "json" else format_verify(report)
    emit_text(text, out)
    return 0 if report.ok else 1


# --- coverage -----------------------------------------------------------------------------


@click.command("coverage", cls=KalshiCommand)
@series_options(required=True)
@event_dates_options(required=False)
@click.option("--out", required=True, help="PNG file to write.")
@click.option(
    "--density/--presence",
    "density",
    default=None,
    help="Shade each cell by the share of market-minutes with a candle, or colour "
    "presence (all, some, none) [default: density once candles are sparse].",
)
@period_option
@db_option
@command_body
def coverage_cmd(
    series: SeriesOptions,
    date_from: str | None,
    date_to: str | None,
    out: str,
    density: bool | None,
    period: int,
    db_url: str,
) -> None:
    """A PNG of completeness: one row an event (a day or a week over long ranges),
    holes, sparse candles, never-backfilled windows and maintenance pauses coloured."""
    from load.access.output import read_only_engine
    from load.report.coverage import View, build_coverage
    from load.report.coverage_png import render_coverage
    from load.report.figure import require_plot_extra
    from schemas.series import resolve_stored

    selection = series.selection()
    lo, hi = parse_date(date_from, "--from"), parse_date(date_to, "--to")
    require_plot_extra("coverage")
    view: View | None = None if density is None else ("density" if density else "presence")
    with read_only_engine(db_url) as engine:
        tickers = resolve_stored(engine, selection, required=True)
        matrix = build_coverage(engine, tickers, lo, hi, period, view)
    path = render_coverage(matrix, out)
    k = matrix.kinds
    click.echo(
        f"wrote {path} ({k.events} events: {k.not_backfilled} not backfilled, "
        f"{k.empty} with no candle, {k.sparse} sparse; {len(matrix.rows)} rows, "
        f"{matrix.view} view)",
        err=True,
    )


# --- plot ---------------------------------------------------------------------------------


@click.command("plot", cls=KalshiCommand)
@click.option("--market", required=True, help="Market ticker, e.g. KXHIGHNY-25NOV20-B50.5.")
@click.option("--from", "start", default=None, help="ISO-8601 start (default: the market's open).")
@click.option(
    "--to",
    "end",
    default=None,
    help="ISO-8601 end; a date includes that whole day (default: close).",
)
@click.option("--out", required=True, help="PNG file to write.")
@period_option
@db_option
@command_body
def plot_cmd(
    market: str, start: str | None, end: str | None, out: str, period: int, db_url: str
) -> None:
    """A PNG of one market's book: yes bid/ask steps, trades, volume, periods without a
    candle, the maintenance pause, open, close and result."""
    from load.access.output import read_only_engine
    from load.access.query import parse_time
    from load.report.figure import require_plot_extra
    from load.report.plot import read_market_book, render_plot

    require_plot_extra("plot")
    lo = parse_time(start, "--from") if start else None
    hi = parse_time(end, "--to", whole_day=True) if end else None
    with read_only_engine(db_url) as engine:
        book = read_market_book(engine, market, lo, hi, period)
    path = render_plot(book, out)
    with_candle = int(book.grid["has_candle"].sum()) if book.grid.height else 0
    click.echo(f"wrote {path} ({book.grid.height} periods, {with_candle} with a candle)", err=True)


REPORT_COMMANDS: tuple[click.Command, ...] = (
    status_cmd,
    inspect_cmd,
    verify_cmd,
    coverage_cmd,
    plot_cmd,
)
"""Every command of this module (``load/cli.py`` registers each on the ``load`` group)."""
