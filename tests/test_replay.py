"""The ledger replay: per-user order, chain breaks, zeroings and their recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from limitaudit.analysis.replay import chain_breaks, ordered_ledger, zeroings
from limitaudit.model.dump import REJECT_SCHEMA, Dump
from limitaudit.model.schema import LEDGER_SCHEMA, DType, Time

T0 = datetime(2026, 3, 14, 2, 0, 0, tzinfo=UTC)
A, B = "2088100000000001", "2088100000000002"
RECOVERY: dict[str, DType] = {
    "change_id": pl.String,
    "restored_at": Time,
    "restored_limit": pl.Int64,
    "recovery": pl.String,
    "zero_duration_s": pl.Float64,
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def dump(ledger: pl.DataFrame) -> Dump:
    return Dump(
        tables={"ledger": ledger},
        files=[],
        rejects=pl.DataFrame(schema=REJECT_SCHEMA),
        findings=[],
        tz="Asia/Shanghai",
        stamps=None,
    )


def ledger(
    change_id: list[str],
    user_id: list[str],
    seconds: list[float],
    before: list[int],
    after: list[int],
    file_id: list[int] | None = None,
    line: list[int] | None = None,
) -> pl.DataFrame:
    """Ledger rows in LEDGER_SCHEMA; file 0 and lines 1.. unless given."""
    n = len(change_id)
    return pl.DataFrame(
        {
            "file_id": file_id if file_id is not None else [0] * n,
            "line": line if line is not None else list(range(1, n + 1)),
            "change_id": change_id,
            "user_id": user_id,
            "changed_at": [at(s) for s in seconds],
            "limit_before": before,
            "limit_after": after,
            "source": ["engine"] * n,
        },
        schema=LEDGER_SCHEMA,
    )


def replayed(frame: pl.DataFrame, below_fen: int = 0) -> pl.DataFrame:
    return zeroings(ordered_ledger(dump(frame)), below_fen).select(list(RECOVERY))


def test_ordered_ledger_sorts_per_user_by_time_then_file_then_line() -> None:
    frame = ledger(
        change_id=["b1", "a3", "a1", "a2f0", "a2f1", "a2f0b"],
        user_id=[B, A, A, A, A, A],
        seconds=[0, 30, 10, 20, 20, 20],
        before=[700, 3, 100, 1, 2, 11],
        after=[800, 4, 1, 11, 3, 2],
        file_id=[0, 0, 0, 0, 1, 0],
        line=[1, 9, 8, 7, 1, 9],
    )
    expected = pl.DataFrame(
        {
            "change_id": ["a1", "a2f0", "a2f0b", "a2f1", "a3", "b1"],
            "prev_after": [None, 1, 11, 2, 3, None],
            "prev_file_id": [None, 0, 0, 0, 1, None],
            "prev_line": [None, 8, 7, 9, 1, None],
            "prev_change_id": [None, "a1", "a2f0", "a2f0b", "a2f1", None],
        },
        schema={
            "change_id": pl.String,
            "prev_after": pl.Int64,
            "prev_file_id": pl.UInt32,
            "prev_line": pl.UInt32,
            "prev_change_id": pl.String,
        },
    )
    result = ordered_ledger(dump(frame))
    assert_frame_equal(result.select(expected.columns), expected)
    # Every ledger column is kept as it was.
    assert result.select(LEDGER_SCHEMA.names()).schema == LEDGER_SCHEMA


def test_chain_break_when_limit_before_is_not_the_previous_limit_after() -> None:
    # Written out of time order, A's rows chain 100→200→300→400 and break at 250; B's first
    # row starts afresh, whatever A's last limit was.
    frame = ledger(
        change_id=["c4", "c1", "c3", "c2", "b1"],
        user_id=[A, A, A, A, B],
        seconds=[30, 0, 20, 10, 40],
        before=[250, 100, 300, 200, 999],
        after=[0, 200, 400, 300, 0],
    )
    expected = pl.DataFrame(
        {
            "user_id": [A],
            "change_id": ["c4"],
            "changed_at": [at(30)],
            "file_id": [0],
            "line": [1],
            "limit_before": [250],
            "prev_change_id": ["c3"],
            "prev_file_id": [0],
            "prev_line": [3],
            "prev_after": [400],
        },
        schema={
            "user_id": pl.String,
            "change_id": pl.String,
            "changed_at": Time,
            "file_id": pl.UInt32,
            "line": pl.UInt32,
            "limit_before": pl.Int64,
            "prev_change_id": pl.String,
            "prev_file_id": pl.UInt32,
            "prev_line": pl.UInt32,
            "prev_after": pl.Int64,
        },
    )
    assert_frame_equal(chain_breaks(ordered_ledger(dump(frame))), expected)


def test_zeroing_takes_a_limit_above_zero_to_zero() -> None:
    frame = ledger(
        change_id=["to_one", "zero", "zero_again", "stays_zero"],
        user_id=[A, A, A, A],
        seconds=[0, 10, 20, 30],
        before=[5000, 1, 0, 0],
        after=[1, 0, 0, 0],
    )
    # 5000→1 is not to zero; 1→0 is; 0→0 starts at zero; none is restored.
    expected = pl.DataFrame(
        {
            "change_id": ["zero"],
            "restored_at": [None],
            "restored_limit": [None],
            "recovery": ["none"],
            "zero_duration_s": [None],
        },
        schema=RECOVERY,
    )
    assert_frame_equal(replayed(frame), expected)


def test_below_widens_a_zeroing_to_at_or_below_the_threshold() -> None:
    frame = ledger(
        change_id=["to_500", "to_300", "from_400", "to_501"],
        user_id=[A, B, B, B],
        seconds=[0, 0, 10, 20],
        before=[100_000, 100_000, 400, 900],
        after=[500, 300, 0, 501],
    )
    # below 500 fen: 100000→500 and 100000→300 are zeroings; 400→0 starts at or below it;
    # 900→501 stays above it, and restores B's 300 (501 > 500).
    expected = pl.DataFrame(
        {
            "change_id": ["to_500", "to_300"],
            "restored_at": [None, at(20)],
            "restored_limit": [None, 501],
            "recovery": ["none", "partial"],
            "zero_duration_s": [None, 20.0],
        },
        schema=RECOVERY,
    )
    assert_frame_equal(replayed(frame, below_fen=500), expected)


def test_full_recovery_restores_at_least_the_limit_before() -> None:
    frame = ledger(
        change_id=["zero", "back"],
        user_id=[A, A],
        seconds=[0, 3600],
        before=[50_000, 0],
        after=[0, 50_000],
    )
    expected = pl.DataFrame(
        {
            "change_id": ["zero"],
            "restored_at": [at(3600)],
            "restored_limit": [50_000],
            "recovery": ["full"],
            "zero_duration_s": [3600.0],
        },
        schema=RECOVERY,
    )
    assert_frame_equal(replayed(frame), expected)


def test_partial_recovery_restores_less_with_millisecond_duration() -> None:
    frame = ledger(
        change_id=["zero", "some"],
        user_id=[A, A],
        seconds=[0, 90.25],
        before=[50_000, 0],
        after=[0, 49_999],
    )
    expected = pl.DataFrame(
        {
            "change_id": ["zero"],
            "restored_at": [at(90.25)],
            "restored_limit": [49_999],
            "recovery": ["partial"],
            "zero_duration_s": [90.25],
        },
        schema=RECOVERY,
    )
    assert_frame_equal(replayed(frame), expected)


def test_recovery_is_the_first_later_row_above_the_threshold_skipping_the_rest() -> None:
    frame = ledger(
        change_id=["zero", "still_zero", "low", "first_up", "second_up"],
        user_id=[A, A, A, A, A],
        seconds=[0, 10, 20, 30, 40],
        before=[80_000, 0, 0, 400, 30_000],
        after=[0, 0, 400, 30_000, 90_000],
    )
    # With below 500 fen, 0→400 does not lift the limit back above it; 400→30000 does.
    expected = pl.DataFrame(
        {
            "change_id": ["zero"],
            "restored_at": [at(30)],
            "restored_limit": [30_000],
            "recovery": ["partial"],
            "zero_duration_s": [30.0],
        },
        schema=RECOVERY,
    )
    assert_frame_equal(replayed(frame, below_fen=500), expected)


def test_recovery_is_none_when_only_another_user_restores() -> None:
    # A's zeroing is A's last row; B's row right after it in the sorted ledger restores B.
    frame = ledger(
        change_id=["a_zero", "b_zero", "b_back"],
        user_id=[A, B, B],
        seconds=[0, 5, 10],
        before=[10_000, 0, 0],
        after=[0, 0, 10_000],
    )
    expected = pl.DataFrame(
        {
            "change_id": ["a_zero"],
            "restored_at": [None],
            "restored_limit": [None],
            "recovery": ["none"],
            "zero_duration_s": [None],
        },
        schema=RECOVERY,
    )
    assert_frame_equal(replayed(frame), expected)


def test_each_zeroing_of_a_user_takes_its_own_recovery() -> None:
    frame = ledger(
        change_id=["z1", "r1", "z2", "r2", "z3"],
        user_id=[A, A, A, A, A],
        seconds=[0, 10, 20, 25, 60],
        before=[100, 0, 100, 0, 300],
        after=[0, 100, 0, 300, 0],
    )
    expected = pl.DataFrame(
        {
            "change_id": ["z1", "z2", "z3"],
            "restored_at": [at(10), at(25), None],
            "restored_limit": [100, 300, None],
            "recovery": ["full", "full", "none"],
            "zero_duration_s": [10.0, 5.0, None],
        },
        schema=RECOVERY,
    )
    assert_frame_equal(replayed(frame), expected)
