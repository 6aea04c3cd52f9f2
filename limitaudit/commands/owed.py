"""`limitaudit owed`: who is still owed a limit, and how much (the compensation list)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from limitaudit.analysis.incidents import owed
from limitaudit.commands.audit import AuditResult, audit
from limitaudit.model.audit import AuditOptions
from limitaudit.model.dump import Dump


@dataclass
class OwedResult:
    owed: pl.DataFrame  # analysis.incidents.OWED_COLUMNS, largest shortfall first
    include_unexplained: bool
    audit: AuditResult

    def to_data(self) -> dict[str, Any]:
        return {
            "owed": self.owed.to_dicts(),
            "include_unexplained": self.include_unexplained,
            "users": self.owed.height,
        }


def owed_of(dump: Dump, options: AuditOptions, include_unexplained: bool = False) -> OwedResult:
    """The users of `dump` still owed a limit (see analysis.incidents.owed)."""
    result = audit(dump, options)
    return OwedResult(owed(result.zeroings, include_unexplained), include_unexplained, result)
