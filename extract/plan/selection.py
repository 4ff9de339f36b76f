"""Which windows a run extracts, and the dry run's plan: from the database, no request.

One run covers every selected series: :func:`select_events` reads their events and
markets (with their stored tier), series by series in the order asked, and names each
series that has nothing to run and why (no events stored, none in the date range, no
time zone for TRADE_WINDOW_ONLY); :func:`plan_run` gives each event its window as of now
(:mod:`extract.plan.windows`), and :func:`dry_run_lines` prints what the run would ask
of each route (:mod:`extract.plan.auto` chooses and counts), per event for one series,
per series for several, and in total.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from extract.config import ExtractConfig, RouteChoice, no_zone_hint
from extract.plan.auto import Cost, Evidence, WindowShape
from extract.plan.caps import event_requests
from extract.plan.runplan import RequestTally, RunPlan, cost_text, plan_routes
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
from schemas.core import WindowPolicy
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


@dataclass(frozen=True)
class Selection:
    """The run's events, series by series, and the series left out with the reason."""

    events: tuple[tuple[str, EventTimes], ...]
    """(series, event), in the order the series were asked, then by event ticker."""
    left_out: tuple[tuple[str, str], ...] = field(default=())
    """(series, why): named once in the plan and the summary, never silently dropped."""


