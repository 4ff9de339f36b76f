"""``check-api``'s event-route checks: which event to probe, its four pages, and one
more event's window when the first shows no cut.

The event matters: an open event, or a quiet one, never reaches the event cap, so its
pages cannot show which way the server pages. :class:`EventChecks` probes the most
recent closed event with the most candles among the last few
(:data:`~extract.check.probe.RECENT_CLOSED`), weighed by one hourly batch request, and
when its whole window still shows no cut, the next one by candles (one more request).
"""

from __future__ import annotations

from typing import Any

from extract.check import rules
from extract.check.probe import (
    Prober,
    closed_events,
    live_tickers,
    market_window,
    planned_after,
    rank_by_candles,
    rank_request,
)
from extract.check.report import ORDER, CheckResult
from extract.check.rules import UNKNOWN, EventProbes
from extract.plan.caps import BATCH_CANDLE_CAP, BATCH_MAX_TICKERS, EVENT_CANDLE_CAP
from schemas.errors import InputError


class EventChecks:
    """The event-route checks of one ``check-api`` run; results go to ``results``."""

    def __init__(
        self, series: str, probe: Prober, now_ts: int, results: dict[str, CheckResult]
    ) -> None:
        self.series = series
        self.probe = probe
        self.now_ts = now_ts
        self.results = results
        self.event: dict[str, Any] = {}
        self.closed: list[dict[str, Any]] = []
        """The events able to answer, most recent first (:func:`closed_events`)."""
        self.ranked: list[dict[str, Any]] | None = None
        """``closed`` by candles, once weighed (:meth:`rank`)."""
        self.rank_note = ""
        self.rank_file: str | None = None
        self.live: list[str] = []
        self.probes: EventProbes | None = None
        self.reference: set[tuple[str, int]] = set()
        """(market, end_period_ts) of every candle the event's pages returned."""

    def put(self, name: str, observed: str, evidence: str, *files: str | None) -> None:
        self.results[name] = CheckResult(name, observed, evidence, [f for f in files if f])

    async def choose(
        self, events: list[dict[str, Any]], cutoff_ts: int | None, wanted: str | None
    ) -> None:
        """The event to probe: ``wanted``, else the closed one with the most candles."""
        self.closed = closed_events(events, self.now_ts, cutoff_ts)
        if wanted is not None:
            listed = [ev for ev in events if ev.get("event_ticker") == wanted]
            self.event = listed[0] if listed else await self._one_event(wanted)
            return
        ranked = await self.rank(planned_after("rank"))
        if not ranked:
            raise InputError(f"no event of {self.series} has two closed live markets to probe")
        self.event = ranked[0]

    async def rank(self, after: int) -> list[dict[str, Any]]:
        """The closed events by candles, most first: one hourly batch request over the
        markets of the last few (:func:`rank_request`), sent once; when it cannot be sent
        or answered, the most recent first."""
        if self.ranked is not None:
            return self.ranked
        self.ranked = list(self.closed)
        asked = rank_request(self.closed, BATCH_MAX_TICKERS, BATCH_CANDLE_CAP)
        if asked is None:
            return self.ranked
        weighed, query = asked
        resp, line, self.rank_file = await self.probe.get(
            "rank",
            "/markets/candlesticks",
            query,
            accept=frozenset({400, 404}),
            planned_after=after,
        )
        counts = rules.batch_page_candles(resp.body) if resp and resp.status == 200 else {}
        hourly = {t: len(cs) for t, cs in counts.items()}
        # the query names every market: the note shows the answer, the file the request
        shown = f"{line.split('?', 1)[0]} -> {resp.status}" if resp else line
        if any(hourly.values()):
            self.ranked = rank_by_candles(weighed, hourly) + self.ranked[len(weighed) :]
            self.rank_note = (
                f"; the last {len(weighed)} closed events by hourly candles ({shown}): "
                + ", ".join(
                    f"{ev.get('event_ticker')}={sum(hourly.get(t, 0) for t in live_tickers(ev))}"
                    for ev in self.ranked[: len(weighed)]
                )
            )
        else:
            self.rank_note = f"; the closed events could not be weighed ({shown}): newest first"
        return self.ranked

    async def _one_event(self, ticker: str) -> dict[str, Any]:
        resp, line, _ = await self.probe.get(
            "event",
            f"/events/{ticker}",
            {"with_nested_markets": "true"},
            accept=frozenset({404}),
            planned_after=planned_after("rank"),
        )
        if resp is None or resp.status != 200 or not isinstance(resp.body, dict):
            raise InputError(f"event {ticker} not found: {line}")
        event = dict(resp.body.get("event") or {})
        event["markets"] = resp.body.get("markets") or event.get("markets") or []
        return event

    async def run(self) -> None:
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
        after = planned_after("event")
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

        uncapped = self.results["uncapped_adjusted_end_ts"].observed
        elsewhere = {(t, ts) for t, ts in self.reference if t in self.live}
        direction = rules.paging_direction(
            r4.body if r4 else None, probes.full, EVENT_CANDLE_CAP, False, uncapped, elsewhere
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
        requested = counts == "requested"
        if direction == UNKNOWN and requested and r4 is not None:
            direction = rules.paging_direction(r4.body, probes.full, EVENT_CANDLE_CAP, True)
        evidence = f"{l4}: the whole window of {ticker}{self.rank_note}"
        files = [self.rank_file, f4]
        if direction == UNKNOWN:
            direction, line, f5 = await self.another_event(uncapped, requested)
            evidence += f"; no cut shown, then {line}"
            files.append(f5)
        self.put("paging_direction", direction, evidence, *files)

    async def another_event(self, uncapped: str, requested: bool) -> tuple[str, str, str | None]:
        """One more try at ``paging_direction``: the whole window of the next event by
        candles (one request), read with what the first event showed (the uncapped
        finding, what the cap counts)."""
        ranked = await self.rank(planned_after("event"))
        first = self.event.get("event_ticker")
        others = [ev for ev in ranked if ev.get("event_ticker") != first]
        if not others:
            return UNKNOWN, "no other closed event to try", None
        event = others[0]
        ticker = str(event.get("event_ticker"))
        windows = [w for m in event.get("markets") or [] if (w := market_window(m))]
        opens, closes = [o for o, _ in windows], [c for _, c in windows]
        full = rules.event_probes(opens, closes, EVENT_CANDLE_CAP, self.now_ts).full
        resp, line, f = await self.probe.get(
            "event-full-next",
            f"/series/{self.series}/events/{ticker}/candlesticks",
            full.params(),
            planned_after=planned_after("second"),
        )
        body = resp.body if resp else None
        direction = rules.paging_direction(body, full, EVENT_CANDLE_CAP, requested, uncapped)
        return direction, f"{line}: the whole window of {ticker}", f
