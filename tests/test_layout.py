"""The layout itself: no import circle anywhere in extract, load or schemas, and every room
says in its ``__init__`` what lives there and what it may import.

The graph is read from the source with :mod:`ast` (module-level, function-level and
``TYPE_CHECKING`` imports alike), so a circle hidden behind a lazy import still counts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("extract", "load", "schemas")


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The project modules ``name`` imports (``from a import b`` counts ``a.b`` when it is
    a module, else ``a``)."""
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    yield sub
                elif base in known:
                    yield base


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {
        name: {m for m in _imports(name, path, known) if m != name}
        for name, path in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_in_any_stage_or_in_schemas() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_sees_a_circle() -> None:
    """The check above can fail: a two-module circle, and one through a third module."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_a_lazy_import_still_counts_as_an_edge() -> None:
    """``_imports`` reads imports inside functions too (``TYPE_CHECKING`` and lazy ones)."""
    graph = _graph()
    assert "schemas.archive.remote" in graph["schemas.archive"]  # imported in open_archive


@pytest.mark.parametrize(
    "package",
    sorted(
        str(p.parent.relative_to(ROOT)).replace("/", ".")
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("__init__.py")
    ),
)
def test_every_room_says_what_lives_there_and_what_it_may_import(package: str) -> None:
    doc = ast.get_docstring(
        ast.parse((ROOT / package.replace(".", "/") / "__init__.py").read_text())
    )
    assert doc, f"{package}/__init__.py has no docstring"
    if package.count(".") == 1:  # a room inside a stage (extract.run, load.report, ...)
        assert "import" in doc, f"{package}: say what the room may import"


#: What each room may import, besides ``schemas`` and its own stage's ``config`` and
#: ``errors`` (what its ``__init__`` docstring says). ``cli`` may import every room.
ROOMS_MAY_IMPORT = {
    "extract.api": set(),
    "extract.plan": set(),
    "extract.routes": {"extract.plan"},
    "extract.events": {"extract.api", "extract.plan"},
    "extract.check": {"extract.api", "extract.plan"},
    "extract.run": {
        "extract.api",
        "extract.plan",
        "extract.routes",
        "extract.events",
        "extract.check",
    },
    "load.normalize": set(),
    "load.run": {"load.normalize"},
    "load.access": {"load.normalize"},
    "load.report": {"load.access", "load.normalize"},
}


def _room(module: str) -> str:
    parts = module.split(".")
    return "schemas" if parts[0] == "schemas" else ".".join(parts[:2])


def test_each_room_imports_only_what_its_docstring_allows() -> None:
    wrong = set()
    for module, deps in _graph().items():
        room = _room(module)
        if room not in ROOMS_MAY_IMPORT:
            continue
        stage = room.split(".")[0]
        allowed = {room, "schemas", f"{stage}.config", f"{stage}.errors", stage}
        allowed |= ROOMS_MAY_IMPORT[room]
        wrong |= {(module, dep) for dep in deps if _room(dep) not in allowed}
    assert wrong == set()


def test_every_room_of_a_stage_is_in_the_table() -> None:
    rooms = {
        _room(str(p.parent.relative_to(ROOT)).replace("/", "."))
        for stage in ("extract", "load")
        for p in (ROOT / stage).glob("*/__init__.py")
    }
    assert rooms == set(ROOMS_MAY_IMPORT)
