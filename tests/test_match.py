"""Matching ledger rows to records, and host clock offsets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from limitaudit.analysis.match import (
    corrected,
    estimate_offsets,
    ledger_rows,
    match_rows,
    quote_offsets,
    with_records,
)
from limitaudit.model.schema import LEDGER_SCHEMA, DType, Time

T0 = datetime(2026, 3, 14, 2, 0, 0, tzinfo=UTC)
A, B, C, D = (f"208810000000000{i}" for i in range(1, 5))
TOL = 120_000
ROWS: dict[str, DType] = {
    "row_id": pl.UInt32,
    "user_id": pl.String,
    "change_id": pl.String,
    "changed_at": Time,
    "limit_before": pl.Int64,
}
ACTS: dict[str, DType] = {
    "act_id": pl.UInt32,
    "user_id": pl.String,
    "change_id": pl.String,
    "cts": Time,
    "limit_before": pl.Int64,
}
PAIRS: dict[str, DType] = {"row_id": pl.UInt32, "act_id": pl.UInt32, "matched_by": pl.String}
OFFSETS: dict[str, DType] = {"host": pl.String, "offset_ms": pl.Int64, "evidence": pl.UInt32}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def matched(rows: pl.DataFrame, acts: pl.DataFrame, tolerance_ms: int = TOL) -> pl.DataFrame:
    return match_rows(rows, acts, tolerance_ms).sort("row_id")


def test_corrected_removes_the_hosts_offset_and_leaves_unknown_hosts_alone() -> None:
    frame = pl.DataFrame(
        {"host": ["le-01", "le-02", "le-03"], "ts": [at(100), at(100), at(100)]},
        schema={"host": pl.String, "ts": Time},
    )
    offsets = pl.DataFrame(
        {"host": ["le-01", "le-03"], "offset_ms": [30_000, -7_250], "evidence": [9, 2]},
        schema=OFFSETS,
    )
    expected = frame.with_columns(pl.Series("cts", [at(70), at(100), at(107.25)], dtype=Time))
    assert_frame_equal(corrected(frame, offsets), expected, check_row_order=False)


def test_ledger_rows_number_the_rows_by_position() -> None:
    ledger = pl.DataFrame(
        {
            "file_id": [3, 0],
            "line": [7, 2],
            "change_id": ["c9", "c1"],
            "user_id": [B, A],
            "changed_at": [at(5), at(1)],
            "limit_before": [100, 200],
            "limit_after": [0, 100],
            "source": ["engine", "manual"],
        },
        schema=LEDGER_SCHEMA,
    )
    expected = pl.DataFrame(
        {
            "row_id": [0, 1],
            "user_id": [B, A],
            "change_id": ["c9", "c1"],
            "changed_at": [at(5), at(1)],
            "limit_before": [100, 200],
        },
        schema=ROWS,
    )
    assert_frame_equal(ledger_rows(ledger), expected)


def test_match_by_change_id_whatever_the_time_and_limit() -> None:
    rows = pl.DataFrame(
        {
            "row_id": [0],
            "user_id": [A],
            "change_id": ["c1"],
            "changed_at": [at(0)],
            "limit_before": [500],
        },
        schema=ROWS,
    )
    # An hour away, and another limit_before: the change_id still names the row.
    acts = pl.DataFrame(
        {
            "act_id": [7],
            "user_id": [A],
            "change_id": ["c1"],
            "cts": [at(3600)],
            "limit_before": [1],
        },
        schema=ACTS,
    )
    expected = pl.DataFrame({"row_id": [0], "act_id": [7], "matched_by": ["change_id"]}, PAIRS)
    assert_frame_equal(matched(rows, acts), expected)


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0], [1, 2, 0]])
def test_of_records_sharing_a_change_id_the_agreeing_then_nearest_one_is_matched(
    order: list[int],
) -> None:
    # An engine retry logged on two hosts: the pick must not depend on the records' order.
    rows = pl.DataFrame(
        {
            "row_id": [0],
            "user_id": [A],
            "change_id": ["c1"],
            "changed_at": [at(100)],
            "limit_before": [500],
        },
        schema=ROWS,
    )
    acts = pl.DataFrame(
        {
            "act_id": [0, 1, 2],
            "user_id": [A, A, A],
            "change_id": ["c1", "c1", "c1"],
            "cts": [at(97.5), at(40), at(99)],
            "limit_before": [400, 500, 500],
        },
        schema=ACTS,
    )[order]
    expected = pl.DataFrame({"row_id": [0], "act_id": [2], "matched_by": ["change_id"]}, PAIRS)
    assert_frame_equal(matched(rows, acts), expected)


def test_record_with_a_change_id_never_matches_another_row_by_time() -> None:
    rows = pl.DataFrame(
        {
            "row_id": [0],
            "user_id": [A],
            "change_id": ["c1"],
            "changed_at": [at(2.5)],
            "limit_before": [500],
        },
        schema=ROWS,
    )
    acts = pl.DataFrame(
        {
            "act_id": [0],
            "user_id": [A],
            "change_id": ["c-other"],
            "cts": [at(0)],
            "limit_before": [500],
        },
        schema=ACTS,
    )
    assert matched(rows, acts).height == 0


def test_row_whose_change_id_no_record_names_matches_by_time() -> None:
    rows = pl.DataFrame(
        {
            "row_id": [0],
            "user_id": [A],
            "change_id": ["c1"],
            "changed_at": [at(2.5)],
            "limit_before": [500],
        },
        schema=ROWS,
    )
    acts = pl.DataFrame(
        {"act_id": [0], "user_id": [A], "change_id": [None], "cts": [at(0)], "limit_before": [500]},
        schema=ACTS,
    )
    expected = pl.DataFrame({"row_id": [0], "act_id": [0], "matched_by": ["time"]}, PAIRS)
    assert_frame_equal(matched(rows, acts), expected)


def test_time_window_is_minus_tolerance_to_tolerance_plus_the_5s_lag() -> None:
    # changed_at - cts: -120 s and +125 s match; a millisecond beyond either does not.
    # Record 4, another user's at the usual lag from B's row, does not match it either.
    rows = pl.DataFrame(
        {
            "row_id": [0, 1, 2, 3],
            "user_id": [A, B, C, D],
            "change_id": [None] * 4,
            "changed_at": [at(1000)] * 4,
            "limit_before": [500] * 4,
        },
        schema=ROWS,
    )
    acts = pl.DataFrame(
        {
            "act_id": [0, 1, 2, 3, 4],
            "user_id": [A, B, C, D, "2088100000000009"],
            "change_id": [None] * 5,
            "cts": [at(1120), at(1120.001), at(875), at(874.999), at(997.5)],
            "limit_before": [500] * 5,
        },
        schema=ACTS,
    )
    expected = pl.DataFrame({"row_id": [0, 2], "act_id": [0, 2], "matched_by": ["time"] * 2}, PAIRS)
    assert_frame_equal(matched(rows, acts), expected)


def test_record_whose_limit_before_agrees_is_preferred_over_a_nearer_one() -> None:
    rows = pl.DataFrame(
        {
            "row_id": [0],
            "user_id": [A],
            "change_id": [None],
            "changed_at": [at(100)],
            "limit_before": [500],
        },
        schema=ROWS,
    )
    acts = pl.DataFrame(
        {
            "act_id": [0, 1],
            "user_id": [A, A],
            "change_id": [None, None],
            "cts": [at(97.5), at(40)],
            "limit_before": [400, 500],
        },
        schema=ACTS,
    )
    expected = pl.DataFrame({"row_id": [0], "act_id": [1], "matched_by": ["time"]}, PAIRS)
    assert_frame_equal(matched(rows, acts), expected)


def test_record_without_limit_before_does_not_beat_one_that_agrees() -> None:
    # A manual_action need not carry limit_before; it does not agree with the row's.
    rows = pl.DataFrame(
        {
            "row_id": [0],
            "user_id": [A],
            "change_id": [None],
            "changed_at": [at(100)],
            "limit_before": [500],
        },
        schema=ROWS,
    )
    acts = pl.DataFrame(
        {
            "act_id": [0, 1],
            "user_id": [A, A],
            "change_id": [None, None],
            "cts": [at(97.5), at(97.5)],
            "limit_before": [None, 500],
        },
        schema=ACTS,
    )
    expected = pl.DataFrame({"row_id": [0], "act_id": [1], "matched_by": ["time"]}, PAIRS)
    assert_frame_equal(matched(rows, acts), expected)


def test_among_agreeing_records_the_one_nearest_the_2_5s_lag_wins() -> None:
    # changed_at - cts: 0 s is 2.5 s off the usual lag, 3 s is 0.5 s off it.
    rows = pl.DataFrame(
        {
            "row_id": [0],
            "user_id": [A],
            "change_id": [None],
            "changed_at": [at(100)],
            "limit_before": [500],
        },
        schema=ROWS,
    )
    acts = pl.DataFrame(
        {
            "act_id": [0, 1],
            "user_id": [A, A],
            "change_id": [None, None],
            "cts": [at(100), at(97)],
            "limit_before": [500, 500],
        },
        schema=ACTS,
    )
    expected = pl.DataFrame({"row_id": [0], "act_id": [1], "matched_by": ["time"]}, PAIRS)
    assert_frame_equal(matched(rows, acts), expected)


def test_one_record_explains_at_most_one_row() -> None:
    # Both rows would take the record; the nearer one (row 1, exactly at the lag) gets it.
    rows = pl.DataFrame(
        {
            "row_id": [0, 1],
            "user_id": [A, A],
            "change_id": [None, None],
            "changed_at": [at(101), at(102.5)],
            "limit_before": [500, 500],
        },
        schema=ROWS,
    )
    acts = pl.DataFrame(
        {
            "act_id": [0],
            "user_id": [A],
            "change_id": [None],
            "cts": [at(100)],
            "limit_before": [500],
        },
        schema=ACTS,
    )
    expected = pl.DataFrame({"row_id": [1], "act_id": [0], "matched_by": ["time"]}, PAIRS)
    assert_frame_equal(matched(rows, acts), expected)


def test_pairs_are_settled_one_to_one_the_best_pair_first() -> None:
    # Row 1 is nearer record 0 too (3 s from the lag against 9.5 s), but row 0 is nearer still
    # (0 s): row 0 takes record 0 and row 1 the record left.
    rows = pl.DataFrame(
        {
            "row_id": [0, 1],
            "user_id": [A, A],
            "change_id": [None, None],
            "changed_at": [at(100), at(103)],
            "limit_before": [500, 500],
        },
        schema=ROWS,
    )
    acts = pl.DataFrame(
        {
            "act_id": [0, 1],
            "user_id": [A, A],
            "change_id": [None, None],
            "cts": [at(97.5), at(110)],
            "limit_before": [500, 500],
        },
        schema=ACTS,
    )
    expected = pl.DataFrame(
        {"row_id": [0, 1], "act_id": [0, 1], "matched_by": ["time", "time"]}, PAIRS
    )
    assert_frame_equal(matched(rows, acts), expected)


def test_with_records_adds_the_records_kind_place_and_asked_columns() -> None:
    rows = pl.DataFrame(
        {"row_id": [0, 1], "act_id": [5, None]}, schema={"row_id": pl.UInt32, "act_id": pl.UInt32}
    )
    acts = pl.DataFrame(
        {
            "act_id": [4, 5],
            "source": ["decision", "manual_action"],
            "file_id": [0, 2],
            "line": [10, 33],
            "host": ["le-01", "ops-01"],
            "limit_after": [0, 100],
        },
        schema={
            "act_id": pl.UInt32,
            "source": pl.String,
            "file_id": pl.UInt32,
            "line": pl.UInt32,
            "host": pl.String,
            "limit_after": pl.Int64,
        },
    )
    expected = pl.DataFrame(
        {
            "row_id": [0, 1],
            "act_id": [5, None],
            "act": ["manual_action", None],
            "a_file": [2, None],
            "a_line": [33, None],
            "host": ["ops-01", None],
            "a_after": [100, None],
        },
        schema={
            "row_id": pl.UInt32,
            "act_id": pl.UInt32,
            "act": pl.String,
            "a_file": pl.UInt32,
            "a_line": pl.UInt32,
            "host": pl.String,
            "a_after": pl.Int64,
        },
    )
    result = with_records(rows, acts, "host", pl.col("limit_after").alias("a_after"))
    assert_frame_equal(result, expected, check_row_order=False)


def test_estimate_offsets_is_the_median_record_minus_ledger_time_plus_the_lag() -> None:
    ledger = pl.DataFrame(
        {
            "file_id": [0] * 6,
            "line": [1, 2, 3, 4, 5, 6],
            "change_id": ["c1", "c2", "c3", "c4", "c5", "c6"],
            "user_id": [A, A, B, C, D, D],
            "changed_at": [at(100), at(200), at(300), at(400), at(500), at(600)],
            "limit_before": [100, 200, 300, 400, 500, 600],
            "limit_after": [0, 0, 0, 0, 0, 600],
            "source": ["engine"] * 6,
        },
        schema=LEDGER_SCHEMA,
    )
    acts = pl.DataFrame(
        {
            "act_id": [0, 1, 2, 3, 4, 5],
            # le-01 by change_id at +27.5, +27 and +28 s; le-02 by time at -10 s; le-03 at
            # +1 s, under 5 s once the lag is added; le-04 changed no limit.
            "host": ["le-01", "le-01", "le-01", "le-02", "le-03", "le-04"],
            "ts": [at(127.5), at(227), at(328), at(390), at(501), at(660)],
            "user_id": [A, A, B, C, D, D],
            "change_id": ["c1", "c2", "c3", None, None, "c6"],
            "limit_before": [100, 200, 300, 400, 500, 600],
            "limit_after": [0, 0, 0, 0, 0, 600],
        },
        schema={
            "act_id": pl.UInt32,
            "host": pl.String,
            "ts": Time,
            "user_id": pl.String,
            "change_id": pl.String,
            "limit_before": pl.Int64,
            "limit_after": pl.Int64,
        },
    )
    expected = pl.DataFrame(
        {"host": ["le-01", "le-02"], "offset_ms": [30_000, -7_500], "evidence": [3, 1]}, OFFSETS
    )
    assert_frame_equal(estimate_offsets(ledger, acts, TOL), expected)


def test_quote_offsets_take_the_tightest_batch_bound_within_tolerance() -> None:
    known = pl.DataFrame({"host": ["le-01"], "offset_ms": [20_000], "evidence": [5]}, OFFSETS)
    # First quote of cb-1: le-01 at 100 s is 80 s corrected, before le-02's 90 s.
    quotes = pl.DataFrame(
        {
            "host": ["le-01", "le-02", "le-02", "le-02", "le-02", "le-02"],
            "batch": ["cb-1", "cb-1", "cb-2", "cb-3", "cb-4", "cb-5"],
            "ts": [at(100), at(90), at(500), at(198), at(800), at(250)],
            "quotes": [4, 2, 1, 3, 3, 3],
        },
        schema={"host": pl.String, "batch": pl.String, "ts": Time, "quotes": pl.UInt32},
    )
    batches = pl.DataFrame(
        {
            # feed-01: bounds 110 - 80 = 30 s and 495 - 500 = -5 s, the tightest 30 s;
            # feed-02: 2 s, under 5 s; feed-03: 200 s, beyond the tolerance;
            # le-01 keeps its ledger offset whatever its batch says.
            "host": ["feed-01", "feed-01", "feed-02", "feed-03", "le-01"],
            "ts": [at(110), at(495), at(200), at(1000), at(300)],
            "feed": ["credit_bureau"] * 5,
            "batch_id": ["cb-1", "cb-2", "cb-3", "cb-4", "cb-5"],
        },
        schema={"host": pl.String, "ts": Time, "feed": pl.String, "batch_id": pl.String},
    )
    expected = pl.DataFrame(
        {"host": ["feed-01", "le-01"], "offset_ms": [30_000, 20_000], "evidence": [7, 5]}, OFFSETS
    )
    assert_frame_equal(quote_offsets(quotes, batches, known, TOL), expected)
