"""``check-api``: what the server answers to each point the spec leaves open, in at most
20 requests, before a first backfill.

The probes (ranges in :mod:`extract.check.rules`, which also reads the answers):

1. ``GET /historical/cutoff`` → ``historical_cutoff``;
2. ``GET /events?series_ticker=S&with_nested_markets=true`` → the events able to answer
   (all markets closed; :func:`~extract.check.probe.closed_events`) and, with 4., how
   an all-historical event is nested (``nested_markets_of_historical_event``);
3. one hourly batch request over the markets of the last few of them
   (:data:`~extract.check.probe.RECENT_CLOSED`) → the event to probe: the one with the
   most candles, whose whole window is the likeliest to reach the event cap (skipped
   with ``--event``);
4. ``GET /historical/markets?series_ticker=S`` (``?event_ticker=`` if refused) → a
   historical market;
5. four event-route pages of the event: the last minutes before the close (uncapped:
   ``candle_fields``, ``uncapped_adjusted_end_ts``), minutes before any market opens
   (``market_tickers_scope``), a range over the cap in candidates but not in candles
   (``event_cap_counts``), and the whole window (capped: ``paging_direction``); when
   that page shows no cut, the whole window of the next event by candles (one more
   request) before ``paging_direction`` is ``unknown``;
6. the historical market's candles over its life (the reference), then the one
   over-cap request around it (``historical_over_cap``: 400, or reference candles
   missing = truncated, or all there = served);
7. one batch request for the historical market (``batch_serves_historical``), and the
   one over-cap batch request over the event's markets (``batch_over_cap``, checked
   against the candles the event pages returned).

Every answer is archived under ``_check/{series}/{time}/`` with its exact bytes, and the
report beside them as ``report.json``: ``extract candles`` prices its routes with it
(:func:`extract.check.report.checked_evidence`). Late
publication of a closed market's last candles cannot be seen in one short pass: the
extractor's grace period before a window is final covers it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from extract.api.client import ApiResponse, KalshiClient
from extract.check import rules
from extract.check.events import EventChecks
from extract.check.probe import (
    CHECK_DIR,
    Prober,
    historical_event_candidate,
    live_extractors,
    market_window,
    pick_historical,
    planned_after,
)
from extract.check.report import ORDER, REPORT_FILE, CheckReport, CheckResult, report_bytes
from extract.check.rules import UNKNOWN, Span, minute_floor
from extract.config import ApiConfig
from extract.errors import BadPageError
from extract.plan.caps import BATCH_CANDLE_CAP
from extract.plan.tiers import HISTORICAL_CHUNK_CANDLES, Cutoff
from schemas.archive import open_archive
from schemas.errors import ApiError, InputError
from schemas.tickers import validate_event_ticker, validate_series_ticker

log = logging.getLogger(__name__)

MAX_REQUESTS = 20


@dataclass(frozen=True)
class CheckApiConfig:
    """What ``check-api`` needs: the series (and optionally the event) to probe."""

    series: str
    api: ApiConfig
    archive_dir: str | Path
    event: str | None = None
    """Probe this event instead of the closed one with the most candles."""
    now: datetime | None = None
    """The present (tests pin it to the simulator's); default: the wall clock."""
    max_requests: int = MAX_REQUESTS
    db_url: str | None = field(default=None, repr=False)
    """The backfill's database: check-api takes its share of the key's budget beside the
    extractors heartbeating there."""

    def __post_init__(self) -> None:
        validate_series_ticker(self.series)
        if self.event is not None:
            validate_event_ticker(self.event)
            if not self.event.startswith(self.series + "-"):
                raise InputError(f"event {self.event} is not of series {self.series}")


async def run_check_api(config: CheckApiConfig) -> CheckReport:
    """Probe the server and read every open point; see the module docstring."""
    now = config.now or datetime.now(UTC)
    archive = open_archive(config.archive_dir)
    archive.ensure_writable()
    folder = f"{CHECK_DIR}/{config.series}/{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}"
    sharing = live_extractors(config.db_url)
    async with KalshiClient(config.api, concurrency=1) as client:
        if sharing:  # the key's budget is split with the extractors running now
            client.throttle.set_nominal_rate(config.api.rate.rps / (sharing + 1))
        run = _CheckRun(config, Prober(client, archive, folder, config.max_requests), now)
        await run.cutoff()
        await run.listings()
        await run.events.run()
        await run.historical_checks()
        await run.batch_over_cap()
        report = CheckReport(
            api_base=config.api.base_url,
            requests=client.stats.requests,
            checks=[run.results[n] for n in ORDER if n in run.results],
            evidence_dir=archive.where(folder),
        )
    archive.write_atomic(f"{folder}/{REPORT_FILE}", report_bytes(report))
    for c in report.unknown:
        log.warning("check-api: %s could not be observed: %s", c.name, c.evidence)
    return report


class _CheckRun:
    """The probes in order; each stage records its checks in ``results``."""

    def __init__(self, config: CheckApiConfig, probe: Prober, now: datetime) -> None:
        self.config = config
        self.series = config.series
        self.probe = probe
        self.now_ts = int(now.timestamp())
        self.results: dict[str, CheckResult] = {}
        self.cutoff_ts: int | None = None
        self.events = EventChecks(self.series, probe, self.now_ts, self.results)
        self.hist_markets: list[dict[str, Any]] = []

    def put(self, name: str, observed: str, evidence: str, *files: str | None) -> None:
        self.results[name] = CheckResult(name, observed, evidence, [f for f in files if f])

    async def cutoff(self) -> None:
        resp, line, f = await self.probe.get(
            "cutoff", "/historical/cutoff", planned_after=planned_after("cutoff")
        )
        if resp is None:
            self.put("historical_cutoff", UNKNOWN, line)
            return
        try:
            cutoff = Cutoff.from_body(resp.body)
        except BadPageError as e:
            self.put("historical_cutoff", "unparseable", f"{line}: {e}", f)
            return
        self.cutoff_ts = cutoff.market_settled_ts
        self.put("historical_cutoff", str(cutoff), f"{line}: market_settled_ts", f)

    async def listings(self) -> None:
        """The events listing (the event to probe) and one page of historical markets."""
        params: dict[str, Any] = {
            "series_ticker": self.series,
            "with_nested_markets": "true",
            "limit": 200,
        }
        resp, ev_line, f_ev = await self.probe.get(
            "events", "/events", params, planned_after=planned_after("events")
        )
        if resp is None or not isinstance(resp.body, dict):
            raise ApiError(f"cannot list the events of {self.series}: {ev_line}")
        events = [e for e in resp.body.get("events") or [] if isinstance(e, dict)]
        if not events:
            raise InputError(f"the server lists no events for series {self.series}")
        await self.events.choose(events, self.cutoff_ts, self.config.event)

        path = "/historical/markets"
        planned = planned_after("listing")
        resp, hl_line, f_hl = await self.probe.get(
            "historical-markets",
            path,
            {"series_ticker": self.series, "limit": 200},
            accept=frozenset({400}),  # a server may refuse series_ticker
            planned_after=planned,
        )
        self._add_historical(resp)
        nested, which = rules.nested_markets_of_historical_event(events, self._by_event())
        if which is None:  # no listed event among those markets: list one event's markets
            candidate = historical_event_candidate(events, self.cutoff_ts)
            if candidate is not None:
                params = {"event_ticker": candidate, "limit": 200}
                resp, line, f = await self.probe.get(
                    "historical-markets-event", path, params, planned_after=planned
                )
                self._add_historical(resp)
                hl_line, f_hl = f"{hl_line}; {line}", f_hl or f
                nested, which = rules.nested_markets_of_historical_event(events, self._by_event())
        evidence = (
            f"{ev_line}: event {which}, all of whose markets are in {hl_line}"
            if which
            else f"no event of {ev_line} is among the historical markets of {hl_line}"
        )
        self.put("nested_markets_of_historical_event", nested, evidence, f_ev, f_hl)

    def _add_historical(self, resp: ApiResponse | None) -> None:
        if resp is not None and resp.status == 200 and isinstance(resp.body, dict):
            markets = resp.body.get("markets") or []
            self.hist_markets += [m for m in markets if isinstance(m, dict)]

    def _by_event(self) -> dict[str, set[str]]:
        by_event: dict[str, set[str]] = {}
        for m in self.hist_markets:
            by_event.setdefault(str(m.get("event_ticker")), set()).add(str(m.get("ticker")))
        return by_event

    async def historical_checks(self) -> None:
        """A historical market: its candles, the one over-cap request, then batch for it."""
        market = pick_historical(self.hist_markets, self.cutoff_ts)
        if market is None:
            why = "no historical market listed"
            self.put("historical_over_cap", UNKNOWN, why)
            self.put("batch_serves_historical", UNKNOWN, why)
            return
        ticker = str(market["ticker"])
        opened, closed = market_window(market) or (0, 0)
        start = max(
            minute_floor(opened), minute_floor(closed) - (HISTORICAL_CHUNK_CANDLES - 1) * 60
        )
        ref_span = Span(start, minute_floor(closed))
        path = f"/historical/markets/{ticker}/candlesticks"
        after = planned_after("historical")
        r_ref, l_ref, f_ref = await self.probe.get(
            "historical-reference", path, ref_span.params(), planned_after=after + 2
        )
        reference = rules.candle_keys(rules.market_page_candles(r_ref.body)) if r_ref else set()
        over = rules.over_cap_span(ref_span, HISTORICAL_CHUNK_CANDLES)
        r_over, l_over, f_over = await self.probe.get(
            "historical-over-cap",
            path,
            over.params(),
            accept=frozenset({400}),
            planned_after=after + 1,
        )
        observed = rules.over_cap(
            r_over.status if r_over else None,
            r_over.body if r_over else None,
            {(ticker, ts) for _, ts in reference},
            batch=False,
        )
        if not reference and observed == UNKNOWN:
            l_over += f"; no reference candles ({l_ref})"
        self.put(
            "historical_over_cap",
            observed,
            f"{l_over}: {over.periods} periods requested around the "
            f"{len(reference)} candles of {l_ref}",
            f_ref,
            f_over,
        )

        hourly = Span(ref_span.start_ts, ref_span.end_ts, 60)
        params = {"market_tickers": ticker, **hourly.params()}
        r_b, l_b, f_b = await self.probe.get(
            "batch-historical",
            "/markets/candlesticks",
            params,
            accept=frozenset({400, 404}),
            planned_after=after,
        )
        served = rules.batch_serves_historical(
            r_b.status if r_b else None,
            r_b.body if r_b else None,
            ticker,
            bool(reference) if r_ref else None,
        )
        self.put(
            "batch_serves_historical",
            served,
            f"{l_b}: historical market {ticker} (settled before the cutoff)",
            f_b,
        )

    async def batch_over_cap(self) -> None:
        """The one over-cap batch request: the event's markets over (about) its window."""
        probes, live = self.events.probes, self.events.live
        if probes is None or not live:
            self.put("batch_over_cap", UNKNOWN, "no event window to probe")
            return
        span = rules.batch_over_cap_span(probes.full, len(live), BATCH_CANDLE_CAP)
        params = {"market_tickers": ",".join(live), **span.params()}
        resp, line, f = await self.probe.get(
            "batch-over-cap",
            "/markets/candlesticks",
            params,
            accept=frozenset({400}),
            planned_after=planned_after("batch"),
        )
        reference = self.events.reference
        inside = {(t, ts) for t, ts in reference if span.start_ts <= ts <= span.end_ts}
        observed = rules.over_cap(
            resp.status if resp else None, resp.body if resp else None, inside, batch=True
        )
        self.put(
            "batch_over_cap",
            observed,
            f"{line}: {len(live)} markets x {span.periods} periods requested, "
            f"checked against {len(inside)} candles of the event pages",
            f,
        )
