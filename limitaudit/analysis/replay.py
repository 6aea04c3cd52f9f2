"""Replay every user's ledger: zeroings, recoveries and broken chains.

The ledger is the source of truth for what a limit was (docs/dump.md).
Per user, rows in time order; a zeroing is a row that takes a limit from above
the threshold to at or below it, and its recovery is the user's first later row
that lifts the limit back above the threshold.
"""

from __future__ import annotations

import polars as pl

from limitaudit.model.dump import Dump


def ordered_ledger(dump: Dump) -> pl.DataFrame:
    """The ledger sorted per user by time (file order breaks ties), with each row's predecessor."""
    ledger = dump.ledger.sort("user_id", "changed_at", "file_id", "line")
    same_user = pl.col("user_id") == pl.col("user_id").shift(1)
    # A masked global shift over the sorted frame is far cheaper than shift().over(user).
    return ledger.with_columns(
        pl.when(same_user).then(pl.col("limit_after").shift(1)).alias("prev_after"),
        pl.when(same_user).then(pl.col("file_id").shift(1)).alias("prev_file_id"),
        pl.when(same_user).then(pl.col("line").shift(1)).alias("prev_line"),
        pl.when(same_user).then(pl.col("change_id").shift(1)).alias("prev_change_id"),
    )


def chain_breaks(ledger: pl.DataFrame) -> pl.DataFrame:
    """Rows whose limit_before is not the previous row's limit_after: rows are missing between."""
    return ledger.filter(
        pl.col("prev_after").is_not_null() & (pl.col("limit_before") != pl.col("prev_after"))
    ).select(
        "user_id",
        "change_id",
        "changed_at",
        "file_id",
        "line",
        "limit_before",
        "prev_change_id",
        "prev_file_id",
        "prev_line",
        "prev_after",
    )


def zeroings(ledger: pl.DataFrame, below_fen: int) -> pl.DataFrame:
    """One row per zeroing with its recovery (full, partial or none).

    `below_fen` widens a zeroing from "to 0" to "to at or below this many fen".
    """
    restoring = pl.col("limit_after") > below_fen
    # The first later row of the same user that restores: shift the restoring rows' values
    # up by one and fill backwards, stopping at the user boundary.
    nxt = {
        name: pl.when(restoring).then(pl.col(src)).shift(-1)
        for name, src in (
            ("restored_at", "changed_at"),
            ("restored_limit", "limit_after"),
            ("restore_user", "user_id"),
        )
    }
    with_next = ledger.with_columns(
        pl.when(pl.col("user_id").shift(-1) == pl.col("user_id")).then(expr).alias(name)
        for name, expr in nxt.items()
    ).with_columns(
        # Fill backwards only inside one user: carry the user id along and compare.
        pl.col(list(nxt)).backward_fill(),
    )
    inside = pl.col("restore_user") == pl.col("user_id")
    # The user's limit where the dump ends: their last row's (the ledger is in user order).
    last = pl.col("user_id") != pl.col("user_id").shift(-1)
    with_next = with_next.with_columns(
        pl.when(last.fill_null(True)).then(pl.col("limit_after")).backward_fill().alias("limit_now")
    )
    zero = with_next.filter(
        (pl.col("limit_before") > below_fen) & (pl.col("limit_after") <= below_fen)
    )
    return (
        zero.with_columns(
            *(pl.when(inside).then(pl.col(c)).alias(c) for c in ("restored_at", "restored_limit")),
        )
        .with_columns(
            pl.when(pl.col("restored_at").is_null())
            .then(pl.lit("none"))
            .when(pl.col("restored_limit") >= pl.col("limit_before"))
            .then(pl.lit("full"))
            .otherwise(pl.lit("partial"))
            .alias("recovery"),
            # Milliseconds times 0.001, not "/ 1000": Polars divides a one-row column
            # exactly but multiplies longer ones by the reciprocal, so a one-user audit
            # (trace from a store) would print other last digits than the whole dump's.
            # Rounded to the millisecond: the nearest double, which is written shortest
            # ("16084.979", not the product's "16084.979000000001").
            ((pl.col("restored_at") - pl.col("changed_at")).dt.total_milliseconds() * 0.001)
            .round(3)
            .alias("zero_duration_s"),
        )
        .drop("restore_user")
    )
