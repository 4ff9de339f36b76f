"""Command-line conventions of both tools: env vars, ``--version``, ``-h``, JSON summaries,
and the package's own programmatic example.

The env-var test walks click's whole command tree, so an option added later without a
variable fails here; the JSON summaries are checked against what the run left on disk
and in the database, not against the summary code.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path

import click
import orjson
import pytest
from aiohttp import web
from click.testing import CliRunner, Result
from sqlalchemy import func, select

import extract
import load
from extract.api.client import USER_AGENT, KalshiClient
from extract.cli import main as extract_main
from extract.config import ApiConfig
from extract.run.outcome import CandlesSummary
from load.cli import cli as load_cli
from schemas.db import make_engine
from schemas.tables import kalshi_candle
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, SimServer, World, run_sim_in_thread
from tests.test_load_support import build_window, closed_events, new_archive, sim_config

REPO = Path(__file__).resolve().parents[1]
#: The installed distribution's metadata, as pip wrote it from pyproject.toml at install.
VERSION = metadata.version("kalshi-candles")
TOOLS = {"kalshi-extract": extract_main, "kalshi-load": load_cli}
SERIES = DEFAULT_SERIES[0].ticker
SIM = SimConfig(
    seed=13,
    series=(DEFAULT_SERIES[0],),
    now=datetime(2025, 11, 20, 15, 0, tzinfo=UTC),
    first_date=date(2025, 11, 12),
    last_date=date(2025, 11, 18),
    markets_per_event=2,
    candle_cap=500,
    historical_cutoff_days=3650,
)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with run_sim_in_thread(SIM) as server:
        yield server


def run(tool: click.Command, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(tool, list(args), env=env, catch_exceptions=False)


def commands(
    cmd: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command of the tree, with the words that reach it."""
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from commands(sub, (*path, name))


# --- environment variables -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_option_of_every_command_has_an_env_var_shown_in_help(name: str) -> None:
    tool = TOOLS[name]
    checked = 0
    for path, cmd in commands(tool):
        r = run(tool, *path, "--help")
        assert r.exit_code == 0, (path, r.output)
        shown = " ".join(r.output.split())  # help text re-joined across its line wraps
        names: set[str] = set()
        for param in cmd.params:
            if not isinstance(param, click.Option) or not param.expose_value:
                continue  # --version (and --help, which is not in params)
            envvar = param.envvar
            assert isinstance(envvar, str), (path, param.opts)
            assert envvar == "DATABASE_URL" or re.fullmatch(r"KALSHI_[A-Z0-9_]+", envvar)
            assert envvar not in names, (path, envvar)  # one variable, one option
            names.add(envvar)
            if not param.hidden:
                assert f"env var: {envvar}" in shown, (path, param.opts)
            checked += 1
    assert checked >= 20  # the tree was really walked


def test_shared_options_share_their_variable_and_others_are_per_command() -> None:
    run(extract_main, "--help")  # the tool assigns its variables when it starts
    run(load_cli, "--help")
    db = {
        cmd.name: p.envvar
        for _, cmd in commands(load_cli)
        for p in cmd.params
        if p.name == "db_url"
    }
    assert set(db.values()) == {"DATABASE_URL"}
    candles = extract_main.commands["candles"]
    by_flag = {p.opts[0]: p.envvar for p in candles.params}
    assert by_flag["--series"] == "KALSHI_EXTRACT_CANDLES_SERIES"
    assert by_flag["--api-base"] == "KALSHI_API_BASE"
    assert by_flag["--archive"] == "KALSHI_ARCHIVE_DIR"
    assert by_flag["--rps"] == "KALSHI_RPS"
    group = {p.opts[0]: p.envvar for p in load_cli.params}
    assert group["-v"] == "KALSHI_VERBOSE" and group["--log-level"] == "KALSHI_LOG_LEVEL"


