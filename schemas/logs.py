"""Logging for both command lines: levels, text or JSON lines, and ONE stderr console.

Log lines and the progress bar share :data:`CONSOLE` (stderr). On a terminal, rich draws
the bar and prints each log line above it, so a line never shares the bar's row; off a
terminal (CI, cron, a file) there is no bar and each line is plain text. Every timestamp
is UTC with its offset (``2025-11-20T14:03:07.120+00:00``): logs from several hosts sort
and compare without guessing their zone.

Levels (see :func:`resolve_levels`): our loggers (``extract``, ``load``, ``schemas``) at
INFO by default, DEBUG with ``-v``, WARNING with ``-q``; third-party loggers (aiohttp,
SQLAlchemy, asyncio...) stay at WARNING unless ``-vv``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

import orjson
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
OUR_LOGGERS = ("extract", "load", "schemas")
"""Top-level loggers of this project; ``-v`` lowers these only."""

CONSOLE = Console(stderr=True)
"""The one stderr console: the progress bar and the log lines both go through it."""


@dataclass(frozen=True)
class LogSettings:
    """What the command line asked for (group and subcommand flags added up)."""

    verbose: int = 0
    quiet: bool = False
    level: str | None = None
    """``--log-level`` / ``KALSHI_LOG_LEVEL``; ``-v``/``-q`` win over it when given."""
    fmt: LogFormat = "text"
    bar: bool = True
    """Progress as a bar on a terminal; False (``--no-bar``): as log lines everywhere."""

    def plus(self, verbose: int, quiet: bool) -> LogSettings:
        """These settings with a subcommand's own ``-v``/``-q`` added."""
        return replace(self, verbose=self.verbose + verbose, quiet=self.quiet or quiet)


def resolve_levels(settings: LogSettings) -> tuple[int, int]:
    """(level of our loggers, level of everyone else's)."""
    if settings.quiet:
        ours = logging.WARNING
    elif settings.verbose >= 1:
        ours = logging.DEBUG
    elif settings.level:
        ours = logging.getLevelNamesMapping()[settings.level.upper()]
    else:
        ours = logging.INFO
    others = logging.DEBUG if settings.verbose >= 2 and not settings.quiet else logging.WARNING
    return ours, others


def utc_timestamp(created: float) -> str:
    """``record.created`` as ISO-8601 UTC with milliseconds and the +00:00 offset."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """``2025-11-20T14:03:07.120+00:00 INFO extract.run.candles: message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_timestamp(record.created)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``ts``, ``level``, ``logger``, ``message`` (and ``exc``)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


class ConsoleLineHandler(logging.Handler):
    """Writes formatted lines through :data:`CONSOLE`, verbatim (no markup, no wrapping),
    so that JSON lines on a terminal also land above the progress bar, never on it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            CONSOLE.print(Text(line), soft_wrap=True, markup=False, highlight=False)
        except Exception:
            self.handleError(record)


def _rich_time(local: datetime) -> Text:
    """RichHandler passes a naive local time; show it in UTC with the offset."""
    return Text(local.astimezone(UTC).isoformat(timespec="seconds"))


def make_handler(fmt: LogFormat, terminal: bool) -> logging.Handler:
    """The handler for ``fmt``: through the shared console on a terminal, plain otherwise."""
    handler: logging.Handler
    if terminal and fmt == "text":
        handler = RichHandler(
            console=CONSOLE,
            show_path=False,
            log_time_format=_rich_time,
            omit_repeated_times=False,
            markup=False,
        )
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        return handler
    handler = ConsoleLineHandler() if terminal else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return handler


_OURS = "_kalshi_handler"
_BARS = [True]
"""Whether progress may draw a bar (``--no-bar`` clears it); see :func:`bars_allowed`."""


def bars_allowed() -> bool:
    """False after ``--no-bar``: several tools share one terminal (``make backfill``) and
    their bars would overwrite each other, while their log lines interleave cleanly."""
    return _BARS[0]


def setup_logging(settings: LogSettings | None = None) -> Callable[[], None]:
    """Install our one stderr handler on the root logger and set the levels.

    Calling it again replaces the handler it installed before (and only that one: a test
    harness's capture handler stays). Returns the function that puts the handlers and
    levels back as they were before this call: the CLI calls it when the command ends, so
    a command run in-process (CliRunner, a notebook) leaves no level behind.
    """
    settings = settings or LogSettings()
    ours, others = resolve_levels(settings)
    root = logging.getLogger()
    loggers = [root, *(logging.getLogger(name) for name in OUR_LOGGERS)]
    saved = [(logger, logger.level) for logger in loggers]
    previous = [h for h in root.handlers if getattr(h, _OURS, False)]
    for old in previous:
        root.removeHandler(old)
    handler = make_handler(settings.fmt, CONSOLE.is_terminal)
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(others)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(ours)
    bars = _BARS[0]
    _BARS[0] = settings.bar

    def restore() -> None:
        for h in [h for h in root.handlers if getattr(h, _OURS, False)]:
            root.removeHandler(h)
        for h in previous:
            root.addHandler(h)
        for logger, level in saved:
            logger.setLevel(level)
        _BARS[0] = bars

    return restore
