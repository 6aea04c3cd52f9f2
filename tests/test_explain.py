"""Rollback histories and the cause of a decision's zeroing, rule by rule (causes.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

from limitaudit.analysis.attribute import Context, explain, model_history, param_history
from limitaudit.model.schema import DType, Rule, Time

T0 = datetime(2026, 3, 14, 2, 0, 0, tzinfo=UTC)
A, B = "2088100000000001", "2088100000000002"
TOL = 120_000

PARAM_SCHEMA: dict[str, DType] = {
    "file_id": pl.UInt32,
    "line": pl.UInt32,
    "cts": Time,
    "param": pl.String,
    "old_value": pl.String,
    "new_value": pl.String,
    "param_version": pl.String,
    "operator": pl.String,
    "release_id": pl.String,
}
DEPLOY_SCHEMA: dict[str, DType] = {
    "file_id": pl.UInt32,
    "line": pl.UInt32,
    "cts": Time,
    "model_version": pl.String,
    "previous_version": pl.String,
    "traffic_pct": pl.Float64,
    "release_id": pl.String,
}
ERROR_SCHEMA: dict[str, DType] = {
    "file_id": pl.UInt32,
    "line": pl.UInt32,
    "cts": Time,
    "trace_id": pl.String,
    "user_id": pl.String,
    "component": pl.String,
    "error": pl.String,
}
BATCH_SCHEMA: dict[str, DType] = {"cts": Time, "batch_id": pl.String}
DECISION_SCHEMA: dict[str, DType] = {
    "zid": pl.UInt32,
    "cts": Time,
    "user_id": pl.String,
    "trace_id": pl.String,
    "param_version": pl.String,
    "model_version": pl.String,
    "score": pl.Float64,
    "credit_score": pl.Int64,
    "credit_score_present": pl.Boolean,
    "overdue_days": pl.Int64,
    "fraud_flag": pl.Boolean,
    "bureau_batch": pl.String,
    "rules": pl.List(Rule),
    "fallback": pl.Boolean,
}
CAUSE_SCHEMA: dict[str, DType] = {
    "zid": pl.UInt32,
    "cause": pl.String,
    "cause_ref": pl.String,
    "rule_id": pl.String,
}

# score_cutoff 600→6000 (rel-bad) and overdue_max_days 30→3 (rel-od), both put back later.
PARAMS = pl.DataFrame(
    {
        "file_id": [0, 0, 0, 0],
        "line": [1, 2, 3, 4],
        "cts": [T0 + timedelta(minutes=m) for m in (10, 12, 50, 52)],
        "param": ["score_cutoff", "overdue_max_days", "score_cutoff", "overdue_max_days"],
        "old_value": ["600", "30", "6000", "3"],
        "new_value": ["6000", "3", "600", "30"],
        "param_version": ["pv-2", "pv-3", "pv-4", "pv-5"],
        "operator": ["liu.yang", "liu.yang", "zhang.wei", "zhang.wei"],
        "release_id": ["rel-bad", "rel-od", "rel-fix", "rel-od-fix"],
    },
    schema=PARAM_SCHEMA,
)
# credit-v8.3 in full at 60 min, rolled back to credit-v8.2 at 120 min, in again at 180.
DEPLOYS = pl.DataFrame(
    {
        "file_id": [1, 1, 1],
        "line": [1, 2, 3],
        "cts": [T0 + timedelta(minutes=m) for m in (60, 120, 180)],
        "model_version": ["credit-v8.3", "credit-v8.2", "credit-v8.3"],
        "previous_version": ["credit-v8.2", "credit-v8.3", "credit-v8.2"],
        "traffic_pct": [100.0, 100.0, 100.0],
        "release_id": ["rel-m1", "rel-m2", "rel-m3"],
    },
    schema=DEPLOY_SCHEMA,
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def rule(
    rule_id: str,
    param: str | None = None,
    threshold: float | None = None,
    observed: str | None = None,
    action: str = "zero",
) -> dict[str, Any]:
    return {
        "id": rule_id,
        "param": param,
        "threshold": threshold,
        "observed": observed,
        "action": action,
    }


CUTOFF_BAD = rule("R_SCORE_CUTOFF", "score_cutoff", 6000, "712.4")
OVERDUE_BAD = rule("R_OVERDUE", "overdue_max_days", 3, "10")

DEFAULTS: dict[str, Any] = {
    "cts": at(20),
    "user_id": A,
    "trace_id": None,
    "param_version": "pv-1",
    "model_version": "credit-v7",
    "score": 712.4,
    "credit_score": 700,
    "credit_score_present": True,
    "overdue_days": 10,
    "fraud_flag": False,
    "bureau_batch": None,
    "rules": [],
    "fallback": False,
}


def decisions(*rows: dict[str, Any]) -> pl.DataFrame:
    """One decision a row, zid 0.., each field its DEFAULTS value unless given."""
    filled = [{"zid": i, **DEFAULTS, **row} for i, row in enumerate(rows)]
    return pl.DataFrame(filled, schema=DECISION_SCHEMA)


def context(
    errors: pl.DataFrame | None = None,
    batches: pl.DataFrame | None = None,
    params: pl.DataFrame = PARAMS,
    deploys: pl.DataFrame = DEPLOYS,
) -> Context:
    return Context(
        params=param_history(params),
        models=model_history(deploys),
        errors=errors if errors is not None else pl.DataFrame(schema=ERROR_SCHEMA),
        batches=batches if batches is not None else pl.DataFrame(schema=BATCH_SCHEMA),
        tolerance_ms=TOL,
    )


def causes(frame: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    return explain(frame, ctx).select(list(CAUSE_SCHEMA)).sort("zid")


def expected(*rows: tuple[str, str, str]) -> pl.DataFrame:
    """(cause, cause_ref, rule_id) for zid 0.."""
    return pl.DataFrame(
        [(i, *row) for i, row in enumerate(rows)], schema=CAUSE_SCHEMA, orient="row"
    )


# --- histories ---------------------------------------------------------------------------


def test_param_change_is_rolled_back_by_the_first_later_change_back_to_its_old_value() -> None:
    params = pl.DataFrame(
        {
            # Given out of order: history is by time.
            "file_id": [0, 0, 0, 0, 0],
            "line": [4, 1, 2, 3, 5],
            "cts": [at(40), at(10), at(20), at(30), at(50)],
            "param": [
                "score_cutoff",
                "score_cutoff",
                "overdue_max_days",
                "score_cutoff",
                "score_cutoff",
            ],
            "old_value": ["6000", "600", "600", "6000", "6000"],
            "new_value": ["600", "6000", "6000", "600.0", "600"],
            "param_version": ["pv-4", "pv-1", "pv-2", "pv-3", "pv-5"],
            "operator": ["b", "a", "a", "a", "c"],
            "release_id": ["rel-4", "rel-1", "rel-2", "rel-3", "rel-5"],
        },
        schema=PARAM_SCHEMA,
    )
    # rel-1 (600→6000) is put back by rel-4, the first later score_cutoff change to "600":
    # not rel-2 (another parameter) nor rel-3 ("600.0" is other text), nor rel-5 (later).
    result = param_history(params).select(
        "seq", "release_id", "rb_seq", "rb_release", "rb_cts", "rb_operator"
    )
    want = pl.DataFrame(
        {
            "seq": [0, 1, 2, 3, 4],
            "release_id": ["rel-1", "rel-2", "rel-3", "rel-4", "rel-5"],
            "rb_seq": [3, None, None, None, None],
            "rb_release": ["rel-4", None, None, None, None],
            "rb_cts": [at(40), None, None, None, None],
            "rb_operator": ["b", None, None, None, None],
        },
        schema={
            "seq": pl.UInt32,
            "release_id": pl.String,
            "rb_seq": pl.UInt32,
            "rb_release": pl.String,
            "rb_cts": Time,
            "rb_operator": pl.String,
        },
    )
    assert_frame_equal(result.sort("seq"), want)


def test_model_deploy_is_rolled_back_by_a_later_full_deploy_of_the_version_it_replaced() -> None:
    deploys = pl.DataFrame(
        {
            "file_id": [0] * 5,
            "line": [1, 2, 3, 4, 5],
            "cts": [at(10), at(20), at(30), at(40), at(50)],
            "model_version": ["v3", "v3", "v2", "v2", "v4"],
            "previous_version": ["v2", "v2", "v3", "v3", "v3"],
            "traffic_pct": [10.0, 100.0, 50.0, None, 100.0],
            "release_id": ["canary", "full", "half-back", "back", "next"],
        },
        schema=DEPLOY_SCHEMA,
    )
    # The canary counts as a deploy; the 50% return to v2 is no rollback, the one with no
    # traffic_pct (full) is, for both v3 deploys. v2's own deploys are not undone.
    result = model_history(deploys).select("seq", "release_id", "rb_seq", "rb_release", "rb_cts")
    want = pl.DataFrame(
        {
            "seq": [0, 1, 2, 3, 4],
            "release_id": ["canary", "full", "half-back", "back", "next"],
            "rb_seq": [3, 3, None, None, None],
            "rb_release": ["back", "back", None, None, None],
            "rb_cts": [at(40), at(40), None, None, None],
        },
        schema={
            "seq": pl.UInt32,
            "release_id": pl.String,
            "rb_seq": pl.UInt32,
            "rb_release": pl.String,
            "rb_cts": Time,
        },
    )
    assert_frame_equal(result.sort("seq"), want)


def test_model_rollback_must_come_from_the_rolled_back_version() -> None:
    deploys = pl.DataFrame(
        {
            "file_id": [0, 0, 0],
            "line": [1, 2, 3],
            "cts": [at(10), at(20), at(30)],
            "model_version": ["v3", "v2", "v2"],
            "previous_version": ["v2", "v9", None],
            "traffic_pct": [100.0, 100.0, 100.0],
            "release_id": ["in", "from-v9", "unsaid"],
        },
        schema=DEPLOY_SCHEMA,
    )
    # v2 from v9 does not undo v3; v2 from an unnamed version does.
    result = model_history(deploys).sort("seq")["rb_release"].to_list()
    assert result == ["unsaid", None, None]


# --- system ------------------------------------------------------------------------------


def test_fallback_is_system_error_with_the_component_of_its_traces_error() -> None:
    errors = pl.DataFrame(
        {
            "file_id": [2, 2],
            "line": [1, 2],
            "cts": [at(19), at(20)],
            "trace_id": ["t-9", "t-other"],
            "user_id": [None, A],
            "component": ["score-service", "bureau-client"],
            "error": ["SocketTimeoutException", "IOError"],
        },
        schema=ERROR_SCHEMA,
    )
    # Its score is null too, and it lists a score rule: the fallback comes first.
    frame = decisions(
        {"trace_id": "t-9", "fallback": True, "score": None, "rules": [rule("R_NO_SCORE")]}
    )
    assert_frame_equal(
        causes(frame, context(errors)),
        expected(("system_error", "score-service", "R_FAIL_CLOSED")),
    )


def test_fallback_without_its_traces_error_takes_the_users_nearest_error() -> None:
    errors = pl.DataFrame(
        {
            "file_id": [2, 2, 2],
            "line": [1, 2, 3],
            "cts": [at(5), at(20.5), at(20)],
            "trace_id": ["t-1", "t-2", "t-3"],
            "user_id": [A, A, B],
            "component": ["far-away", "rules-engine", "other-user"],
            "error": ["E", "E", "E"],
        },
        schema=ERROR_SCHEMA,
    )
    frame = decisions(
        {"trace_id": "t-unlogged", "fallback": True, "rules": [rule("R_FAIL_CLOSED")]}
    )
    assert_frame_equal(
        causes(frame, context(errors)),
        expected(("system_error", "rules-engine", "R_FAIL_CLOSED")),
    )


def test_fallback_without_any_error_has_an_empty_cause_ref() -> None:
    frame = decisions({"fallback": True, "rules": [rule("R_FAIL_CLOSED")]})
    result = explain(frame, context())
    assert_frame_equal(
        result.select(list(CAUSE_SCHEMA)), expected(("system_error", "", "R_FAIL_CLOSED"))
    )
    assert result["rule_notes"].to_list() == [
        "R_FAIL_CLOSED: fail-closed default; fallback decision: the engine failed closed "
        "after an engine error in an unknown component"
    ]


# --- data --------------------------------------------------------------------------------


def test_score_rule_on_missing_credit_data_or_null_score_is_data_anomaly() -> None:
    frame = decisions(
        {
            "credit_score": None,
            "score": None,
            "bureau_batch": "cb-01",
            "rules": [rule("R_NO_SCORE")],
        },
        # Good credit data, but no score.
        {"score": None, "bureau_batch": "cb-07", "rules": [rule("R_NO_SCORE")]},
    )
    result = explain(frame, context()).sort("zid")
    assert_frame_equal(
        result.select(list(CAUSE_SCHEMA)),
        expected(("data_anomaly", "cb-01", "R_NO_SCORE"), ("data_anomaly", "cb-07", "R_NO_SCORE")),
    )
    assert result["rule_notes"].to_list() == [
        "R_NO_SCORE fired on missing credit data: credit_score=null, score=null (batch cb-01)",
        "R_NO_SCORE fired on missing credit data: credit_score=700, score=null (batch cb-07)",
    ]


def test_rule_without_threshold_or_observed_takes_its_param_version_and_what_it_reads() -> None:
    frame = decisions(
        {"param_version": "pv-2", "rules": [rule("R_SCORE_CUTOFF")]},
        {"param_version": "pv-0", "overdue_days": 45, "rules": [rule("R_OVERDUE")]},
    )
    result = explain(frame, context()).sort("zid")
    assert_frame_equal(
        result.select(list(CAUSE_SCHEMA)),
        expected(
            ("parameter_error", "rel-bad", "R_SCORE_CUTOFF"),
            ("risk_policy", "R_OVERDUE", "R_OVERDUE"),
        ),
    )
    # pv-2's score_cutoff is 6000, and the score 712.4; pv-0 runs before every change, so
    # overdue_max_days is its first change's old value, 30.
    assert [note.split(";")[0] for note in result["rule_notes"]] == [
        "R_SCORE_CUTOFF fired with score_cutoff=6000 (observed 712.4)",
        "R_OVERDUE fired with overdue_max_days=30 (observed 45): it stands "
        "(the user's own data under a configuration that stood)",
    ]


def test_credit_score_minus_one_without_a_batch_takes_the_latest_batch_before() -> None:
    batches = pl.DataFrame(
        {"cts": [at(1), at(15), at(30)], "batch_id": ["cb-01", "cb-02", "cb-03"]},
        schema=BATCH_SCHEMA,
    )
    frame = decisions(
        {"credit_score": -1, "score": 12.0, "rules": [rule("R_SCORE_CUTOFF", "score_cutoff", 600)]}
    )
    assert_frame_equal(
        causes(frame, context(batches=batches)),
        expected(("data_anomaly", "cb-02", "R_SCORE_CUTOFF")),
    )


def test_credit_score_left_out_is_not_missing_data() -> None:
    frame = decisions(
        {
            "credit_score": None,
            "credit_score_present": False,
            "score": 550.0,
            "rules": [rule("R_SCORE_CUTOFF", "score_cutoff", 600, "550")],
        }
    )
    assert_frame_equal(
        causes(frame, context()), expected(("risk_policy", "R_SCORE_CUTOFF", "R_SCORE_CUTOFF"))
    )


def test_missing_credit_data_explains_only_score_rules() -> None:
    frame = decisions({"credit_score": -1, "rules": [rule("R_FRAUD")], "fraud_flag": True})
    assert_frame_equal(causes(frame, context()), expected(("risk_policy", "R_FRAUD", "R_FRAUD")))


# --- parameter ---------------------------------------------------------------------------


def test_rolled_back_value_without_which_the_rule_would_not_fire_is_parameter_error() -> None:
    frame = decisions({"param_version": "pv-2", "rules": [CUTOFF_BAD]})
    result = explain(frame, context())
    assert_frame_equal(
        result.select(list(CAUSE_SCHEMA)),
        expected(("parameter_error", "rel-bad", "R_SCORE_CUTOFF")),
    )
    assert result["rule_notes"].to_list() == [
        "R_SCORE_CUTOFF fired with score_cutoff=6000 (observed 712.4); score_cutoff went "
        "600→6000 by liu.yang in rel-bad at 2026-03-14T02:10:00.000Z and back to 600 in "
        "rel-fix at 2026-03-14T02:50:00.000Z; at 600 the rule would not have fired"
    ]


def test_rolled_back_value_under_which_the_rule_fires_anyway_is_risk_policy() -> None:
    frame = decisions(
        {
            "param_version": "pv-2",
            "score": 548.6,
            "rules": [rule("R_SCORE_CUTOFF", "score_cutoff", 6000, "548.6")],
        }
    )
    result = explain(frame, context())
    assert_frame_equal(
        result.select(list(CAUSE_SCHEMA)),
        expected(("risk_policy", "R_SCORE_CUTOFF", "R_SCORE_CUTOFF")),
    )
    assert result["rule_notes"].to_list() == [
        "R_SCORE_CUTOFF fired with score_cutoff=6000 (observed 548.6); score_cutoff went "
        "600→6000 by liu.yang in rel-bad at 2026-03-14T02:10:00.000Z and back to 600 in "
        "rel-fix at 2026-03-14T02:50:00.000Z; at 600 the rule would have fired anyway"
    ]


def test_param_version_decides_the_value_a_rule_ran_with() -> None:
    frame = decisions(
        # pv-3 includes rel-bad; pv-4 is after the fix; pv-0 (named by no change) is the
        # configuration before the first change; no param_version: the changes before cts.
        {"param_version": "pv-3", "rules": [CUTOFF_BAD]},
        {"param_version": "pv-4", "rules": [CUTOFF_BAD]},
        {"param_version": "pv-0", "rules": [CUTOFF_BAD]},
        {"param_version": None, "cts": at(11), "rules": [CUTOFF_BAD]},
        {"param_version": None, "cts": at(9), "rules": [CUTOFF_BAD]},
    )
    assert_frame_equal(
        causes(frame, context()),
        expected(
            ("parameter_error", "rel-bad", "R_SCORE_CUTOFF"),
            ("risk_policy", "R_SCORE_CUTOFF", "R_SCORE_CUTOFF"),
            ("risk_policy", "R_SCORE_CUTOFF", "R_SCORE_CUTOFF"),
            ("parameter_error", "rel-bad", "R_SCORE_CUTOFF"),
            ("risk_policy", "R_SCORE_CUTOFF", "R_SCORE_CUTOFF"),
        ),
    )


def test_cause_ref_is_the_release_of_the_first_rule_the_parameter_explains() -> None:
    frame = decisions(
        {"param_version": "pv-3", "rules": [OVERDUE_BAD, CUTOFF_BAD]},
        {"param_version": "pv-3", "rules": [CUTOFF_BAD, OVERDUE_BAD]},
    )
    assert_frame_equal(
        causes(frame, context()),
        expected(
            ("parameter_error", "rel-od", "R_OVERDUE"),
            ("parameter_error", "rel-bad", "R_SCORE_CUTOFF"),
        ),
    )


# --- model -------------------------------------------------------------------------------


def test_score_rule_under_a_rolled_back_model_is_model_regression() -> None:
    frame = decisions(
        {"cts": at(90), "model_version": "credit-v8.3", "rules": [CUTOFF_BAD]},
        # Not a score rule: the model does not explain it.
        {"cts": at(90), "model_version": "credit-v8.3", "rules": [OVERDUE_BAD]},
    )
    assert_frame_equal(
        causes(frame, context()),
        expected(
            ("model_regression", "credit-v8.3", "R_SCORE_CUTOFF"),
            ("risk_policy", "R_OVERDUE", "R_OVERDUE"),
        ),
    )


def test_model_deploy_in_force_is_the_latest_before_the_decision_else_the_first() -> None:
    frame = decisions(
        # After the redeploy at 180 min, which stood; before any deploy (beyond the
        # tolerance): the first, rolled back; 1 min before the redeploy, within the
        # tolerance: the redeploy.
        {"cts": at(200), "model_version": "credit-v8.3", "rules": [CUTOFF_BAD]},
        {"cts": at(30), "model_version": "credit-v8.3", "rules": [CUTOFF_BAD]},
        {"cts": at(179), "model_version": "credit-v8.3", "rules": [CUTOFF_BAD]},
    )
    assert_frame_equal(
        causes(frame, context()),
        expected(
            ("risk_policy", "R_SCORE_CUTOFF", "R_SCORE_CUTOFF"),
            ("model_regression", "credit-v8.3", "R_SCORE_CUTOFF"),
            ("risk_policy", "R_SCORE_CUTOFF", "R_SCORE_CUTOFF"),
        ),
    )


# --- precedence --------------------------------------------------------------------------


def test_any_standing_rule_makes_it_risk_policy_with_the_first_standing_rule() -> None:
    frame = decisions(
        {
            "param_version": "pv-3",
            "fraud_flag": True,
            "rules": [CUTOFF_BAD, rule("R_FRAUD"), rule("R_OVERDUE", "overdue_max_days", 3, "40")],
        }
    )
    assert_frame_equal(causes(frame, context()), expected(("risk_policy", "R_FRAUD", "R_FRAUD")))


def test_factors_rank_system_data_parameter_model_whatever_the_rule_order() -> None:
    frame = decisions(
        # model (a cutoff that fires at the old value too, under v8.3) vs parameter (overdue).
        {
            "cts": at(90),
            "param_version": "pv-3",
            "model_version": "credit-v8.3",
            "rules": [rule("R_SCORE_CUTOFF", "score_cutoff", 600, "500"), OVERDUE_BAD],
        },
        # parameter (overdue) vs data (cutoff on credit_score -1).
        {
            "param_version": "pv-3",
            "credit_score": -1,
            "bureau_batch": "cb-9",
            "rules": [OVERDUE_BAD, rule("R_SCORE_CUTOFF", "score_cutoff", 600, "500")],
        },
        # data vs system (R_FAIL_CLOSED listed on a decision that is not a fallback).
        {
            "credit_score": -1,
            "bureau_batch": "cb-9",
            "rules": [rule("R_NO_SCORE"), rule("R_FAIL_CLOSED")],
        },
    )
    assert_frame_equal(
        causes(frame, context()),
        expected(
            ("parameter_error", "rel-od", "R_OVERDUE"),
            ("data_anomaly", "cb-9", "R_SCORE_CUTOFF"),
            ("system_error", "", "R_FAIL_CLOSED"),
        ),
    )


def test_data_explains_a_rule_before_its_rolled_back_parameter() -> None:
    frame = decisions(
        {
            "param_version": "pv-2",
            "credit_score": None,
            "bureau_batch": "cb-3",
            "rules": [CUTOFF_BAD],
        }
    )
    assert_frame_equal(
        causes(frame, context()), expected(("data_anomaly", "cb-3", "R_SCORE_CUTOFF"))
    )


def test_decision_without_a_zeroing_rule_is_risk_policy_with_empty_ref() -> None:
    frame = decisions({"rules": [rule("R_SCORE_BAND", "score_band_step", 50, action="reduce")]})
    assert_frame_equal(causes(frame, context()), expected(("risk_policy", "", "")))


def test_a_standing_rule_without_observed_says_what_it_reads() -> None:
    # A rule's observed value, where the record omits it, is what the rule reads.
    frame = decisions(
        {"rules": [rule("R_FRAUD")], "fraud_flag": True},
        {"rules": [rule("R_FRAUD", observed="yes")], "fraud_flag": True},
    )
    notes = explain(frame, context()).sort("zid")["rule_notes"].to_list()
    stands = ": it stands (the user's own data under a configuration that stood)"
    assert notes == [
        f"R_FRAUD fired (observed true){stands}",
        f"R_FRAUD fired (observed yes){stands}",
    ]
