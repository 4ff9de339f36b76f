"""Security: TLS verified, secrets never in logs or errors, SQL parameterized, LOAD DATA
LOCAL only for the loader's own files.

Logs are read at the most verbose level (``-vvv``: our debug lines AND aiohttp's) from
real subprocesses against the simulator over real HTTP, with a real RSA key.
"""

from __future__ import annotations

import ast
import datetime as dt
import logging
import re
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError

from extract.config import ApiConfig, ExtractConfig
from extract.events.sync import sync_events as events_sync
from load.config import LoadConfig
from load.run.loader import WORK_DIR_PREFIX, load_windows
from load.run.writer import LOCAL_INFILE_REFUSED
from schemas.db import make_engine, make_stage_engine, offer_local_file
from schemas.errors import ApiError, LocalFileRequestError
from tests.kalshi_sim import SimServer, run_sim_in_thread
from tests.test_survival_support import REPO, SERIES, SIM, extract_cmd, stage_env, sync_events

SOURCES = [p for d in ("extract", "load", "schemas") for p in (REPO / d).glob("*.py")]
KEY_ID = "a952bcbe-ec3b-4b5b-b8f9-11a0cafe7c3d"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with run_sim_in_thread(SIM) as server:
        yield server


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- TLS --------------------------------------------------------------------------------


def test_no_code_turns_tls_verification_off() -> None:
    pattern = re.compile(r"ssl\s*=\s*False|verify_ssl\s*=\s*False|CERT_NONE|check_hostname\s*=")
    offenders = [
        f"{p}:{ln}" for p in SOURCES for ln in p.read_text().splitlines() if pattern.search(ln)
    ]
    assert offenders == []


def _self_signed(tmp: Path) -> ssl.SSLContext:
    key = _rsa_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return ctx


async def test_a_self_signed_certificate_is_refused_at_once(tmp_path: Path) -> None:
    hits: list[str] = []

    async def series(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"series": {}})

    app = web.Application()
    app.router.add_get("/trade-api/v2/series/{s}", series)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_self_signed(tmp_path))
    await site.start()
    port = runner.addresses[0][1]
    try:
        api = ApiConfig(base_url=f"https://127.0.0.1:{port}/trade-api/v2", max_retries=3)
        cfg = ExtractConfig(series=SERIES, db_url=f"sqlite:///{tmp_path / 'k.db'}", api=api)
        with pytest.raises(ApiError) as err:
            await events_sync(cfg)
    finally:
        await runner.cleanup()
    message = str(err.value)
    assert "certificate verify failed" in message, message
    assert "gave up after" not in message  # a bad certificate is not retried
    assert hits == []  # no request ever reached the server


# --- secrets ------------------------------------------------------------------------------


def test_key_id_private_key_and_signatures_never_reach_the_logs(
    sim: SimServer, mariadb_url: str, tmp_path: Path
) -> None:
    key = _rsa_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    key_path = tmp_path / "kalshi.pem"
    key_path.write_bytes(pem)
    sync_events(sim, mariadb_url)
    env = stage_env(tmp_path, None) | {
        "KALSHI_API_KEY_ID": KEY_ID,
        "KALSHI_PRIVATE_KEY_PATH": str(key_path),
    }
    sim.fail_next("/candlesticks", "500", times=2)  # error and retry lines are logged too
    sim.fail_next("/candlesticks", "reset", times=1)
    outputs = []
    for cmd in (
        [sys.executable, "-m", "extract", "events", "--series", SERIES, "--db", mariadb_url,
         "--api-base", sim.base_url, "-vvv"],
        [*[c for c in extract_cmd(sim, mariadb_url, tmp_path / "raw") if c != "-q"], "-vvv",
         "--backoff-base", "0.001"],
    ):  # fmt: skip
        r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        outputs.append(r.stdout + r.stderr)
    text = "\n".join(outputs)
    assert "DEBUG" in text and "retry" in text  # really the most verbose level, with errors
    assert KEY_ID not in text
    body_lines = [ln for ln in pem.decode().splitlines() if "-----" not in ln]
    assert not [ln for ln in body_lines if ln in text]
    assert not re.search(r"[A-Za-z0-9+/]{200,}={0,2}", text)  # a 2048-bit signature is 344


def test_credentials_in_the_api_base_are_redacted(sqlite_url: str, tmp_path: Path) -> None:
    secret = "Api-Pa55word-91c2"
    env = stage_env(tmp_path)
    for base in (
        f"http://user:{secret}@127.0.0.1:1/trade-api/v2",  # nothing listens on port 1
        f"ftp://user:{secret}@127.0.0.1/trade-api/v2",  # refused by validation
    ):
        cmd = [sys.executable, "-m", "extract", "events", "--series", SERIES]
        cmd += ["--db", sqlite_url, "--api-base", base, "-vvv"]
        cmd += ["--max-retries", "1", "--backoff-base", "0.001"]
        r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode != 0
        assert "error:" in r.stderr
        assert secret not in r.stdout + r.stderr, r.stderr


# --- SQL and LOAD DATA ---------------------------------------------------------------------


