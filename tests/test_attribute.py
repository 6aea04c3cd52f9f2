"""Each cause (docs/causes.md), each precedence conflict, and the matching rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

import limitaudit
import limitaudit.commands.trace as trace_module
from limitaudit.analysis.facts import users_apart
from limitaudit.commands.audit import AuditResult, audit
from limitaudit.model.audit import AuditOptions
from limitaudit.model.dump import Dump
from limitaudit.read import read_dump
from tests.builders import (
    U1,
    U2,
    decision,
    engine_error,
    feed_batch,
    ledger_row,
    manual,
    model_deploy,
    notice,
    param_change,
    rule,
    write_dump,
)

CUTOFF_BAD = [
    param_change(10, "score_cutoff", "600", "6000", "pv-2", "rel-bad"),
    param_change(50, "score_cutoff", "6000", "600", "pv-3", "rel-fix"),
]


def run(
    tmp_path: Path, records: list[dict[str, Any]], ledger: list[Any], **opts: Any
) -> AuditResult:
    return audit(read_dump([write_dump(tmp_path / "dump", records, ledger)]), AuditOptions(**opts))


def only(result: AuditResult) -> dict[str, Any]:
    rows = result.zeroings.to_dicts()
    assert len(rows) == 1, rows
    return rows[0]


def cutoff(threshold: float, observed: float) -> dict[str, Any]:
    return rule("R_SCORE_CUTOFF", "score_cutoff", threshold, observed)


def test_manual_freeze_is_manual_with_its_ticket(tmp_path: Path) -> None:
    records = [manual(20, U1, "OPS-7", 50000, 0, change_id="c1")]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0, "manual")]))
    assert (row["cause"], row["cause_ref"], row["rule_id"]) == ("manual", "OPS-7", "")
    assert "客户申请冻结" in row["evidence"]


def test_fallback_is_system_error_with_the_failing_component(tmp_path: Path) -> None:
    records = [
        engine_error(20, "t-9", component="score-service"),
        engine_error(20, "t-other", component="bureau-client"),
        decision(
            U1,
            20.01,
            50000,
            0,
            [rule("R_FAIL_CLOSED")],
            change_id="c1",
            fallback=True,
            trace="t-9",
            score=None,
        ),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    # A fallback whose score is null too is system_error: the fallback wins.
    assert (row["cause"], row["cause_ref"], row["rule_id"]) == (
        "system_error",
        "score-service",
        "R_FAIL_CLOSED",
    )


def test_fallback_without_trace_takes_the_users_nearest_error(tmp_path: Path) -> None:
    records = [
        engine_error(5, "t-1", component="far-away", user=U1),
        engine_error(19.9, "t-2", component="rules-engine", user=U1),
        decision(U1, 20, 50000, 0, [rule("R_FAIL_CLOSED")], change_id="c1", fallback=True),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert (row["cause"], row["cause_ref"]) == ("system_error", "rules-engine")


def test_null_credit_score_is_data_anomaly_with_the_quoted_batch(tmp_path: Path) -> None:
    records = [
        feed_batch(1, "cb-01", status="partial", nulls=40),
        decision(
            U1,
            20,
            50000,
            0,
            [rule("R_NO_SCORE")],
            change_id="c1",
            score=None,
            credit_score=None,
            batch="cb-01",
        ),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert (row["cause"], row["cause_ref"], row["rule_id"]) == (
        "data_anomaly",
        "cb-01",
        "R_NO_SCORE",
    )


def test_data_anomaly_without_bureau_batch_takes_the_latest_batch_before(tmp_path: Path) -> None:
    records = [
        feed_batch(1, "cb-01"),
        feed_batch(15, "cb-02", status="partial", nulls=40),
        feed_batch(30, "cb-03"),
        decision(U2, 2, 50000, 50000, [], batch="cb-01"),
        decision(U1, 20, 50000, 0, [cutoff(600, 12)], change_id="c1", score=12, credit_score=-1),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert (row["cause"], row["cause_ref"]) == ("data_anomaly", "cb-02")


def test_missing_credit_score_key_is_not_an_anomaly(tmp_path: Path) -> None:
    records = [
        decision(
            U1, 20, 50000, 0, [cutoff(600, 550)], change_id="c1", score=550, credit_score="absent"
        )
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert (row["cause"], row["cause_ref"]) == ("risk_policy", "R_SCORE_CUTOFF")


def test_rolled_back_parameter_is_parameter_error_with_the_counterfactual(tmp_path: Path) -> None:
    records = [
        *CUTOFF_BAD,
        decision(U1, 20, 50000, 0, [cutoff(6000, 712.4)], change_id="c1", pv="pv-2", score=712.4),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert (row["cause"], row["cause_ref"], row["rule_id"]) == (
        "parameter_error",
        "rel-bad",
        "R_SCORE_CUTOFF",
    )
    assert "score_cutoff=6000 (observed 712.4)" in row["evidence"]
    assert "600→6000 by zhang.wei in rel-bad" in row["evidence"]
    assert "back to 600 in rel-fix" in row["evidence"]
    assert "at 600 the rule would not have fired" in row["evidence"]


def test_rule_without_threshold_takes_the_value_of_its_param_version(tmp_path: Path) -> None:
    records = [
        *CUTOFF_BAD,
        decision(U1, 20, 50000, 0, [rule("R_SCORE_CUTOFF")], change_id="c1", pv="pv-2", score=700),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert (row["cause"], row["cause_ref"]) == ("parameter_error", "rel-bad")


def test_zeroing_that_fires_anyway_under_a_bad_value_is_risk_policy(tmp_path: Path) -> None:
    records = [
        *CUTOFF_BAD,
        decision(U1, 20, 50000, 0, [cutoff(6000, 420)], change_id="c1", pv="pv-2", score=420),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert (row["cause"], row["cause_ref"]) == ("risk_policy", "R_SCORE_CUTOFF")
    assert "at 600 the rule would have fired anyway" in row["evidence"]


def test_a_standing_rule_beside_an_explained_one_is_risk_policy(tmp_path: Path) -> None:
    records = [
        *CUTOFF_BAD,
        decision(
            U1,
            20,
            50000,
            0,
            [cutoff(6000, 712), rule("R_FRAUD", observed=True)],
            change_id="c1",
            pv="pv-2",
            score=712,
            fraud=True,
        ),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert (row["cause"], row["cause_ref"]) == ("risk_policy", "R_FRAUD")


def test_null_credit_score_under_a_bad_parameter_is_data_anomaly(tmp_path: Path) -> None:
    records = [
        *CUTOFF_BAD,
        decision(
            U1,
            20,
            50000,
            0,
            [cutoff(6000, 300)],
            change_id="c1",
            pv="pv-2",
            score=300,
            credit_score=None,
            batch="cb-9",
        ),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert (row["cause"], row["cause_ref"]) == ("data_anomaly", "cb-9")


def test_host_that_applies_the_release_late_is_judged_by_its_param_version(
    tmp_path: Path,
) -> None:
    # After the rollback's time, but the host still served pv-2: the record says so.
    records = [
        *CUTOFF_BAD,
        decision(
            U1,
            50.5,
            50000,
            0,
            [cutoff(6000, 700)],
            change_id="c1",
            pv="pv-2",
            score=700,
            host="le-02",
        ),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 50.55, 50000, 0)]))
    assert (row["cause"], row["cause_ref"]) == ("parameter_error", "rel-bad")


def test_rolled_back_parameter_that_no_zeroing_rule_uses_changes_nothing(tmp_path: Path) -> None:
    records = [
        param_change(10, "score_band_step", "50", "500", "pv-2", "rel-band"),
        param_change(30, "score_band_step", "500", "50", "pv-3", "rel-band-fix"),
        decision(
            U1,
            20,
            50000,
            0,
            [cutoff(600, 580), rule("R_SCORE_BAND", action="reduce")],
            change_id="c1",
            pv="pv-2",
            score=580,
        ),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert (row["cause"], row["cause_ref"]) == ("risk_policy", "R_SCORE_CUTOFF")


def test_deliberate_change_that_stands_is_risk_policy(tmp_path: Path) -> None:
    records = [
        param_change(10, "score_cutoff", "600", "620", "pv-2", "rel-tighten"),
        decision(U1, 20, 50000, 0, [cutoff(620, 610)], change_id="c1", pv="pv-2", score=610),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert (row["cause"], row["cause_ref"]) == ("risk_policy", "R_SCORE_CUTOFF")


def test_rolled_back_overdue_limit_is_parameter_error(tmp_path: Path) -> None:
    records = [
        param_change(10, "overdue_max_days", "30", "3", "pv-2", "rel-od"),
        param_change(40, "overdue_max_days", "3", "30", "pv-3", "rel-od-fix"),
        decision(
            U1,
            20,
            50000,
            0,
            [rule("R_OVERDUE", "overdue_max_days", 3, 7)],
            change_id="c1",
            pv="pv-2",
            overdue=7,
        ),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert (row["cause"], row["cause_ref"]) == ("parameter_error", "rel-od")


MODELS = [
    model_deploy(5, "credit-v8.3", "credit-v8.2", 10, "rel-canary"),
    model_deploy(15, "credit-v8.3", "credit-v8.2", 100, "rel-full"),
    model_deploy(45, "credit-v8.2", "credit-v8.3", 100, "rel-rollback"),
]


def test_rolled_back_model_is_model_regression(tmp_path: Path) -> None:
    records = [
        *MODELS,
        decision(
            U1, 20, 50000, 0, [cutoff(600, 540)], change_id="c1", model="credit-v8.3", score=540
        ),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert (row["cause"], row["cause_ref"]) == ("model_regression", "credit-v8.3")
    assert "rolled back to credit-v8.2 in rel-rollback" in row["evidence"]


def test_canary_decisions_are_judged_by_their_own_model(tmp_path: Path) -> None:
    records = [
        *MODELS,
        decision(
            U1, 8, 50000, 0, [cutoff(600, 540)], change_id="c1", model="credit-v8.3", score=540
        ),
        decision(
            U2, 8, 50000, 0, [cutoff(600, 540)], change_id="c2", model="credit-v8.2", score=540
        ),
    ]
    ledger = [ledger_row("c1", U1, 8.05, 50000, 0), ledger_row("c2", U2, 8.05, 50000, 0)]
    rows = {r["user_id"]: r for r in run(tmp_path, records, ledger).zeroings.to_dicts()}
    assert rows[U1]["cause"] == "model_regression"
    assert (rows[U2]["cause"], rows[U2]["cause_ref"]) == ("risk_policy", "R_SCORE_CUTOFF")


def test_model_that_stands_is_risk_policy(tmp_path: Path) -> None:
    records = [
        model_deploy(5, "credit-v9", "credit-v8.2", 100, "rel-9"),
        decision(
            U1, 20, 50000, 0, [cutoff(600, 540)], change_id="c1", model="credit-v9", score=540
        ),
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert row["cause"] == "risk_policy"


def test_ledger_row_without_a_record_is_unexplained(tmp_path: Path) -> None:
    # le-01 decides every minute but says nothing from minute 20 to 45.
    records = [
        decision(U2, float(m), 50000, 50000, [], host="le-01")
        for m in [*range(0, 21), *range(45, 60)]
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 30, 50000, 0)]))
    assert (row["cause"], row["cause_ref"], row["matched_by"]) == ("unexplained", "", "")
    assert f"for user {U1} within ±120 s" in row["evidence"]
    assert (
        "engine host le-01 wrote nothing from 2026-03-14T02:20:00.000Z to 2026-03-14T02:45:00.000Z"
        in row["evidence"]
    )


@pytest.mark.parametrize("lag_s", [-110, -3, 0, 4, 110])
def test_matching_without_change_id_by_user_and_time(tmp_path: Path, lag_s: float) -> None:
    records = [
        decision(U1, 20 + lag_s / 60, 50000, 0, [rule("R_FRAUD", observed=True)], fraud=True)
    ]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert (row["cause"], row["matched_by"]) == ("risk_policy", "time")


def test_matching_by_time_respects_the_tolerance(tmp_path: Path) -> None:
    records = [decision(U1, 20, 50000, 0, [rule("R_FRAUD", observed=True)], fraud=True)]
    ledger = [ledger_row("c1", U1, 23, 50000, 0)]
    assert only(run(tmp_path, records, ledger))["cause"] == "unexplained"
    assert only(run(tmp_path / "wide", records, ledger, tolerance_s=300))["cause"] == "risk_policy"


def test_one_record_explains_one_row_and_limit_before_agreement_wins(tmp_path: Path) -> None:
    records = [
        decision(U1, 20, 30000, 0, [rule("R_FRAUD", observed=True)], fraud=True),
        decision(U1, 20.2, 50000, 0, [rule("R_OVERDUE", "overdue_max_days", 30, 90)], overdue=90),
    ]
    ledger = [ledger_row("c1", U1, 20.25, 50000, 0)]
    row = only(run(tmp_path, records, ledger))
    assert row["cause_ref"] == "R_OVERDUE"


def test_a_record_that_did_not_zero_cannot_explain_a_zeroing(tmp_path: Path) -> None:
    records = [decision(U1, 20, 50000, 20000, [rule("R_SCORE_BAND", action="reduce")])]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 20.05, 50000, 0)]))
    assert row["cause"] == "unexplained"


def test_recovery_full_partial_none_and_notice(tmp_path: Path) -> None:
    records = [
        decision(U1, 10, 50000, 0, [rule("R_FRAUD", observed=True)], change_id="a1", fraud=True),
        decision(U2, 10, 40000, 0, [rule("R_FRAUD", observed=True)], change_id="b1", fraud=True),
        notice(11, U1),
    ]
    ledger = [
        ledger_row("a1", U1, 10.05, 50000, 0),
        ledger_row("a2", U1, 70, 0, 60000, "repayment"),
        ledger_row("b1", U2, 10.05, 40000, 0),
        ledger_row("b2", U2, 80, 0, 1000, "campaign"),
        ledger_row("b3", U2, 90, 1000, 0, "campaign"),
    ]
    rows = run(tmp_path, records, ledger).zeroings.to_dicts()
    by = {(r["user_id"], r["zeroed_at"]): r for r in rows}
    assert len(rows) == 3
    u1 = by[(U1, "2026-03-14T02:10:03.000Z")]
    assert (u1["recovery"], u1["restored_at"], u1["restored_limit"]) == (
        "full",
        "2026-03-14T03:10:00.000Z",
        "60000.00",
    )
    assert u1["zero_duration_s"] == pytest.approx(3597.0)
    assert u1["notified"] is True
    u2 = by[(U2, "2026-03-14T02:10:03.000Z")]
    assert (u2["recovery"], u2["restored_limit"], u2["notified"]) == ("partial", "1000.00", False)
    last = by[(U2, "2026-03-14T03:30:00.000Z")]
    assert (last["recovery"], last["restored_at"], last["restored_limit"]) == ("none", None, None)
    assert last["cause"] == "unexplained"


def test_below_widens_a_zeroing(tmp_path: Path) -> None:
    records = [
        decision(U1, 10, 50000, 100, [rule("R_FRAUD", observed=True)], change_id="a1", fraud=True)
    ]
    ledger = [ledger_row("a1", U1, 10.05, 50000, 100)]
    assert run(tmp_path, records, ledger).zeroings.height == 0
    assert only(run(tmp_path / "b", records, ledger, below_yuan=100))["cause"] == "risk_policy"


def test_chain_breaks_and_ledger_gaps_are_findings(tmp_path: Path) -> None:
    records = [
        decision(U1, 5, 50000, 40000, [rule("R_SCORE_BAND", action="reduce")], change_id="lost")
    ]
    ledger = [
        ledger_row("a1", U1, 1, 0, 50000, "migration"),
        ledger_row("a3", U1, 30, 30000, 35000, "repayment"),
    ]
    result = run(tmp_path, records, ledger)
    kinds = [f.kind for f in result.findings]
    assert kinds.count("chain_break") == 1
    assert kinds.count("ledger_gap") == 1
    gap = next(f for f in result.findings if f.kind == "ledger_gap")
    assert "(lost) but no ledger row has it" in gap.message
    brk = next(f for f in result.findings if f.kind == "chain_break")
    assert "ledger/export.csv:3 (a3) starts at 30000.00" in brk.message
    assert "ledger/export.csv:2 (a1) left 50000.00" in brk.message


def test_a_host_that_is_merely_quiet_is_not_called_silent(tmp_path: Path) -> None:
    records = [decision(U2, 5, 50000, 50000, []), decision(U2, 60, 50000, 50000, [])]
    row = only(run(tmp_path, records, [ledger_row("c1", U1, 30, 50000, 0)]))
    assert row["cause"] == "unexplained"
    assert "wrote nothing" not in row["evidence"]


def test_a_change_id_naming_two_users_keeps_trace_on_the_whole_dump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # c1 is logged for U1 but the ledger files it under U2 (corrupt data): the ledger row is
    # matched to U1's decision by its change_id, so U2's audit needs U1's rows.
    records = [decision(U1, 20, 50000, 0, [rule("R_FRAUD")], change_id="c1", fraud=True)]
    dump = read_dump(
        [write_dump(tmp_path / "dump", records, [ledger_row("c1", U2, 20.05, 500, 0)])]
    )
    assert not users_apart(dump)
    seen = []

    def audit_seen(d: Dump, o: AuditOptions) -> AuditResult:
        seen.append(d)
        return audit(d, o)

    monkeypatch.setattr(trace_module, "audit", audit_seen)
    got = trace_module.trace(dump, U2, AuditOptions())
    assert seen == [dump]  # not Dump.for_user: the whole dump
    assert got.zeroings.select("user_id", "cause").rows() == [(U2, "risk_policy")]


def test_a_trace_of_the_whole_dump_shows_the_users_decisions_read_for_an_audit(
    tmp_path: Path,
) -> None:
    # Read as the command line reads it, a dump keeps in its decision table what the audit
    # facts read, and the decisions whole by bucket: the trace of the whole dump (users
    # not apart) reads the user's from there (it failed on the missing `rules` column).
    records = [decision(U1, 20, 50000, 0, [rule("R_FRAUD")], change_id="c1", fraud=True)]
    path = write_dump(tmp_path / "dump", records, [ledger_row("c1", U2, 20.05, 500, 0)])
    mine = limitaudit.trace(U1, path).timeline.filter(pl.col("kind") == "decision")
    assert mine.height == 1
    assert "rules=[R_FRAUD/" in mine["what"][0]
    theirs = limitaudit.trace(U2, path)
    # The trace reads only U2's decisions whole, then reads again for the whole dump's
    # audit: U2's zeroing is explained by U1's decision, its rules and all.
    assert theirs.zeroings.select("user_id", "cause", "cause_ref").rows() == [
        (U2, "risk_policy", "R_FRAUD")
    ]
    assert theirs.zeroings.equals(limitaudit.audit(path).zeroings.filter(pl.col("user_id") == U2))
    limitaudit.ingest(path, tmp_path / "store")
    from_store = limitaudit.trace(U1, tmp_path / "store").timeline
    assert from_store.filter(pl.col("kind") == "decision").equals(mine)
