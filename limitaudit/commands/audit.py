"""`limitaudit audit`: every zeroing in the dump, with its cause, evidence and recovery."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from limitaudit.analysis.audit import attribute_dump
from limitaudit.analysis.unread import unread
from limitaudit.model.audit import CAUSES, FINDING_KINDS, AuditFacts, AuditOptions, Unread
from limitaudit.model.dump import Dump, Finding


@dataclass
class AuditResult:
    zeroings: pl.DataFrame  # CSV_COLUMNS, sorted by zeroed_at then user_id
    findings: list[Finding]
    offsets: pl.DataFrame  # host, offset_ms, evidence
    accounting: dict[str, int]
    options: AuditOptions
    finding_counts: dict[str, int] = field(default_factory=dict)
    facts: AuditFacts | None = None
    unread: list[Unread] = field(default_factory=list)

    def by_cause(self) -> dict[str, int]:
        counts = dict(self.zeroings.group_by("cause").len().iter_rows())
        return {c: counts.get(c, 0) for c in CAUSES}

    def failing(self, names: set[str]) -> dict[str, int]:
        """How many zeroings of each cause, and findings of each kind, that `names` lists
        (the --fail-on set) the audit found; none at all: the run passes."""
        hits = {c: n for c, n in self.by_cause().items() if c in names and n}
        return hits | {k: n for k, n in self.finding_counts.items() if k in names and n}

    def to_data(self) -> dict[str, Any]:
        return {
            "zeroings": self.zeroings.to_dicts(),
            "summary": {"zeroings": self.zeroings.height, "by_cause": self.by_cause()},
            "findings": [f.to_data() for f in self.findings],
            "finding_counts": self.finding_counts,
            "clock_offsets": [
                {"host": h, "offset_ms": o, "evidence": n} for h, o, n in self.offsets.iter_rows()
            ],
            "accounting": self.accounting,
        }


def audit(dump: Dump, options: AuditOptions) -> AuditResult:
    """Every zeroing of `dump` attributed, with the findings and the line accounting."""
    found = attribute_dump(dump, options)
    counts = dict.fromkeys(FINDING_KINDS, 0)
    for f in found.findings:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    counts["rejected"] = dump.rejects.height
    accounting = {
        c: sum(f.counts[c] for f in dump.files)
        for c in ("lines", "records", "duplicates", "rejected")
    }
    return AuditResult(
        found.zeroings,
        found.findings,
        found.facts.offsets,
        accounting,
        options,
        counts,
        found.facts,
        unread(dump, found.zeroings),
    )
