"""Extract against a rate budget with full pages: how much of the budget is used, how many
429s it costs, and the CPU a candle.

The simulator enforces a Kalshi-shaped token bucket (20 requests/s, two seconds of burst,
starting full like an idle key) and the real ``extract candles --route auto`` runs against
it with ``--rps 20``, on pages of the real size (:func:`~tests.bench.config.full_page_world`:
batch requests filled to 10,000 requested candles of dense 6-market events, historical
pages of ~2,200 candles). A sampler reads the simulator's counters every 50 ms, so the
run can be split after the fact: the first seconds (the burst is being spent) and the
steady part, where the achieved rate should sit at the budget and no 429 should appear.
The child's CPU time (every thread, start-up included) divided by the candles it
archived is the extract's CPU a candle.

The simulator shares the machine's two cores with the extractor, and building a 4 MB
page costs it about 50 ms of CPU, a core at 20 requests a second, which a real server
does not take from its clients. So the run is made twice: first unthrottled, into a
scratch archive and database, while the simulator keeps every candle page it serves
(:class:`CachingSim`); then the measured run, which makes the same requests (the plan
is the same) and gets each page from that cache, as bytes.
"""

from __future__ import annotations

import bisect
import itertools
import re
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.bench.config import (
    FULL_PAGE_SERIES,
    RATE_BUDGET_RPS,
    BenchConfig,
    BenchError,
    days_back,
    full_page_world,
)
from tests.bench.procs import extract_candles_args, run_child, stage_env, sync_series
from tests.bench.report import Results
from tests.kalshi_sim import SimServer, run_sim_in_thread

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CachingSim(SimServer):
    """The simulator, keeping the body of every candle page it answered 200, by URL.

    Its middleware runs inside the simulator's own (throttle, counters), so a cached
    page still spends a token of the bucket and is counted.
    """

    def make_app(self) -> web.Application:
        self.pages: dict[str, tuple[bytes, str]] = {}
        app = super().make_app()
        app.middlewares.append(self._cached)
        return app

    @web.middleware
    async def _cached(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if "candlesticks" not in request.path:
            return await handler(request)
        hit = self.pages.get(request.path_qs)
        if hit is not None:
            return web.Response(body=hit[0], content_type=hit[1])
        response = await handler(request)
        if response.status == 200 and isinstance(response, web.Response):
            body = response.body
            if isinstance(body, bytes):
                self.pages[request.path_qs] = (body, response.content_type)
        return response


SAMPLE_S = 0.05


@dataclass(frozen=True)
class Sample:
    t: float
    total: int
    ok: int
    throttled: int


class Sampler:
    """Samples the simulator's counters from a thread until stopped."""

    def __init__(self, sim: SimServer) -> None:
        self.sim = sim
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def _take(self) -> None:
        c = self.sim.counters
        self.samples.append(Sample(time.monotonic(), c.total, c.ok, c.throttled))

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self._take()

    def __enter__(self) -> Sampler:
        self._take()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._take()


@dataclass(frozen=True)
class RateFigures:
    """The run split at ``warmup_s`` after its first request."""

    requests: int
    ok: int
    throttled: int
    elapsed_s: float
    steady_ok: int
    steady_s: float
    steady_throttled: int
    throttled_at_s: tuple[float, ...]
    """When 429s were answered, in seconds after the first request (to the sample)."""


def split_run(samples: list[Sample], warmup_s: float) -> RateFigures:
    """Figures from counter samples (pure). Time runs from the first to the last request."""
    first = next((i for i, s in enumerate(samples) if s.total > samples[0].total), None)
    if first is None:
        raise BenchError("the extract-rate run sent no request")
    base = samples[first - 1] if first > 0 else samples[0]
    last_total = samples[-1].total
    last = next(i for i, s in enumerate(samples) if s.total == last_total)
    start, end = samples[first].t - SAMPLE_S / 2, samples[last].t
    times = [s.t for s in samples]
    cut = samples[min(max(bisect.bisect_left(times, start + warmup_s), first), last)]
    return RateFigures(
        requests=samples[last].total - base.total,
        ok=samples[last].ok - base.ok,
        throttled=samples[last].throttled - base.throttled,
        elapsed_s=end - start,
        steady_ok=samples[last].ok - cut.ok,
        steady_s=end - cut.t,
        steady_throttled=samples[last].throttled - cut.throttled,
        throttled_at_s=tuple(
            round(b.t - start, 2)
            for a, b in itertools.pairwise(samples)
            for _ in range(b.throttled - a.throttled)
        ),
    )


def archived_candles(log: str) -> int:
    """The candles the extract summary says it archived (``candles: N`` in its last line)."""
    found = re.findall(r"candles: ([0-9,]+)", log)
    if not found:
        raise BenchError("the extract-rate run's log has no summary line with its candles")
    return int(found[-1].replace(",", ""))


def bench_extract_rate(
    config: BenchConfig, db_url: str, results: Results, say: Callable[[str], None]
) -> None:
    """Adds the extract.* metrics."""
    sizes = config.sizes
    first, last = days_back(sizes.page_days)
    world = full_page_world(sizes)
    args = extract_candles_args(FULL_PAGE_SERIES, first, last, RATE_BUDGET_RPS, "auto")
    with (
        tempfile.TemporaryDirectory(prefix="kalshi-bench-rate-") as tmp,
        run_sim_in_thread(world, server_class=CachingSim) as sim,
    ):
        say(f"extract, unthrottled: the simulator keeps its pages ({sizes.page_days} events) ...")
        sim.set_rate_limit(None)
        scratch = f"sqlite:///{Path(tmp) / 'warm.db'}"
        sync_series(FULL_PAGE_SERIES, api_base=sim.base_url, db_url=scratch)
        run_child(
            args,
            env=stage_env(api_base=sim.base_url, db_url=scratch, archive=Path(tmp) / "warm"),
            log=config.out_dir / "logs" / "extract-rate-warm.log",
        )
        sync_series(FULL_PAGE_SERIES, api_base=sim.base_url, db_url=db_url)
        sim.set_rate_limit(world.rate_limit_rps, world.burst_seconds)
        sim.reset()  # zero the counters, refill the bucket: an idle key from here on
        say(
            f"extract at {RATE_BUDGET_RPS:g} req/s against the throttled simulator, full "
            f"pages ({sizes.page_days} events) ..."
        )
        env = stage_env(api_base=sim.base_url, db_url=db_url, archive=Path(tmp) / "raw")
        log = config.out_dir / "logs" / "extract-rate.log"
        with Sampler(sim) as sampler:
            child = run_child(args, env=env, log=log)
        routes = dict(sim.counters.by_route)
    figures = split_run(sampler.samples, sizes.rate_warmup_s)
    if not routes.get("batch_candlesticks"):
        raise BenchError(f"the extract-rate run fetched no batch page: {routes}")
    candles = archived_candles(log.read_text(errors="replace"))
    by_route = ", ".join(f"{n} {r}" for r, n in sorted(routes.items()))
    steady = figures.steady_ok / figures.steady_s if figures.steady_s > 0 else 0.0
    results.add("extract.requests", "extract", "requests", figures.requests, "", by_route)
    results.add("extract.elapsed_s", "extract", "first to last request", figures.elapsed_s, "s")
    results.add("extract.budget_rps", "extract", "budget (token bucket)", RATE_BUDGET_RPS, "req/s")
    results.add(
        "extract.achieved_rps",
        "extract",
        "answered 200, whole run",
        figures.ok / figures.elapsed_s,
        "req/s",
        "includes the initial burst",
    )
    results.add(
        "extract.steady_rps",
        "extract",
        "answered 200, steady",
        steady,
        "req/s",
        f"after the first {sizes.rate_warmup_s:g} s",
    )
    results.add(
        "extract.steady_fraction_of_budget",
        "extract",
        "steady rate ÷ budget",
        steady / RATE_BUDGET_RPS,
        "×",
    )
    cpu_ms = 1000 * child.cpu_s / max(1, figures.requests)
    results.add(
        "extract.cpu_ms_per_request",
        "extract",
        "extract CPU per request (user + sys)",
        cpu_ms,
        "ms",
        f"{RATE_BUDGET_RPS * cpu_ms / 1000:.2f} of a core to keep the budget",
    )
    results.add("extract.candles", "extract", "candles archived", candles, "")
    results.add(
        "extract.cpu_us_per_candle",
        "extract",
        "extract CPU per candle (every thread, start-up included)",
        1e6 * child.cpu_s / max(1, candles),
        "µs",
        f"{child.cpu_s:.1f} CPU-s in {child.elapsed_s:.1f} s; {candles / max(1, figures.ok):,.0f} "
        "candles a page",
    )
    at = ", ".join(f"{t:g}" for t in figures.throttled_at_s[:10])
    results.add(
        "extract.throttled_total",
        "extract",
        "429s, whole run",
        figures.throttled,
        "",
        f"at {at} s" if at else "",
    )
    results.add(
        "extract.throttled_steady",
        "extract",
        "429s once steady",
        figures.steady_throttled,
        "",
        f"after the first {sizes.rate_warmup_s:g} s",
    )
