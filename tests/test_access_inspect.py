"""``inspect``: the archived raw pages of an event, request by request."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from click.testing import CliRunner

from extract.config import ApiConfig, ExtractConfig, RateLimit, RouteChoice
from extract.events.sync import sync_events
from extract.run.candles import run_candles
from load.report.cli import inspect_cmd
from load.report.inspect import inspect_event
from schemas.archive import PageEnvelope
from schemas.core import WindowPolicy
from schemas.errors import InputError
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, SimServer
from tests.test_access_data import EVENTS, SERIES, WORLD, archive_event, market_tickers

EVENT = EVENTS[1]


def test_inspect_lists_every_page(archive_dir: Path) -> None:
    archive, key, names = archive_event(archive_dir, EVENT, cap=4000)
    assert len(names) >= 2  # the cap cut the window: several pages
    (window,) = inspect_event(archive, EVENT)
    assert window.dir == key.dir and window.manifest is not None
    assert [p.file.rsplit("/", 1)[-1] for p in window.pages] == names
    total = 0
    for page in window.pages:
        assert page.in_manifest and page.status == 200 and page.error is None
        assert page.path == f"/series/{SERIES}/events/{EVENT}/candlesticks"
        assert set(page.candles) == set(market_tickers(EVENT))
        assert page.adjusted_end_ts is not None and page.body is None
        truth = WORLD.event_candles(EVENT, page.params["start_ts"], page.params["end_ts"], 1, 4000)
        assert page.candles == {
            t: len(cs)
            for t, cs in zip(truth.market_tickers, truth.market_candlesticks, strict=True)
        }
        total += sum(page.candles.values())
    # pages overlap by one boundary timestamp: at least every candle once
    assert total >= sum(len(WORLD.candles(m)) for m in market_tickers(EVENT))


def test_inspect_start_ts_body_and_incomplete(archive_dir: Path) -> None:
    archive, key, names = archive_event(archive_dir, EVENT, cap=4000, complete=False)
    archive.write_atomic(f"{key.dir}/.tmp-junk", b"half a page")
    second = int(names[1].split(".")[0])
    (window,) = inspect_event(archive, EVENT, start_ts=second, with_body=True)
    assert window.manifest is None  # an interrupted extract: shown, flagged
    (page,) = window.pages
    assert not page.in_manifest and page.params["start_ts"] == second
    assert page.body["market_tickers"] == list(page.candles)
    assert page.body["adjusted_end_ts"] == page.adjusted_end_ts
    with pytest.raises(InputError, match="no archived window"):
        inspect_event(archive, EVENTS[0])


def test_inspect_cli(archive_dir: Path) -> None:
    archive, key, names = archive_event(archive_dir, EVENT, cap=4000)
    archive.write_atomic(f"{key.dir}/{names[0]}", b"not gzip")  # a corrupt page is shown
    runner = CliRunner()
    res = runner.invoke(inspect_cmd, ["--event", EVENT, "--archive", str(archive_dir)])
    assert res.exit_code == 0, res.output
    assert f"== {key.dir}  [complete" in res.stdout
    assert "ERROR" in res.stdout and "not a valid gzip" in res.stdout
    assert res.stdout.count("-> 200 at") == len(names) - 1
    assert "adjusted_end_ts=" in res.stdout and " candles (" in res.stdout
    page_lines = [ln for ln in res.stdout.splitlines() if "-> 200 at" in ln]
    assert all("candles (" in ln for ln in page_lines)  # one line a page

    start = names[1].split(".")[0]
    args = ["--event", EVENT, "--start-ts", start, "--body", "--format", "json"]
    res = runner.invoke(inspect_cmd, [*args, "--archive", str(archive_dir)])
    assert res.exit_code == 0, res.output
    (window,) = orjson.loads(res.stdout)
    (page,) = window["pages"]
    assert page["params"]["start_ts"] == int(start) and page["status"] == 200
    assert page["body"]["market_tickers"] == list(page["candles"])
    assert page["candles_total"] == sum(len(c) for c in page["body"]["market_candlesticks"])

    res = runner.invoke(inspect_cmd, ["--event", "../etc", "--archive", str(archive_dir)])
    assert res.exit_code == 2


# --- the bytes the server sent (issue 15 item 7) ------------------------------------------


def _odd_json(value: Any, depth: int = 0) -> str:
    """JSON no serializer of ours writes: keys reversed, odd spaces and line breaks."""
    pad = "\n" + "   " * depth
    if isinstance(value, dict):
        items = [f'{pad}  "{k}"  :{_odd_json(v, depth + 1)}' for k, v in reversed(value.items())]
        return "{" + " ,".join(items) + pad + "}"
    if isinstance(value, list):
        return "[ " + ",  ".join(_odd_json(v, depth + 1) for v in value) + " ]"
    return " " + orjson.dumps(value).decode()


class OddProxy:
    """Forwards every request to the simulator and re-serializes its JSON oddly.

    Records the bytes it sent per (path, start_ts): the truth ``inspect --body`` must match.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.sent: dict[tuple[str, str | None], bytes] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def handle(self, request: web.Request) -> web.Response:
        tail = request.path.removeprefix("/trade-api/v2")
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.upstream + tail, params=request.query) as resp,
        ):
            raw = await resp.read()
            status = resp.status
        body = _odd_json(orjson.loads(raw)).encode() if status == 200 else raw
        self.sent[(request.path, request.query.get("start_ts"))] = body
        return web.Response(body=body, status=status, content_type="application/json")

    async def __aenter__(self) -> OddProxy:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/trade-api/v2"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def test_inspect_body_shows_the_exact_bytes_the_server_sent(
    tmp_path: Path, sqlite_url: str
) -> None:
    event = "KXHIGHNY-25NOV17"
    config = SimConfig(
        seed=3,
        series=(DEFAULT_SERIES[0],),
        now=datetime(2025, 11, 20, 15, 0, tzinfo=UTC),
        first_date=date(2025, 11, 16),
        last_date=date(2025, 11, 18),
        markets_per_event=2,
        candle_cap=1500,
        historical_cutoff_days=3650,
    )
    archive = tmp_path / "raw"
    async with SimServer(config) as sim, OddProxy(sim.base_url) as proxy:
        api = ApiConfig(base_url=proxy.base_url, rate=RateLimit(500, 1.0), max_retries=2)
        cfg = ExtractConfig(
            route=RouteChoice.EVENT,
            series="KXHIGHNY",
            event=event,
            db_url=sqlite_url,
            archive_dir=archive,
            api=api,
            now=sim.world.now,
        )
        await sync_events(cfg)
        summary = await run_candles(cfg)
        assert summary.ok
    path = f"/trade-api/v2/series/KXHIGHNY/events/{event}/candlesticks"
    served = {int(s): b for (p, s), b in proxy.sent.items() if p == path and s is not None}
    assert len(served) >= 2  # the cap cut the window: several pages, each checked
    runner = CliRunner()
    for start, sent in served.items():
        assert b'  "market_tickers"  :' in sent  # the odd formatting really was served
        args = ["--event", event, "--start-ts", str(start), "--body", "--archive", str(archive)]
        res = runner.invoke(inspect_cmd, args)
        assert res.exit_code == 0, res.output
        assert sent.decode() in res.stdout
        res = runner.invoke(inspect_cmd, [*args, "--format", "json"])
        assert res.exit_code == 0, res.output
        assert sent.decode() in res.stdout  # embedded verbatim in the JSON document
        (window,) = orjson.loads(res.stdout)
        (page,) = window["pages"]
        assert page["body"] == orjson.loads(sent)


