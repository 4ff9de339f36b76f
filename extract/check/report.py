"""``check-api``'s report: one result per open point, the table, the JSON, the exit code;
archived as ``report.json`` beside its evidence, where ``extract candles`` reads the two
answers that price the routes (:func:`checked_evidence`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from extract.check.probe import CHECK_DIR
from extract.check.rules import EXPECTED, HANDLED, UNKNOWN
from extract.plan.auto import Answer, CapCounts, Evidence
from schemas.archive import ArchiveStore

log = logging.getLogger(__name__)

LATE_PUBLICATION = (
    "late publication of a closed market's last candles cannot be seen in one short "
    "pass; the extractor's grace period before a window is final covers it"
)


#: The checks in the order they are reported (issue 13's table, then batch).
ORDER = (
    "candle_fields",
    "uncapped_adjusted_end_ts",
    "market_tickers_scope",
    "event_cap_counts",
    "paging_direction",
    "historical_over_cap",
    "batch_over_cap",
    "historical_cutoff",
    "nested_markets_of_historical_event",
    "batch_serves_historical",
)


@dataclass
class CheckResult:
    """One open point: what was observed, against our reading of the spec."""

    name: str
    observed: str
    evidence: str
    files: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``held`` (as our notes say), ``differs``, or ``unknown`` (could not tell)."""
        if self.observed == UNKNOWN:
            return UNKNOWN
        if self.name == "historical_cutoff":
            return "differs" if self.observed == "unparseable" else "held"
        return "held" if EXPECTED.get(self.name) == self.observed else "differs"

    @property
    def handled(self) -> bool:
        """False when the extractor does not handle what was observed (exit 1)."""
        if self.observed == UNKNOWN:
            return True
        if self.name == "historical_cutoff":
            return self.observed != "unparseable"  # the extractor routes by it
        return self.observed in HANDLED[self.name]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "observed": self.observed,
            "handled": self.handled,
            "evidence": self.evidence,
            "files": self.files,
        }


@dataclass
class CheckReport:
    """Everything ``check-api`` found; ``exit_code`` is 1 when something is not handled."""

    api_base: str
    requests: int
    checks: list[CheckResult]
    evidence_dir: str

    @property
    def unhandled(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.handled]

    @property
    def unknown(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == UNKNOWN]

    @property
    def exit_code(self) -> int:
        return 1 if self.unhandled else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "api_base": self.api_base,
            "requests": self.requests,
            "checks": [c.to_json() for c in self.checks],
            "evidence_dir": self.evidence_dir,
            "notes": [LATE_PUBLICATION],
        }

    def lines(self) -> list[str]:
        """The human table, then warnings and errors."""
        head = ("check", "status", "observed", "handled")
        rows = [(c.name, c.status, c.observed, "yes" if c.handled else "NO") for c in self.checks]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        out = [
            f"check-api {self.api_base}: {self.requests} requests, evidence in {self.evidence_dir}"
        ]
        for r in [head, *rows]:
            out.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        for c in self.checks:
            out.append(f"  {c.name}: {c.evidence}")
        out.append(f"note: {LATE_PUBLICATION}")
        for c in self.unknown:
            out.append(f"warning: {c.name} could not be observed: {c.evidence}")
        for c in self.unhandled:
            out.append(
                f"error: {c.name} is {c.observed!r}, which the extractor does not handle: "
                f"{c.evidence}"
            )
        return out


# --- what a candles run takes from the last report ---------------------------------------

#: The report's JSON beside its evidence pages (``_check/{series}/{time}/report.json``).
REPORT_FILE = "report.json"


def report_bytes(report: CheckReport) -> bytes:
    """The report as archived: the same object ``--format json`` prints."""
    return orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2)


def evidence_from_report(doc: Mapping[str, Any]) -> Evidence:
    """What ``auto`` may take from a report: the two points that price the routes.

    Only an observed answer counts (``unknown`` stays unknown). Why it matters: the
    event cap's counting is learned in a run only from a CAPPED event page, and ``auto``
    fetches none while it prices the event route at its worst case, so without the
    report a server whose cap counts returned candles never shows it, and sparse markets
    stay on batch even where one event page would hold the whole window.
    """
    observed = {
        c.get("name"): c.get("observed") for c in doc.get("checks") or () if isinstance(c, Mapping)
    }
    evidence = Evidence()
    cap = observed.get("event_cap_counts")
    if cap in (CapCounts.RETURNED, CapCounts.REQUESTED):
        evidence.saw_event_cap(CapCounts(cap))
    served = observed.get("batch_serves_historical")
    if served in (Answer.YES, Answer.NO):
        evidence.saw_batch_historical(Answer(served))
    return evidence


def checked_evidence(archive: ArchiveStore, series: str, api_base: str) -> Evidence:
    """The evidence of the newest ``check-api`` report of ``series`` against ``api_base``
    in the archive, or none. A report that cannot be read is skipped with a warning:
    it only saves requests, the run is right without it (a wrong answer costs requests,
    never candles: a market batch leaves out still falls back to its own route)."""
    for rel in sorted(archive.glob(f"{CHECK_DIR}/{series}/*/{REPORT_FILE}"), reverse=True):
        try:
            doc = orjson.loads(archive.read_bytes(rel))
        except (orjson.JSONDecodeError, OSError) as e:
            log.warning("check-api report %s skipped: %s", archive.where(rel), e)
            continue
        if not isinstance(doc, dict) or doc.get("api_base") != api_base:
            continue
        evidence = evidence_from_report(doc)
        log.info(
            "route evidence from check-api (%s): event cap counts %s, batch serves "
            "historical markets: %s",
            archive.where(rel),
            evidence.event_cap_counts.value,
            evidence.batch_serves_historical.value,
        )
        return evidence
    return Evidence()
