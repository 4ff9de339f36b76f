"""``check-api``'s requests: what to probe (an event, a historical market), each request
sent within the budget, each answer archived.

Every answer (error answers too) goes under the archive's ``_check/`` folder with its
exact bytes, so a user can see what the server said to each probe.
"""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from extract.api.client import ApiResponse, KalshiClient
from extract.api.retry import RetryPolicy
from extract.plan.caps import requested_candles
from schemas.archive import ArchiveStore, body_fields, parse_utc_iso, utc_iso
from schemas.errors import ApiError
from schemas.processes import KIND_EXTRACT
from schemas.tickers import event_date_from_ticker
from schemas.workers import count_live

CHECK_DIR = "_check"


#: The requests each stage plans, in order (13 of the 20): the rest is for retries, and
#: a stage's retries never eat a later stage's requests (:func:`planned_after`).
STAGES = (
    ("cutoff", 1),
    ("events", 1),
    ("rank", 1),
    ("listing", 1),
    ("event", 4),
    ("second", 1),
    ("historical", 3),
    ("batch", 1),
)


def planned_after(stage: str) -> int:
    """Requests planned by the stages after ``stage``."""
    names = [name for name, _ in STAGES]
    return sum(n for _, n in STAGES[names.index(stage) + 1 :])


class Prober:
    """Sends the probes within the request budget and archives every answer."""

    def __init__(self, client: KalshiClient, archive: ArchiveStore, folder: str, budget: int):
        self.client = client
        self.archive = archive
        self.folder = folder
        self.budget = budget
        self.seq = 0

    @property
    def spent(self) -> int:
        return self.client.stats.requests

    async def get(
        self,
        label: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        accept: frozenset[int] = frozenset(),
        planned_after: int = 0,
        exact: bool = False,
    ) -> tuple[ApiResponse | None, str, str | None]:
        """(response or None, one line on what happened, archived file or None).

        Retries are capped so that the probes still planned keep one request each and
        the whole run stays within the budget.
        """
        left = self.budget - self.spent - planned_after
        if left < 1:
            return None, f"not sent: the {self.budget}-request budget is spent", None
        api = self.client.api
        self.client.retry = RetryPolicy(
            min(api.max_retries, left - 1), api.backoff_base_s, api.backoff_max_s
        )
        full = self.client.full_path(path)
        try:
            resp = await self.client.get_json(path, params, accept=accept, exact=exact)
        except ApiError as e:
            return None, f"GET {full} failed: {e}", None
        self.seq += 1
        rel = f"{self.folder}/{self.seq:02d}-{label}.json.gz"
        doc: dict[str, Any] = {
            "check_api": label,
            "request": {"method": "GET", "path": resp.path, "params": resp.params},
            "status": resp.status,
            "retrieved_at_utc": utc_iso(resp.retrieved_at),
        }
        if resp.body is not None or resp.raw.strip() == b"null":
            doc.update(body_fields(None, resp.raw))
        else:
            doc["body_text"] = resp.raw.decode("utf-8", errors="replace")
        self.archive.write_atomic(rel, gzip.compress(orjson.dumps(doc), mtime=0))
        query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
        return resp, f"GET {full}{'?' if query else ''}{query} -> {resp.status}", rel


def live_extractors(db_url: str | None) -> int:
    """Extractors heartbeating in the backfill's database, so ``check-api`` takes only its
    share of the key's budget beside them (0 when there is no database or no table yet:
    a first run; the database is only read, never created)."""
    if not db_url:
        return 0
    try:
        url = make_url(db_url)
    except ArgumentError:
        return 0
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).is_file()):
        return 0
    try:
        engine = create_engine(url)
    except (ArgumentError, ImportError):
        return 0
    try:
        with engine.connect() as conn:
            return count_live(conn, KIND_EXTRACT)
    except SQLAlchemyError:
        return 0
    finally:
        engine.dispose()


# --- choosing what to probe ----------------------------------------------------------------


def _ts(value: Any) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return int(parse_utc_iso(value).timestamp())
    except ValueError:
        return None


def market_window(m: dict[str, Any]) -> tuple[int, int] | None:
    """(open, close) in unix seconds of a listed market, or None when unusable."""
    opened, closed = _ts(m.get("open_time")), _ts(m.get("close_time"))
    if opened is None or closed is None or closed <= opened:
        return None
    return opened, closed


