"""Packing several windows' markets into one batch request, and the floor under it: pure.

Truth comes from hand arithmetic on the caps (100 tickers, 10,000 requested candles,
``tickers x ((end - start) // period + 1)``) and, for the floor, from a brute-force
search of every way to split small random sets of pieces into requests.
"""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

from extract.config import RouteChoice
from extract.plan.auto import Answer, Evidence, WindowShape
from extract.plan.caps import BATCH_CANDLE_CAP, BatchRequest, batch_plan, requested_candles
from extract.plan.packing import Piece, fits, pack_pieces, piece_shares
from extract.plan.runplan import RequestTally, plan_routes, run_floor

H = 3600
DAY = 24 * H


def weather(day: int, markets: int = 6, series: str = "KXHIGHNY", period: int = 60) -> WindowShape:
    """A weather event's window at ``period``: 14:00Z the day before to 04:59Z the day
    after, rounded up to the period (41 one-hour periods, 2,341 one-minute ones)."""
    start = day * DAY - 10 * H
    close = day * DAY + DAY + 5 * H - 60
    step = period * 60
    end = -(-close // step) * step
    tickers = tuple(f"{series}-D{day:03d}-T{i}" for i in range(markets))
    return WindowShape(tickers, (), start, end, period)


def pieces_of(shapes: list[WindowShape]) -> list[Piece]:
    return [
        Piece(i, req)
        for i, s in enumerate(shapes)
        for req in batch_plan(s.live + s.historical, s.start_ts, s.end_ts, s.period)
    ]


# --- packing --------------------------------------------------------------------------------


def test_eight_daily_events_share_one_request_at_60_minutes() -> None:
    shapes = [weather(d) for d in range(16)]
    assert shapes[0].periods == 40  # 14:00Z .. 05:00Z: 39 hours, both ends inclusive
    packs = pack_pieces(pieces_of(shapes), 60)
    # 8 events: 48 tickers over 7 x 24 + 39 hours = 208 periods = 9,984 requested;
    # a 9th would make 54 x 232 = 12,528.
    assert [len(p.windows) for p in packs] == [8, 8]
    assert packs[0].request.requested(60) == 48 * 208 == 9984
    assert not fits(54, shapes[0].start_ts, shapes[8].end_ts, 60)


def test_every_pack_is_under_both_caps_and_covers_its_pieces() -> None:
    rng = random.Random(7)
    shapes = [
        weather(d, markets=rng.randint(1, 30), series=s, period=p)
        for p in (1, 60)
        for s in ("KXHIGHNY", "KXHIGHCHI")
        for d in range(rng.randint(5, 25))
    ]
    for period in (1, 60):
        mine = [s for s in shapes if s.period == period]
        pieces = pieces_of(mine)
        packs = pack_pieces(pieces, period)

        def key(p: Piece) -> tuple[int, int, tuple[str, ...]]:
            return (p.window, p.request.start_ts, p.request.tickers)

        assert sorted(map(key, (p for pk in packs for p in pk.pieces))) == sorted(map(key, pieces))
        for pk in packs:
            req = pk.request
            assert len(req.tickers) <= 100 and req.requested(period) <= BATCH_CANDLE_CAP
            for piece in pk.pieces:
                assert set(piece.request.tickers) <= set(req.tickers)
                assert req.start_ts <= piece.request.start_ts <= piece.request.end_ts <= req.end_ts
        assert len(packs) <= len(pieces)


def test_packing_is_deterministic_whatever_the_order() -> None:
    pieces = pieces_of([weather(d, series=s) for s in ("KXHIGHNY", "KXHIGHMIA") for d in range(20)])
    shuffled = list(pieces)
    random.Random(3).shuffle(shuffled)
    assert pack_pieces(shuffled, 60) == pack_pieces(pieces, 60)


def test_a_full_time_chunk_stays_alone_and_remainders_of_one_day_share() -> None:
    # At 1 minute a weather event is 6 markets x 2,340 periods: a full chunk of 1,666
    # periods (9,996 candles) and a remainder of 674 (4,044). Two series with the same
    # window: the remainders share a request (12 x 674 = 8,088), the chunks cannot.
    shapes = [weather(0, series="KXHIGHNY", period=1), weather(0, series="KXHIGHMIA", period=1)]
    assert shapes[0].periods == 2340
    packs = pack_pieces(pieces_of(shapes), 1)
    assert sorted(len(p.windows) for p in packs) == [1, 1, 2]
    shared = next(p for p in packs if p.shared)
    assert shared.request.requested(1) == 12 * 674


# --- the floor --------------------------------------------------------------------------------


def optimum(pieces: list[tuple[int, int, int]], period: int) -> int:
    """The fewest requests holding every piece whole: every partition, brute force."""
    n = len(pieces)
    best = n

    def feasible(group: tuple[int, ...]) -> bool:
        tickers = sum(pieces[i][0] for i in group)
        lo = min(pieces[i][1] for i in group)
        hi = max(pieces[i][2] for i in group)
        return fits(tickers, lo, hi, period)

    def search(rest: tuple[int, ...], used: int) -> None:
        nonlocal best
        if used >= best:
            return
        if not rest:
            best = used
            return
        first, others = rest[0], rest[1:]
        for k in range(len(others), -1, -1):
            for combo in itertools.combinations(others, k):
                group = (first, *combo)
                if feasible(group):
                    search(tuple(i for i in others if i not in combo), used + 1)

    search(tuple(range(n)), 0)
    return best


def test_the_floor_never_exceeds_the_best_packing() -> None:
    rng = random.Random(11)
    for _ in range(150):
        period = rng.choice((1, 60))
        step = period * 60
        pieces = []
        for _ in range(rng.randint(1, 7)):
            tickers = rng.choice((1, 2, 3, 6, 6, 12, 40))
            periods = rng.randint(1, max(1, BATCH_CANDLE_CAP // tickers))
            start = rng.randrange(0, 300) * step * (60 // period or 1)
            pieces.append((tickers, start, start + (periods - 1) * step))
        floor = math.ceil(sum(piece_shares(pieces, period)))
        packs = pack_pieces(
            [
                Piece(i, BatchRequest(tuple(f"T{i}-{k}" for k in range(n)), s, e))
                for i, (n, s, e) in enumerate(pieces)
            ],
            period,
        )
        best = optimum(pieces, period)
        assert floor <= best <= len(packs), (pieces, floor, best, len(packs))


def test_a_piece_alone_costs_one_request() -> None:
    piece = (6, 0, (1666 - 1) * 60)
    assert requested_candles(piece[1], piece[2], 1) * 6 == 9996
    assert piece_shares([piece], 1) == [Fraction(1)]


# --- one plan for the run ---------------------------------------------------------------------


def test_the_run_plan_packs_final_windows_and_prices_each_by_its_share() -> None:
    shapes = [weather(d) for d in range(16)] + [weather(16)]
    final = [True] * 16 + [False]  # the last one is still open: planned alone
    plan = plan_routes(shapes, final, RouteChoice.AUTO, Evidence())
    assert [len(g) for g in plan.groups()] == [8, 8, 1]
    assert all(
        r.requests == {"event": 0, "batch": Fraction(1, 8), "historical": 0}
        for r in plan.routes[:16]
    )
    # the open window alone: one event page or one batch request, the tie to the event
    assert plan.routes[16].event and plan.routes[16].total == 1
    tally = RequestTally(plan)
    assert tally.total == 3 and tally.floor(Answer.UNKNOWN) == 3
    assert run_floor(shapes[:16], batch_serves_historical=False) == 2


def test_route_event_packs_nothing() -> None:
    shapes = [weather(d) for d in range(4)]
    plan = plan_routes(shapes, [True] * 4, RouteChoice.EVENT, Evidence())
    assert plan.packs == () and all(r.event for r in plan.routes)


def test_historical_markets_join_the_packs_only_where_batch_serves_them() -> None:
    old = [
        WindowShape((), s.live, s.start_ts, s.end_ts, 60) for s in (weather(d) for d in range(8))
    ]
    served = plan_routes(
        old, [True] * 8, RouteChoice.AUTO, Evidence(batch_serves_historical=Answer.YES)
    )
    assert len(served.packs) == 1 and served.packs[0].shared
    assert run_floor(old, batch_serves_historical=True) == 1
    refused = plan_routes(
        old, [True] * 8, RouteChoice.AUTO, Evidence(batch_serves_historical=Answer.NO)
    )
    assert refused.packs == ()
    assert all(r.historical and r.total == 6 for r in refused.routes)  # one request a market
    assert run_floor(old, batch_serves_historical=False) == 48
