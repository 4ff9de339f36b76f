"""The user documentation cannot drift from the commands it documents.

The truth is click's own command tree: ``docs/configuration.md`` must hold the option
table generated from it, and every ``--option`` the README shows must be an option of one
of the two tools (or one of the few flags of other tools it shows, listed here).
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from extract.cli import main as extract_main
from load.cli import cli as load_cli
from tests.cli_reference import reference

ROOT = Path(__file__).resolve().parent.parent

#: Flags the README shows that belong to other tools: ruff, mypy, ``make bench ARGS=``.
OTHER_TOOLS_FLAGS = {"--check", "--fix", "--strict", "--quick"}


def _all_flags(cmd: click.Command) -> set[str]:
    ctx = click.Context(cmd)
    flags: set[str] = set()
    for p in cmd.get_params(ctx):
        if isinstance(p, click.Option):
            flags.update(p.opts)
            flags.update(p.secondary_opts)
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            flags |= _all_flags(sub)
    return flags


def test_configuration_page_holds_the_generated_option_table() -> None:
    table = reference({"kalshi-extract": extract_main, "kalshi-load": load_cli})
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert table in page, (
        "docs/configuration.md is out of date: replace its table with the output of "
        "`python -m tests.cli_reference`"
    )


def test_every_option_the_readme_shows_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", readme))
    known = _all_flags(extract_main) | _all_flags(load_cli) | OTHER_TOOLS_FLAGS
    assert shown - known == set()
