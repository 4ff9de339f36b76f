"""Logging for both command lines: levels, text or JSON lines, and ONE stderr console.

Log lines and the progress bar share :data:`CONSOLE` (stderr). On a terminal, rich draws
the bar and prints each log line above it, so a line never shares the bar's row; off a
terminal (CI, cron, a file) there is no bar and each line is plain text. Every timestamp
is UTC with its offset (``2025-11-20T14:03:07.120+00:00``): logs from several hosts sort
and compare without guessing their zone.

Levels (see :func:`resolve_levels`): our loggers (``extract``, ``load``, ``schemas``) at
INFO by default, DEBUG with ``-v``, WARNING with ``-q``; third-party loggers (aiohttp,
SQLAlchemy, asyncio...) stay at WARNING unless ``-vv``.

**Details.** A run over thousands of windows logs one line per window (candles per market,
markets present, missing minutes): :func:`log_detail`. Those lines go to the log file
(``--log-file``) and, with ``-v``, to stderr; stderr otherwise keeps the bar, a line per
finished series and the warnings, so a terminal stays readable. In the JSON format a
detail line also carries its values as ``fields``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

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
    log_file: str | None = None
    """``--log-file``: every line of our loggers (details included) is appended there, as
    JSON lines when its name ends in ``.jsonl`` or ``.json``, else as text."""

    def plus(self, verbose: int, quiet: bool, log_file: str | None = None) -> LogSettings:
        """These settings with a subcommand's own ``-v``/``-q`` (and ``--log-file``) added."""
        return replace(
            self,
            verbose=self.verbose + verbose,
            quiet=self.quiet or quiet,
            log_file=log_file or self.log_file,
        )


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


#: The ``extra`` key of a detail record (:func:`log_detail`): its values, for JSON lines.
DETAIL_FIELDS = "kalshi_detail"


def log_detail(logger: logging.Logger, message: str, *args: object, **fields: Any) -> None:
    """A per-window line (INFO): to the log file and, with ``-v``, to stderr; ``fields``
    travel with it into JSON lines (``"fields": {...}``)."""
    logger.info(message, *args, extra={DETAIL_FIELDS: fields})


def is_detail(record: logging.LogRecord) -> bool:
    """Whether ``record`` was logged by :func:`log_detail`."""
    return hasattr(record, DETAIL_FIELDS)


def _hide_details(record: logging.LogRecord) -> bool:
    """The stderr handler's filter without ``-v``: details stay in the log file."""
    return not is_detail(record)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``ts``, ``level``, ``logger``, ``message`` (and ``exc``,
    and a detail line's ``fields``)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, DETAIL_FIELDS, None)
        if fields:
            doc["fields"] = fields
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


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


def file_handler(path: str) -> logging.Handler:
    """The ``--log-file`` handler: appended to (a rerun adds to the same file), JSON lines
    for ``*.jsonl``/``*.json``, text otherwise; OSError when it cannot be opened."""
    target = Path(path)
    handler = logging.FileHandler(target, mode="a", encoding="utf-8")
    json_lines = target.suffix.lower() in (".jsonl", ".json")
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
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
    handler = make_handler(settings.fmt, CONSOLE.is_terminal)
    if settings.verbose < 1:
        handler.addFilter(_hide_details)
    handlers = [handler]
    if settings.log_file:  # first: an OSError leaves the logging as it was
        handlers.append(file_handler(settings.log_file))
    previous = [h for h in root.handlers if getattr(h, _OURS, False)]
    for old in previous:
        root.removeHandler(old)
    for h in handlers:
        setattr(h, _OURS, True)
        root.addHandler(h)
    root.setLevel(others)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(ours)
    bars = _BARS[0]
    _BARS[0] = settings.bar

    def restore() -> None:
        for h in [h for h in root.handlers if getattr(h, _OURS, False)]:
            root.removeHandler(h)
            if h not in previous:
                h.close()
        for h in previous:
            root.addHandler(h)
        for logger, level in saved:
            logger.setLevel(level)
        _BARS[0] = bars

    return restore
