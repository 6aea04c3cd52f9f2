"""Match ledger rows to the records behind them, and estimate host clock offsets.

By change_id where both sides have it; otherwise by user and time within the
clock tolerance, preferring the record whose limit_before agrees. One record
explains at most one row (docs/causes.md).
"""

from __future__ import annotations

import polars as pl

from limitaudit.model.dump import Dump, as_text
from limitaudit.model.schema import ACTION_FIELDS

# A ledger row is written 0-5 s after the decision behind it (docs/reading.md).
LEDGER_LAG_MS = 2_500
# A record that changed a limit: what ties hosts' clocks to the ledger.
CHANGES = pl.col("limit_before") != pl.col("limit_after")


def actions(dump: Dump) -> pl.DataFrame:
    """Every record that can set a limit: decisions and manual actions, in one frame."""
    decisions = dump.tables["decision"].select(*ACTION_FIELDS, pl.lit("decision").alias("source"))
    manual = dump.tables["manual_action"].filter(pl.col("limit_after").is_not_null())
    source = pl.lit("manual_action").alias("source")
    return pl.concat([decisions, manual.select(*ACTION_FIELDS, source)])


# Below this an estimate is within the ledger's own 0-5 s lag: not worth correcting.
MIN_OFFSET_MS = 5_000


def _offsets(pairs: pl.DataFrame) -> pl.DataFrame:
    return (
        pairs.group_by("host")
        .agg(
            ((pl.col("ts") - pl.col("changed_at")).dt.total_milliseconds().median() + LEDGER_LAG_MS)
            .round()
            .cast(pl.Int64)
            .alias("offset_ms"),
            pl.len().alias("evidence"),
        )
        .filter(pl.col("offset_ms").abs() >= MIN_OFFSET_MS)
        .sort("host")
    )


def corrected(frame: pl.DataFrame, offsets: pl.DataFrame, ts: str = "ts") -> pl.DataFrame:
    """Add `cts`: the record's time with its host's clock offset removed (where known)."""
    return (
        frame.join(offsets.select("host", "offset_ms"), on="host", how="left")
        .with_columns(
            (pl.col(ts) - pl.duration(milliseconds=pl.col("offset_ms").fill_null(0))).alias("cts")
        )
        .drop("offset_ms")
    )


def ledger_rows(ledger: pl.DataFrame) -> pl.DataFrame:
    """Ledger rows in the shape `match_rows` takes, `row_id` being the row's position."""
    return ledger.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("row_id"),
        "user_id",
        "change_id",
        "changed_at",
        "limit_before",
    )


def with_records(rows: pl.DataFrame, acts: pl.DataFrame, *more: str | pl.Expr) -> pl.DataFrame:
    """`rows` (paired by `match_rows`, so with an `act_id`) beside the record behind each:
    its kind as `act`, its file and line as `a_file` and `a_line`, and `more` of its columns."""
    behind = acts.select(
        "act_id",
        pl.col("source").alias("act"),
        pl.col("file_id").alias("a_file"),
        pl.col("line").alias("a_line"),
        *more,
    )
    return rows.join(behind, on="act_id", how="left")


def match_rows(rows: pl.DataFrame, acts: pl.DataFrame, tolerance_ms: int) -> pl.DataFrame:
    """Pair ledger rows (row_id, user_id, change_id, changed_at, limit_before) with records.

    `acts` must carry `cts` and a unique `act_id`. Returns row_id, act_id, matched_by.
    """
    named = acts.filter(pl.col("change_id").is_not_null())
    # Two records may carry one change_id (an engine retry on another host): the pick
    # must not hang on the join's order, so they rank as pairs by time do.
    by_id = (
        _ranked(
            rows.select(
                "row_id", "change_id", "changed_at", pl.col("limit_before").alias("row_before")
            ).join(named.select("act_id", "change_id", "cts", "limit_before"), on="change_id")
        )
        .sort("disagrees", "gap", "row_id", "act_id")
        .filter(pl.col("row_id").is_first_distinct() & pl.col("act_id").is_first_distinct())
        .select("row_id", "act_id", pl.lit("change_id").alias("matched_by"))
    )
    rest = rows.join(by_id, on="row_id", how="anti")
    # Only records without a change_id can be matched by time: one with an id names its row.
    free = acts.filter(pl.col("change_id").is_null())
    pairs = (
        rest.select("row_id", "user_id", "changed_at", pl.col("limit_before").alias("row_before"))
        .join(free.select("act_id", "user_id", "cts", "limit_before"), on="user_id")
        .pipe(_ranked)
        .filter(pl.col("gap") <= tolerance_ms + LEDGER_LAG_MS)
    )
    by_time = _one_to_one(pairs.select("row_id", "act_id", "disagrees", "gap"))
    return pl.concat([by_id, by_time.with_columns(pl.lit("time").alias("matched_by"))])


