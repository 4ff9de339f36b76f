"""Logging and progress as a user sees them: levels, formats, UTC stamps, bar vs log lines.

The levels and formats run through click's CliRunner (stderr captured apart from stdout);
the bar runs the real ``python -m extract candles`` and ``python -m load run`` with
stderr on a pseudo-terminal, and reads back exactly what a terminal would have received.
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from extract.cli import main as extract_main
from extract.run.progress import Progress, Snapshot, render
from load.cli import cli as load_cli
from load.run.progress import LoadProgress
from schemas.logs import (
    JsonFormatter,
    LogSettings,
    TextFormatter,
    bars_allowed,
    resolve_levels,
)
from tests.kalshi_sim import DEFAULT_SERIES, SimConfig, SimServer, World, run_sim_in_thread
from tests.test_load_support import build_window, closed_events, new_archive, sim_config

REPO = Path(__file__).resolve().parents[1]
SIM = SimConfig(
    seed=11,
    series=(DEFAULT_SERIES[0],),
    now=datetime(2025, 11, 20, 15, 0, tzinfo=UTC),
    first_date=date(2025, 11, 8),
    last_date=date(2025, 11, 18),
    markets_per_event=2,
    candle_cap=500,
    historical_cutoff_days=3650,
)
SERIES = DEFAULT_SERIES[0].ticker
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?\+00:00"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with run_sim_in_thread(SIM) as server:
        yield server


def extract(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(extract_main, list(args), env=env, catch_exceptions=False)


def synced(sim: SimServer, tmp_path: Path) -> tuple[str, str]:
    """A database with the series' events and an archive with every window extracted."""
    db, archive = f"sqlite:///{tmp_path / 'k.db'}", str(tmp_path / "raw")
    assert (
        extract("events", "--series", SERIES, "--db", db, "--api-base", sim.base_url).exit_code == 0
    )
    r = extract("candles", "--series", SERIES, "--db", db, "--archive", archive,
                "--api-base", sim.base_url, "--rps", "1000")  # fmt: skip
    assert r.exit_code == 0, r.output
    return db, archive


def rerun(sim: SimServer, db: str, archive: str, *group: str, sub: tuple[str, ...] = ()) -> Result:
    """The candles command again: every window is already archived (a DEBUG line each)."""
    return extract(*group, "candles", "--series", SERIES, "--db", db, "--archive", archive,
                   "--api-base", sim.base_url, "--rps", "1000", *sub)  # fmt: skip


# --- levels ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "ours", "others"),
    [
        (LogSettings(), logging.INFO, logging.WARNING),
        (LogSettings(verbose=1), logging.DEBUG, logging.WARNING),
        (LogSettings(verbose=2), logging.DEBUG, logging.DEBUG),
        (LogSettings(verbose=3), logging.DEBUG, logging.DEBUG),
        (LogSettings(quiet=True), logging.WARNING, logging.WARNING),
        (LogSettings(level="warning"), logging.WARNING, logging.WARNING),
        (LogSettings(level="DEBUG"), logging.DEBUG, logging.WARNING),
        (LogSettings(verbose=1, level="ERROR"), logging.DEBUG, logging.WARNING),  # -v wins
        (LogSettings(quiet=True, level="DEBUG"), logging.WARNING, logging.WARNING),  # -q wins
    ],
)
def test_levels_of_our_loggers_and_of_third_party_loggers(
    settings: LogSettings, ours: int, others: int
) -> None:
    assert resolve_levels(settings) == (ours, others)


def test_v_at_group_level_shows_our_debug_lines_and_vv_third_party_ones(
    sim: SimServer, tmp_path: Path
) -> None:
    db, archive = synced(sim, tmp_path)
    windows = len(list(Path(archive).rglob("manifest.json")))
    assert windows == 11  # one window an event, first_date..last_date

    plain = rerun(sim, db, archive)
    assert "already archived" not in plain.stderr and " DEBUG " not in plain.stderr

    one = rerun(sim, db, archive, "-v")
    ours = [ln for ln in one.stderr.splitlines() if " DEBUG extract.run.candles: " in ln]
    assert len([ln for ln in ours if ln.endswith("already archived, skipped")]) == windows
    assert not re.search(r" DEBUG (asyncio|aiohttp|sqlalchemy)", one.stderr)

    two = rerun(sim, db, archive, "-vv")
    assert " DEBUG asyncio: Using selector" in two.stderr  # a third-party library's line

    sub = rerun(sim, db, archive, sub=("-v",))  # the subcommand's own -v still works
    assert sub.stderr.count("already archived, skipped") == windows