def test_env_vars_really_set_the_options(sim: SimServer, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.db'}"
    env = {"DATABASE_URL": db, "KALSHI_API_BASE": sim.base_url}
    assert run(extract_main, "init-db", env=env).exit_code == 0
    assert (tmp_path / "k.db").exists()  # --db came from DATABASE_URL

    r = run(extract_main, "events", env=env | {"KALSHI_EXTRACT_EVENTS_SERIES": SERIES})
    assert r.exit_code == 0 and r.stdout.startswith(f"{SERIES}: 7 events")

    before = sim.counters.by_route["event_candlesticks"]
    env |= {
        "KALSHI_EXTRACT_CANDLES_SERIES": SERIES,
        "KALSHI_EXTRACT_CANDLES_DRY_RUN": "1",
        "KALSHI_ARCHIVE_DIR": str(tmp_path / "raw"),
        "KALSHI_LOG_FORMAT": "json",
    }
    r = run(extract_main, "candles", env=env)
    assert r.exit_code == 0, r.output
    assert sim.counters.by_route["event_candlesticks"] == before  # a dry run: no candle read
    assert SERIES in r.stdout
    assert all(orjson.loads(line)["level"] for line in r.stderr.splitlines())  # JSON logs

    status = run(load_cli, "status", env={"DATABASE_URL": db, "KALSHI_LOAD_STATUS_FORMAT": "json"})
    assert status.exit_code == 0, status.output
    assert orjson.loads(status.stdout) == []  # nothing loaded yet, as JSON

    quiet = run(load_cli, "status", env={"DATABASE_URL": db, "KALSHI_VERBOSE": "1"})
    assert quiet.exit_code == 0


# --- version and help ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_version_comes_from_the_package_metadata(name: str) -> None:
    r = run(TOOLS[name], "--version")
    assert r.exit_code == 0 and r.stdout == f"{name} {VERSION}\n"


def test_version_in_the_packages_and_the_user_agent_on_the_wire() -> None:
    assert extract.__version__ == load.__version__ == VERSION
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers["User-Agent"])
        return web.json_response({"ok": True})

    async def probe() -> None:
        app = web.Application()
        app.router.add_get("/trade-api/v2/ping", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            api = ApiConfig(base_url=f"http://127.0.0.1:{port}/trade-api/v2")
            async with KalshiClient(api) as client:
                await client.get_json("/ping")
        finally:
            await runner.cleanup()

    asyncio.run(probe())
    assert seen == [USER_AGENT] and USER_AGENT.endswith(f"/{VERSION}")


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_dash_h_is_help_on_both_tools_and_their_commands(name: str) -> None:
    tool = TOOLS[name]
    for path, _ in commands(tool):
        r = run(tool, *path, "-h")
        assert r.exit_code == 0 and r.stdout.startswith("Usage: "), (path, r.output)


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_dash_h_does_not_depend_on_which_test_ran_a_command_first(name: str) -> None:
    """Click builds a command's help option once, from the first context that asks
    (``Command._help_option``), so a command first seen through another context (run on
    its own, or listed through a bare ``click.Context`` as the docs test does) kept only
    ``--help``, and ``-h`` failed later in the same process, by test order (``load asof
    -h``: "No such option"). Each command must give itself ``-h``, whatever the context."""
    tool = TOOLS[name]
    for first in ("bare context", "alone"):
        for _, cmd in commands(tool):
            cmd._help_option = None  # as in a fresh process: no test has run it yet
        for path, cmd in commands(tool):
            if first == "bare context":
                cmd.get_params(click.Context(cmd))
            alone = run(cmd, "-h")
            assert alone.exit_code == 0 and alone.stdout.startswith("Usage: "), (first, path)
            r = run(tool, *path, "-h")
            assert r.exit_code == 0 and r.stdout.startswith("Usage: "), (first, path, r.output)


# --- run summaries ---------------------------------------------------------------------------


def test_extract_candles_summary_once_as_text_or_as_json(sim: SimServer, tmp_path: Path) -> None:
    db, raw = f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "raw"
    assert run(extract_main, "events", "--series", SERIES, "--db", db,
               "--api-base", sim.base_url).exit_code == 0  # fmt: skip
    common = ["--series", SERIES, "--db", db, "--archive", str(raw), "--api-base", sim.base_url,
              "--rps", "1000"]  # fmt: skip
    doc_run = run(extract_main, "candles", *common, "--format", "json")
    assert doc_run.exit_code == 0, doc_run.output
    doc = orjson.loads(doc_run.stdout)  # stdout is exactly one JSON object
    manifests = list(raw.rglob("manifest.json"))
    pages = list(raw.rglob("*.json.gz"))
    assert doc["ok"] is True and doc["failed"] == 0 and doc["dry_run"] is False
    assert doc["done"] == len(manifests) == 7  # one window an event, 12..18 Nov
    assert doc["pages"] == len(pages) > 0
    assert doc["requests"] == sim.counters.by_route["event_candlesticks"]
    assert "windows:" not in doc_run.stderr  # logs on stderr, never the summary again

    text_run = run(extract_main, "candles", *common)  # every window already archived
    assert text_run.exit_code == 0
    both = text_run.stdout + text_run.stderr
    assert both.count("windows: 0 done, 7 skipped (already archived)") == 1


def test_load_run_summary_as_json(tmp_path: Path) -> None:
    world = World(sim_config())
    events = closed_events(world, "KXHIGHNY", 3)
    archive = new_archive(tmp_path / "raw")
    for e in events:
        build_window(archive, world, e)
    db = f"sqlite:///{tmp_path / 'k.db'}"
    r = run(load_cli, "run", "--db", db, "--archive", str(tmp_path / "raw"), "--format", "json")
    assert r.exit_code == 0, r.output
    doc = orjson.loads(r.stdout)
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(kalshi_candle)).scalar_one()
    finally:
        engine.dispose()
    assert doc["ok"] is True and doc["windows_loaded"] == 3 and doc["windows_failed"] == 0
    assert doc["rows"] == rows > 0
    assert doc["rows_per_s"] == int(rows / doc["elapsed_s"])


