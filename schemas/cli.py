"""What both command lines share: option groups, logging, env vars and the error boundary.

Each stage's ``cli.py`` builds its typed config from these options; library code raises
:class:`KalshiBackfillError` subclasses and :func:`run_command` turns them into one clear
line on stderr and a non-zero exit (no traceback for problems the user can fix).

Both tools' groups are :class:`KalshiGroup`: ``-h``, ``--version``, the logging flags
(``-v``, ``-q``, ``--log-level``, ``--log-format``) and an environment variable for
EVERY option, assigned by :func:`assign_envvars` when the tool starts, so an option added
anywhere gets its variable without extra code.

**Start fast.** A command module imports only click and the light ``schemas`` modules at
its top (:mod:`schemas.core`, :mod:`schemas.processes`, each stage's ``config``); the
library a command runs (aiohttp, SQLAlchemy, Polars) is imported in the command's body.
So ``--version``, ``-h`` and every command's ``-h`` answer in a fraction of the ~0.8 s
those libraries take to import, and every command's definition stays in plain sight for
``--help`` and the docs test (unlike a lazy group, whose commands would need their help
lines kept twice). ``tests/test_startup.py`` checks it in a child process.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import click
import orjson

from schemas import __version__
from schemas.core import DEFAULT_ARCHIVE_DIR, DEFAULT_DATABASE_URL, DEFAULT_LEASE_SECONDS, PERIODS
from schemas.errors import InputError, KalshiBackfillError
from schemas.logs import LOG_FORMATS, LOG_LEVELS, LogFormat, LogSettings, setup_logging
from schemas.series import SeriesSelection

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


_LOG_SETTINGS = "kalshi.log_settings"
"""``ctx.meta`` key of the group's :class:`LogSettings` (meta is shared by nested contexts)."""


def logging_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The group's ``-v``, ``-q``, ``--log-level``, ``--log-format``: logging is set up
    before any subcommand runs, and the settings kept for :func:`command_body`."""

    @functools.wraps(f)
    def group(
        *args: Any,
        verbose: int,
        quiet: bool,
        log_level: str | None,
        log_format: str,
        no_bar: bool,
        log_file: str | None,
        **kw: Any,
    ) -> Any:
        fmt: LogFormat = "json" if log_format == "json" else "text"
        settings = LogSettings(verbose, quiet, log_level, fmt, bar=not no_bar, log_file=log_file)
        ctx = click.get_current_context()
        ctx.meta[_LOG_SETTINGS] = settings
        ctx.call_on_close(_setup(settings))
        return f(*args, **kw)

    options = [
        click.option(
            "-v",
            "--verbose",
            count=True,
            envvar="KALSHI_VERBOSE",
            help="Debug lines of this tool (-v); of its libraries too (-vv).",
        ),
        click.option(
            "-q", "--quiet", is_flag=True, envvar="KALSHI_QUIET", help="Only warnings and errors."
        ),
        click.option(
            "--log-level",
            type=click.Choice(LOG_LEVELS, case_sensitive=False),
            default=None,
            envvar="KALSHI_LOG_LEVEL",
            help="Level of this tool's log lines (default INFO); -v and -q win over it.",
        ),
        click.option(
            "--log-format",
            type=click.Choice(LOG_FORMATS, case_sensitive=False),
            default="text",
            show_default=True,
            envvar="KALSHI_LOG_FORMAT",
            help="Log lines on stderr as text or as one JSON object a line.",
        ),
        click.option(
            "--no-bar",
            is_flag=True,
            envvar="KALSHI_NO_BAR",
            help="Progress as periodic log lines even on a terminal (when several tools "
            "share one, as in make backfill).",
        ),
        _log_file_option(),
    ]
    for option in reversed(options):
        group = option(group)
    return group


def _log_file_option() -> Callable[[F], F]:
    return click.option(
        "--log-file",
        envvar="KALSHI_LOG_FILE",
        default=None,
        help="Also append every log line there, the per-window ones included (candles per "
        "market, missing minutes), which the terminal leaves out without -v: JSON lines "
        "for a *.jsonl or *.json name, text otherwise.",
    )


def _setup(settings: LogSettings) -> Callable[[], None]:
    """:func:`setup_logging`, or one ``error:`` line (exit 2) for a log file it cannot open."""
    try:
        return setup_logging(settings)
    except OSError as e:
        click.echo(f"error: cannot write --log-file {settings.log_file}: {e.strerror}", err=True)
        sys.exit(2)


def command_body(f: Callable[..., int | None]) -> Callable[..., None]:
    """A subcommand's own ``-v`` / ``-q`` (added to the group's), then ``f`` as the
    command's body: logging set up, our errors turned into one line by
    :func:`run_command`, and ``f``'s return value the exit code.

    Put it right under the other options, on the function itself.
    """

    @functools.wraps(f)
    def command(*args: Any, verbose: int, quiet: bool, log_file: str | None, **kwargs: Any) -> None:
        ctx = click.get_current_context()
        group = ctx.meta.get(_LOG_SETTINGS)
        if group is None:  # run on its own, not under a tool's group
            ctx.call_on_close(_setup(LogSettings(verbose, quiet, log_file=log_file)))
        elif verbose or quiet or log_file:  # the group's restore puts back what was before
            _setup(group.plus(verbose, quiet, log_file))
        run_command(lambda: f(*args, **kwargs))

    command = _log_file_option()(command)
    command = click.option("-q", "--quiet", is_flag=True, help="Same as the group's -q.")(command)
    return click.option(
        "-v", "--verbose", count=True, help="Same as the group's -v (kalshi-... -v COMMAND)."
    )(command)


# --- environment variables --------------------------------------------------------------


def option_envvar(prefix: str, option: click.Option) -> str:
    """``PREFIX_LONG_NAME`` from the option's first long flag (``--max-retries``)."""
    longs = [o for o in option.opts if o.startswith("--")] or option.opts
    return f"{prefix}_{longs[0].lstrip('-').replace('-', '_').upper()}"


