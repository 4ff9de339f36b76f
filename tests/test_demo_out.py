"""``tests/demo.py --out`` never deletes a folder the demo did not make (issue 15 item 14)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.demo import MARKER, NotADemoFolderError, prepare_out

ROOT = Path(__file__).resolve().parent.parent


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_refuses_a_folder_it_did_not_create(tmp_path: Path) -> None:
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    (mine / "data").mkdir()
    (mine / "data" / "results.csv").write_text("a,b\n1,2\n")

    done = _demo("--out", str(mine))

    assert done.returncode == 2, done.stdout + done.stderr
    assert "did not create" in done.stderr and str(mine) in done.stderr
    assert (mine / "chapter1.tex").read_text() == "years of work"
    assert (mine / "data" / "results.csv").read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in mine.rglob("*")) == ["chapter1.tex", "data", "results.csv"]
    assert "simulator" not in done.stdout  # refused before anything ran


def test_demo_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    done = _demo("--out", str(target))
    assert done.returncode == 2
    assert "not a folder" in done.stderr
    assert target.read_text() == "keep me"


def test_a_folder_the_demo_made_is_emptied_and_marked_again(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    prepare_out(out)  # a new folder: made and marked
    assert [p.name for p in out.iterdir()] == [MARKER]
    (out / "kalshi.db").write_text("old run")
    (out / "raw").mkdir()
    (out / "raw" / "page.json.gz").write_bytes(b"x")

    prepare_out(out)

    assert [p.name for p in out.iterdir()] == [MARKER]


def test_an_empty_folder_is_taken(tmp_path: Path) -> None:
    prepare_out(tmp_path)
    assert (tmp_path / MARKER).is_file()


def test_a_marker_that_is_a_folder_does_not_count(tmp_path: Path) -> None:
    (tmp_path / MARKER).mkdir()
    (tmp_path / "precious").write_text("x")
    with pytest.raises(NotADemoFolderError):
        prepare_out(tmp_path)
    assert (tmp_path / "precious").read_text() == "x"
