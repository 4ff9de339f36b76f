"""``check-api``'s requests: each sent within the request budget, each answer archived.

Every answer (error answers too) goes under the archive's ``_check/`` folder with its
exact bytes, so a user can see what the server said to each probe.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from extract.client import ApiResponse, KalshiClient
from extract.retry import RetryPolicy
from schemas.archive import ArchiveStore, body_fields, utc_iso
from schemas.errors import ApiError
from schemas.workers import KIND_EXTRACT, count_live

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
        return resp, f"GET {full}?{query} -> {resp.status}", rel


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
