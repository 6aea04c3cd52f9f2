"""`limitaudit incidents`: what happened, to how many users, and is it over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from limitaudit.analysis.facts import shifted
from limitaudit.analysis.incidents import by_rule, by_silence, incidents
from limitaudit.analysis.origins import origins
from limitaudit.commands.audit import AuditResult, audit
from limitaudit.model.audit import AuditOptions
from limitaudit.model.dump import Dump


@dataclass
class IncidentsResult:
    # One row an incident (analysis.incidents.INCIDENT_COLUMNS, then what caused it as
    # data, DETAIL_COLUMNS, and per_5min), most users hit first.
    incidents: pl.DataFrame
    rules: pl.DataFrame  # risk_policy by rule: context, not incidents
    silences: pl.DataFrame  # unexplained by engine host silence
    audit: AuditResult

    def to_data(self) -> dict[str, Any]:
        return {
            "incidents": self.incidents.to_dicts(),
            "risk_policy_by_rule": self.rules.to_dicts(),
            "unexplained_by_silence": self.silences.to_dicts(),
            "zeroings": self.audit.zeroings.height,
        }


def incidents_of(dump: Dump, options: AuditOptions) -> IncidentsResult:
    """Every incident of `dump`: its audit's zeroings by cause and cause_ref, with what
    caused each."""
    result = audit(dump, options)
    assert result.facts is not None
    z = result.zeroings
    found = origins(incidents(z, options), dump.tables, result.facts, options.tolerance_ms)
    silences = shifted(result.facts.silences, result.facts.offsets)
    return IncidentsResult(found, by_rule(z), by_silence(z, silences, options.tolerance_ms), result)
