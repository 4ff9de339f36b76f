"""The client's classification of answers, without a server (aioresponses).

What each answer must lead to: 429, 5xx, timeouts and connection resets are retried
(with the throttle told about a 429); 400 and 404 are never retried and end in one
readable line, whatever shape the error body has. The 400 bodies are Kalshi's own: the
genuine batch over-cap answer (``tests/kalshi_samples/``) and the ``{"msg": ...}``
parameter-validation shape the API notes document.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses as _aioresponses

from extract.api.client import ApiResponse, KalshiClient, error_line
from extract.api.retry import Verdict, classify
from extract.config import ApiConfig, RateLimit
from extract.errors import BadPageError, HttpStatusError
from schemas.errors import RetriesExhaustedError

SAMPLES = Path(__file__).resolve().parent / "kalshi_samples"
BASE = "http://kalshi.test/trade-api/v2"
URL = re.compile(r"^http://kalshi\.test/trade-api/v2/series/KXHIGHNY(\?.*)?$")
OK_BODY = b'{"series": {"ticker": "KXHIGHNY"}}'
MSG_400 = b'{"msg": "Parameter validation failed: period_interval must be one of 1, 60, 1440"}'


class _Response(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` aiohttp 3.14
    requires (pnuckowski/aioresponses#289); an already-sent request only reads its
    ``output_size``."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class aioresponses(_aioresponses):
    """aioresponses whose mocked answers work on aiohttp 3.14 (see :class:`_Response`)."""

    def add(self, url: Any, method: str = "GET", **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _Response)
        super().add(url, method, **kwargs)


def api(max_retries: int = 3) -> ApiConfig:
    return ApiConfig(
        base_url=BASE,
        rate=RateLimit(1000, 1.0),
        timeout_s=5,
        max_retries=max_retries,
        backoff_base_s=0.001,
        backoff_max_s=0.002,
    )


async def get(mock: aioresponses, max_retries: int = 3) -> tuple[ApiResponse, KalshiClient]:
    async with KalshiClient(api(max_retries)) as client:
        return await client.get_json("/series/KXHIGHNY"), client


def calls(mock: aioresponses) -> int:
    return sum(len(v) for v in mock.requests.values())


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_throttled_and_server_errors_are_retried(status: int) -> None:
    with aioresponses() as mock:
        mock.get(URL, status=status, body=b'{"error": "too many requests"}')
        mock.get(URL, status=200, body=OK_BODY)
        resp, client = await get(mock)
        assert calls(mock) == 2
    assert resp.status == 200 and resp.body == {"series": {"ticker": "KXHIGHNY"}}
    assert resp.raw == OK_BODY  # the bytes as received
    assert client.stats.requests == 2 and client.stats.retries == 1
    assert client.stats.throttled == (1 if status == 429 else 0)


async def test_a_429_slows_the_throttle_down() -> None:
    with aioresponses() as mock:
        mock.get(URL, status=429, body=b'{"error": "too many requests"}')
        mock.get(URL, status=200, body=OK_BODY)
        async with KalshiClient(api()) as client:
            before = client.throttle.rate
            await client.get_json("/series/KXHIGHNY")
            assert client.throttle.rate < before


@pytest.mark.parametrize(
    "failure",
    [
        TimeoutError(),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        aiohttp.ClientPayloadError("Response payload is not completed"),
    ],
    ids=["timeout", "disconnected", "reset", "truncated"],
)
async def test_timeouts_and_resets_are_retried(failure: Exception) -> None:
    with aioresponses() as mock:
        mock.get(URL, exception=failure)
        mock.get(URL, exception=failure)
        mock.get(URL, status=200, body=OK_BODY)
        resp, client = await get(mock)
        assert calls(mock) == 3
    assert resp.status == 200 and client.stats.retries == 2


async def test_retries_run_out_with_the_last_error() -> None:
    with aioresponses() as mock:
        mock.get(URL, status=503, body=b'{"error": {"code": "service_unavailable"}}', repeat=True)
        with pytest.raises(RetriesExhaustedError, match=r"gave up after 3 attempts.*HTTP 503"):
            await get(mock, max_retries=2)
        assert calls(mock) == 3


async def test_a_truncated_json_body_is_retried_never_returned() -> None:
    with aioresponses() as mock:
        mock.get(URL, status=200, body=OK_BODY[:10])
        mock.get(URL, status=200, body=OK_BODY)
        resp, client = await get(mock)
    assert resp.body == {"series": {"ticker": "KXHIGHNY"}} and client.stats.retries == 1
    assert classify(BadPageError("x")) is Verdict.RETRY


@pytest.mark.parametrize(
    ("status", "body", "line"),
    [
        (
            400,
            (SAMPLES / "error-400-batch-over-cap.json").read_bytes(),
            "HTTP 400 from /trade-api/v2/series/KXHIGHNY: bad_request: bad request "
            "(requested candlesticks across all markets: 36000, max candlesticks: 10000)",
        ),
        (
            400,
            MSG_400,
            "HTTP 400 from /trade-api/v2/series/KXHIGHNY: Parameter validation failed: "
            "period_interval must be one of 1, 60, 1440",
        ),
        (
            404,
            b'{"error": {"code": "not_found", "message": "not found", "details": "series"}}',
            "HTTP 404 from /trade-api/v2/series/KXHIGHNY: not_found: not found (series)",
        ),
        (
            403,
            b"<html>\n<body>Forbidden</body>\n</html>",
            "HTTP 403 from /trade-api/v2/series/KXHIGHNY: <html> <body>Forbidden</body> </html>",
        ),
    ],
    ids=["400-error-object", "400-msg", "404", "403-html"],
)
async def test_client_errors_are_never_retried_and_read_as_one_line(
    status: int, body: bytes, line: str
) -> None:
    with aioresponses() as mock:
        mock.get(URL, status=status, body=body, repeat=True)
        with pytest.raises(HttpStatusError) as info:
            await get(mock)
        assert calls(mock) == 1  # never retried
    assert info.value.status == status
    assert str(info.value) == line and "\n" not in str(info.value)
    assert classify(info.value) is Verdict.FATAL


async def test_accepted_statuses_come_back_as_responses_with_their_bytes() -> None:
    sample = (SAMPLES / "error-400-batch-over-cap.json").read_bytes()
    with aioresponses() as mock:
        mock.get(URL, status=400, body=sample)
        mock.get(URL, status=404, body=b"not json")
        async with KalshiClient(api()) as client:
            first = await client.get_json("/series/KXHIGHNY", accept=frozenset({400, 404}))
            second = await client.get_json("/series/KXHIGHNY", accept=frozenset({400, 404}))
        assert calls(mock) == 2
    assert first.status == 400 and first.raw == sample
    assert first.body["error"]["code"] == "bad_request"
    assert second.status == 404 and second.body is None and second.raw == b"not json"


def test_error_line_shapes() -> None:
    assert error_line(b'{"error": "too many requests"}') == "too many requests"
    assert error_line(b'{"error": {"details": "only details"}}') == "only details"
    assert error_line(b"") == ""
    assert len(error_line(b"x" * 1000)) == 300
