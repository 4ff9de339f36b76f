"""``make bench`` smoke test: the whole bench on tiny sizes, and its pure pieces.

Nothing here asserts a timing: the bench's numbers are for ``make bench`` to report. This
checks that every step runs against the real simulator and MariaDB, that the result files
hold every metric and every target, and that the bench drops the database it created.
"""

from __future__ import annotations

import json
import math
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.config import BenchError, check_bench_db_url
from tests.bench.extractbench import Sample, split_run
from tests.bench.report import OPTIONAL_METRICS, REQUIRED_METRICS, TARGETS
from tests.databases import MYSQL_SERVER_URL, database_exists, drop_database

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.mariadb
def test_quick_bench_on_tiny_sizes_writes_every_metric(tmp_path: Path) -> None:
    name = f"kalshi_bench_t_{secrets.token_hex(4)}"
    out = tmp_path / "bench"
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.bench",
                "--quick",
                "--db",
                f"{MYSQL_SERVER_URL}/{name}",
                "--out",
                str(out),
                "--load-events",
                "1",
                "--rate-days",
                "3",
                "--page-days",
                "3",
                "--rate-warmup",
                "0.5",
                "--mem-days",
                "1",
                "2",
                "--requests-days",
                "1",
                "--series-days",
                "2",
                "--reads-days",
                "1",
                "2",
                "--drop-reads-db",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,  # the requests step runs two more small backfills
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert not database_exists(name), "the bench must drop the database it created"
        assert not list(out.glob("reads-*.json")), "--drop-reads-db forgets the reads database"
    finally:
        drop_database(name)

    doc = json.loads((out / "results.json").read_text())
    # The optional steps' metrics (dlt) are there exactly when their step ran.
    assert set(doc["metrics"]) - set(OPTIONAL_METRICS) == set(REQUIRED_METRICS)
    skipped = any("dlt comparison skipped" in note for note in doc["notes"])
    assert skipped != (set(OPTIONAL_METRICS) <= set(doc["metrics"]))
    for key, metric in doc["metrics"].items():
        assert isinstance(metric["value"], float) and math.isfinite(metric["value"]), key
        assert metric["value"] >= 0, key
    assert set(doc["targets"]) == {t.key for t in TARGETS}
    assert all(isinstance(t["pass"], bool) for t in doc["targets"].values())
    assert doc["metrics"]["load.rows"]["value"] > 10_000  # one event: 6 markets × ~38 h
    # Full pages: 2 batch requests a live event, 6 historical ones an old event.
    assert doc["metrics"]["extract.requests"]["value"] >= 3 * 2
    assert doc["metrics"]["extract.candles"]["value"] > 3 * 6 * 1_000
    # Five series in one extract: every one of them archived, in the budget's run too.
    assert doc["metrics"]["series.candles"]["value"] > 0
    assert doc["metrics"]["series.requests"]["value"] >= 5
    for field in ("cpu", "cores"):
        assert doc["machine"][field]
    for field in ("python", "polars", "database", "git_commit"):
        assert doc["versions"][field]
    assert doc["generated_at_utc"]

    markdown = (out / "results.md").read_text()
    assert markdown == done.stdout.rstrip("\n") + "\n"  # the table printed at the end
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(doc["metrics"])  # header + one row per metric
    assert markdown.count("**PASS**") + markdown.count("**MISS**") == len(TARGETS)
    assert list(out.glob("archive-*/archive.json")), "the load archive is cached under --out"


def test_split_run_separates_the_burst_from_the_steady_part() -> None:
    # 0.05 s samples: idle, a burst of 40 in the first half second (2 of them 429s),
    # then 20 requests/s for 10 s with one 429 at t = 6 s.
    samples = [Sample(0.0, 0, 0, 0), Sample(0.05, 0, 0, 0)]
    t, total, ok, throttled = 0.05, 0, 0, 0
    for i in range(1, 211):
        t = 0.05 + i * 0.05
        sent, refused = (4, 2 if i == 10 else 0) if i <= 10 else (1, 1 if i == 120 else 0)
        total, ok, throttled = total + sent, ok + sent - refused, throttled + refused
        samples.append(Sample(t, total, ok, throttled))
    samples.append(Sample(t + 0.05, total, ok, throttled))  # idle after the last request

    figures = split_run(samples, warmup_s=1.0)

    assert figures.requests == 240
    assert figures.throttled == 3
    assert figures.ok == 237
    assert figures.steady_throttled == 1
    assert [round(t) for t in figures.throttled_at_s] == [0, 0, 6]
    assert figures.steady_ok / figures.steady_s == pytest.approx(20, rel=0.02)
    assert figures.elapsed_s == pytest.approx(10.5, abs=0.06)


def test_split_run_refuses_a_run_without_requests() -> None:
    with pytest.raises(BenchError, match="no request"):
        split_run([Sample(0.0, 5, 5, 0), Sample(0.05, 5, 5, 0)], warmup_s=1.0)


@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://root@127.0.0.1:3306/kalshi",  # a real database: never dropped
        "mysql+pymysql://root@127.0.0.1:3306/bench`; DROP DATABASE x; --",
        "sqlite:///data/kalshi_bench.db",
    ],
)
def test_the_bench_refuses_a_database_it_must_not_drop(url: str) -> None:
    with pytest.raises(BenchError):
        check_bench_db_url(url)