def assign_envvars(command: click.Command, prefix: str) -> None:
    """Give every option of ``command`` and its subcommands an environment variable and
    show it in ``--help``.

    An option that names its own variable keeps it (the shared ones: ``DATABASE_URL``,
    ``KALSHI_ARCHIVE_DIR``, ``KALSHI_API_BASE``...); the others get
    ``PREFIX_COMMAND_OPTION``, e.g. ``KALSHI_EXTRACT_CANDLES_SERIES``, so one
    command's variable never changes another command's behaviour. ``--help`` and
    ``--version`` have none.
    """
    for param in command.params:
        if isinstance(param, click.Option) and param.expose_value:
            if param.envvar is None:
                param.envvar = option_envvar(prefix, param)
            param.show_envvar = True
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            assign_envvars(sub, f"{prefix}_{name.replace('-', '_').upper()}")


#: The help flags of every command of both tools.
HELP_OPTION_NAMES = ("-h", "--help")


def _help_names(command: click.Command) -> list[str]:
    """``-h`` and ``--help``, less any a parameter of ``command`` already uses."""
    taken = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    return [n for n in HELP_OPTION_NAMES if n not in taken]


class KalshiCommand(click.Command):
    """A command whose help flags do not depend on the context that asks: Click builds a
    command's help option once, from the first context that asks (``_help_option``),
    and ``context_settings`` reach only contexts made by ``make_context``; a command
    first run on its own, or listed through a bare ``click.Context`` (as the docs test
    does), kept only ``--help`` for the rest of the process. Every command is one:
    ``cls=KalshiCommand``, or a Kalshi group's."""

    def get_help_option_names(self, ctx: click.Context) -> list[str]:
        return _help_names(self)


class KalshiSubgroup(click.Group):
    """A group below a tool (``kalshi-load db``): ``-h``, and commands that have it."""

    command_class = KalshiCommand

    def get_help_option_names(self, ctx: click.Context) -> list[str]:
        return _help_names(self)


