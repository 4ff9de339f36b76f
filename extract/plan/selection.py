"""Which windows a run extracts, and the dry run's plan: from the database, no request.

:func:`select_events` reads the selected events and their markets (with their stored
tier), :func:`plan_run` gives each its window as of now (:mod:`extract.plan.windows`), and
:func:`dry_run_lines` prints what the run would ask of each route
(:mod:`extract.plan.auto` chooses and counts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from extract.config import ExtractConfig, RouteChoice
from extract.plan.auto import (
    Evidence,
    RequestTally,
    WindowShape,
    choose_routes,
)
from extract.plan.caps import event_requests
from extract.plan.tiers import (
    Route,
    historical_requests,
    route_markets,
)
from extract.plan.windows import (
    EventTimes,
    MarketTimes,
    SkipReason,
    Window,
    plan_window,
)
from schemas.archive import (
    WindowKey,
)
from schemas.checkpoints import dt_to_ts
from schemas.db import translate_db_error
from schemas.errors import (
    InputError,
)
from schemas.tables import kalshi_event, kalshi_market

# --- the plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedWindow:
    """One event of the run with its window (or the reason it has none)."""

    key: WindowKey
    window: Window | SkipReason
    markets: tuple[MarketTimes, ...] = ()
    """The event's markets as stored (with settlement and tier): what routing reads."""


def load_event_times(engine: Engine, config: ExtractConfig) -> list[EventTimes]:
    """The selected events of the series, with their markets, from the database."""
    e, m = kalshi_event.c, kalshi_market.c
    stmt = select(e.event_ticker, e.trade_start_utc, e.trade_end_utc).where(
        e.series_ticker == config.series
    )
    if config.event is not None:
        stmt = stmt.where(e.event_ticker == config.event)
    if config.date_from is not None:
        stmt = stmt.where(e.event_date >= config.date_from)
    if config.date_to is not None:
        stmt = stmt.where(e.event_date <= config.date_to)
    try:
        with engine.connect() as conn:
            events = conn.execute(stmt.order_by(e.event_ticker)).all()
            mstmt = (
                select(
                    m.event_ticker,
                    m.market_ticker,
                    m.open_time_utc,
                    m.close_time_utc,
                    m.settlement_ts_utc,
                    m.is_historical,
                )
                .where(m.series_ticker == config.series)
                .order_by(m.market_ticker)
            )
            if config.event is not None:
                mstmt = mstmt.where(m.event_ticker == config.event)
            markets: dict[str, list[MarketTimes]] = {}
            for r in conn.execute(mstmt):
                markets.setdefault(r.event_ticker, []).append(
                    MarketTimes(
                        r.market_ticker,
                        None if r.open_time_utc is None else dt_to_ts(r.open_time_utc),
                        None if r.close_time_utc is None else dt_to_ts(r.close_time_utc),
                        None if r.settlement_ts_utc is None else dt_to_ts(r.settlement_ts_utc),
                        bool(r.is_historical),
                    )
                )
    except SQLAlchemyError as err:
        raise translate_db_error(err, config.db_url, "reading events") from None
    return [
        EventTimes(
            r.event_ticker,
            None if r.trade_start_utc is None else dt_to_ts(r.trade_start_utc),
            None if r.trade_end_utc is None else dt_to_ts(r.trade_end_utc),
            tuple(markets.get(r.event_ticker, ())),
        )
        for r in events
    ]


def plan_run(events: Sequence[EventTimes], config: ExtractConfig) -> list[PlannedWindow]:
    """Every selected event's window as of ``config.current_time()``; pure."""
    now_ts = int(config.current_time().timestamp())
    return [
        PlannedWindow(
            config.window_key(ev.event_ticker),
            plan_window(ev, config.window_policy, config.period, now_ts, config.final_grace_s),
            ev.markets,
        )
        for ev in events
    ]