def test_load_run_summary_as_json_when_a_window_fails(tmp_path: Path) -> None:
    world = World(sim_config())
    events = closed_events(world, "KXHIGHNY", 2)
    archive = new_archive(tmp_path / "raw")
    for e in events:
        build_window(archive, world, e)
    page = sorted((tmp_path / "raw").rglob(f"{events[0]}/**/*.json.gz"))[0]
    page.write_bytes(b"not gzip")  # this window fails, the other one loads
    db = f"sqlite:///{tmp_path / 'k.db'}"
    r = run(load_cli, "run", "--db", db, "--archive", str(tmp_path / "raw"), "--format", "json")
    assert r.exit_code == 1
    doc = orjson.loads(r.stdout)  # still one JSON object on stdout
    assert doc["ok"] is False and doc["windows_loaded"] == 1 and doc["windows_failed"] == 1
    assert len(doc["failures"]) == 1 and events[0] in doc["failures"][0]
    assert "error:" in r.stderr


# --- the package's example ---------------------------------------------------------------------


def test_the_extract_package_example_runs(sim: SimServer, tmp_path: Path) -> None:
    """The code block of ``extract/__init__.py``'s docstring, run as written, with only
    the database, archive and API base pointed at this test's."""
    doc = extract.__doc__
    assert doc is not None
    block = doc.split("::\n\n", 1)[1]
    code = "\n".join(line.removeprefix("    ") for line in block.splitlines())
    for real, ours in (
        ("sqlite:///data/kalshi.db", f"sqlite:///{tmp_path / 'k.db'}"),
        ('"data/raw"', repr(str(tmp_path / "raw"))),
        ("https://api.elections.kalshi.com/trade-api/v2", sim.base_url),
    ):
        assert code.count(real) == 1, real
        code = code.replace(real, ours)
    namespace: dict[str, object] = {}
    exec(compile(code, "extract/__init__.py example", "exec"), namespace)
    summary = namespace["summary"]
    assert isinstance(summary, CandlesSummary)
    assert summary.done == len(list((tmp_path / "raw").rglob("manifest.json"))) == 7


# --- packaging -------------------------------------------------------------------------------


def test_packages_ship_their_type_hints_license_and_urls() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    for package in ("extract", "load", "schemas"):
        assert (REPO / package / "py.typed").is_file()  # PEP 561
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["*"]
    assert project["project"]["license"] and (REPO / "LICENSE").is_file()
    assert project["project"]["urls"]