KalshiSubgroup.group_class = KalshiSubgroup


class KalshiGroup(KalshiSubgroup):
    """The root group of a tool: ``-h``, and the env vars of every option (assigned when
    the tool starts, so commands added after the group was built have theirs too)."""

    def __init__(self, *args: Any, envvar_prefix: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.envvar_prefix = envvar_prefix

    def main(self, *args: Any, **kwargs: Any) -> Any:
        assign_envvars(self, self.envvar_prefix)
        return super().main(*args, **kwargs)


def tool_group(name: str, envvar_prefix: str) -> Callable[[Callable[..., Any]], KalshiGroup]:
    """``@tool_group("kalshi-extract", "KALSHI_EXTRACT")``: a root group with ``-h``,
    ``--version``, the logging flags and env vars for every option."""

    def deco(f: Callable[..., Any]) -> KalshiGroup:
        f = click.version_option(
            __version__, "--version", prog_name=name, message="%(prog)s %(version)s"
        )(f)
        return click.group(cls=KalshiGroup, envvar_prefix=envvar_prefix)(logging_options(f))

    return deco


# --- run summaries ----------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    """Decimals as their exact string (never a float); dates as ISO-8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def to_json(doc: Any) -> str:
    """Indented JSON with exact decimals (see :func:`_json_default`)."""
    return orjson.dumps(doc, default=_json_default, option=orjson.OPT_INDENT_2).decode()


def summary_json(summary: Any, **extra: Any) -> str:
    """A run summary dataclass (and ``extra`` fields) as one JSON object."""
    return to_json({**dataclasses.asdict(summary), **extra})


def summary_format_option(f: F) -> F:
    """``--format text|json`` of a run's summary on stdout (logs stay on stderr)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="The run summary on stdout as text, or as one JSON object.",
    )(f)


def series_option(f: F) -> F:
    """``--series`` (required): one series (``check-api``)."""
    return click.option("--series", required=True, help="Series ticker, e.g. KXHIGHNY.")(f)


@dataclasses.dataclass(frozen=True)
class SeriesOptions:
    """What :func:`series_options` read; :meth:`selection` checks it (in the command's
    body, so that bad input is one ``error:`` line like every other)."""

    series: tuple[str, ...]
    category: str | None
    tags: tuple[str, ...]

    def selection(self) -> SeriesSelection:
        return SeriesSelection.parse(self.series, self.category, self.tags)


def series_options(*, required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--series A,B`` (repeatable), ``--category``, ``--tags``: the one way every command
    takes its series, given to the command as one ``series: SeriesOptions``. ``required``:
    the command needs series (extract); else none means every series (load)."""
    every = "" if required else " (default: every series)"

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def command(*args: Any, **kwargs: Any) -> Any:
            options = SeriesOptions(
                tuple(kwargs.pop("series")), kwargs.pop("category"), tuple(kwargs.pop("tags"))
            )
            return f(*args, series=options, **kwargs)

        options = [
            click.option(
                "--series",
                multiple=True,
                help="Series tickers, comma-separated or repeated: --series KXHIGHNY,KXHIGHCHI"
                + every
                + ".",
            ),
            click.option(
                "--category",
                default=None,
                help='Every series of this Kalshi category, e.g. "Climate and Weather" (not '
                "with --series).",
            ),
            click.option(
                "--tags",
                multiple=True,
                help="Only series with one of these tags (comma-separated or repeated; "
                "with --category or alone).",
            ),
        ]
        for option in reversed(options):
            command = option(command)
        return command

    return deco


def event_option(f: F) -> F:
    """``--event`` (required)."""
    return click.option("--event", required=True, help="Event ticker, e.g. KXHIGHNY-25NOV20.")(f)


def lease_options(f: F) -> F:
    """``--worker-id`` / ``KALSHI_WORKER_ID`` and ``--lease-seconds`` (window leases)."""
    f = click.option(
        "--lease-seconds",
        envvar="KALSHI_LEASE_SECONDS",
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