def test_pages_archived_without_exact_bytes_still_read(archive_dir: Path) -> None:
    """An archive written before exact bytes were kept: read, inspected, loaded as before."""
    archive, key, names = archive_event(archive_dir, EVENT, cap=4000)
    rel = f"{key.dir}/{names[0]}"
    doc = orjson.loads(gzip.decompress(archive.read_bytes(rel)))
    doc.pop("body_bytes", None)  # exactly the old format: the body re-serialized by us
    archive.write_atomic(rel, gzip.compress(orjson.dumps(doc)))
    page = archive.read_page(rel, keep_raw=True)
    assert page.raw_body is None and page.body == doc["body"]
    (window,) = inspect_event(archive, EVENT, start_ts=page.start_ts, with_body=True)
    assert orjson.loads(orjson.dumps(window.pages[0].body)) == doc["body"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a" :1}',
        b'{ "body" : {"body":"x"} , "n" : 1.50e0 }',  # the marker inside the body itself
        b"[1, 2]\n",
    ],
)
def test_exact_body_round_trip(raw: bytes) -> None:
    page = PageEnvelope(
        kind="event_candlesticks",
        series_ticker="KXHIGHNY",
        event_ticker="KXHIGHNY-25NOV17",
        market_ticker=None,
        period_interval=1,
        window_policy=WindowPolicy.FULL_MARKET_WINDOW,
        path="/x",
        params={"start_ts": 1},
        status=200,
        retrieved_at_utc=datetime(2025, 11, 20, tzinfo=UTC),
        body=orjson.loads(raw),
        raw_body=raw,
    )
    back = PageEnvelope.from_bytes(page.to_bytes(), "page", keep_raw=True)
    assert back.raw_body == raw and back.body == orjson.loads(raw)
    assert PageEnvelope.from_bytes(page.to_bytes(), "page").raw_body is None
