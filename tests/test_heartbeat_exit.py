"""An extractor that ends while a heartbeat is in flight leaves no worker row behind.

Heartbeats run in a thread (off the event loop). Cancelling the heartbeat task does not
stop that thread: its UPDATE-then-INSERT could land after the exit's unregister and put
the row back, so ``status`` and the budget share would count a dead extractor for a while
(found by test_scale_e2e). The exit must wait for the beat in flight.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from sqlalchemy import Connection

import extract.run.workers as workers
from extract.run.workers import Coordinator
from schemas.db import make_engine
from schemas.workers import list_workers


async def test_exit_during_a_slow_beat_leaves_no_row(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(sqlite_url)
    real = workers.heartbeat
    in_beat = threading.Event()
    beats = 0

    def slow_heartbeat(conn: Connection, *args: Any, **kwargs: Any) -> None:
        nonlocal beats
        beats += 1
        if beats > 1:  # not the registering beat: the ones of the background task
            in_beat.set()
            time.sleep(0.6)
        real(conn, *args, **kwargs)

    monkeypatch.setattr(workers, "heartbeat", slow_heartbeat)
    coord = Coordinator(engine, sqlite_url, "w-exit", lease_seconds=0.6)
    assert coord.interval < 0.5
    async with coord.running():
        await asyncio.to_thread(in_beat.wait, 10)  # a background beat is in flight now
    await asyncio.sleep(1.0)  # time for an orphaned beat thread to land
    with engine.connect() as conn:
        assert [w.worker_id for w in list_workers(conn)] == []
    engine.dispose()
