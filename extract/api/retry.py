"""Which failures to retry, and how long to wait: one classifier, one policy, one loop.

:func:`classify` is the single place that decides whether an answer or an exception is
worth another attempt (429, 5xx, transport failures, bodies that are unparseable or
break the page contract) or not (any other 4xx, our own bugs). :class:`RetryPolicy` runs
an attempt in a bounded loop with exponential backoff and full jitter.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from extract.errors import HttpStatusError
from schemas.errors import RetriableApiError, RetriesExhaustedError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Verdict(Enum):
    """What to do after an attempt."""

    OK = "ok"
    RETRY = "retry"
    FATAL = "fatal"


#: Statuses outside 5xx that a server uses for "later, not never".
_RETRIABLE_4XX = frozenset({408, 425, 429})


def classify(outcome: int | BaseException) -> Verdict:
    """The verdict for an HTTP status or for an exception raised by an attempt."""
    if isinstance(outcome, HttpStatusError):
        outcome = outcome.status
    if isinstance(outcome, int):
        if 200 <= outcome < 300:
            return Verdict.OK
        if outcome >= 500 or outcome in _RETRIABLE_4XX:
            return Verdict.RETRY
        return Verdict.FATAL
    if isinstance(outcome, RetriableApiError):
        return Verdict.RETRY
    return Verdict.FATAL


@dataclass
class RetryPolicy:
    """Bounded attempts with exponential backoff and full jitter (AWS's "full jitter").

    The n-th retry sleeps a uniform draw in ``[0, min(max_delay, base * 2**(n-1))]``:
    concurrent workers that failed together do not come back together.
    """

    max_retries: int
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** (retry - 1)))
        return self.rng.uniform(0.0, ceiling)

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        what: str,
        on_retry: Callable[[BaseException], None] | None = None,
    ) -> T:
        """Return ``attempt()``'s result; retry retriable failures, re-raise fatal ones.

        Raises :class:`RetriesExhaustedError` (chained to the last failure) when every
        attempt failed retriably.
        """
        retries = 0
        while True:
            try:
                return await attempt()
            except Exception as e:
                if classify(e) is not Verdict.RETRY:
                    raise
                if retries >= self.max_retries:
                    raise RetriesExhaustedError(
                        f"{what}: gave up after {retries + 1} attempts; last error: {e}"
                    ) from e
                retries += 1
                if on_retry is not None:
                    on_retry(e)
                delay = self.backoff(retries)
                log.debug("%s: retry %d in %.2fs after %s", what, retries, delay, e)
                await self.sleep(delay)
