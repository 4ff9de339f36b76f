"""``check-api``: what the server answers to each point the spec leaves open, in at most
20 requests, before a first backfill.

The probes (ranges in :mod:`extract.check.rules`, which also reads the answers):

1. ``GET /historical/cutoff`` → ``historical_cutoff``;
2. ``GET /events?series_ticker=S&with_nested_markets=true`` → the event to probe (the
   one with the most live markets whose window has closed) and, with 3., how an
   all-historical event is nested (``nested_markets_of_historical_event``);
3. ``GET /historical/markets?series_ticker=S`` (``?event_ticker=`` if refused) → a
   historical market;
4. four event-route pages of the event: the last hour before the close (uncapped:
   ``candle_fields``, ``uncapped_adjusted_end_ts``), an hour before any market opens
   (``market_tickers_scope``), a range over the cap in candidates but not in candles
   (``event_cap_counts``), and the whole window (capped: ``paging_direction``);
5. the historical market's candles over its life (the reference), then the one
   over-cap request around it (``historical_over_cap``: 400, or reference candles
   missing = truncated, or all there = served);
6. one batch request for the historical market (``batch_serves_historical``), and the
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
from extract.check.probe import (
    CHECK_DIR,
    Prober,
    historical_event_candidate,
    live_extractors,
    market_window,
    pick_event,
    pick_historical,
)
from extract.check.report import ORDER, REPORT_FILE, CheckReport, CheckResult, report_bytes
from extract.check.rules import UNKNOWN, EventProbes, Span, minute_floor
from extract.config import ApiConfig
from extract.errors import BadPageError
from extract.plan.caps import BATCH_CANDLE_CAP, EVENT_CANDLE_CAP
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
    """Probe this event instead of the one with the most live markets."""
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


#: Requests each stage still plans after its own (so retries never eat a later probe).
_PLANNED = {"cutoff": 10, "events": 9, "listing": 8, "event": 4, "historical": 3, "batch": 0}


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
        await run.event_checks()
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
        self.event: dict[str, Any] = {}
        self.live: list[str] = []
        self.probes: EventProbes | None = None
        self.hist_markets: list[dict[str, Any]] = []
        self.reference: set[tuple[str, int]] = set()
        """(market, end_period_ts) of every candle the event pages returned."""

    def put(self, name: str, observed: str, evidence: str, *files: str | None) -> None:
        self.results[name] = CheckResult(name, observed, evidence, [f for f in files if f])

    async def cutoff(self) -> None:
        resp, line, f = await self.probe.get(
            "cutoff", "/historical/cutoff", planned_after=_PLANNED["cutoff"]
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
            "events", "/events", params, planned_after=_PLANNED["events"]
        )
        if resp is None or not isinstance(resp.body, dict):
            raise ApiError(f"cannot list the events of {self.series}: {ev_line}")
        events = [e for e in resp.body.get("events") or [] if isinstance(e, dict)]
        if not events:
            raise InputError(f"the server lists no events for series {self.series}")
        wanted = self.config.event
        event = pick_event(events, self.now_ts, wanted)
        if event is None and wanted is not None:
            event = await self._one_event(wanted)
        if event is None:
            raise InputError(f"no event of {self.series} has two closed live markets to probe")
        self.event = event

        path = "/historical/markets"
        planned = _PLANNED["listing"]
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

    async def _one_event(self, ticker: str) -> dict[str, Any] | None:
        resp, line, _ = await self.probe.get(
            "event",
            f"/events/{ticker}",
            {"with_nested_markets": "true"},
            accept=frozenset({404}),
            planned_after=_PLANNED["listing"],
        )
        if resp is None or resp.status != 200 or not isinstance(resp.body, dict):
            raise InputError(f"event {ticker} not found: {line}")
        event = dict(resp.body.get("event") or {})
        event["markets"] = resp.body.get("markets") or event.get("markets") or []
        return event

    async def event_checks(self) -> None:
        """Four pages of the event route: fields, uncapped end, scope, cap count, direction."""
        markets = [m for m in self.event.get("markets") or [] if market_window(m)]
        windows = [w for m in markets if (w := market_window(m))]
        ticker = str(self.event.get("event_ticker"))
        if not windows:
            for name in ORDER[:5]:
                self.put(name, UNKNOWN, f"event {ticker} lists no live market to probe")
            return
        self.live = [str(m.get("ticker")) for m in markets]
        opens, closes = [o for o, _ in windows], [c for _, c in windows]
        probes = self.probes = rules.event_probes(opens, closes, EVENT_CANDLE_CAP, self.now_ts)
        path = f"/series/{self.series}/events/{ticker}/candlesticks"
        after = _PLANNED["event"]
        spans = (probes.uncapped, probes.before_open, probes.cap_count, probes.full)
        labels = ("event-uncapped", "event-before-open", "event-cap-count", "event-full")
        got = []
        for i, (label, span) in enumerate(zip(labels, spans, strict=True)):
            got.append(
                await self.probe.get(label, path, span.params(), planned_after=after + 3 - i)
            )
        (r1, l1, f1), (r2, l2, f2), (r3, l3, f3), (r4, l4, f4) = got
        pages = [r for r, _, _ in got if r is not None]
        for r in pages:
            self.reference |= rules.candle_keys(rules.event_page_candles(r.body))
        candles = [c for r in pages for cs in rules.event_page_candles(r.body).values() for c in cs]
        shape = rules.candle_fields(candles)
        self.put(
            "candle_fields",
            shape,
            f"{len(candles)} candles of {len(pages)} event pages",
            f1,
            f2,
            f3,
            f4,
        )

        if r1 is None:
            self.put("uncapped_adjusted_end_ts", UNKNOWN, l1)
        else:
            first = rules.uncapped_adjusted_end(r1.body, probes.uncapped)
            second = rules.uncapped_adjusted_end(r2.body, probes.before_open) if r2 else UNKNOWN
            shown = r1.body.get("adjusted_end_ts", "absent") if isinstance(r1.body, dict) else "?"
            self.put(
                "uncapped_adjusted_end_ts",
                rules.resolve_uncapped(first, second),
                f"{l1}: adjusted_end_ts={shown} on a page no cap cuts",
                f1,
                f2,
            )

        scope = rules.market_tickers_scope(r2.body, self.live) if r2 else UNKNOWN
        self.put(
            "market_tickers_scope",
            scope,
            f"{l2}: {len(self.live)} live markets, none with a candle before the open",
            f2,
        )

        direction = rules.paging_direction(
            r4.body if r4 else None, probes.full, EVENT_CANDLE_CAP, False
        )
        if r3 is None or direction == "backward":
            counts = UNKNOWN  # a backward cut cannot be told from a served range here
        else:
            counts = rules.event_cap_counts(r3.body, probes)
        self.put(
            "event_cap_counts",
            counts,
            f"{l3}: {len(self.live)} markets x {probes.cap_count.periods} periods "
            f"requested; a requested-count cap cuts by {probes.requested_cut_ts}",
            f3,
        )
        if direction == UNKNOWN and counts == "requested" and r4 is not None:
            direction = rules.paging_direction(r4.body, probes.full, EVENT_CANDLE_CAP, True)
        self.put("paging_direction", direction, f"{l4}: the whole window", f4)

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
        after = _PLANNED["historical"]
        r_ref, l_ref, f_ref = await self.probe.get(
            "historical-reference", path, ref_span.params(), planned_after=after
        )
        reference = rules.candle_keys(rules.market_page_candles(r_ref.body)) if r_ref else set()
        over = rules.over_cap_span(ref_span, HISTORICAL_CHUNK_CANDLES)
        r_over, l_over, f_over = await self.probe.get(
            "historical-over-cap",
            path,
            over.params(),
            accept=frozenset({400}),
            planned_after=after - 1,
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
            planned_after=after - 2,
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
        if self.probes is None or not self.live:
            self.put("batch_over_cap", UNKNOWN, "no event window to probe")
            return
        span = rules.batch_over_cap_span(self.probes.full, len(self.live), BATCH_CANDLE_CAP)
        params = {"market_tickers": ",".join(self.live), **span.params()}
        resp, line, f = await self.probe.get(
            "batch-over-cap",
            "/markets/candlesticks",
            params,
            accept=frozenset({400}),
            planned_after=_PLANNED["batch"],
        )
        inside = {(t, ts) for t, ts in self.reference if span.start_ts <= ts <= span.end_ts}
        observed = rules.over_cap(
            resp.status if resp else None, resp.body if resp else None, inside, batch=True
        )
        self.put(
            "batch_over_cap",
            observed,
            f"{line}: {len(self.live)} markets x {span.periods} periods requested, "
            f"checked against {len(inside)} candles of the event pages",
            f,
        )