def load_event_times(
    engine: Engine, config: ExtractConfig, series: Sequence[str]
) -> list[tuple[str, EventTimes]]:
    """The selected events of ``series``, with their markets, from the database."""
    e, m = kalshi_event.c, kalshi_market.c
    stmt = select(e.series_ticker, e.event_ticker, e.trade_start_utc, e.trade_end_utc).where(
        e.series_ticker.in_(series)
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
                .where(m.series_ticker.in_(series))
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
    order = {s: i for i, s in enumerate(series)}
    rows = sorted(events, key=lambda r: (order[r.series_ticker], r.event_ticker))
    return [
        (
            r.series_ticker,
            EventTimes(
                r.event_ticker,
                None if r.trade_start_utc is None else dt_to_ts(r.trade_start_utc),
                None if r.trade_end_utc is None else dt_to_ts(r.trade_end_utc),
                tuple(markets.get(r.event_ticker, ())),
            ),
        )
        for r in rows
    ]


def plan_run(
    events: Sequence[tuple[str, EventTimes]], config: ExtractConfig
) -> list[PlannedWindow]:
    """Every selected event's window as of ``config.current_time()``; pure."""
    now_ts = int(config.current_time().timestamp())
    return [
        PlannedWindow(
            config.window_key(ev.event_ticker, series),
            plan_window(ev, config.window_policy, config.period, now_ts, config.final_grace_s),
            ev.markets,
        )
        for series, ev in events
    ]


def _why_none(config: ExtractConfig, series: str) -> str:
    """Why ``series`` has no event to plan (what to do about it)."""
    if config.event is not None:
        return (
            f"event {config.event} is not in kalshi_event: "
            f"run `extract events --series {series}` first"
        )
    if config.date_from is not None or config.date_to is not None:
        return (
            f"no events of {series} between {config.date_from or '…'} "
            f"and {config.date_to or '…'} in kalshi_event"
        )
    return (
        f"no events for series {series} in the database: "
        f"run `extract events --series {series}` first"
    )


def select_events(engine: Engine, config: ExtractConfig) -> Selection:
    """The events to plan, by series; InputError when no series has any (saying what to do).

    Under TRADE_WINDOW_ONLY a series without a time zone (``--series-tz``, the shipped
    table) is left out and named: its trade windows cannot be known. A series with no
    event stored (or none in the range) is named too; the others run.
    """
    series = list(config.series)
    if config.event is not None:
        series = [s for s in series if config.event.startswith(s + "-")]
    left_out: list[tuple[str, str]] = []
    if config.window_policy is WindowPolicy.TRADE_WINDOW_ONLY:
        left_out = [(s, no_zone_hint(s)) for s in series if config.zone(s) is None]
        series = [s for s in series if config.zone(s) is not None]
    events = load_event_times(engine, config, series) if series else []
    found = {s for s, _ in events}
    left_out += [(s, _why_none(config, s)) for s in series if s not in found]
    if events:
        return Selection(tuple(events), tuple(left_out))
    if len(left_out) == 1:
        raise InputError(left_out[0][1])
    raise InputError("no series has events to extract: " + "; ".join(w for _, w in left_out))


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


@dataclass
class _SeriesPlan:
    """One series' part of the dry run."""

    events: int = 0
    skipped: int = 0
    live: Cost = 0
    historical: Cost = 0
    routes: dict[str, Cost] = field(default_factory=dict)


@dataclass(frozen=True)
class DryRun:
    """The dry run's lines: per event, per series, and the totals."""

    events: tuple[str, ...]
    series: tuple[str, ...]
    totals: tuple[str, ...]
    several: bool
    """More than one series: the command prints per-series lines, not per-event ones."""

    def lines(self) -> list[str]:
        """What the command prints: per-event lines for one series, per-series lines for
        several (the per-event ones then go to the log file), then the totals."""
        return [*(self.series if self.several else self.events), *self.totals]


def run_plan(
    plan: Sequence[PlannedWindow],
    config: ExtractConfig,
    evidence: Evidence,
    cutoff_ts: int | None = None,
) -> tuple[list[PlannedWindow], RunPlan]:
    """The windows to fetch (those with a window) and their one plan, across every series:
    routes and packed batch requests (:func:`extract.plan.runplan.plan_routes`); final
    windows are packed."""
    todo = [p for p in plan if isinstance(p.window, Window)]
    shapes = [window_shape(p, cutoff_ts) for p in todo]
    final = [isinstance(p.window, Window) and p.window.is_final for p in todo]
    return todo, plan_routes(shapes, final, config.route, evidence)


def dry_run(
    plan: Sequence[PlannedWindow],
    config: ExtractConfig,
    cutoff_ts: int | None = None,
    *,
    evidence: Evidence | None = None,
    left_out: Sequence[tuple[str, str]] = (),
) -> DryRun:
    """The plan as text: a line per event, a line per series and the expected requests and
    time in total.

    Markets are routed by their stored tier (what ``extract events`` saw) and, when given,
    by ``cutoff_ts``; routes are priced by ``evidence`` (a ``check-api`` report's), the
    worst case where it is silent, and the batch requests of final windows are packed
    across events and series as the run packs them. The dry run itself makes no request.
    """
    evidence = evidence or Evidence()
    todo, run = run_plan(plan, config, evidence, cutoff_ts)
    index = {p.key: i for i, p in enumerate(todo)}
    per_event: list[str] = []
    by_series: dict[str, _SeriesPlan] = {s: _SeriesPlan() for s in config.series}
    total_hist: Cost = 0
    for p in plan:
        w = p.window
        part = by_series.setdefault(p.key.series_ticker, _SeriesPlan())
        part.events += 1
        if isinstance(w, SkipReason):
            part.skipped += 1
            per_event.append(f"{p.key.event_ticker}: skip ({w.value})")
            continue
        i = index[p.key]
        chosen = run.routes[i]
        per_route = chosen.requests or {}
        n_hist = per_route.get("historical", 0)
        n_live = chosen.total - n_hist
        total_hist += n_hist
        part.live += n_live
        part.historical += n_hist
        for route, n in per_route.items():
            part.routes[route] = part.routes.get(route, 0) + n
        tiers = f" ({cost_text(n_live)} live, {n_hist} historical)" if n_hist else ""
        via = "" if config.route is RouteChoice.EVENT else f" [{routes_text(per_route)}]"
        per_event.append(
            f"{p.key.event_ticker}: {_iso(w.start_ts)} .. {_iso(w.end_ts)}"
            f"{'' if w.is_final else ' (open, not final)'}  {len(w.markets)} markets"
            f"  ~{cost_text(n_live + n_hist)} requests{tiers}{via}"
            f"{' (batch packed with other events)' if run.packed(i) else ''}"
        )
    why = dict(left_out)
    series_lines = []
    for series, part in by_series.items():
        if series in why:
            series_lines.append(f"{series}: left out: {why[series].removeprefix(series + ': ')}")
            continue
        via = "" if config.route is RouteChoice.EVENT else f" [{routes_text(part.routes)}]"
        skipped = f" ({part.skipped} without a window)" if part.skipped else ""
        series_lines.append(
            f"{series}: {part.events} events{skipped}, ~{cost_text(part.live + part.historical)} "
            f"requests ({cost_text(part.live)} live, {cost_text(part.historical)} historical)"
            f"{via}"
        )
    tally = RequestTally(run)
    total = tally.total
    rps = config.api.rate.rps
    many = f" of {len(by_series)} series" if len(config.series) > 1 else ""
    totals = [
        *tally.lines(evidence),
        f"plan: {len(plan)} events{many}, ~{total} candle requests at {rps:g} req/s "
        f"≈ {total / rps:.1f}s ({config.window_policy.value}, period {config.period}; "
        f"{cost_text(total - total_hist)} live, {cost_text(total_hist)} historical)",
    ]
    several = len(config.series) > 1
    return DryRun(tuple(per_event), tuple(series_lines), tuple(totals), several)


def dry_run_lines(
    plan: Sequence[PlannedWindow],
    config: ExtractConfig,
    cutoff_ts: int | None = None,
    *,
    evidence: Evidence | None = None,
) -> list[str]:
    """The dry run as the command prints it (:meth:`DryRun.lines`)."""
    return dry_run(plan, config, cutoff_ts, evidence=evidence).lines()


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


def routes_text(requests: Mapping[str, Cost | float]) -> str:
    return ", ".join(f"{r} {cost_text(n)}" for r, n in requests.items() if n) or "none"


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%MZ")