#: How many of the most recent closed events ``check-api`` weighs before probing one.
#: Five daily events are a working week: one quiet day (a weekend, a holiday, the
#: Thursday maintenance pause) cannot decide the choice, yet they are recent enough to
#: be on the live tier and to trade like today; and their markets over their windows at
#: hourly periods fit ONE batch request (5 events x 6 markets x ~40 hours = 1,200 of its
#: 10,000 candles), so weighing them costs one request.
RECENT_CLOSED = 5

#: The period of the weighing request: an hourly candle exists where any minute has
#: one, so the hourly count follows the minute count at a sixtieth of the candidates.
RANK_PERIOD = 60


def closed_events(
    events: list[dict[str, Any]], now_ts: int, cutoff_ts: int | None
) -> list[dict[str, Any]]:
    """The events able to answer, most recent first: at least two markets listed with a
    usable window, all closed an hour or more ago (the whole window is past, so pages
    over it can reach any cap). Those whose markets all closed after the historical
    cutoff come first: they are surely on the live tier, which alone the event route
    serves."""
    closed: list[tuple[int, dict[str, Any]]] = []
    for ev in events:
        windows = [w for m in ev.get("markets") or [] if (w := market_window(m))]
        if len(windows) < 2 or max(c for _, c in windows) > now_ts - 3600:
            continue
        closed.append((min(c for _, c in windows), ev))
    closed.sort(key=lambda pair: -pair[0])
    if cutoff_ts is not None:
        live = [pair for pair in closed if pair[0] > cutoff_ts]
        closed = live + [pair for pair in closed if pair[0] <= cutoff_ts]
    return [ev for _, ev in closed]


def live_tickers(event: dict[str, Any]) -> list[str]:
    """The event's listed markets with a usable window (the ones its pages answer for)."""
    return [
        str(m["ticker"])
        for m in event.get("markets") or []
        if market_window(m) and isinstance(m.get("ticker"), str)
    ]


def rank_request(
    events: list[dict[str, Any]], max_tickers: int, cap: int
) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """The most recent of ``events`` (at most :data:`RECENT_CLOSED`) whose markets one
    hourly batch request can weigh under the batch route's ``max_tickers`` and ``cap``
    (tickers x hours of the range), and that request's query; None for fewer than two."""
    chosen = events[:RECENT_CLOSED]
    while len(chosen) >= 2:
        tickers = [t for ev in chosen for t in live_tickers(ev)]
        windows = [w for ev in chosen for m in ev.get("markets") or [] if (w := market_window(m))]
        hour = RANK_PERIOD * 60
        start = min(o for o, _ in windows) // hour * hour
        end = -(-max(c for _, c in windows) // hour) * hour
        periods = requested_candles(start, end, RANK_PERIOD)
        if len(tickers) <= max_tickers and len(tickers) * periods <= cap:
            query = {
                "market_tickers": ",".join(tickers),
                "start_ts": start,
                "end_ts": end,
                "period_interval": RANK_PERIOD,
            }
            return chosen, query
        chosen = chosen[:-1]  # the oldest goes first
    return None


def rank_by_candles(events: list[dict[str, Any]], candles: dict[str, int]) -> list[dict[str, Any]]:
    """``events`` by the candles their markets hold (``candles``: per ticker), most first;
    equals keep their order (the more recent first)."""
    return sorted(events, key=lambda ev: -sum(candles.get(t, 0) for t in live_tickers(ev)))


def pick_historical(markets: list[dict[str, Any]], cutoff_ts: int | None) -> dict[str, Any] | None:
    """A historical market settled well before the cutoff (tiers overlap near it)."""
    usable = [m for m in markets if market_window(m) and isinstance(m.get("ticker"), str)]
    if cutoff_ts is not None:
        safe = [m for m in usable if (w := market_window(m)) and w[1] < cutoff_ts - 86400]
        usable = safe or usable
    return max(usable, key=lambda m: market_window(m) or (0, 0), default=None)


def historical_event_candidate(events: list[dict[str, Any]], cutoff_ts: int | None) -> str | None:
    """An event of the listing whose markets are probably all historical (none nested,
    or all closed a day before the cutoff): the oldest by the date in its ticker."""
    candidates = []
    for ev in events:
        ticker = ev.get("event_ticker")
        if not isinstance(ticker, str):
            continue
        markets = ev.get("markets")
        windows = [market_window(m) for m in markets or [] if isinstance(m, dict)]
        closed = [w[1] for w in windows if w is not None]
        if not markets or (cutoff_ts is not None and closed and max(closed) < cutoff_ts - 86400):
            candidates.append((event_date_from_ticker(ticker) or date.max, ticker))
    return min(candidates)[1] if candidates else None
