"""What both command lines share: option groups, logging set-up and the error boundary.

Each stage's ``cli.py`` builds its typed config from these options; library code raises
:class:`KalshiBackfillError` subclasses and :func:`run_command` turns them into one clear
line on stderr and a non-zero exit (no traceback for problems the user can fix).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from schemas.checkpoints import DEFAULT_LEASE_SECONDS
from schemas.db import DEFAULT_DATABASE_URL
from schemas.errors import InputError, KalshiBackfillError

DEFAULT_ARCHIVE_DIR = "data/raw"
PERIODS = (1, 60, 1440)

F = TypeVar("F", bound=Callable[..., Any])


def db_option(f: F) -> F:
    """``--db`` / ``DATABASE_URL``."""
    return click.option(
        "--db",
        "db_url",
        envvar="DATABASE_URL",
        default=DEFAULT_DATABASE_URL,
        show_default=True,
        help="SQLAlchemy database URL (sqlite:///... or mysql+pymysql://user:pw@host/db).",
    )(f)


def archive_option(f: F) -> F:
    """``--archive`` / ``KALSHI_ARCHIVE_DIR``."""
    return click.option(
        "--archive",
        "archive_dir",
        envvar="KALSHI_ARCHIVE_DIR",
        default=DEFAULT_ARCHIVE_DIR,
        show_default=True,
        help="Root of the raw page archive: a folder, or an fsspec URL such as "
        "s3://bucket/prefix (credentials from the standard AWS_* variables).",
    )(f)


def verbosity_options(f: F) -> F:
    """``-v`` / ``-q``."""
    f = click.option("-v", "--verbose", count=True, help="More log lines (-vv: debug).")(f)
    return click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")(f)


def command_body(f: Callable[..., int | None]) -> Callable[..., None]:
    """``-v`` / ``-q``, then ``f`` as the command's body: logging set up, our errors
    turned into one line by :func:`run_command`, and ``f``'s return value the exit code.

    Put it right under the other options, on the function itself.
    """

    @functools.wraps(f)
    def command(*args: Any, verbose: int, quiet: bool, **kwargs: Any) -> None:
        setup_logging(verbose, quiet)
        run_command(lambda: f(*args, **kwargs))

    return verbosity_options(command)


def series_option(f: F) -> F:
    """``--series`` (required)."""
    return click.option("--series", required=True, help="Series ticker, e.g. KXHIGHNY.")(f)


def event_option(f: F) -> F:
    """``--event`` (required)."""
    return click.option("--event", required=True, help="Event ticker, e.g. KXHIGHNY-25NOV20.")(f)


def lease_options(f: F) -> F:
    """``--worker-id`` / ``KALSHI_WORKER_ID`` and ``--lease-seconds`` (window leases)."""
    f = click.option(
        "--lease-seconds",
        type=float,
        default=DEFAULT_LEASE_SECONDS,
        show_default=True,
        help="A dead worker's windows are taken over this long after its last renewal.",
    )(f)
    return click.option(
        "--worker-id",
        envvar="KALSHI_WORKER_ID",
        default=None,
        help="This process in window leases and status (default: hostname:pid).",
    )(f)


def period_option(f: F) -> F:
    """``--period`` in minutes; refuses anything the API would refuse, before any request."""

    def check(_ctx: click.Context, _param: click.Parameter, value: int) -> int:
        if value not in PERIODS:
            raise click.BadParameter(
                f"{value} is not a candle period the API serves: use 1, 60 or 1440"
            )
        return value

    return click.option(
        "--period",
        type=int,
        default=1,
        show_default=True,
        callback=check,
        help="Candle period in minutes (1, 60 or 1440).",
    )(f)


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Plain timestamped lines on stderr; secrets never reach a log (see redact helpers)."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose >= 2 else logging.INFO)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    # Third-party chatter stays at WARNING unless -vv.
    for name in ("aiohttp", "sqlalchemy", "asyncio"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= 3 else logging.WARNING)


def run_command(fn: Callable[[], int | None]) -> None:
    """Run a command body; our errors become one line and exit 1 (2 for bad input)."""
    try:
        code = fn()
    except InputError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KalshiBackfillError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted: rerun the same command to resume", err=True)
        sys.exit(130)
    sys.exit(code or 0)
