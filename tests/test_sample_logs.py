"""The committed sample dump: every cause present, and the audit equals its committed answers."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

import limitaudit
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


def test_sample_logs_incidents_and_owed_equal_their_answers() -> None:
    answers = ROOT / "tests" / "sample_answers"
    found = limitaudit.incidents(ROOT / "sample_logs")
    want = pl.read_csv(answers / "incidents.csv", infer_schema=False)
    got = found.incidents.select(pl.col(c).cast(pl.String) for c in want.columns)
    assert got.to_dicts() == want.to_dicts()
    owed = limitaudit.owed(ROOT / "sample_logs").owed
    want = pl.read_csv(answers / "owed.csv", infer_schema=False)
    got = owed.select(pl.col(c).cast(pl.String) for c in want.columns)
    notified = pl.col("notified").str.to_lowercase()  # Polars writes true, synth True
    assert got.with_columns(notified).to_dicts() == want.with_columns(notified).to_dicts()
