"""LOAD DATA LOCAL: a server may read only the file the loader offered, and nothing else.

PyMySQL answers a LOCAL INFILE request by opening whatever path the server names. These
tests put a fake MySQL server (a thread speaking just enough of the protocol: handshake,
OK, and a LOCAL INFILE request for a path it chooses) in front of the loader's kind of
connection and record every byte the client sends after the request. The positive
control (the offered file is asked for, and arrives whole) shows the recorder sees what
a client sends, so the refusals below could fail.
"""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from schemas.db import _offering_connect, make_engine, make_stage_engine, offer_local_file
from schemas.errors import LocalFileRequestError

OK = b"\x00\x00\x00\x02\x00\x00\x00"  # OK: 0 rows, no insert id, autocommit, 0 warnings


def _packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def _greeting() -> bytes:
    """Protocol 10, mysql_native_password, the capabilities PyMySQL needs."""
    caps = 0x000FF7DF | (1 << 19)  # PROTOCOL_41, SECURE_CONNECTION, LOCAL_FILES, PLUGIN_AUTH...
    salt = b"abcdefgh" + b"ijklmnopqrst"
    return (
        b"\x0a5.7.0-fake\x00"
        + struct.pack("<I", 7)
        + salt[:8]
        + b"\x00"
        + struct.pack("<H", caps & 0xFFFF)
        + b"\x21"
        + struct.pack("<H", 2)
        + struct.pack("<H", caps >> 16)
        + bytes([21])
        + b"\x00" * 10
        + salt[8:]
        + b"\x00"
        + b"mysql_native_password\x00"
    )


class FakeServer:
    """Accepts one connection; answers every query OK, except LOAD DATA LOCAL, which it
    answers with a LOCAL INFILE request for ``asks_for``. ``received`` holds the file
    bytes the client sent (the packets between the request and the empty packet)."""

    def __init__(self, asks_for: str) -> None:
        self.asks_for = asks_for.encode()
        self.received = b""
        self.requests = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _read(self, conn: socket.socket) -> tuple[int, bytes] | None:
        head = b""
        while len(head) < 4:
            chunk = conn.recv(4 - len(head))
            if not chunk:
                return None
            head += chunk
        size, seq = int.from_bytes(head[:3], "little"), head[3]
        body = b""
        while len(body) < size:
            chunk = conn.recv(size - len(body))
            if not chunk:
                return None
            body += chunk
        return seq, body

    def _serve(self) -> None:
        conn, _ = self._sock.accept()
        with conn:
            conn.sendall(_packet(0, _greeting()))
            got = self._read(conn)  # the client's handshake response
            if got is None:
                return
            conn.sendall(_packet(got[0] + 1, OK))
            while (got := self._read(conn)) is not None:
                seq, body = got
                if body[:1] == b"\x01":  # COM_QUIT
                    return
                if b"LOAD DATA LOCAL" not in body.upper():
                    conn.sendall(_packet(seq + 1, OK))
                    continue
                self.requests += 1
                conn.sendall(_packet(seq + 1, b"\xfb" + self.asks_for))
                while (part := self._read(conn)) is not None and part[1]:
                    seq = part[0]
                    self.received += part[1]
                if part is None:
                    return
                conn.sendall(_packet(part[0] + 1, OK))

    def close(self) -> None:
        self._sock.close()


def _connect(port: int) -> Any:
    """The loader's kind of connection (what a ``local_infile`` engine's hook builds)."""
    params = {"host": "127.0.0.1", "port": port, "user": "root", "password": ""}
    return _offering_connect(None, None, (), {**params, "local_infile": True})


def _load(conn: Any, path: Path) -> None:
    with conn.cursor() as cur:
        cur.execute("LOAD DATA LOCAL INFILE %s INTO TABLE kalshi_candle_stage", (str(path),))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    staging = tmp_path / "stage-1.csv"
    staging.write_bytes(b"KXHIGHNY-25NOV15-B56.5,2025-11-15 10:01:00\n")
    secret = tmp_path / "kalshi-private-key.pem"
    secret.write_bytes(b"-----BEGIN PRIVATE KEY----- not for the server\n")
    return staging, secret


def test_the_offered_file_is_sent_whole(files: tuple[Path, Path]) -> None:
    staging, _ = files
    server = FakeServer(str(staging))
    conn = _connect(server.port)
    try:
        with offer_local_file(conn, staging):
            _load(conn, staging)
    finally:
        conn.close()
        server.close()
    assert server.requests == 1
    assert server.received == staging.read_bytes()


def test_a_request_for_another_file_is_refused_with_nothing_sent(
    files: tuple[Path, Path],
) -> None:
    staging, secret = files
    server = FakeServer(str(secret))
    conn = _connect(server.port)
    try:
        with (
            pytest.raises(LocalFileRequestError, match=r"kalshi-private-key\.pem"),
            offer_local_file(conn, staging),
        ):
            _load(conn, staging)
        # The connection stayed in step: the next statement is answered normally.
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        conn.close()
        server.close()
    assert server.requests == 1
    assert server.received == b""


def test_without_an_offer_even_the_staging_file_is_refused(files: tuple[Path, Path]) -> None:
    staging, _ = files
    server = FakeServer(str(staging))
    conn = _connect(server.port)
    try:
        with pytest.raises(LocalFileRequestError):
            _load(conn, staging)
        # An offer is spent by the request it answers: a second request gets nothing.
        with offer_local_file(conn, staging):
            _load(conn, staging)
            with pytest.raises(LocalFileRequestError):
                _load(conn, staging)
    finally:
        conn.close()
        server.close()
    assert server.requests == 3
    assert server.received == staging.read_bytes()  # once: for the one offered request


@pytest.mark.mariadb
def test_the_real_server_reads_only_what_the_loader_offered(
    mariadb_url: str, files: tuple[Path, Path]
) -> None:
    """Against MariaDB, through SQLAlchemy: the loader's staging engine sends the offered
    file; asked (by a statement naming it) for an unoffered one, it fails loudly with our
    error, not a driver error that a retry or the INSERT fallback would swallow."""
    staging, secret = files
    reader = make_engine(mariadb_url)
    stage = make_stage_engine(mariadb_url)
    assert stage is not None
    statement = "LOAD DATA LOCAL INFILE %s INTO TABLE infile_probe (line)"
    try:
        with reader.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE infile_probe (line TEXT)")
        with stage.begin() as conn, offer_local_file(conn, staging):
            conn.exec_driver_sql(statement, (str(staging),))
        with (
            pytest.raises(LocalFileRequestError),
            stage.begin() as conn,
            offer_local_file(conn, staging),
        ):
            conn.exec_driver_sql(statement, (str(secret),))
        with pytest.raises(DBAPIError), reader.begin() as conn:  # no LOCAL at all here
            conn.exec_driver_sql(statement, (str(staging),))
        with reader.connect() as conn:
            lines = conn.exec_driver_sql("SELECT line FROM infile_probe").scalars().all()
        assert lines == [staging.read_text().strip()]
    finally:
        reader.dispose()
        stage.dispose()
