"""Both tools start fast: ``--version``, ``-h`` and every command's ``-h`` import neither
Polars nor SQLAlchemy (nor aiohttp, NumPy, PyMySQL, Alembic, matplotlib), checked in a
child process whose ``sys.modules`` starts empty of them.

The harness itself can fail: a command that runs (``status`` on a missing database) does
import SQLAlchemy, and the harness says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from extract.cli import main as extract_main
from load.cli import cli as load_cli

HEAVY = ("polars", "sqlalchemy", "aiohttp", "numpy", "pymysql", "alembic", "matplotlib")

#: Runs each argv (a JSON list of lists) through the tool's group in this one process and
#: prints, for each, the heavy modules imported by then.
HARNESS = """
import json, sys
from {module} import {attr} as group
heavy = {heavy!r}
out = []
for argv in json.loads(sys.argv[1]):
    try:
        group.main(argv, prog_name="tool", standalone_mode=True)
    except SystemExit:
        pass
    out.append([argv, sorted(m for m in heavy if m in sys.modules)])
print(json.dumps(out))
"""


def _paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    """Every command path below ``group``, as argv prefixes (``["db", "upgrade"]``)."""
    out: list[list[str]] = []
    for name, sub in sorted(group.commands.items()):
        out.append([*prefix, name])
        if isinstance(sub, click.Group):
            out.extend(_paths(sub, (*prefix, name)))
    return out


def _imported(module: str, attr: str, argvs: list[list[str]]) -> list[tuple[list[str], list[str]]]:
    code = HARNESS.format(module=module, attr=attr, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(argvs)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [(argv, heavy) for argv, heavy in json.loads(done.stdout.splitlines()[-1])]


@pytest.mark.parametrize(
    ("module", "attr", "group"),
    [("extract.cli", "main", extract_main), ("load.cli", "cli", load_cli)],
    ids=["kalshi-extract", "kalshi-load"],
)
def test_version_and_every_help_import_no_heavy_library(
    module: str, attr: str, group: click.Group
) -> None:
    argvs = [["--version"], ["-h"], *[[*p, "-h"] for p in _paths(group)]]
    assert len(argvs) > 5
    results = _imported(module, attr, argvs)
    assert [argv for argv, heavy in results if heavy] == []


def test_the_harness_sees_a_command_that_imports_its_library(tmp_path: Path) -> None:
    """``status`` opens the database: SQLAlchemy is imported, and the harness reports it."""
    db = f"sqlite:///{tmp_path}/missing.db"
    ((_argv, heavy),) = _imported("load.cli", "cli", [["status", "--db", db]])
    assert "sqlalchemy" in heavy
