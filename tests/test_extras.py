"""Optional extras: without ``[plot]`` or ``[s3]`` the tools still run, and the one command
that needs the missing package says which ``pip install`` to run, in one line (exit 2).

A missing package is simulated in a subprocess by a meta-path finder that refuses to
import it, as a venv without the extra would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.db import make_engine
from tests.test_access_data import SERIES, seed

REPO = Path(__file__).resolve().parent.parent

BLOCKER = """
import sys
from importlib.abc import MetaPathFinder

BLOCKED = set(sys.argv.pop(1).split(","))

class Missing(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
tool = sys.argv.pop(1)
if tool == "load":
    from load.cli import main
else:
    from extract.cli import main
main()
"""


def _run(blocked: str, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-c", BLOCKER, blocked, tool, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


@pytest.mark.parametrize("data", ["seeded", "empty"])
def test_coverage_without_matplotlib_names_the_plot_extra(tmp_path: Path, data: str) -> None:
    """Said before any database work: even with nothing to draw yet."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    (seed(db) if data == "seeded" else make_engine(db)).dispose()
    out = tmp_path / "c.png"
    res = _run("matplotlib", "load", "coverage", "--series", SERIES, "--out", str(out), "--db", db)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert _error_lines(res.stderr) == [
        "error: coverage needs matplotlib, which is not installed: "
        "pip install 'kalshi-candles[plot]'"
    ]
    assert not out.exists()


def test_an_s3_archive_without_s3fs_names_the_s3_extra(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.db'}"
    res = _run("s3fs", "load", "run", "--archive", "s3://bucket/raw", "--db", db)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert _error_lines(res.stderr) == [
        "error: an s3:// archive needs s3fs, which is not installed: "
        "pip install 'kalshi-candles[s3]'"
    ]


@pytest.mark.parametrize("tool", ["load", "extract"])
def test_both_tools_run_without_any_extra(tool: str) -> None:
    """What a plain ``pip install kalshi-candles`` gives: every command still starts."""
    res = _run("matplotlib,s3fs", tool, "--help")
    assert res.returncode == 0, res.stderr
    assert "Commands:" in res.stdout


def test_load_run_on_a_local_archive_without_any_extra(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    db = f"sqlite:///{tmp_path / 'k.db'}"
    res = _run("matplotlib,s3fs", "load", "run", "--archive", str(raw), "--db", db)
    assert "Traceback" not in res.stderr
    assert "not installed" not in res.stderr
    assert (tmp_path / "k.db").exists()  # it got as far as the database
