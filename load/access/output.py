"""Frames out: printed as a table, CSV or JSON, or written as Parquet; and the read-only
engine every access and report command opens.

Apart from :mod:`load.access.cli` because it needs Polars and SQLAlchemy: the commands
import it in their bodies, so their ``-h`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import polars as pl
from sqlalchemy import Engine

from schemas.archive import atomic_path
from schemas.cli import to_json
from schemas.db import make_engine
from schemas.errors import ConfigError, InputError


def frame_to_json(frame: pl.DataFrame) -> str:
    """A JSON array of row objects; Decimal columns as strings so no digit is lost."""
    decimals = [n for n, t in frame.schema.items() if isinstance(t, pl.Decimal)]
    rows = frame.with_columns(pl.col(decimals).cast(pl.String)).to_dicts()
    return to_json(rows)


def frame_text(frame: pl.DataFrame, fmt: str) -> str:
    """``frame`` as a table, CSV or JSON text (Parquet is written by :func:`write_parquet`)."""
    if fmt == "csv":
        return frame.write_csv()
    if fmt == "json":
        return frame_to_json(frame) + "\n"
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=10_000,
        fmt_str_lengths=200,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
    ):
        return f"{frame}\n({frame.height} rows)\n"


def write_parquet_atomic(frame: pl.DataFrame, dest: Path) -> None:
    """Write ``frame`` to ``dest`` atomically (see :func:`schemas.archive.atomic_path`)."""
    try:
        with atomic_path(dest) as tmp:
            frame.write_parquet(tmp, compression="zstd", statistics=True)
    except OSError as e:
        raise ConfigError(f"cannot write {dest}: {e.strerror or e}") from e


def check_out_dir(out_dir: str | Path) -> Path:
    """``out_dir`` as a Path, InputError when it names an existing file (not a folder).

    Checked before any database work, so a mistyped ``--out`` writes nothing.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is an existing file: give a folder")
    return out


def write_parquet(frame: pl.DataFrame, out: str | None) -> None:
    """``--format parquet``: ``frame`` written atomically to ``out`` (required)."""
    if not out:
        raise InputError("--format parquet needs --out FILE")
    write_parquet_atomic(frame, Path(out))
    click.echo(f"wrote {frame.height} rows to {out}", err=True)


@contextmanager
def read_only_engine(db_url: str) -> Iterator[Engine]:
    """Every access and report command only reads: a database without our tables is refused
    (exit 2)."""
    engine = make_engine(db_url, schema="read")
    try:
        yield engine
    finally:
        engine.dispose()
