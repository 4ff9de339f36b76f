"""Scaling out, the pure parts: budget shares, heartbeats, worker ids, the throttle's resize."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from extract.api.throttle import Throttle
from extract.cli import main as extract_main
from extract.config import ExtractConfig
from extract.run.workers import budget_share, heartbeat_interval
from load.cli import cli as load_cli
from load.config import LoadConfig
from schemas.errors import InputError
from schemas.processes import default_worker_id, local_process_gone


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def _no_sleep(_s: float) -> None:
    return None


def test_the_key_budget_is_split_evenly_among_live_extractors() -> None:
    assert budget_share(20, 1) == 20
    assert budget_share(20, 4) == 5
    assert budget_share(20, 0) == 20  # before the first count: never divide by zero


def test_at_least_three_heartbeats_fit_in_a_lease() -> None:
    assert heartbeat_interval(120) == 5.0
    assert heartbeat_interval(3) == 1.0


def test_default_worker_id_is_host_and_pid() -> None:
    host, _, pid = default_worker_id().rpartition(":")
    assert host and pid.isdigit()


def test_only_dead_processes_of_this_host_are_known_gone() -> None:
    dead = {4242}

    def alive(pid: int) -> bool:
        return pid not in dead

    def gone(worker_id: str) -> bool:
        return local_process_gone(worker_id, hostname="box", alive=alive)

    assert gone("box:4242")
    assert not gone("box:4243")  # alive (or a reused pid): wait for the lease
    assert not gone("other:4242")  # another host: we cannot know
    assert not gone("w1")  # a custom id
    assert not gone("box:abc")
    assert not gone("box:1")  # init, never a worker
    assert not gone(default_worker_id())  # ourselves


def test_the_real_pid_check() -> None:
    assert not local_process_gone(default_worker_id())
    # pid_max is at most 2**22 on Linux: this pid cannot exist.
    assert local_process_gone(default_worker_id().rpartition(":")[0] + ":99999999")


def test_throttle_resize_keeps_a_backoff_in_proportion_and_shrinks_the_bucket() -> None:
    clock = FakeClock()
    t = Throttle(20, 2.0, clock=clock, sleep=_no_sleep)
    assert t.tokens == 40
    t.set_nominal_rate(5)
    assert (t.nominal_rate, t.rate, t.capacity, t.tokens) == (5, 5, 10, 10)
    t.set_nominal_rate(20)  # a peer left: full speed again, tokens refill over time
    assert (t.rate, t.tokens) == (20, 10)

    t.on_throttled()  # 429: halved
    assert t.rate == 10
    t.set_nominal_rate(10)  # a second worker joins: the cut rate halves too
    assert (t.nominal_rate, t.rate) == (10, 5)
    clock.t += 10
    t.on_success()  # recovery steps are a fraction of the new nominal rate
    assert t.rate == 6
    with pytest.raises(ValueError, match="positive"):
        t.set_nominal_rate(0)


async def test_a_resized_throttle_paces_at_the_new_rate() -> None:
    clock = FakeClock()
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        clock.t += s

    t = Throttle(10, 1.0, clock=clock, sleep=sleep)
    t.set_nominal_rate(2)  # bucket of 2 tokens, then one request every 0.5 s
    for _ in range(4):
        await t.acquire()
    assert slept == [0.5, 0.5]


@pytest.mark.parametrize(
    ("worker_id", "lease", "message"),
    [("", 120.0, "--worker-id"), ("x" * 129, 120.0, "--worker-id"), ("w", 0.5, "--lease")],
)
def test_worker_options_are_checked(worker_id: str, lease: float, message: str) -> None:
    with pytest.raises(InputError, match=message):
        ExtractConfig(series="KXHIGHNY", worker_id=worker_id, lease_seconds=lease)
    with pytest.raises(InputError, match=message):
        LoadConfig(worker_id=worker_id, lease_seconds=lease)


def test_the_command_lines_refuse_bad_worker_options(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.db'}"
    r = CliRunner().invoke(
        extract_main,
        ["candles", "--series", "KXHIGHNY", "--db", db, "--lease-seconds", "0.5"],
    )
    assert r.exit_code == 2 and "--lease-seconds must be at least 1" in r.output
    r = CliRunner().invoke(
        load_cli, ["run", "--db", db, "--archive", str(tmp_path), "--worker-id", "w" * 129]
    )
    assert r.exit_code == 2 and "--worker-id must be 1 to 128" in r.output
