"""Kalshi-style token bucket: what the simulator's 429s are decided by."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: Tokens one request costs (Kalshi's default cost).
REQUEST_COST = 10


class TokenBucket:
    """``rps`` requests per second, holding ``burst_seconds`` of budget.

    In Kalshi's units: refill ``rps * 10`` tokens/s, capacity
    ``burst_seconds * rps * 10``, each request costs 10. Starts full, like an idle key.
    No penalty for requests refused: a refused request costs nothing.
    """

    def __init__(
        self,
        rps: float,
        burst_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refill_per_s = rps * REQUEST_COST
        self.capacity = max(float(REQUEST_COST), burst_seconds * rps * REQUEST_COST)
        self._clock = clock
        self._tokens = self.capacity
        self._last = clock()
        self._lock = threading.Lock()

    def try_acquire(self, cost: int = REQUEST_COST) -> bool:
        """Take ``cost`` tokens if available; False means answer 429."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.refill_per_s)
            self._last = now
            if self._tokens >= cost:
                self._tokens -= cost
                return True
            return False

    def reset(self) -> None:
        """Refill to capacity (tests start each phase from an idle key)."""
        with self._lock:
            self._tokens = self.capacity
            self._last = self._clock()