#: Interpolations into SQL text that were reviewed: placeholders, integers and names from
#: our own table metadata, never a value from the user or the API. A new one fails the
#: test until it is reviewed and listed here (values must go through bind parameters).
REVIEWED = {
    ("writer.py", "marks"),  # "%s, %s, ..." placeholders
    ("writer.py", "max(16 << 20, rows * _MEMORY_ROW_BYTES)"),  # an int
    ("db.py", "table.name"),  # metadata
    ("db.py", "col.name"),
    ("db.py", "sql_type"),
}


def _interpolated_sql(path: Path) -> list[tuple[str, str]]:
    """SQL built with an f-string (or %) from anything but a module constant."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        fn = node.func
        name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
        if name not in ("text", "exec_driver_sql", "execute", "executemany"):
            continue
        arg = node.args[0]
        if isinstance(arg, ast.JoinedStr):
            for v in arg.values:
                if isinstance(v, ast.FormattedValue) and not _constant_expr(v.value):
                    found.append((path.name, ast.unparse(v.value)))
        elif isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod):
            found.append((path.name, "% formatting"))
    return found


def _constant_expr(e: ast.expr) -> bool:
    """Module constants (``STAGE_TABLE``, ``_COLS``) and our private SQL builders."""
    src = ast.unparse(e)
    return bool(
        re.fullmatch(r"_?[A-Z][A-Z0-9_]*", src)
        or re.fullmatch(r"_[a-z_]+\(\w*\)", src)
        or re.fullmatch(r"int\(.*\)", src)
        or src == "kalshi_candle.name"
    )


def test_sql_is_parameterized() -> None:
    offenders = {hit for p in SOURCES for hit in _interpolated_sql(p)} - REVIEWED
    assert offenders == set()


@pytest.mark.mariadb
def test_load_data_local_reads_only_files_the_loader_wrote(
    sim: SimServer, mariadb_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archive = tmp_path / "raw"
    sync_events(sim, mariadb_url)
    r = subprocess.run(
        extract_cmd(sim, mariadb_url, archive), cwd=REPO, env=stage_env(tmp_path),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    seen: list[Any] = []

    def spy(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        if "LOCAL INFILE" in statement:
            path = Path(params[0])
            seen.append((path, path.exists()))

    # On every engine: the loader must make its own, the only one allowed LOCAL INFILE.
    event.listen(Engine, "before_cursor_execute", spy)
    try:
        with caplog.at_level(logging.WARNING):
            load_windows(LoadConfig(db_url=mariadb_url, archive_dir=archive))
    finally:
        event.remove(Engine, "before_cursor_execute", spy)
    assert "refused" not in caplog.text  # LOAD DATA LOCAL ran: no fallback to INSERTs
    assert len(seen) == 3
    tmp_root = Path(tempfile.gettempdir()).resolve()
    for path, existed in seen:
        assert existed and path.suffix == ".csv"
        assert path.parent.parent.resolve() == tmp_root
        assert path.parent.name.startswith(WORK_DIR_PREFIX)
        assert not path.exists() and not path.parent.exists()  # removed after the load
        assert archive.resolve() not in path.resolve().parents


def test_only_the_loaders_connections_may_send_local_files(
    mariadb_url: str, tmp_path: Path
) -> None:
    """With LOCAL INFILE allowed, the SERVER names the file the client sends: a rogue
    server could ask the extractor for its private key. Only the loader's staging engine
    allows it, and only for the file it offered (tests/test_local_infile_guard.py)."""
    secret = tmp_path / "private-key.pem"
    secret.write_text("not for the server\n")
    statement = "LOAD DATA LOCAL INFILE %s INTO TABLE infile_probe (line)"
    default, loader = make_engine(mariadb_url), make_stage_engine(mariadb_url)
    assert loader is not None
    try:
        with default.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE infile_probe (line TEXT)")
        with pytest.raises(DBAPIError) as refused, default.begin() as conn:
            conn.exec_driver_sql(statement, (str(secret),))
        assert refused.value.orig.args[0] in LOCAL_INFILE_REFUSED
        with pytest.raises(LocalFileRequestError), loader.begin() as conn:
            conn.exec_driver_sql(statement, (str(secret),))  # not offered
        with loader.begin() as conn, offer_local_file(conn, secret):
            conn.exec_driver_sql(statement, (str(secret),))
            assert conn.exec_driver_sql("SELECT line FROM infile_probe").scalar_one() == (
                "not for the server"
            )
    finally:
        default.dispose()
        loader.dispose()


def test_tickers_from_the_api_cannot_reach_sql_or_paths() -> None:
    """Hostile tickers in an API body are refused before any statement or path."""
    from extract.errors import BadPageError
    from extract.events.sync import market_row
    from schemas.errors import InputError

    for ticker in ("../../etc/passwd", "X'; DROP TABLE kalshi_candle;--", "A B"):
        with pytest.raises((InputError, BadPageError)):
            market_row({"ticker": ticker}, SERIES, "KXHIGHNY-25NOV15", dt.datetime.now(dt.UTC))
