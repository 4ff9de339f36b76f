"""``python -m load`` / ``kalshi-load``: click options build a frozen LoadConfig, nothing more.

Other command groups (query, status, export) attach themselves with
``cli.add_command(...)``: keep the group named ``cli`` and ``main()`` the entry point.
Each command imports its library in its body, so ``--version``, ``-h`` and every
command's ``-h`` start without Polars or SQLAlchemy (:mod:`schemas.cli`, "Start fast").
"""

from __future__ import annotations

import click

from load.access.cli import ACCESS_COMMANDS
from load.config import LoadConfig, StagingMethod
from load.errors import LoadFailedError
from load.report.cli import REPORT_COMMANDS
from schemas.cli import (
    SeriesOptions,
    archive_option,
    command_body,
    db_option,
    lease_options,
    series_options,
    summary_format_option,
    summary_json,
    tool_group,
)
from schemas.db_commands import db_group, init_db
from schemas.processes import default_worker_id


@tool_group("kalshi-load", "KALSHI_LOAD")
def cli() -> None:
    """Load the raw archive into the database (never calls the Kalshi API)."""


@cli.command("run")
@series_options(required=False)
@db_option
@archive_option
@click.option(
    "--batch-windows",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Windows per staged upsert and transaction (more is faster, uses more memory).",
)
@click.option(
    "--writers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="MySQL: batches written at once, each on its own connection (SQLite: 1).",
)
@click.option(
    "--staging",
    type=click.Choice(["load_data", "insert"]),
    default="load_data",
    show_default=True,
    help="MySQL: fill the staging table by LOAD DATA LOCAL INFILE or by multi-row INSERT.",
)
@click.option(
    "--follow",
    is_flag=True,
    help="Keep loading windows as extract completes them; stop once no extractor is alive "
    "and no complete window is left.",
)
@click.option(
    "--idle-exit",
    "idle_exit_s",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="With --follow: stop anyway after this many seconds without loading a window (0: never).",
)
@lease_options
@summary_format_option
@command_body
def run(
    series: SeriesOptions,
    db_url: str,
    archive_dir: str,
    batch_windows: int,
    writers: int,
    staging: StagingMethod,
    worker_id: str | None,
    lease_seconds: float,
    follow: bool,
    idle_exit_s: float,
    fmt: str,
) -> None:
    """Load every completely extracted window that is not loaded yet.

    Several loaders (on one host or several) can run at once on the same archive and
    database: each window is leased to one of them, the others skip it this run.
    """
    from load.run.loader import load_windows
    from load.run.progress import LoadProgress
    from schemas.db import make_engine
    from schemas.series import resolve_stored

    selection = series.selection()
    tickers: tuple[str, ...] = selection.tickers
    if selection.by_catalog:  # from kalshi_series: never the API
        engine = make_engine(db_url)
        try:
            tickers = resolve_stored(engine, selection, required=False)
        finally:
            engine.dispose()
    config = LoadConfig(
        db_url=db_url,
        archive_dir=archive_dir,
        series=tickers,
        batch_windows=batch_windows,
        writers=writers,
        staging_method=staging,
        worker_id=worker_id or default_worker_id(),
        lease_seconds=lease_seconds,
        follow=follow,
        idle_exit_s=idle_exit_s,
    )
    progress = LoadProgress()
    try:
        summary = load_windows(config, progress=progress)  # logs its summary line
    except LoadFailedError:
        if fmt == "json" and progress.summary is not None:
            click.echo(
                summary_json(progress.summary, ok=False, rows_per_s=progress.summary.rows_per_s)
            )
        raise
    finally:
        progress.close()
    if fmt == "json":
        click.echo(summary_json(summary, ok=True, rows_per_s=summary.rows_per_s))


for command in (*ACCESS_COMMANDS, *REPORT_COMMANDS, init_db, db_group):
    cli.add_command(command)


def main() -> None:
    """Console entry point (``kalshi-load``)."""
    cli()
