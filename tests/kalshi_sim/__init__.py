"""Kalshi API simulator: a deterministic world served over real HTTP, for tests.

``model``/``candles`` are the pure ground truth, ``server`` the aiohttp app with the
rate limiter (``throttle``) and fault injection (``faults``). Independent of the
project's own code on purpose: it is the reference the extractor is checked against.

Usage::

    async with SimServer(SimConfig(seed=1, now=..., first_date=..., last_date=...)) as sim:
        client_base_url = sim.base_url          # http://127.0.0.1:PORT/trade-api/v2
        sim.world.candles("KXHIGHNY-25NOV20-T52", period=1)   # ground truth, live shape
        sim.world.series_list("Climate and Weather")          # GET /series's answer
        sim.fail_next("/candlesticks", "503", times=2)
        sim.set_cutoff(datetime(...))           # move markets to the historical tier
        sim.hide_market("KXHIGHNY-25NOV20-T52") # on neither tier: every route loses it
        sim.counters.log                        # [(path, route, params, status, fault,
                                                #   candidates)]
        sim.describe()                          # {switch: value} of the open points

    SimServer(SimConfig(event_cap_counts="requested", paging_direction="backward", ...))

    with run_sim_in_thread(config) as sim:      # same object, served from a thread
        subprocess.run([... "--base-url", sim.base_url ...])

    python -m tests.kalshi_sim --port 8765 --seed 1   # prints the base URL, serves
    python -m tests.kalshi_sim --schedule weather --uncapped-adjusted-end absent ...

The switches (``SWITCHES``) answer each point the spec leaves open; their list and
meaning is in ``server.py``'s docstring.

Throughput: about 15 full (5,000-candle) event pages per second to one sequential
aiohttp client, i.e. about 5 events of 1-minute data per second.
"""

from .config import (
    CATEGORY_SERIES,
    DEFAULT_SERIES,
    FAULT_KINDS,
    SWITCHES,
    WEATHER,
    FaultConfig,
    FaultKind,
    SeriesSpec,
    SimConfig,
)
from .faults import Counters, RequestRecord
from .model import EventCandles, EventInfo, MarketInfo, World
from .server import SimServer, run_sim_in_thread
from .throttle import TokenBucket

__all__ = [
    "CATEGORY_SERIES",
    "DEFAULT_SERIES",
    "FAULT_KINDS",
    "SWITCHES",
    "WEATHER",
    "Counters",
    "EventCandles",
    "EventInfo",
    "FaultConfig",
    "FaultKind",
    "MarketInfo",
    "RequestRecord",
    "SeriesSpec",
    "SimConfig",
    "SimServer",
    "TokenBucket",
    "World",
    "run_sim_in_thread",
]