def test_log_level_from_the_environment_and_quiet(sim: SimServer, tmp_path: Path) -> None:
    db, archive = synced(sim, tmp_path)
    debug = CliRunner().invoke(
        extract_main,
        ["candles", "--series", SERIES, "--db", db, "--archive", archive,
         "--api-base", sim.base_url],
        env={"KALSHI_LOG_LEVEL": "DEBUG"},
    )  # fmt: skip
    assert debug.exit_code == 0 and "already archived, skipped" in debug.stderr
    quiet = CliRunner().invoke(
        extract_main,
        ["candles", "--series", SERIES, "--db", db, "--archive", archive,
         "--api-base", sim.base_url],
        env={"KALSHI_LOG_LEVEL": "DEBUG", "KALSHI_QUIET": "1"},
    )  # fmt: skip
    assert quiet.exit_code == 0 and quiet.stderr == ""


# --- formats and timestamps -------------------------------------------------------------------


def test_text_lines_are_stamped_in_utc_with_the_offset(sim: SimServer, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.db'}"
    r = extract("events", "--series", SERIES, "--db", db, "--api-base", sim.base_url)
    (line,) = [ln for ln in r.stderr.splitlines() if "extract.events.sync" in ln]
    synced = r" INFO extract\.events\.sync: KXHIGHNY: synced 11 events .*"
    assert re.fullmatch(ISO_UTC + synced, line)


def test_json_lines_in_a_foreign_time_zone_carry_utc(sim: SimServer, tmp_path: Path) -> None:
    """Under TZ=Asia/Tokyo (UTC+9) the stamp is still the UTC time, marked +00:00."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    cmd = [sys.executable, "-m", "extract", "--log-format", "json", "events",
           "--series", SERIES, "--db", db, "--api-base", sim.base_url]  # fmt: skip
    env = {**os.environ, "TZ": "Asia/Tokyo"}
    before = datetime.now(UTC)
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    after = datetime.now(UTC)
    assert r.returncode == 0, r.stderr
    docs = [orjson.loads(ln) for ln in r.stderr.splitlines()]  # every line is one object
    (synced_doc,) = [d for d in docs if d["logger"] == "extract.events.sync"]
    assert synced_doc["level"] == "INFO" and synced_doc["message"].startswith("KXHIGHNY: synced")
    stamp = datetime.fromisoformat(synced_doc["ts"])
    assert synced_doc["ts"].endswith("+00:00")
    assert before - timedelta(seconds=1) <= stamp <= after + timedelta(seconds=1)
    assert r.stdout.startswith("KXHIGHNY: 11 events")  # the result on stdout, logs apart


def test_formatters_on_a_known_instant() -> None:
    """1,700,000,000.25 s after the epoch is 2023-11-14 22:13:20.250 UTC."""
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "load.run.loader",
            logging.ERROR,
            __file__,
            1,
            "window %s failed",
            ("W1",),
            sys.exc_info(),
        )
    record.created = 1_700_000_000.25
    assert (
        TextFormatter()
        .format(record)
        .startswith(
            "2023-11-14T22:13:20.250+00:00 ERROR load.run.loader: window W1 failed\nTraceback"
        )
    )
    doc = orjson.loads(JsonFormatter().format(record))
    assert {k: doc[k] for k in ("ts", "level", "logger", "message")} == {
        "ts": "2023-11-14T22:13:20.250+00:00",
        "level": "ERROR",
        "logger": "load.run.loader",
        "message": "window W1 failed",
    }
    assert doc["exc"].startswith("Traceback") and doc["exc"].endswith("ValueError: boom")


# --- progress, unit ---------------------------------------------------------------------------


def test_extract_progress_logs_periodically_off_a_terminal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    plain = Console(file=io.StringIO(), force_terminal=False)
    q = Progress(plain, log_every_s=10, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="extract.run.progress"):
        q.update(Snapshot(1, 4, 2, 3, 0, 1.0))
        q.update(Snapshot(2, 4, 3, 4, 0, 1.1))  # within 10 s: not logged
        now[0] = 10.0
        q.update(Snapshot(3, 4, 5, 6, 1, 2.0))
        q.close()
    assert plain.file.getvalue() == ""  # type: ignore[attr-defined]
    lines = [r.getMessage() for r in caplog.records]
    # 3 of 4 windows in 2 s: 6 requests / 2 s = 3.0 req/s; 2/3 s a window, 1 left -> 0m00s
    assert lines == [
        "progress: [######------------------] 1/4 events  2 pages  3.0 req/s  0 429s  ETA 0m03s",
        "progress: [##################------] 3/4 events  5 pages  3.0 req/s  1 429s  ETA 0m00s",
    ]
    assert render(Snapshot(0, 0, 0, 0, 0, 0.0)).endswith(
        "0/0 events  0 pages  0.0 req/s  0 429s  ETA ?"
    )


def test_extract_progress_draws_a_bar_on_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    tty = Console(file=io.StringIO(), force_terminal=True, width=120)
    with caplog.at_level(logging.INFO, logger="extract.run.progress"):  # the CLI's default
        p = Progress(tty, clock=lambda: now[0])
        p.update(Snapshot(1, 4, 2, 3, 0, 1.0))
        p.update(Snapshot(2, 4, 3, 4, 0, 1.1))  # within 0.2 s: not drawn
        now[0] = 1.0
        p.update(Snapshot(3, 4, 5, 6, 1, 2.0))
        p.close()
    out = tty.file.getvalue()  # type: ignore[attr-defined]
    assert "1/4 events" in out and "3/4 events" in out and "2/4 events" not in out
    assert out.removesuffix("\x1b[?25h").endswith("\n")  # what follows starts on its own line


def test_quiet_shows_no_bar_even_on_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    tty = Console(file=io.StringIO(), force_terminal=True, width=120)
    with caplog.at_level(logging.WARNING, logger="extract.run.progress"):  # what -q sets
        p = Progress(tty)
        p.update(Snapshot(1, 4, 2, 3, 0, 1.0), force=True)
        p.close()
    assert tty.file.getvalue() == ""  # type: ignore[attr-defined]


def test_load_progress_counts_windows_rows_rate_and_eta(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from load.run.outcome import LoadSummary

    now = [100.0]
    shown = LoadProgress(Console(file=io.StringIO()), log_every_s=10, clock=lambda: now[0])
    summary = LoadSummary()
    with caplog.at_level(logging.INFO, logger="load.run.progress"):
        shown.update(summary, 40, force=True)
        now[0] = 110.0
        summary.windows_loaded, summary.windows_failed, summary.rows = 7, 1, 1_234_560
        shown.update(summary, 40)
    # 8 of 40 windows in 10 s: 1.25 s a window, 32 left = 40 s; 123,456 rows/s
    assert [r.getMessage() for r in caplog.records] == [
        "progress: [------------------------] 0/40 windows  0 rows  0 rows/s  ETA ?",
        "progress: [#####-------------------] 8/40 windows  1,234,560 rows  123,456 rows/s"
        "  ETA 0m40s",
    ]
    # a second pass (load run --follow): its own bar, and the summary adds both up
    second = LoadSummary(windows_loaded=2, rows=100, failures=["w: bad page"], writers=2)
    now[0] = 130.0
    with caplog.at_level(logging.INFO, logger="load.run.progress"):
        shown.update(second, 5, force=True)
    assert caplog.records[-1].getMessage().endswith("2/5 windows  100 rows  0 rows/s  ETA ?")
    both = shown.summary
    assert both is not None
    assert (both.windows_loaded, both.windows_failed, both.rows) == (9, 1, 1_234_660)
    assert both.failures == ["w: bad page"] and both.writers == 2 and both.elapsed_s == 30.0


# --- progress on a real terminal --------------------------------------------------------------


def run_in_pty(cmd: list[str]) -> tuple[int, bytes, str]:
    """Run ``cmd`` with stderr on a pseudo-terminal (150 columns): exit code, the bytes the
    terminal received, and stdout (a pipe)."""
    master, slave = os.openpty()
    env = {**os.environ, "COLUMNS": "150", "LINES": "40", "TERM": "xterm-256color"}
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)
    with subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=slave) as proc:
        os.close(slave)
        received = bytearray()
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            received += chunk
        os.close(master)
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        return proc.wait(timeout=120), bytes(received), out


def screen_segments(received: bytes) -> list[str]:
    """What the terminal received, cut at every carriage return and line feed (a new
    drawing position), escape sequences removed: a log line glued to the bar would be
    ONE segment holding both."""
    text = ANSI.sub(b"", received).decode()
    return [s for s in re.split(r"[\r\n]", text) if s.strip()]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_on_a_terminal_extract_log_lines_never_share_the_bar_line(
    sim: SimServer, tmp_path: Path, log_format: str
) -> None:
    db, archive = f"sqlite:///{tmp_path / 'k.db'}", str(tmp_path / "raw")
    assert (
        extract("events", "--series", SERIES, "--db", db, "--api-base", sim.base_url).exit_code == 0
    )
    # -v: the per-window lines (otherwise only in --log-file) come to the terminal too.
    code, received, out = run_in_pty(
        [sys.executable, "-m", "extract", "-v", "--log-format", log_format, "candles",
         "--series", SERIES, "--db", db, "--archive", archive, "--api-base", sim.base_url,
         "--rps", "60"]
    )  # fmt: skip
    assert code == 0, received.decode(errors="replace")[-2000:]
    segments = screen_segments(received)
    bars = [s for s in segments if "events" in s and "req/s" in s and "progress:" not in s]
    logs = [s for s in segments if "extract.run.window_job" in s]
    assert len(bars) >= 2 and len(logs) >= 11  # a bar drawn, a log line a window
    assert not [s for s in bars if "extract." in s or "INFO" in s]
    assert "11/11 events" in bars[-1]
    if log_format == "json":  # each JSON line whole: not wrapped, not cut by the bar
        assert all(orjson.loads(s)["logger"] == "extract.run.window_job" for s in logs)
    assert out.count("windows: 11 done") == 1  # the summary once, on stdout


def test_on_a_terminal_load_run_shows_progress_apart_from_log_lines(tmp_path: Path) -> None:
    world = World(sim_config())
    events = closed_events(world, "KXHIGHNY", 3)
    archive = new_archive(tmp_path / "raw")
    for e in events:
        build_window(archive, world, e)
    db = f"sqlite:///{tmp_path / 'k.db'}"
    code, received, out = run_in_pty(
        [sys.executable, "-m", "load", "run", "--db", db, "--archive", str(tmp_path / "raw")]
    )
    assert code == 0, received.decode(errors="replace")[-2000:]
    segments = screen_segments(received)
    bars = [s for s in segments if "windows" in s and "rows/s" in s and "ETA" in s]
    assert bars and "3/3 windows" in bars[-1]
    assert not [s for s in bars if "load.run.loader:" in s or "INFO" in s]
    assert [s for s in segments if "load.run.loader:" in s]  # the log lines are there, apart
    assert out == ""


def test_no_bar_on_a_terminal_gives_progress_log_lines(tmp_path: Path) -> None:
    """``--no-bar``: several tools on one terminal (make backfill) each log progress lines
    instead of drawing bars that would overwrite each other."""
    world = World(sim_config())
    archive = new_archive(tmp_path / "raw")
    for e in closed_events(world, "KXHIGHNY", 2):
        build_window(archive, world, e)
    db = f"sqlite:///{tmp_path / 'k.db'}"
    code, received, _ = run_in_pty(
        [sys.executable, "-m", "load", "--no-bar", "run", "--db", db,
         "--archive", str(tmp_path / "raw")]
    )  # fmt: skip
    assert code == 0, received.decode(errors="replace")[-2000:]
    segments = screen_segments(received)
    assert "━" not in "".join(segments)  # no bar drawn
    assert [s for s in segments if "load.run.progress: progress: [" in s and "2/2 windows" in s]
    again = CliRunner().invoke(
        load_cli, ["--no-bar", "run", "--db", db, "--archive", str(tmp_path / "raw")]
    )
    assert again.exit_code == 0, again.output
    assert bars_allowed()  # an in-process run puts the setting back when it ends


def test_off_a_terminal_load_run_logs_a_progress_line(tmp_path: Path) -> None:
    world = World(sim_config())
    events = closed_events(world, "KXHIGHNY", 2)
    archive = new_archive(tmp_path / "raw")
    for e in events:
        build_window(archive, world, e)
    db = f"sqlite:///{tmp_path / 'k.db'}"
    r = CliRunner().invoke(load_cli, ["run", "--db", db, "--archive", str(tmp_path / "raw")])
    assert r.exit_code == 0, r.output
    progress = r" INFO load\.run\.progress: progress: \[#+\] 2/2 windows  \d"
    assert re.search(ISO_UTC + progress, r.stderr)
    assert "\x1b[" not in r.stderr  # no escape sequences in a log file
