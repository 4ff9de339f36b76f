"""The one HTTP client of a run: a single aiohttp session, the throttle, retries, counters.

aiohttp exceptions stop here: timeouts, resets and truncated transfers become
:class:`~extract.errors.TransportError`, non-200 answers :class:`~extract.errors.HttpStatusError`,
so the rest of the stage only sees :mod:`schemas.errors` types. TLS verification stays on
(aiohttp's default); the key id and signature never reach a log line or an error.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from extract.api.retry import RetryPolicy
from extract.api.throttle import Throttle
from extract.config import ApiConfig, Credentials
from extract.errors import BadPageError, HttpStatusError, TransportError
from schemas import __version__
from schemas.errors import ConfigError, FatalApiError

USER_AGENT = f"kalshi-candles/{__version__}"
"""Sent with every request, so Kalshi can tell this tool and its version apart."""

log = logging.getLogger(__name__)

Params = Mapping[str, str | int]


@dataclass
class RequestStats:
    """Counters of one scope (a run or one window); plain ints, updated on the loop thread."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0

    def add_request(self) -> None:
        self.requests += 1


@dataclass(frozen=True)
class ApiResponse:
    """One answer: what was asked (path as sent, params) and what came back.

    ``raw`` is the body exactly as received: the archive stores these bytes, not our
    re-serialization of ``body``, so an odd value can be traced to what the server sent.
    ``body`` is None for an accepted non-200 answer whose body is not JSON, and for a
    request made with ``parse=False`` (candle pages: their check reads ``raw`` itself).
    """

    path: str
    params: dict[str, Any]
    status: int
    body: Any
    retrieved_at: datetime
    raw: bytes = field(default=b"", repr=False)


