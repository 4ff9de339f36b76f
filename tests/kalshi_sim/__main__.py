"""``python -m tests.kalshi_sim --port P --seed N ...``: serve until killed.

Prints the base URL on one line (flushed) once listening, so a Makefile or a test
can read it: ``http://127.0.0.1:PORT/trade-api/v2``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import typing
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

from .config import SWITCHES, FaultConfig, SimConfig
from .server import SimServer

_FAULT_FLAGS = (
    "p_500",
    "p_502",
    "p_503",
    "p_429",
    "p_reset",
    "p_slow",
    "p_truncated",
    "p_invalid_json",
    "p_wrong_event",
    "p_stuck_end",
    "p_bad_price",
    "p_number_value",
)


def _bool(s: str) -> bool:
    if s.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")
    return s.lower() in ("true", "1", "yes")


def _switch_flags(p: argparse.ArgumentParser) -> None:
    """One flag per open-point switch (``SWITCHES``), named after the field."""
    defaults = SimConfig(now=datetime(2026, 1, 1, tzinfo=UTC))
    for name in SWITCHES:
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        hint = typing.get_type_hints(SimConfig)[name]
        choices = typing.get_args(hint) or None
        kind: Callable[[str], object]
        kind = _bool if isinstance(default, bool) else type(default)
        if choices:
            kind = str
        p.add_argument(flag, type=kind, choices=choices, default=default, dest=name)


def _date(s: str) -> date:
    return date.fromisoformat(s)


def _datetime(s: str) -> datetime:
    dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.kalshi_sim", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--first-date", type=_date, help="YYYY-MM-DD (default now-119d)")
    p.add_argument("--last-date", type=_date, help="YYYY-MM-DD (default now+1d)")
    p.add_argument("--now", type=_datetime, help="simulated present, ISO-8601 (default: wall)")
    p.add_argument("--rps", type=float, default=None, help="rate limit; default unlimited")
    p.add_argument("--burst-seconds", type=float, default=2.0)
    p.add_argument("--candle-cap", type=int, default=5000)
    p.add_argument("--cutoff-days", type=float, default=90.0)
    p.add_argument("--markets-per-event", type=int, default=6)
    p.add_argument("--missing-minute-rate", type=float, default=0.05)
    p.add_argument("--no-trade-rate", type=float, default=0.6)
    p.add_argument("--null-book-rate", type=float, default=0.0)
    p.add_argument("--subcent-market-rate", type=float, default=0.25)
    p.add_argument("--legacy-fields", action="store_true")
    for flag in _FAULT_FLAGS:
        p.add_argument("--" + flag.replace("_", "-"), type=float, default=0.0, dest=flag)
    p.add_argument("--slow-seconds", type=float, default=5.0)
    p.add_argument("--force-429-every", type=int, default=None)
    p.add_argument("--market-candle-cap", type=int, default=5000)
    p.add_argument("--batch-candle-cap", type=int, default=10_000)
    _switch_flags(p)
    return p


def config_from_args(args: argparse.Namespace) -> SimConfig:
    faults = FaultConfig(
        slow_seconds=args.slow_seconds,
        force_429_every=args.force_429_every,
        **{flag: getattr(args, flag) for flag in _FAULT_FLAGS},
    )
    extra = {} if args.now is None else {"now": args.now}
    return SimConfig(
        seed=args.seed,
        first_date=args.first_date,
        last_date=args.last_date,
        rate_limit_rps=args.rps,
        burst_seconds=args.burst_seconds,
        candle_cap=args.candle_cap,
        historical_cutoff_days=args.cutoff_days,
        markets_per_event=args.markets_per_event,
        missing_minute_rate=args.missing_minute_rate,
        no_trade_rate=args.no_trade_rate,
        null_book_rate=args.null_book_rate,
        subcent_market_rate=args.subcent_market_rate,
        legacy_fields=args.legacy_fields,
        market_candle_cap=args.market_candle_cap,
        batch_candle_cap=args.batch_candle_cap,
        faults=faults,
        **{name: getattr(args, name) for name in SWITCHES},
        **extra,
    )


async def serve(config: SimConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with SimServer(config, host=host, port=port) as sim:
        print(sim.base_url, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    asyncio.run(serve(config, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
