"""Ticker validation: every ticker passes here before it reaches a path, a URL or SQL.

Kalshi tickers are upper-case letters, digits, dots and dashes (``KXHIGHNY-25NOV20-B50.5``).
Anything else (``../``, quotes, spaces, slashes) is refused with an :class:`InputError`, so
a hostile or mistyped ticker can never escape the archive folder or reach a query string.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from schemas.errors import InputError

_SERIES_RE = re.compile(r"^[A-Z0-9][A-Z0-9_]{0,31}$")
_TICKER_RE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,95}$")
_EVENT_DATE_RE = re.compile(r"-(\d{2})([A-Z]{3})(\d{2})(?:-|$)")
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}


def _check(kind: str, value: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value) or ".." in value:
        raise InputError(
            f"invalid {kind} {value!r}: expected upper-case letters, digits, '.', '-' "
            f"(like KXHIGHNY-25NOV20-B50.5)"
        )
    return value


def validate_series_ticker(value: str) -> str:
    """Return ``value`` if it is a well-formed series ticker, else raise InputError."""
    return _check("series ticker", value, _SERIES_RE)


def validate_event_ticker(value: str) -> str:
    """Return ``value`` if it is a well-formed event ticker, else raise InputError."""
    return _check("event ticker", value, _TICKER_RE)


def validate_market_ticker(value: str) -> str:
    """Return ``value`` if it is a well-formed market ticker, else raise InputError."""
    return _check("market ticker", value, _TICKER_RE)


def event_date_from_ticker(event_ticker: str) -> date | None:
    """The date an event ticker names (``KXHIGHNY-25NOV20`` → 2025-11-20), or None."""
    m = _EVENT_DATE_RE.search(event_ticker)
    if not m or m.group(2) not in _MONTHS:
        return None
    try:
        return datetime(2000 + int(m.group(1)), _MONTHS[m.group(2)], int(m.group(3))).date()  # noqa: DTZ001
    except ValueError:
        return None