class Signer:
    """Kalshi request signing: RSA-PSS/SHA-256 over ``timestamp + METHOD + path``."""

    def __init__(self, credentials: Credentials) -> None:
        # Imported here: unsigned runs (the default) never pay for loading cryptography.
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        try:
            pem = credentials.private_key_path.read_bytes()
        except OSError as e:
            raise ConfigError(
                f"cannot read private key file {credentials.private_key_path}: {e.strerror}"
            ) from None
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ConfigError(
                f"{credentials.private_key_path} is not an unencrypted PEM private key"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigError(f"{credentials.private_key_path} is not an RSA private key")
        self._key: rsa.RSAPrivateKey = key
        self._key_id = credentials.key_id

    def __repr__(self) -> str:
        return "Signer(<redacted>)"

    def headers(self, method: str, path: str, now_ms: int | None = None) -> dict[str, str]:
        """The three KALSHI-ACCESS-* headers for a request to ``path`` (no query string)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        ts = str(now_ms if now_ms is not None else int(time.time() * 1000))
        signature = self._key.sign(
            f"{ts}{method.upper()}{path}".encode(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
            hashes.SHA256(),
        )
        return {
            "KALSHI-ACCESS-KEY": self._key_id,
            "KALSHI-ACCESS-TIMESTAMP": ts,
            "KALSHI-ACCESS-SIGNATURE": base64.b64encode(signature).decode(),
        }


def parse_json(raw: bytes, *, exact: bool) -> Any:
    """Parse a body; ``exact`` keeps JSON numbers with a fraction as Decimal, never float."""
    if exact:
        return json.loads(raw, parse_float=Decimal)
    return orjson.loads(raw)


class KalshiClient:
    """``async with KalshiClient(api) as client: await client.get_json(path, params)``."""

    def __init__(
        self,
        api: ApiConfig,
        *,
        concurrency: int = 4,
        throttle: Throttle | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.api = api
        self.concurrency = concurrency
        self.throttle = throttle or Throttle(api.rate.rps, api.rate.burst_seconds)
        self.retry = retry or RetryPolicy(api.max_retries, api.backoff_base_s, api.backoff_max_s)
        self.stats = RequestStats()
        self._signer = Signer(api.credentials) if api.credentials is not None else None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KalshiClient:
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.api.timeout_s),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            raise_for_status=False,
        )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def full_path(self, path: str) -> str:
        """``/series/X`` → ``/trade-api/v2/series/X``: the path as sent, archived and signed."""
        return f"{self.api.base_path}{path}"

    async def _attempt(
        self,
        path: str,
        params: Params,
        exact: bool,
        scope: RequestStats | None,
        accept: frozenset[int] = frozenset(),
        parse: bool = True,
    ) -> ApiResponse:
        assert self._session is not None, "use KalshiClient as an async context manager"
        await self.throttle.acquire()
        full = self.full_path(path)
        headers = self._signer.headers("GET", full) if self._signer is not None else None
        self.stats.add_request()
        if scope is not None:
            scope.add_request()
        try:
            async with self._session.get(
                f"{self.api.base_url}{path}", params=dict(params), headers=headers
            ) as resp:
                status = resp.status
                raw = await resp.read()
        except TimeoutError as e:
            raise TransportError(f"timeout after {self.api.timeout_s}s on {full}") from e
        except aiohttp.ClientSSLError as e:
            # A certificate that does not verify will not verify on the next try either.
            raise FatalApiError(f"TLS certificate verification failed for {full}: {e}") from e
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
            raise TransportError(f"{type(e).__name__} on {full}: {e}") from e
        except aiohttp.ClientError as e:
            raise TransportError(f"{type(e).__name__} on {full}: {e}") from e
        if status == 429:
            self.throttle.on_throttled()
            self.stats.throttled += 1
            if scope is not None:
                scope.throttled += 1
        if status != 200 and status not in accept:
            raise HttpStatusError(status, full, error_line(raw))
        if status == 200:
            self.throttle.on_success()
        if not parse:
            return ApiResponse(full, dict(params), status, None, datetime.now(UTC), raw)
        try:
            body = parse_json(raw, exact=exact)
        except (ValueError, orjson.JSONDecodeError) as e:
            if status != 200:
                body = None  # an accepted error answer need not be JSON
            else:
                raise BadPageError(f"unparseable body from {full} ({len(raw)} bytes): {e}") from e
        return ApiResponse(full, dict(params), status, body, datetime.now(UTC), raw)

    async def get_json(
        self,
        path: str,
        params: Params | None = None,
        *,
        check: Callable[[ApiResponse], Awaitable[None] | None] | None = None,
        exact: bool = False,
        scope: RequestStats | None = None,
        accept: frozenset[int] = frozenset(),
        parse: bool = True,
    ) -> ApiResponse:
        """GET ``path`` (relative to the base) with retries; ``check`` may reject a body.

        ``check`` raising a retriable error (a page for another event, no progress) makes
        the loop fetch the same page again; a body that keeps failing ends in
        RetriesExhaustedError. ``check`` may be a coroutine function (a candle page is
        checked in a worker thread, off the event loop). ``parse=False`` leaves the body
        unparsed (``raw`` only), for a check that reads the bytes itself. ``scope`` also
        receives this call's counts. A status in ``accept`` (say 400 or 404, for
        ``check-api`` which reports them) is returned as a response instead of raised;
        it is never retried.
        """
        params = params or {}

        async def attempt() -> ApiResponse:
            response = await self._attempt(path, params, exact, scope, accept, parse)
            if check is not None:
                checked = check(response)
                if checked is not None:
                    await checked
            return response

        def on_retry(_e: BaseException) -> None:
            self.stats.retries += 1
            if scope is not None:
                scope.retries += 1

        return await self.retry.run(attempt, what=f"GET {self.full_path(path)}", on_retry=on_retry)


def error_line(raw: bytes, limit: int = 300) -> str:
    """One readable line from an error body, whatever shape the server used.

    Kalshi answers ``{"error": {"code", "message", "details"}}`` for most errors,
    ``{"error": "too many requests"}`` for a 429 and ``{"msg": "..."}`` for a parameter
    that fails validation; anything else (an HTML proxy page) is shown as an excerpt.
    """
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    text: str | None = None
    if isinstance(doc, dict):
        error, msg = doc.get("error"), doc.get("msg")
        if isinstance(error, dict):
            parts = [str(error[k]) for k in ("code", "message") if error.get(k)]
            details = error.get("details")
            text = ": ".join(parts) if parts else ""
            if details:
                text = f"{text} ({details})" if text else str(details)
        elif isinstance(error, str):
            text = error
        elif isinstance(msg, str):
            text = msg
    if not text:
        text = raw[:limit].decode("utf-8", errors="replace")
    return " ".join(text.split())[:limit]
