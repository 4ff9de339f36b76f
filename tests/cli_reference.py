"""Print the option reference of both tools as Markdown: every option of every command,
its environment variable and default (``python -m tests.cli_reference``).

Read from click's command tree itself, so the table cannot miss an option; the README's
configuration reference is pasted from this output.
"""

from __future__ import annotations

from collections.abc import Iterator

import click

from extract.cli import main as extract_main
from load.cli import cli as load_cli
from schemas.cli import KalshiGroup, assign_envvars


def _commands(
    cmd: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _commands(sub, (*path, name))


_UNSET = getattr(click.core, "UNSET", None)  # click >= 8.3: no default given


def _default(option: click.Option) -> str:
    if option.required:
        return "required"
    if option.is_flag or option.count or option.default in (None, (), _UNSET):
        return ""
    return f"`{option.default}`"


def reference(tools: dict[str, KalshiGroup]) -> str:
    """One Markdown table row per option: command, flags, env var, default, help."""
    lines = [
        "| Command | Option | Environment variable | Default | Meaning |",
        "|---|---|---|---|---|",
    ]
    for name, tool in tools.items():
        assign_envvars(tool, tool.envvar_prefix)
        for path, cmd in _commands(tool):
            for p in cmd.params:
                if not isinstance(p, click.Option) or not p.expose_value or p.hidden:
                    continue
                if path and p.name in ("verbose", "quiet"):
                    continue  # the group's -v/-q, repeated on each command: listed once
                flags = ", ".join(f"`{o}`" for o in (*p.opts, *p.secondary_opts))
                meaning = " ".join((p.help or "").split()).replace("|", "\\|")
                where = " ".join((name, *path))
                lines.append(f"| `{where}` | {flags} | `{p.envvar}` | {_default(p)} | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference({"kalshi-extract": extract_main, "kalshi-load": load_cli}), end="")
