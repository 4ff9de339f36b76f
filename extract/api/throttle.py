"""A Kalshi-shaped async token bucket, shared by every request of a run.

Kalshi meters reads with a token bucket per key: a sustained rate plus a burst of one or
two seconds of budget after idling. Ours mirrors it on the client side so the server
rarely has to say 429; when it does (another process shares the key, clocks drift), the
rate halves (down to a floor) and creeps back up slowly while answers succeed.

aiohttp's connection limit caps concurrency, not rate (aiohttp#3184): this is separate.
The clock and the sleep are injectable so the arithmetic is tested without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Throttle:
    """``rate`` requests/s with a bucket of ``burst_seconds`` of budget (starts full)."""

    def __init__(
        self,
        rate: float,
        burst_seconds: float = 2.0,
        *,
        floor_fraction: float = 0.1,
        cut_cooldown_s: float = 1.0,
        recovery_interval_s: float = 2.0,
        recovery_step: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst_seconds <= 0:
            raise ValueError("rate and burst_seconds must be positive")
        self.nominal_rate = float(rate)
        self.rate = float(rate)
        self.burst_seconds = burst_seconds
        self.floor_rate = max(0.1, rate * floor_fraction)
        self._floor_fraction = floor_fraction
        self._cut_cooldown = cut_cooldown_s
        self._recovery_interval = recovery_interval_s
        self._recovery_step_fraction = recovery_step
        self._recovery_step = recovery_step * rate
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._last = clock()
        self._last_change = -float("inf")
        self._lock = asyncio.Lock()

    @property
    def capacity(self) -> float:
        """Bucket size in requests (at least one)."""
        return max(1.0, self.rate * self.burst_seconds)

    @property
    def tokens(self) -> float:
        """Tokens available now (for tests and progress)."""
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def acquire(self) -> None:
        """Wait until one request may go out. Waiters are served first come, first served."""
        async with self._lock:
            self._refill()
            if self._tokens < 1.0:
                # Wait exactly for the missing fraction, then take the token: looping
                # until the float reaches 1.0 could spin on ever smaller sleeps.
                await self._sleep((1.0 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1.0

    def on_throttled(self) -> None:
        """The server answered 429: halve the rate (once per cooldown) and empty the bucket.

        A burst of concurrent 429s is one signal, not many: cuts within the cooldown are
        ignored, so four workers hitting the limit together halve the rate once.
        """
        now = self._clock()
        self._refill()
        self._tokens = min(self._tokens, 0.0)
        if now - self._last_change >= self._cut_cooldown:
            self.rate = max(self.floor_rate, self.rate / 2.0)
            self._tokens = min(self._tokens, self.capacity)
            self._last_change = now

    def on_success(self) -> None:
        """A request succeeded: step the rate back toward nominal, at most once per interval."""
        if self.rate >= self.nominal_rate:
            return
        now = self._clock()
        if now - self._last_change >= self._recovery_interval:
            self._refill()
            self.rate = min(self.nominal_rate, self.rate + self._recovery_step)
            self._last_change = now

    def set_nominal_rate(self, rate: float) -> None:
        """Change the target rate (the process's share of a key shared by several).

        A rate currently cut by 429s keeps its proportion of the nominal one, so a share
        change neither undoes a backoff nor waits for it: 20/s cut to 10/s becomes 5/s
        when the share drops to 10/s. The bucket shrinks with the rate at once, so a
        smaller share is never exceeded by tokens saved under the larger one.
        """
        if rate <= 0:
            raise ValueError("rate must be positive")
        if rate == self.nominal_rate:
            return
        self._refill()
        self.rate = min(rate, self.rate * rate / self.nominal_rate)
        self.nominal_rate = float(rate)
        self.floor_rate = max(0.1, rate * self._floor_fraction)
        self.rate = max(self.rate, self.floor_rate)
        self._recovery_step = self._recovery_step_fraction * rate
        self._tokens = min(self._tokens, self.capacity)
