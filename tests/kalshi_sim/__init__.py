"""Kalshi API simulator: a deterministic world served over real HTTP, for tests.

``model``/``candles`` are the pure ground truth, ``server`` the aiohttp app with the
rate limiter (``throttle``) and fault injection (``faults``). Independent of the
project's own code on purpose: it is the reference the extractor is checked against.
"""

from .config import DEFAULT_SERIES, FAULT_KINDS, FaultConfig, FaultKind, SeriesSpec, SimConfig
from .faults import Counters, RequestRecord
from .model import EventCandles, EventInfo, MarketInfo, World
from .server import SimServer, run_sim_in_thread
from .throttle import TokenBucket

__all__ = [
    "DEFAULT_SERIES",
    "FAULT_KINDS",
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
