"""The committed sample dump: every cause present, and the audit equals its committed answers."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from limitaudit.commands.audit import audit
from limitaudit.model.audit import CAUSES, CONTRACT_COLUMNS, AuditOptions
from limitaudit.read import read_dump

ROOT = Path(__file__).parent.parent


def test_sample_logs_audit_equals_its_answers() -> None:
    got = audit(read_dump([ROOT / "sample_logs"]), AuditOptions()).zeroings.select(CONTRACT_COLUMNS)
    want = pl.read_csv(ROOT / "tests" / "sample_answers" / "audit.csv", infer_schema=False)
    want = want.select(CONTRACT_COLUMNS).with_columns(
        pl.col(c).fill_null("") for c in ("cause_ref",)
    )
    assert_frame_equal(got, want)
    assert set(got["cause"]) == set(CAUSES)
