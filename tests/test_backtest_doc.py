"""docs/backtest.md runs: its grid command on simulated events, then its Python block,
unchanged, and every trade and the P&L are checked against the simulator's own candles
and outcomes (not against the grid the block read)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from schemas.checkpoints import ts_to_dt
from tests.test_access_grid import EVENTS, WORLD, seed

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "backtest.md"


def blocks(language: str) -> list[str]:
    """The doc's fenced code blocks of ``language``, in order."""
    text = DOC.read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def expected_entries(max_ask: Decimal, max_age_s: int) -> dict[str, tuple[Any, Decimal]]:
    """The toy strategy replayed on the simulator's candles, minute by minute."""
    out = {}
    for ev in EVENTS:
        for m in WORLD.market_infos(ev):
            candles = WORLD.candles(m.ticker)
            i, last = 0, None
            t = (m.open_ts // 60 + 1) * 60
            while t <= -(-m.close_ts // 60) * 60:
                while i < len(candles) and candles[i]["end_period_ts"] <= t:
                    last, i = candles[i], i + 1
                ask = None if last is None else last["yes_ask"]["close_dollars"]
                fresh = last is not None and t - last["end_period_ts"] <= max_age_s
                if ask is not None and fresh and Decimal(ask) <= max_ask:
                    out[m.ticker] = (ts_to_dt(t), Decimal(ask))
                    break
                t += 60
    return out


def test_the_worked_backtest_runs_and_is_right(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(sqlite_url).dispose()
    (command,) = [line for block in blocks("sh") for line in block.splitlines() if " grid " in line]
    args = shlex.split(command)
    assert args[:2] == ["kalshi-load", "grid"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "load", *args[1:], "--db", sqlite_url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (code,) = blocks("python")
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), scope)  # the doc's own example, as a reader runs it

    want = expected_entries(scope["MAX_ASK"], scope["MAX_AGE_S"])
    trades = scope["trades"]
    assert len(want) >= 2, "the simulated events should hold a few cheap asks"
    got = {r["market_ticker"]: (r["bought_at"], r["price"]) for r in trades.iter_rows(named=True)}
    assert got == want
    results = {m.ticker: m.result_yes for ev in EVENTS for m in WORLD.market_infos(ev)}
    pnl = sum(Decimal(results[m]) - price for m, (_, price) in want.items())
    assert scope["pnl"] == pnl
    assert any(results[m] for m in want) or pnl < 0
