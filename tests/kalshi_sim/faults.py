"""Which request fails, and how: scripted failures first, then seeded random ones."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field

from .config import FAULT_KINDS, FaultConfig, FaultKind


@dataclass
class _Script:
    route_substring: str
    kind: FaultKind
    remaining: int


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it; ``status`` 0 means the connection was reset."""

    path: str
    route: str
    params: dict[str, str]
    status: int
    fault: FaultKind | None
    candidates: int | None = None
    """Candle requests: candles asked for (markets x periods in the range), else None."""


@dataclass
class Counters:
    """Request accounting, shared between the server thread and the test thread."""

    total: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    log: list[RequestRecord] = field(default_factory=list)

    @property
    def ok(self) -> int:
        """Requests answered 200 (including 200s with an injected bad body)."""
        return self.by_status[200]

    @property
    def throttled(self) -> int:
        """Requests answered 429 (rate limit or injected)."""
        return self.by_status[429]

    @property
    def faults_injected(self) -> int:
        return sum(self.faults.values())

    def record(self, rec: RequestRecord) -> None:
        self.total += 1
        self.by_route[rec.route] += 1
        self.by_status[rec.status] += 1
        if rec.fault is not None:
            self.faults[rec.fault] += 1
        self.log.append(rec)

    def requests_to(self, path_substring: str) -> list[RequestRecord]:
        """Logged requests whose path contains ``path_substring``."""
        return [r for r in self.log if path_substring in r.path]

    def reset(self) -> None:
        self.total = 0
        self.by_route.clear()
        self.by_status.clear()
        self.faults.clear()
        self.log.clear()


class FaultPlan:
    """Decides the fault (or none) for each request.

    Order: a matching ``fail_next`` script (oldest first), then ``force_429_every``,
    then one draw from the seeded probabilities. Scripts match any route; random
    faults only paths containing one of ``FaultConfig.routes``.
    """

    def __init__(self, config: FaultConfig, seed: int) -> None:
        self.config = config
        self._rng = random.Random(f"{seed}:faults")
        self._scripts: list[_Script] = []
        self._eligible_seen = 0
        self._lock = threading.Lock()

    def fail_next(self, route_substring: str, kind: FaultKind, times: int = 1) -> None:
        """The next ``times`` requests whose path contains ``route_substring`` fail."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {FAULT_KINDS}")
        with self._lock:
            self._scripts.append(_Script(route_substring, kind, times))

    def clear(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._eligible_seen = 0

    def pending(self) -> int:
        """Scripted failures not yet used."""
        with self._lock:
            return sum(s.remaining for s in self._scripts)

    def decide(self, path: str) -> FaultKind | None:
        with self._lock:
            for script in self._scripts:
                if script.route_substring in path:
                    script.remaining -= 1
                    if script.remaining <= 0:
                        self._scripts.remove(script)
                    return script.kind
            cfg = self.config
            if not any(r in path for r in cfg.routes):
                return None
            self._eligible_seen += 1
            if cfg.force_429_every and self._eligible_seen % cfg.force_429_every == 0:
                return "429"
            u = self._rng.random()
            acc = 0.0
            for kind, p in cfg.probabilities():
                acc += p
                if u < acc:
                    return kind
            return None
