"""What an audit is asked and concludes: its options, the causes and finding kinds, the
facts it takes from the whole dump, and the CSV columns other programs rely on."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

CAUSES = [
    "manual",
    "system_error",
    "data_anomaly",
    "parameter_error",
    "model_regression",
    "risk_policy",
    "unexplained",
]
FINDING_KINDS = [
    "chain_break",
    "ledger_gap",
    "rejected",
    "truncated",
    "skipped",
    "empty",
    "unreadable",
    "ledger_conflict",
]
# The columns other programs rely on, in this order (docs/output.md).
CONTRACT_COLUMNS = [
    "user_id",
    "zeroed_at",
    "limit_before",
    "cause",
    "cause_ref",
    "recovery",
    "restored_at",
    "restored_limit",
]
CSV_COLUMNS = [
    *CONTRACT_COLUMNS,
    "rule_id",
    "evidence",
    "zero_duration_s",
    "notified",
    "matched_by",
    "change_id",
    "record",
    "host",
    # The user's limit where the dump ends (their last ledger row), and whether they were
    # told of the restore (a notice within 24 hours after it).
    "limit_now",
    "restore_notified",
]


@dataclass(frozen=True)
class AuditOptions:
    below_yuan: float = 0.0
    tolerance_s: float = 120.0

    @property
    def below_fen(self) -> int:
        return round(self.below_yuan * 100)

    @property
    def tolerance_ms(self) -> int:
        return round(self.tolerance_s * 1000)


@dataclass(frozen=True)
class AuditFacts:
    """What an audit derives from the whole dump and needs for every user.

    A store keeps them, so that `trace` can read one user's rows and still audit that
    user exactly as the whole dump would. They hold for the options they were made with.
    """

    options: AuditOptions
    offsets: pl.DataFrame  # host, offset_ms, evidence
    # host, start, end: engine hosts' silences on their own clocks (a clock offset moves a
    # silence but does not change it: gaps between one host's records are the same).
    silences: pl.DataFrame
    # The feed whose batches decisions quote: the one a decision without a bureau_batch
    # takes its latest batch from. None when the dump has no feed batch.
    data_feed: str | None


@dataclass(frozen=True)
class Unread:
    """Something the read of a dump could not take in (analysis.unread)."""

    kind: str  # skipped | unreadable | empty | truncated | rejected
    files: list[str]
    lines: int  # the lines rejected; 0 for the other kinds
    # Unexplained zeroings whose record may be in what was lost, where that can be told:
    # of a user a rejected line names, or later than a log's cut.
    zeroings: int | None
    cut_at: str | None  # truncated: when the records before the earliest cut stop
