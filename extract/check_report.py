"""``check-api``'s report: one result per open point, the table, the JSON, the exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from extract.check_rules import EXPECTED, HANDLED, UNKNOWN

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