def select_events(engine: Engine, config: ExtractConfig) -> list[EventTimes]:
    """The events to plan, or an InputError that says what to do."""
    events = load_event_times(engine, config)
    if events:
        return events
    if config.event is not None:
        raise InputError(
            f"event {config.event} is not in kalshi_event: "
            f"run `extract events --series {config.series}` first"
        )
    if config.date_from is not None or config.date_to is not None:
        raise InputError(
            f"no events of {config.series} between {config.date_from or '…'} "
            f"and {config.date_to or '…'} in kalshi_event"
        )
    raise InputError(
        f"no events for series {config.series} in the database: "
        f"run `extract events --series {config.series}` first"
    )


def planned_requests(p: PlannedWindow, period: int, cutoff_ts: int | None) -> tuple[int, int]:
    """(live, historical) requests a window should take, routing by ``cutoff_ts``; pure.

    Each route's own estimate (what its ``estimate`` returns): the event route's pages
    over the live markets (an upper bound whether its cap counts requested candidates or
    returned candles, see :func:`~extract.plan.caps.event_requests`), the historical
    chunks of each historical market (exact).
    """
    w = p.window
    if isinstance(w, SkipReason):
        return 0, 0
    routes = route_markets(p.markets, cutoff_ts)
    live = [
        m.market_ticker for m in w.markets if routes.get(m.market_ticker) is not Route.HISTORICAL
    ]
    hist = [m.market_ticker for m in w.markets if routes.get(m.market_ticker) is Route.HISTORICAL]
    n_live = event_requests(len(live), w.start_ts, w.end_ts, period)
    return n_live, historical_requests([(w.start_ts, w.end_ts)] * len(hist), period)


def dry_run_lines(
    plan: Sequence[PlannedWindow],
    config: ExtractConfig,
    cutoff_ts: int | None = None,
    *,
    evidence: Evidence | None = None,
) -> list[str]:
    """The plan as text: one line per event and the expected requests and time.

    Markets are routed by their stored tier (what ``extract events`` saw) and, when given,
    by ``cutoff_ts``; routes are priced by ``evidence`` (a ``check-api`` report's), the
    worst case where it is silent. The dry run itself makes no request.
    """
    lines: list[str] = []
    total_live = total_hist = 0
    tally, evidence = RequestTally(), evidence or Evidence()
    for p in plan:
        w = p.window
        if isinstance(w, SkipReason):
            lines.append(f"{p.key.event_ticker}: skip ({w.value})")
            continue
        shape = window_shape(p, cutoff_ts)
        chosen = choose_routes(shape, config.route, evidence, may_probe=False)
        tally.add(shape, chosen)
        per_route = chosen.requests or {}
        n_hist = per_route.get("historical", 0)
        n_live = chosen.total - n_hist
        total_live += n_live
        total_hist += n_hist
        tiers = f" ({n_live} live, {n_hist} historical)" if n_hist else ""
        via = "" if config.route is RouteChoice.EVENT else f" [{routes_text(per_route)}]"
        lines.append(
            f"{p.key.event_ticker}: {_iso(w.start_ts)} .. {_iso(w.end_ts)}"
            f"{'' if w.is_final else ' (open, not final)'}  {len(w.markets)} markets"
            f"  ~{n_live + n_hist} requests{tiers}{via}"
        )
    lines.extend(tally.lines(evidence))
    total = total_live + total_hist
    rps = config.api.rate.rps
    lines.append(
        f"plan: {len(plan)} events, ~{total} candle requests at {rps:g} req/s "
        f"≈ {total / rps:.1f}s ({config.window_policy.value}, period {config.period}; "
        f"{total_live} live, {total_hist} historical)"
    )
    return lines


def window_shape(p: PlannedWindow, cutoff_ts: int | None) -> WindowShape:
    """A planned window's markets by tier (stored flag, else ``cutoff_ts``) and its range."""
    w = p.window
    assert isinstance(w, Window)
    routes = route_markets(p.markets, cutoff_ts)
    hist = tuple(
        m.market_ticker for m in w.markets if routes.get(m.market_ticker) is Route.HISTORICAL
    )
    live = tuple(m.market_ticker for m in w.markets if m.market_ticker not in hist)
    return WindowShape(live, hist, w.start_ts, w.end_ts, p.key.period_interval)


def routes_text(requests: Mapping[str, float]) -> str:
    return ", ".join(f"{r} {n}" for r, n in requests.items() if n) or "none"


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%MZ")
