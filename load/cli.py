"""``python -m load`` / ``kalshi-load``: click options build a frozen LoadConfig, nothing more.

Other command groups (query, status, export) attach themselves with
``cli.add_command(...)``: keep the group named ``cli`` and ``main()`` the entry point.
"""

from __future__ import annotations

import click

from load.access_cli import (
    asof_cmd,
    coverage_cmd,
    export_cmd,
    inspect_cmd,
    query_cmd,
    status_cmd,
    verify_cmd,
)
from load.config import LoadConfig, StagingMethod
from load.loader import load_windows
from schemas.cli import (
    archive_option,
    db_option,
    run_command,
    setup_logging,
    verbosity_options,
)
from schemas.db import make_engine, redact_url
from schemas.tickers import validate_series_ticker
from schemas.workers import default_worker_id


@click.group()
def cli() -> None:
    """Load the raw archive into the database (never calls the Kalshi API)."""


@cli.command("run")
@click.option("--series", default=None, help="Only this series (default: every series).")
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
    "--staging",
    type=click.Choice(["load_data", "insert"]),
    default="load_data",
    show_default=True,
    help="MySQL: fill the staging table by LOAD DATA LOCAL INFILE or by multi-row INSERT.",
)
@click.option(
    "--worker-id",
    envvar="KALSHI_WORKER_ID",
    default=None,
    help="This process in window leases and status (default: hostname:pid).",
)
@click.option(
    "--lease-seconds",
    type=float,
    default=120.0,
    show_default=True,
    help="A dead loader's windows are taken over this long after its last renewal.",
)
@verbosity_options
def run(
    series: str | None,
    db_url: str,
    archive_dir: str,
    batch_windows: int,
    staging: StagingMethod,
    worker_id: str | None,
    lease_seconds: float,
    verbose: int,
    quiet: bool,
) -> None:
    """Load every completely extracted window that is not loaded yet.

    Several loaders (on one host or several) can run at once on the same archive and
    database: each window is leased to one of them, the others skip it this run.
    """
    setup_logging(verbose, quiet)

    def body() -> int:
        config = LoadConfig(
            db_url=db_url,
            archive_dir=archive_dir,
            series=validate_series_ticker(series) if series else None,
            batch_windows=batch_windows,
            staging_method=staging,
            worker_id=worker_id or default_worker_id(),
            lease_seconds=lease_seconds,
        )
        load_windows(config)  # logs its summary line; raises when a window failed
        return 0

    run_command(body)


@cli.command("init-db")
@db_option
@verbosity_options
def init_db(db_url: str, verbose: int, quiet: bool) -> None:
    """Create every table (harmless when they exist)."""
    setup_logging(verbose, quiet)

    def body() -> int:
        make_engine(db_url).dispose()
        click.echo(f"tables ready in {redact_url(db_url)}", err=True)
        return 0

    run_command(body)


cli.add_command(query_cmd)
cli.add_command(asof_cmd)
cli.add_command(export_cmd)
cli.add_command(status_cmd)
cli.add_command(inspect_cmd)
cli.add_command(verify_cmd)
cli.add_command(coverage_cmd)


def main() -> None:
    """Console entry point (``kalshi-load``)."""
    cli()