def _ranked(pairs: pl.DataFrame) -> pl.DataFrame:
    """Add what ranks a (row, record) pair: `disagrees` (limit_before), then `gap` (ms from
    the ledger's usual lag)."""
    return pairs.with_columns(
        ((pl.col("changed_at") - pl.col("cts")).dt.total_milliseconds() - LEDGER_LAG_MS)
        .abs()
        .alias("gap"),
        # A record that gives no limit_before cannot agree: it does not beat one that does
        # (nulls sort first).
        (pl.col("limit_before") != pl.col("row_before")).fill_null(True).alias("disagrees"),
    )


def _one_to_one(pairs: pl.DataFrame) -> pl.DataFrame:
    """Greedy assignment: repeatedly keep pairs that are each other's best, drop their rows."""
    chosen: list[pl.DataFrame] = []
    pairs = pairs.sort("disagrees", "gap", "row_id", "act_id")
    while pairs.height:
        best = pairs.filter(pl.col("row_id").is_first_distinct()).filter(
            pl.col("act_id").is_first_distinct()
        )
        mutual = best.join(
            pairs.filter(pl.col("act_id").is_first_distinct()).select("row_id", "act_id"),
            on=["row_id", "act_id"],
            how="semi",
        )
        if mutual.height == 0:
            break
        chosen.append(mutual.select("row_id", "act_id"))
        pairs = pairs.join(mutual.select("row_id"), on="row_id", how="anti").join(
            mutual.select("act_id"), on="act_id", how="anti"
        )
    if not chosen:
        return pl.DataFrame(schema={"row_id": pl.UInt32, "act_id": pl.UInt32})
    return pl.concat(chosen)


def estimate_offsets(ledger: pl.DataFrame, acts: pl.DataFrame, tolerance_ms: int) -> pl.DataFrame:
    """Host clock offsets from every record that can be tied to its ledger row.

    Records with a change_id are tied by it; the rest by a first pass on uncorrected
    times, which the tolerance (wider than any skew real hosts show) makes safe.
    """
    changes = acts.filter(CHANGES).select(
        "act_id", "host", "ts", pl.col("ts").alias("cts"), "user_id", "change_id", "limit_before"
    )
    rows = ledger_rows(ledger)
    pairs = match_rows(rows, changes, tolerance_ms)
    tied = pairs.join(rows.select("row_id", "changed_at"), on="row_id").join(
        changes.select("act_id", "host", "ts"), on="act_id"
    )
    return _offsets(tied)


def quote_offsets(
    quotes: pl.DataFrame, batches: pl.DataFrame, known: pl.DataFrame, tolerance_ms: int
) -> pl.DataFrame:
    """Offsets of feed hosts, from decisions that quote their batches (docs/reading.md).

    A batch is delivered before the first decision that quotes it, so its host's
    offset is at least (batch time - first quoting decision's corrected time); the
    tightest such bound is the estimate. It is only tight when decisions quote a
    batch soon after it lands; a bound beyond the clock tolerance (no host's clock is
    that far off) says nothing, and is dropped. Hosts with a ledger-based offset keep it.
    """
    # quotes: host, batch, and the time of the first of the `quotes` decisions on that
    # host that name that batch (a host's offset moves all of them alike).
    firsts = (
        corrected(quotes.rename({"batch": "bureau_batch"}), known)
        .group_by("bureau_batch")
        .agg(pl.col("cts").min().alias("first_quote"), pl.col("quotes").sum())
    )
    bounds = (
        batches.join(firsts, left_on="batch_id", right_on="bureau_batch")
        .join(known.select("host"), on="host", how="anti")
        .group_by("host")
        .agg(
            (pl.col("ts") - pl.col("first_quote")).dt.total_milliseconds().max().alias("offset_ms"),
            pl.col("quotes").sum().cast(pl.UInt32).alias("evidence"),
        )
        .filter(pl.col("offset_ms").abs().is_between(MIN_OFFSET_MS, tolerance_ms))
    )
    return pl.concat([known, bounds.select(known.columns).cast(known.schema)]).sort("host")


def host_offsets(dump: Dump, acts: pl.DataFrame, tolerance_ms: int) -> pl.DataFrame:
    """Every clock offset the dump lets us estimate: host, offset_ms, evidence."""
    by_ledger = estimate_offsets(dump.ledger, acts, tolerance_ms)
    quoting = (pl.col("event") == "decision") & pl.col("batch").is_not_null()
    quotes = as_text(
        dump.stamped("host", "batch", "ts", where=quoting)
        .group_by("host", "batch")
        .agg(pl.col("ts").min(), pl.len().alias("quotes"))
        .collect(engine="streaming")
    )
    return quote_offsets(quotes, dump.tables["feed_batch"], by_ledger, tolerance_ms)
