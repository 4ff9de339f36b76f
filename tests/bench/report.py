"""Results: metrics, targets judged on them, and the Markdown and JSON files they go to.

A metric is one number with its unit; a target judges one metric (nearly always a ratio
of two things measured in the same run) and says PASS or MISS. The JSON keeps every
number unrounded for later comparison; the Markdown table is for people.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

Op = Literal[">=", "<=", "<", "=="]

#: Every metric a complete run reports (the smoke test checks each one is there).
REQUIRED_METRICS: tuple[str, ...] = (
    "load.rows",
    "load.loader_rows_per_s",
    "load.loader_cpu_s",
    "load.loader_cpu_s_per_m_rows",
    "load.loader_machine_busy",
    "load.load_data_rows_per_s",
    "load.executemany_rows_per_s",
    "load.reload_rows_per_s",
    "load.loader_vs_load_data",
    "load.loader_vs_executemany",
    "load.reload_vs_load_data",
    "extract.requests",
    "extract.elapsed_s",
    "extract.budget_rps",
    "extract.achieved_rps",
    "extract.steady_rps",
    "extract.steady_fraction_of_budget",
    "extract.cpu_ms_per_request",
    "extract.candles",
    "extract.cpu_us_per_candle",
    "extract.throttled_total",
    "extract.throttled_steady",
    "memory.extract_short_mb",
    "memory.extract_long_mb",
    "memory.extract_long_vs_short",
    "memory.load_short_mb",
    "memory.load_long_mb",
    "memory.load_long_vs_short",
    "normalize.candles",
    "normalize.candles_per_s",
    "normalize.cpu_s_per_m_rows",
    "follow.extract_alone_s",
    "follow.end_to_end_s",
    "follow.ratio",
    *(
        f"requests.p{period}.{answer}.{what}"
        for period in (1, 60)
        for answer in ("no", "yes")
        for what in (
            "requests",
            "floor",
            "vs_floor",
            "event_by_event",
            "event",
            "batch",
            "historical",
        )
    ),
    "series.requests",
    "series.candles",
    "series.steady_rps",
    "series.steady_fraction_of_budget",
    "series.throttled_steady",
    "series.five_mb",
    "series.one_mb",
    "series.five_vs_one",
    "startup.extract_version_s",
    "startup.load_version_s",
    "startup.extract_help_s",
    "startup.load_help_s",
    "startup.load_run_empty_s",
    "startup.small_load_s",
    "startup.version_share_of_small_load",
    "startup.empty_run_share_of_small_load",
    "reads.rows",
    "reads.status_small_s",
    "reads.status_large_s",
    "reads.status_large_vs_small",
    "reads.export_rows",
    "reads.export_rows_per_s",
    "reads.raw_dump_rows_per_s",
    "reads.export_vs_raw_dump",
    "reads.export_long_s",
    "reads.grid_long_s",
    "reads.grid_vs_export",
    "reads.coverage_long_s",
    *(
        f"reads.{w}_{x}"
        for w in ("grid", "coverage")
        for x in ("short_mb", "long_mb", "long_vs_short")
    ),
)


#: Metrics of optional steps, reported only when the step ran (dlt: when installed).
OPTIONAL_METRICS: tuple[str, ...] = ("load.dlt_rows_per_s", "load.loader_vs_dlt")


@dataclass(frozen=True)
class Metric:
    """One measured number."""

    key: str
    section: str
    label: str
    value: float
    unit: str
    note: str = ""


@dataclass(frozen=True)
class Target:
    """A goal for one metric: ``value op threshold``."""

    key: str
    op: Op
    threshold: float
    why: str

    def passed(self, value: float) -> bool:
        if self.op == ">=":
            return value >= self.threshold
        if self.op == "<=":
            return value <= self.threshold
        if self.op == "<":
            return value < self.threshold
        return value == self.threshold

    @property
    def text(self) -> str:
        sign = {">=": "≥", "<=": "≤", "<": "<", "==": "="}[self.op]
        return f"{sign} {_num(self.threshold)}"


TARGETS: tuple[Target, ...] = (
    # On a quiet machine; a busy one takes the loader's second core (see its note).
    # No target on loader ÷ executemany: raw LOAD DATA itself is only 3.1-3.7 × it here.
    Target("load.loader_vs_load_data", ">=", 0.85, "the loader keeps up with the database"),
    Target("extract.steady_fraction_of_budget", ">=", 0.95, "the rate budget is used"),
    Target("extract.throttled_steady", "==", 0, "no 429 once the bucket is steady"),
    Target("extract.cpu_us_per_candle", "<=", 7.0, "full pages keep the budget on 2 cores"),
    Target("load.loader_cpu_s_per_m_rows", "<=", 6.0, "the loader's own CPU (µs a row)"),
    Target("memory.extract_short_mb", "<", 250, "fits a small box"),
    Target("memory.extract_long_mb", "<", 250, "fits a small box"),
    Target("memory.load_short_mb", "<", 250, "fits a small box"),
    Target("memory.load_long_mb", "<", 250, "fits a small box"),
    Target("memory.extract_long_vs_short", "<=", 1.2, "memory does not grow with the range"),
    Target("memory.load_long_vs_short", "<=", 1.2, "memory does not grow with the range"),
    Target("follow.ratio", "<=", 1.10, "loading beside extract costs no wall time"),
    *(
        Target(
            f"requests.p{period}.{answer}.vs_floor",
            "<=",
            1.05,
            f"requests at the floor, {period} min (batch serves historical: {answer})",
        )
        for period in (1, 60)
        for answer in ("no", "yes")
    ),
    Target("series.steady_fraction_of_budget", ">=", 0.95, "the budget is kept across series"),
    Target("series.throttled_steady", "==", 0, "no 429 once the bucket is steady"),
    Target("series.five_vs_one", "<=", 1.3, "memory does not grow with the series"),
    Target("startup.extract_version_s", "<=", 0.25, "a command starts at once"),
    Target("startup.load_version_s", "<=", 0.25, "a command starts at once"),
    Target("reads.status_large_vs_small", "<=", 1.5, "status does not grow with the candles"),
    Target("reads.export_vs_raw_dump", ">=", 0.5, "export streams near the client's speed"),
    Target("reads.grid_vs_export", "<=", 2.0, "the grid of every minute costs about an export"),
    *(
        Target(f"reads.{w}_{x}", op, v, why)
        for w in ("grid", "coverage")
        for x, op, v, why in (
            ("short_mb", "<", 300, "fits a small box"),
            ("long_mb", "<", 300, "fits a small box"),
            ("long_vs_short", "<=", 1.2, "memory does not grow with the range"),
        )
    ),
)


@dataclass
class Results:
    """Everything one run measured, in the order it was measured."""

    mode: str
    sizes: dict[str, Any]
    metrics: list[Metric] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_before: tuple[float, float, float] = field(default_factory=os.getloadavg)
    notes: list[str] = field(default_factory=list)

    def add(
        self, key: str, section: str, label: str, value: float, unit: str, note: str = ""
    ) -> None:
        self.metrics.append(Metric(key, section, label, float(value), unit, note))

    def value(self, key: str) -> float:
        for m in self.metrics:
            if m.key == key:
                return m.value
        raise KeyError(key)

    def verdicts(self) -> list[tuple[Target, float, bool]]:
        keys = {m.key for m in self.metrics}
        return [
            (t, self.value(t.key), t.passed(self.value(t.key))) for t in TARGETS if t.key in keys
        ]


# --- environment ------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, OS: what the numbers are relative to."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "os": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
    }
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info


def versions(db_version: str) -> dict[str, str]:
    """Python, the libraries on the hot paths, the database, and the code's commit."""
    out = {"python": sys.version.split()[0], "database": db_version}
    for dist in ("polars", "sqlalchemy", "pymysql", "aiohttp", "orjson"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "missing"
    out["git_commit"] = _git("rev-parse", "--short", "HEAD")
    dirty = _git(
        "status", "--porcelain", "--untracked-files=no", "--", "extract", "load", "schemas"
    )
    out["git_dirty_stages"] = "yes" if dirty else "no"
    return out


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip()


# --- output -----------------------------------------------------------------------------


def _num(value: float) -> str:
    if value == int(value) and abs(value) >= 100:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value == int(value):
        return f"{int(value)}"
    return f"{value:.2f}"


def to_json(results: Results, machine: dict[str, Any], vers: dict[str, str]) -> dict[str, Any]:
    finished = datetime.now(UTC)
    return {
        "generated_at_utc": finished.isoformat(timespec="seconds"),
        "elapsed_s": round((finished - results.started_at).total_seconds(), 1),
        "mode": results.mode,
        "sizes": results.sizes,
        "machine": {
            **machine,
            "load_average_start": list(results.load_before),
            "load_average_end": list(os.getloadavg()),
        },
        "versions": vers,
        "metrics": {
            m.key: {k: v for k, v in asdict(m).items() if k != "key"} for m in results.metrics
        },
        "targets": {
            t.key: {"op": t.op, "threshold": t.threshold, "value": v, "pass": ok, "why": t.why}
            for t, v, ok in results.verdicts()
        },
        "notes": results.notes,
    }


def to_markdown(doc: dict[str, Any]) -> str:
    """The results table (and where the numbers come from) as Markdown."""
    m, v = doc["machine"], doc["versions"]
    targets = doc["targets"]
    lines = [
        f"# Benchmarks ({doc['mode']} run, {doc['generated_at_utc']}, {doc['elapsed_s']:.0f} s)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m.get('memory_gb', '?')} GB; {m['os']}. "
        f"Load average {m['load_average_start'][0]:.1f} at start, "
        f"{m['load_average_end'][0]:.1f} at end.",
        f"Versions: Python {v['python']}, {v['database']}, polars {v['polars']}, "
        f"SQLAlchemy {v['sqlalchemy']}, PyMySQL {v['pymysql']}, aiohttp {v['aiohttp']}; "
        f"commit {v['git_commit']}"
        + (" (extract/load/schemas modified)" if v["git_dirty_stages"] == "yes" else "")
        + ".",
        "",
        "| Section | Measure | Value | Target | Result |",
        "|---|---|---:|---|---|",
    ]
    for key, metric in doc["metrics"].items():
        value = _num(metric["value"]) + (f" {metric['unit']}" if metric["unit"] else "")
        target = targets.get(key)
        goal = Target(key, target["op"], target["threshold"], "").text if target else ""
        verdict = ("**PASS**" if target["pass"] else "**MISS**") if target else ""
        label = metric["label"] + (f" ({metric['note']})" if metric["note"] else "")
        lines.append(f"| {metric['section']} | {label} | {value} | {goal} | {verdict} |")
    passed = sum(1 for t in targets.values() if t["pass"])
    lines += ["", f"Targets: {passed} of {len(targets)} PASS."]
    if doc["notes"]:
        lines += ["", *(f"- {n}" for n in doc["notes"])]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, doc: dict[str, Any], stem: str = "results") -> tuple[Path, Path, str]:
    """Write ``<stem>.json`` and ``<stem>.md`` (atomically); returns the paths and the text."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = to_markdown(doc)
    paths = (out_dir / f"{stem}.json", out_dir / f"{stem}.md")
    for path, text in zip(paths, (json.dumps(doc, indent=2) + "\n", md), strict=True):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return paths[0], paths[1], md
