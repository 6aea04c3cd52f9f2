"""Where a cause_ref comes from: the failing component of a fallback, the feed batch
behind missing credit data, and which feed decisions take their credit data from."""

from __future__ import annotations

import polars as pl


def system_refs(decisions: pl.DataFrame, errors: pl.DataFrame) -> pl.DataFrame:
    """The failing component: the engine_error with the decision's trace_id, else the
    user's nearest one."""
    errors = errors.select(
        "trace_id",
        "user_id",
        pl.col("cts").alias("e_cts"),
        "component",
        "error",
        pl.col("file_id").alias("e_file"),
        pl.col("line").alias("e_line"),
    )
    by_trace = (
        decisions.filter(pl.col("trace_id").is_not_null())
        .select("zid", "trace_id", "cts")
        .join(errors.drop("user_id"), on="trace_id")
        .with_columns((pl.col("e_cts") - pl.col("cts")).abs().alias("d"))
        .sort("zid", "d")
        .group_by("zid", maintain_order=True)
        .first()
        .select("zid", "component", "error")
    )
    by_user = (
        decisions.join(by_trace.select("zid"), on="zid", how="anti")
        .select("zid", "user_id", "cts")
        .join(errors.drop("trace_id").filter(pl.col("user_id").is_not_null()), on="user_id")
        .with_columns((pl.col("e_cts") - pl.col("cts")).abs().alias("d"))
        .sort("zid", "d")
        .group_by("zid", maintain_order=True)
        .first()
        .select("zid", "component", "error")
    )
    return pl.concat([by_trace, by_user])


def quoted_feed(quoted: pl.Series, batches: pl.DataFrame) -> str | None:
    """The feed whose batches decisions quote (credit_bureau, in practice): the one a
    decision without a bureau_batch takes its latest batch from (docs/causes.md).
    `quoted`: the batch ids decisions name."""
    if batches.height == 0:
        return None
    counts = (
        batches.join(quoted.unique().alias("batch_id").to_frame(), on="batch_id")
        .group_by("feed")
        .len()
        .sort("len", "feed", descending=[True, False])
    )
    return str(counts["feed"][0] if counts.height else batches["feed"].mode().sort()[0])


def data_refs(decisions: pl.DataFrame, batches: pl.DataFrame) -> pl.DataFrame:
    """The feed batch behind a decision: its bureau_batch, else the latest batch before it."""
    quoted = decisions.select("zid", "cts", pl.col("bureau_batch").alias("batch"))
    series = batches.select(pl.col("cts"), pl.col("batch_id").alias("latest")).sort("cts")
    missing = quoted.filter(pl.col("batch").is_null()).sort("cts")
    latest = missing.join_asof(series, on="cts", strategy="backward").select(
        "zid", pl.col("latest").alias("batch")
    )
    return pl.concat([quoted.filter(pl.col("batch").is_not_null()).select("zid", "batch"), latest])
