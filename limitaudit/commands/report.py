"""`limitaudit report`: what an incident review looks at, as data a page is drawn from.

The dump's zeroings over time and what changed around them, every incident with its own
timeline, its users at zero over time and the users it still owes a limit, the dump's
accounting, and what the report was made from and when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from limitaudit.analysis.incidents import owed
from limitaudit.analysis.timeline import at_zero, markers, per_minute
from limitaudit.commands.incidents import IncidentsResult, incidents_of
from limitaudit.commands.scan import FileSummary, reject_reasons, summaries
from limitaudit.model.audit import AuditOptions
from limitaudit.model.dump import Dump
from limitaudit.model.format import iso_times, iso_utc


@dataclass(frozen=True)
class Provenance:
    """What a report was made from, by what and when: a report in a ticket traces back."""

    version: str
    sources: list[str]
    tz: str
    made_at: datetime

    def to_data(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sources": self.sources,
            "time_zone": self.tz,
            "made_at": iso_utc(self.made_at),
        }


@dataclass
class ReportResult:
    incidents: IncidentsResult
    timeline: pl.DataFrame  # minute, cause, cause_ref, zeroings (analysis.timeline.per_minute)
    markers: pl.DataFrame  # kind, at, until, ref, label (analysis.timeline.markers)
    at_zero: pl.DataFrame  # cause, cause_ref, at, at_zero (analysis.timeline.at_zero)
    owed: pl.DataFrame  # every user still owed a limit (analysis.incidents.owed)
    files: list[FileSummary]
    totals: dict[str, int]
    reasons: pl.DataFrame  # reason, len: rejected lines by reason, most first
    first: datetime | None  # the dump's first and last record
    last: datetime | None
    provenance: Provenance

    @property
    def offsets(self) -> pl.DataFrame:
        return self.incidents.audit.offsets

    def to_data(self) -> dict[str, Any]:
        """Everything the page shows, as plain data (times ISO 8601 UTC)."""
        return {
            "made": self.provenance.to_data(),
            "span": {"first": iso_utc(self.first), "last": iso_utc(self.last)},
            "zeroings": self.incidents.audit.zeroings.height,
            "incidents": self.incidents.to_data()["incidents"],
            "timeline": iso_times(self.timeline).to_dicts(),
            "markers": iso_times(self.markers).to_dicts(),
            "at_zero": iso_times(self.at_zero).to_dicts(),
            "owed": self.owed.to_dicts(),
            "files": [f.to_data() for f in self.files],
            "totals": self.totals,
            "rejected_by_reason": [{"reason": r, "lines": n} for r, n in self.reasons.iter_rows()],
            "clock_offsets": self.offsets.to_dicts(),
        }


def report_of(
    dump: Dump,
    options: AuditOptions,
    version: str,
    sources: list[str],
    made_at: datetime | None = None,
) -> ReportResult:
    """The report of `dump`: its incidents (as `incidents` finds them) and what a page
    draws of them."""
    found = incidents_of(dump, options)
    result = found.audit
    assert result.facts is not None
    files, totals, rejects = summaries(dump)
    first, last = dump.span()
    return ReportResult(
        incidents=found,
        timeline=per_minute(result.zeroings),
        markers=markers(dump.tables, result.facts),
        at_zero=at_zero(result.zeroings, last),
        owed=owed(result.zeroings),
        files=files,
        totals=totals,
        reasons=reject_reasons(rejects),
        first=first,
        last=last,
        provenance=Provenance(version, sources, dump.tz, made_at or datetime.now(UTC)),
    )
