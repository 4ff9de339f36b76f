"""One plan across the windows of a run: each window's routes, the batch requests they
share, the groups of windows a worker takes together, and the floor; pure.

Each window's routes are chosen by :func:`extract.plan.auto.choose_routes`; what is new
here is the batch route's price. A window's own batch requests (its pieces) are packed
with every other window's (:func:`extract.plan.packing.pack_pieces`, agnostic of events
and series), and the window pays its share: a request carrying pieces of ``m`` windows
costs each of them ``1/m``. So a weather event at 60 minutes, one request alone, costs
an eighth of one, and the batch route wins where the event route's one page used to.
Packing is planned in two rounds: every window that may use batch offers its pieces,
each window then chooses with its share, and the pieces of the windows that chose
another route are packed again without them.

Only final windows are packed: an open window is fetched again by the next run up to
its new end, so its requests change from run to run. Everything here depends only on
the windows, the caps and the evidence, so a rerun of the same selection plans the same
requests and finds the pages it archived.

The floor (:func:`run_floor`) is the sum of each window's cheapest route mix at the caps,
its batch part being the lower of its own requests and its share of packed ones at best
(:func:`extract.plan.packing.piece_shares`), rounded up once for the run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

from extract.config import RouteChoice
from extract.plan.auto import (
    Answer,
    BatchShares,
    Cost,
    Evidence,
    WindowRoutes,
    WindowShape,
    choose_routes,
    window_floor,
)
from extract.plan.caps import BatchRequest, batch_plan
from extract.plan.packing import Pack, Piece, pack_pieces, piece_shares


@dataclass(frozen=True)
class RunPlan:
    """The routes of every window of a run and the batch requests they share."""

    shapes: tuple[WindowShape, ...]
    routes: tuple[WindowRoutes, ...]
    """Each window's routes; ``requests["batch"]`` is its share of packed requests."""
    packs: tuple[Pack, ...] = ()
    """Every batch request of the packed windows (one window's alone, or several's)."""

    @cached_property
    def _packs_by_window(self) -> dict[int, tuple[Pack, ...]]:
        out: dict[int, list[Pack]] = {}
        for pack in self.packs:
            for w in pack.windows:
                out.setdefault(w, []).append(pack)
        return {w: tuple(ps) for w, ps in out.items()}

    def packs_of(self, window: int) -> tuple[Pack, ...]:
        """The batch requests carrying ``window``'s markets (empty: not packed)."""
        return self._packs_by_window.get(window, ())

    def packed(self, window: int) -> bool:
        """True when ``window`` shares a request with another window."""
        return any(p.shared for p in self.packs_of(window))

    def groups(self) -> list[tuple[int, ...]]:
        """The windows linked by shared requests, each group in time order, the groups
        in the order of their first window: a worker takes a group at once, so each
        shared page is fetched once and handed to every window of the group."""
        parent = list(range(len(self.shapes)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for pack in self.packs:
            first, *rest = pack.windows
            for w in rest:
                parent[root(w)] = root(first)
        members: dict[int, list[int]] = {}
        for i in range(len(self.shapes)):
            members.setdefault(root(i), []).append(i)

        def start(i: int) -> tuple[int, int]:
            return (self.shapes[i].start_ts, i)

        groups = [tuple(sorted(ws, key=start)) for ws in members.values()]
        return sorted(groups, key=lambda g: start(g[0]))


def plan_routes(
    shapes: Sequence[WindowShape],
    packable: Sequence[bool],
    choice: RouteChoice,
    evidence: Evidence,
) -> RunPlan:
    """Each window's routes and the packed batch requests (see the module docstring).

    ``packable[i]``: window ``i`` may share requests (it is final). Pure and
    deterministic. While it is unknown whether batch serves historical markets, they
    keep their own route here (the run learns the answer before it plans).
    """
    shapes = tuple(shapes)
    alone = [choose_routes(s, choice, evidence, may_probe=False) for s in shapes]
    if choice is RouteChoice.EVENT or not shapes:
        return RunPlan(shapes, tuple(alone))
    served = evidence.batch_serves_historical is Answer.YES
    offered = {
        i: tuple(sorted(s.live + (s.historical if served else ())))
        for i, s in enumerate(shapes)
        if packable[i] and (s.live or (served and s.historical))
    }
    packs = _pack(shapes, offered)
    routes = list(alone)
    kept: dict[int, tuple[str, ...]] = {}
    for i, tickers in offered.items():
        chosen = choose_routes(
            shapes[i], choice, evidence, may_probe=False, batch_share=_share(packs, i)
        )
        if not chosen.event and tuple(sorted(chosen.batch)) == tickers:
            kept[i] = tickers
        else:
            chosen = alone[i]
        routes[i] = chosen
    if kept != offered:
        packs = _pack(shapes, kept)
    for i in kept:
        r = routes[i]
        routes[i] = WindowRoutes(
            r.event,
            r.batch,
            r.historical,
            r.probe,
            {**(r.requests or {}), "batch": _share(packs, i)},
        )
    return RunPlan(shapes, tuple(routes), tuple(packs))


def _pack(shapes: Sequence[WindowShape], offered: dict[int, tuple[str, ...]]) -> list[Pack]:
    if not offered:
        return []
    period = shapes[next(iter(offered))].period
    pieces = [
        Piece(i, req)
        for i, tickers in sorted(offered.items())
        for req in batch_plan(tickers, shapes[i].start_ts, shapes[i].end_ts, period)
    ]
    return pack_pieces(pieces, period)


def _share(packs: Sequence[Pack], window: int) -> Fraction:
    """``window``'s share of the requests carrying its pieces: 1/m of one serving m windows."""
    return sum((Fraction(1, len(p.windows)) for p in packs if window in p.windows), Fraction(0))


# --- the floor ------------------------------------------------------------------------------


def run_floor(
    shapes: Sequence[WindowShape],
    batch_serves_historical: bool,
    event_candles: Sequence[int | None] | None = None,
) -> int:
    """The fewest requests any route mix and packing could need for these windows.

    Each window's cheapest mix (:func:`extract.plan.auto.window_floor`), its batch parts
    priced at the best share of packed requests (:func:`extract.plan.packing.piece_shares`
    over the pieces of every window: its live markets, its historical ones where batch
    serves them, and both), summed, rounded up once. ``event_candles[i]``: what the event
    route's cap counts for window ``i`` (candidates when None).
    """
    if not shapes:
        return 0
    period = shapes[0].period
    pieces: list[tuple[int, int, int]] = []
    owners: list[tuple[int, str]] = []
    for i, s in enumerate(shapes):
        # Each set of tickers once: a window wholly live or wholly historical offers one
        # (the same tickers twice would count twice in every range around them).
        sets = {"live": s.live}
        if batch_serves_historical and s.historical:
            sets["historical"] = s.historical
            if s.live:
                sets["both"] = s.live + s.historical
        for what, tickers in sets.items():
            if not tickers:
                continue
            for req in batch_plan(tickers, s.start_ts, s.end_ts, period):
                pieces.append(_piece(req))
                owners.append((i, what))
    shares: dict[tuple[int, str], Fraction] = {}
    for owner, share in zip(owners, piece_shares(pieces, period), strict=True):
        shares[owner] = shares.get(owner, Fraction(0)) + share
    total: Cost = 0
    for i, s in enumerate(shapes):
        live = shares.get((i, "live"), Fraction(0))
        hist = shares.get((i, "historical"), Fraction(0))
        packed = BatchShares(live, hist, shares.get((i, "both"), live + hist))
        counted = event_candles[i] if event_candles is not None else None
        total += window_floor(s, batch_serves_historical, counted, packed)
    return math.ceil(total)


def _piece(req: BatchRequest) -> tuple[int, int, int]:
    return (len(req.tickers), req.start_ts, req.end_ts)


# --- totals: the dry run ------------------------------------------------------------------


def cost_text(cost: Cost | float) -> str:
    """A request count as printed: whole, or a share to two decimals (a float: as is)."""
    if isinstance(cost, Fraction) and cost.denominator != 1:
        return f"{float(cost):.2f}"
    if isinstance(cost, float):
        return str(cost)
    return str(int(cost))


@dataclass
class RequestTally:
    """Requests per route over a run's windows, and the floor under each batch answer."""

    plan: RunPlan
    event_candles: Sequence[int | None] | None = None
    planned: dict[str, Cost] = field(init=False)

    def __post_init__(self) -> None:
        self.planned = {"event": 0, "batch": 0, "historical": 0}
        for r in self.plan.routes:
            for route, n in (r.requests or {}).items():
                self.planned[route] = self.planned.get(route, 0) + n

    @cached_property
    def floor_if_served(self) -> int:
        """The floor if the batch route serves historical markets."""
        return run_floor(self.plan.shapes, True, self.event_candles)

    @cached_property
    def floor_if_not(self) -> int:
        """The floor if it does not."""
        return run_floor(self.plan.shapes, False, self.event_candles)

    @property
    def windows(self) -> int:
        return len(self.plan.shapes)

    @property
    def total(self) -> int:
        return math.ceil(sum(self.planned.values()))

    def floor(self, answer: Answer) -> int:
        """The floor under what is known (unknown: the lower of the two)."""
        return self.floor_if_not if answer is Answer.NO else self.floor_if_served

    def lines(self, evidence: Evidence) -> list[str]:
        """``requests planned`` per route and in total, and the floor (``--dry-run``)."""
        per_route = ", ".join(f"{r} {cost_text(math.ceil(n))}" for r, n in self.planned.items())
        answer = evidence.batch_serves_historical
        floor = self.floor(answer)
        ratio = f" ({self.total / floor:.2f} x the floor)" if floor else ""
        shared = sum(p.shared for p in self.plan.packs)
        packing = (
            f"; {shared} batch requests carry the markets of several windows" if shared else ""
        )
        out = [
            f"requests planned: {self.total} ({per_route}){ratio}{packing}",
            f"floor: {floor} (the fewest any route mix and packing needs at the caps; "
            f"event cap counting {evidence.event_cap_counts.value}, "
            f"batch serves historical markets: {answer.value})",
        ]
        if answer is Answer.UNKNOWN and self.floor_if_served != self.floor_if_not:
            out.append(
                f"  the floor is {self.floor_if_not} if batch does not serve historical "
                "markets; the run asks batch before its first historical window (one "
                "request, or its own batch requests when they have room) "
                "(or run `extract check-api` first)"
            )
        return out
