"""``kalshi-extract`` / ``python -m extract``: click builds an ExtractConfig, the library runs.

Commands: ``init-db``, ``series`` (list a category's series into kalshi_series),
``events`` (sync kalshi_event/kalshi_market), ``candles`` (archive candlestick pages),
``check-api``. ``events`` and ``candles`` take their series the one way every command
does (:func:`schemas.cli.series_options`: ``--series A,B`` or ``--category``). Each
command imports its library in its body, so ``--version``, ``-h`` and every command's
``-h`` start without aiohttp, SQLAlchemy or Polars (:mod:`schemas.cli`, "Start fast").
Every library error becomes one line on stderr via :func:`schemas.cli.run_command`
(exit 2 for bad input, 1 otherwise); a run in which some windows FAILED prints its
summary and exits 1.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from extract.config import (
    DEFAULT_API_BASE,
    DEFAULT_FINAL_GRACE_MINUTES,
    TIERS,
    ApiConfig,
    AsOfPolicy,
    Credentials,
    DayOffset,
    ExtractConfig,
    RouteChoice,
    choose_rate,
)
from schemas.cli import (
    F,
    SeriesOptions,
    archive_option,
    command_body,
    db_option,
    lease_options,
    period_option,
    series_option,
    series_options,
    summary_format_option,
    summary_json,
    tool_group,
)
from schemas.core import WindowPolicy
from schemas.db_commands import init_db
from schemas.errors import ConfigError
from schemas.processes import default_worker_id


@dataclass(frozen=True)
class ApiOptions:
    """What :func:`api_options` read from the command line; :meth:`config` builds the rest."""

    api_base: str
    rps: float | None
    tier: str | None
    timeout: float
    max_retries: int
    backoff_base: float

    def config(self) -> ApiConfig:
        """The ApiConfig, with the KALSHI_API_KEY_ID/KALSHI_PRIVATE_KEY_PATH environment."""
        key_id = os.environ.get("KALSHI_API_KEY_ID") or None
        key_path = os.environ.get("KALSHI_PRIVATE_KEY_PATH") or None
        if bool(key_id) != bool(key_path):
            raise ConfigError("set both KALSHI_API_KEY_ID and KALSHI_PRIVATE_KEY_PATH, or neither")
        credentials = Credentials(key_id, Path(key_path)) if key_id and key_path else None
        return ApiConfig(
            base_url=self.api_base,
            rate=choose_rate(self.rps, self.tier, signed=credentials is not None),
            timeout_s=self.timeout,
            max_retries=self.max_retries,
            backoff_base_s=self.backoff_base,
            backoff_max_s=max(30.0, self.backoff_base),
            credentials=credentials,
        )


def api_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--api-base``, rate (``--rps``/``--tier``), ``--timeout``, ``--max-retries``, given
    to the command as one ``api: ApiOptions``."""

    @functools.wraps(f)
    def command(*args: Any, **kwargs: Any) -> Any:
        names = ("api_base", "rps", "tier", "timeout", "max_retries", "backoff_base")
        options = {name: kwargs.pop(name) for name in names}
        return f(*args, api=ApiOptions(**options), **kwargs)

    options = [
        click.option(
            "--api-base",
            envvar="KALSHI_API_BASE",
            default=DEFAULT_API_BASE,
            show_default=True,
            help="Kalshi API base URL (up to /trade-api/v2).",
        ),
        click.option(
            "--rps",
            envvar="KALSHI_RPS",
            type=float,
            default=None,
            help="Requests per second of the API key, split among live extractors "
            "(overrides --tier).",
        ),
        click.option(
            "--tier",
            envvar="KALSHI_TIER",
            type=click.Choice(list(TIERS), case_sensitive=False),
            default=None,
            help="Kalshi API tier of the key to pace reads by "
            "(default: 5 req/s unsigned, basic signed).",
        ),
        click.option(
            "--timeout",
            envvar="KALSHI_TIMEOUT",
            type=float,
            default=30.0,
            show_default=True,
            help="Seconds per request.",
        ),
        click.option(
            "--max-retries",
            envvar="KALSHI_MAX_RETRIES",
            type=int,
            default=6,
            show_default=True,
            help="Retries of a request after a 429, 5xx, timeout or bad body.",
        ),
        click.option(
            "--backoff-base",
            envvar="KALSHI_BACKOFF_BASE",
            type=float,
            default=0.5,
            show_default=True,
            hidden=True,
            help="First backoff ceiling in seconds (doubles per retry, full jitter).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def zone_options(f: F) -> F:
    """``--series-tz SERIES=ZONE`` (repeatable) and ``--series-tz-file``: zones over the
    shipped table, given to the command as ``series_tz`` and ``series_tz_file``; read by
    :func:`zones` in the command's body. Shared variables, so that ``events`` and
    ``candles`` (and ``make backfill``) see the same zones."""
    f = click.option(
        "--series-tz-file",
        envvar="KALSHI_SERIES_TZ_FILE",
        default=None,
        help='A file of SERIES = "Zone/Name" lines (TOML, the format of the shipped '
        "table extract/series_zones.toml); --series-tz wins over it.",
    )(f)
    return click.option(
        "--series-tz",
        envvar="KALSHI_SERIES_TZ",
        multiple=True,
        help="SERIES=ZONE: the IANA time zone of a series outside the shipped table, e.g. "
        "KXHIGHTHNL=Pacific/Honolulu (repeatable, or comma-separated). Needed only for "
        "TRADE_WINDOW_ONLY and the event dates of tickers without a date.",
    )(f)


def zones(pairs: tuple[str, ...], path: str | None) -> dict[str, str]:
    """The user's zones: the file's, then ``--series-tz`` over them (InputError if bad)."""
    from extract.config import parse_zone_pairs, zones_file

    return {**(zones_file(path) if path else {}), **parse_zone_pairs(pairs)}


def as_of_options(f: F) -> F:
    """``--trade-start``, ``--trade-end``."""
    f = click.option(
        "--trade-end",
        default="0d16:00",
        show_default=True,
        help="As-of trade window end: days from the event date and local time.",
    )(f)
    return click.option(
        "--trade-start",
        default="-1d10:00",
        show_default=True,
        help="As-of trade window start: days from the event date and local time.",
    )(f)


@tool_group("kalshi-extract", "KALSHI_EXTRACT")
def main() -> None:
    """Extract Kalshi weather events and 1-minute candlesticks into the raw archive."""


main.add_command(init_db)


@main.command("series")
@click.option(
    "--category",
    default=None,
    help='The Kalshi category to list, e.g. "Climate and Weather" (default: every series).',
)
@click.option(
    "--tags",
    multiple=True,
    help="Only series with one of these tags (comma-separated or repeated).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A table, or one JSON object a series in a list.",
)
@db_option
@archive_option
@api_options
@command_body
def series_cmd(
    category: str | None, tags: tuple[str, ...], fmt: str, db_url: str, archive_dir: str,
    api: ApiOptions,
) -> None:  # fmt: skip
    """List a category's series (GET /series) and store them in kalshi_series.

    The answer is archived under _series/ in the archive. Then --category works in every
    command: extract events/candles ask the API again, the load commands read
    kalshi_series.
    """
    import asyncio  # the event loop only for a command that talks HTTP (start-up)

    from extract.events.series import format_series, list_and_store

    listing = asyncio.run(list_and_store(api.config(), db_url, archive_dir, category, tags))
    click.echo(format_series(listing, fmt), nl=False)


@main.command()
@series_options(required=True)
@db_option
@archive_option
@api_options
@as_of_options
@zone_options
@command_body
def events(
    series: SeriesOptions,
    db_url: str,
    archive_dir: str,
    api: ApiOptions,
    trade_start: str,
    trade_end: str,
    series_tz: tuple[str, ...],
    series_tz_file: str | None,
) -> int:
    """Sync the series' events and markets into kalshi_event and kalshi_market.

    Series by series; one that fails (unknown to the server, no events) is named and the
    others go on (exit 1 once all are done).
    """
    from extract.events.sync import sync_events

    config = ExtractConfig(
        series=series.series,
        category=series.category,
        tags=series.tags,
        db_url=db_url,
        archive_dir=archive_dir,
        api=api.config(),
        as_of=AsOfPolicy(DayOffset.parse(trade_start), DayOffset.parse(trade_end)),
        series_tz=zones(series_tz, series_tz_file),
    )
    import asyncio

    summary = asyncio.run(sync_events(config))
    for line in summary.lines():
        click.echo(line)
    if not summary.ok:
        failed = ", ".join(s for s, _ in summary.failed)
        click.echo(f"error: {len(summary.failed)} series not synced: {failed}", err=True)
        return 1
    return 0


@main.command()
@series_options(required=True)
@click.option("--event", default=None, help="Only this event ticker.")
@click.option(
    "--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First event date."
)
@click.option(
    "--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last event date."
)
@click.option(
    "--window-policy",
    type=click.Choice([p.value for p in WindowPolicy], case_sensitive=False),
    default=WindowPolicy.FULL_MARKET_WINDOW.value,
    show_default=True,
    help="Market open..close, or the as-of trade window only (needs the series' time zone).",
)
@click.option(
    "--route",
    type=click.Choice([r.value for r in RouteChoice], case_sensitive=False),
    default=RouteChoice.AUTO.value,
    show_default=True,
    help="Route of the live markets: the event route, the batch route (100 tickers, "
    "10,000 requested candles a request), or per window the one with the fewest "
    "requests by what the server has shown.",
)
@period_option
@click.option(
    "--concurrency", type=int, default=4, show_default=True, help="Event windows at once."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan and expected requests; fetch nothing (--category asks GET /series).",
)
@click.option(
    "--final-grace",
    "final_grace",
    type=click.IntRange(min=0),
    default=DEFAULT_FINAL_GRACE_MINUTES,
    show_default=True,
    help="Minutes after its markets close before a window is final: until then its "
    "last pages are fetched again by the next run (candles published late).",
)
@db_option
@archive_option
@api_options
@zone_options
@lease_options
@click.option(
    "--no-shared-budget",
    is_flag=True,
    help="--rps/--tier is this process's own rate, not the key's budget split "
    "among the live extractors.",
)
@summary_format_option
@command_body
def candles(
    series: SeriesOptions,
    event: str | None,
    date_from: datetime | None,
    date_to: datetime | None,
    window_policy: str,
    route: str,
    period: int,
    concurrency: int,
    dry_run: bool,
    final_grace: int,
    db_url: str,
    archive_dir: str,
    api: ApiOptions,
    series_tz: tuple[str, ...],
    series_tz_file: str | None,
    worker_id: str | None,
    lease_seconds: float,
    no_shared_budget: bool,
    fmt: str,
) -> int:
    """Archive the candlestick pages of the series' event windows.

    One run for every series asked: one plan, one rate budget, one progress bar, one
    summary with a line per series. Several processes (on one host or several sharing
    the database and the archive) can run this at once: each window is leased to one of
    them, and --rps/--tier is the API key's budget, split evenly among the live
    extractors.
    """
    from extract.run.candles import run_candles

    config = ExtractConfig(
        series=series.series,
        category=series.category,
        tags=series.tags,
        event=event,
        date_from=date_from.date() if date_from else None,
        date_to=date_to.date() if date_to else None,
        window_policy=WindowPolicy(window_policy.upper()),
        route=RouteChoice(route.lower()),
        period=period,
        concurrency=concurrency,
        dry_run=dry_run,
        final_grace_minutes=final_grace,
        db_url=db_url,
        archive_dir=archive_dir,
        api=api.config(),
        series_tz=zones(series_tz, series_tz_file),
        worker_id=worker_id or default_worker_id(),
        lease_seconds=lease_seconds,
        shared_budget=not no_shared_budget,
    )
    import asyncio

    summary = asyncio.run(run_candles(config))
    if fmt == "json":
        click.echo(summary_json(summary, ok=summary.ok, dry_run=dry_run))
    else:
        for line in summary.plan or summary.lines():
            click.echo(line)
    if not summary.ok:
        click.echo(
            f"error: {summary.failed} event windows FAILED (see above); "
            "rerun the same command to retry them",
            err=True,
        )
        return 1
    return 0


@main.command("check-api")
@series_option
@click.option(
    "--event",
    default=None,
    help="Probe this event (default: the recent closed event with the most candles).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="The report as a table, or as one JSON object.",
)
@db_option
@archive_option
@api_options
@command_body
def check_api(
    series: str, event: str | None, fmt: str, db_url: str, archive_dir: str, api: ApiOptions
) -> int:
    """Check how the server answers each point the spec leaves open (at most 20 requests).

    Run it before a first backfill. Exit 0 when the extractor handles everything
    observed (what could not be observed is a warning), 1 when it does not.
    """
    from extract.check.report import report_bytes
    from extract.check.runner import CheckApiConfig, run_check_api

    config = CheckApiConfig(
        series=series, event=event, api=api.config(), archive_dir=archive_dir, db_url=db_url
    )
    import asyncio

    report = asyncio.run(run_check_api(config))
    if fmt == "json":
        click.echo(report_bytes(report).decode())
    else:
        for line in report.lines():
            click.echo(line)
    return report.exit_code
