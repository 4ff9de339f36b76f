"""What ``extract candles`` hands back: the run's summary, and its text for the CLI.

Its own module because the record is read far from the run that fills it: the CLI
prints it (as text or JSON), the window jobs (:mod:`extract.run.window_job`) add their pages
to it, and the tests check it, none of which needs the run's leases and workers
(:mod:`extract.run.candles`). The load stage's records sit in ``load/run/outcome.py`` likewise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from extract.plan.selection import routes_text


@dataclass
class SeriesTally:
    """One series' part of a run: its windows by outcome, candles and requests."""

    windows: int = 0
    """Windows planned with a range to fetch."""
    done: int = 0
    skipped: int = 0
    """Already archived (nothing fetched)."""
    failed: int = 0
    held: int = 0
    """Held (or taken from us) by another live worker: it finishes them."""
    without_window: int = 0
    """Events with no range to fetch (no trade window, no markets, not started)."""
    candles: int = 0
    requests: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed + self.held

    def line(self, series: str) -> str:
        """``KXHIGHNY: 30 windows: 29 done, 1 already archived, 0 failed; ...``."""
        held = f", {self.held} held by other workers" if self.held else ""
        without = f"; {self.without_window} events without a window" if self.without_window else ""
        return (
            f"{series}: {self.windows} windows: {self.done} done, {self.skipped} already "
            f"archived, {self.failed} failed{held}; {self.candles:,} candles, "
            f"{self.requests:,} requests{without}"
        )


@dataclass
class CandlesSummary:
    """What a run did; ``failures`` names each FAILED window and why, ``series`` each
    series' part and ``left_out`` each series the run could not take (and why)."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    no_trade_window: int = 0
    no_markets: int = 0
    not_started: int = 0
    pages: int = 0
    live_pages: int = 0
    """Of ``pages``, those from the event route."""
    historical_pages: int = 0
    """Of ``pages``, those from the per-market historical route."""
    rerouted: int = 0
    """Markets that changed tier during the run (the cutoff moved, or a stale flag)."""
    candles: int = 0
    requests: int = 0
    """Candle requests (the cutoff reads are counted in ``cutoff_reads``)."""
    retries: int = 0
    throttled: int = 0
    cutoff: str = ""
    """The historical cutoff (``market_settled_ts``) the run routed by, last read."""
    cutoff_reads: int = 0
    held: int = 0
    """Windows another live worker holds (skipped this run: that worker finishes them)."""
    taken_over: int = 0
    """Windows whose previous worker's lease had expired (it died or stalled)."""
    lost: int = 0
    """Windows whose lease another worker took while we stalled (it finishes them)."""
    elapsed_s: float = 0.0
    route_requests: dict[str, int] = field(default_factory=dict)
    """Answered requests by route (``event``, ``batch``, ``historical``, ``lookup``)."""
    failures: list[tuple[str, str]] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)
    """With ``dry_run``: the plan, a line per event (one series) or per series (several)
    and a total (nothing was fetched)."""
    series: dict[str, SeriesTally] = field(default_factory=dict)
    """Each series of the run, in the order asked."""
    left_out: list[tuple[str, str]] = field(default_factory=list)
    """(series, why) of each series the run could not take: no events, no time zone."""

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def lines(self) -> list[str]:
        rate = self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0
        out = [
            f"windows: {self.done} done, {self.skipped} skipped (already archived), "
            f"{self.failed} failed, {self.no_trade_window} without trade window, "
            f"{self.no_markets} without markets, {self.not_started} not started",
            f"pages: {self.pages} ({self.live_pages} live, {self.historical_pages} historical), "
            f"candles: {self.candles}, requests: {self.requests}, "
            f"retries: {self.retries}, 429s: {self.throttled}, "
            f"elapsed: {self.elapsed_s:.1f}s, {rate:.1f} req/s",
            f"historical cutoff: {self.cutoff or 'not read'} ({self.cutoff_reads} reads), "
            f"{self.rerouted} markets changed tier during the run",
        ]
        if self.route_requests and self.done:
            n = sum(self.route_requests.values())
            by_route = sorted(self.route_requests.items())
            out.append(
                f"requests per event: {n / self.done:.2f} over {self.done} windows "
                f"({routes_text({r: round(k / self.done, 2) for r, k in by_route})})"
            )
        if self.held or self.taken_over or self.lost:
            out.append(
                f"leases: {self.held} held by other workers, {self.taken_over} taken over "
                f"from expired leases, {self.lost} lost to other workers"
            )
        if len(self.series) + len(self.left_out) > 1:
            out.extend(tally.line(series) for series, tally in self.series.items())
        out.extend(
            f"{series}: left out: {why.removeprefix(series + ': ')}"
            for series, why in self.left_out
        )
        out.extend(f"FAILED {key}: {reason}" for key, reason in self.failures)
        return out

    def tally(self, series: str) -> SeriesTally:
        """The series' tally (made on first use)."""
        return self.series.setdefault(series, SeriesTally())
