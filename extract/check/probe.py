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
from schemas.archive import ArchiveStore, body_fields, parse_utc_iso, utc_iso
from schemas.errors import ApiError
from schemas.processes import KIND_EXTRACT
from schemas.tickers import event_date_from_ticker
from schemas.workers import count_live

CHECK_DIR = "_check"


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


def pick_event(
    events: list[dict[str, Any]], now_ts: int, wanted: str | None
) -> dict[str, Any] | None:
    """The event to probe: ``wanted``, else the one with the most live markets whose
    window has closed (then the latest), so that requests over the cap are possible."""
    best: tuple[int, int] | None = None
    chosen = None
    for ev in events:
        markets = [m for m in ev.get("markets") or [] if market_window(m)]
        if wanted is not None:
            if ev.get("event_ticker") == wanted:
                return ev
            continue
        windows = [w for m in markets if (w := market_window(m))]
        if len(windows) < 2 or max(c for _, c in windows) > now_ts - 3600:
            continue
        rank = (len(windows), max(c for _, c in windows))
        if best is None or rank > best:
            best, chosen = rank, ev
    return chosen


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
