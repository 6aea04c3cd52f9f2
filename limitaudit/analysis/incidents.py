"""What an audit's zeroings add up to: incidents, and the users still owed a limit.

An incident is a cause with its cause_ref (a release, a model version, a feed batch, a
failing component, a ticket): how many users it hit and how much limit it took, whether
and how fast they got it back, and what caused it, as data and as a sentence. The
zeroings that are the users' own risk (`risk_policy`) and those nothing explains
(`unexplained`) are no incidents: they are summed apart, by rule and by engine silence.
The users still owed a limit are those a cause not of their own making zeroed and who,
where the dump ends, are still below the limit they had before.

Everything here is computed from the audit's rows and the dump's small global tables
(configuration changes, model deploys, feed batches, engine errors): a store serves it as
a raw dump does.
"""

from __future__ import annotations

import polars as pl

from limitaudit.model.audit import AuditOptions
from limitaudit.model.format import from_iso, iso_expr, yuan

# The causes that make incidents, in the contract's order; and those no fault of the user.
INCIDENT_CAUSES = ["manual", "system_error", "data_anomaly", "parameter_error", "model_regression"]
NOT_OWN_RISK = ["system_error", "data_anomaly", "parameter_error", "model_regression"]
# The incidents CSV's first columns, in this order (docs/output.md).
INCIDENT_COLUMNS = [
    "cause",
    "cause_ref",
    "first_zeroed_at",
    "last_zeroed_at",
    "zeroings",
    "users",
    "limit_removed",
    "recovered_full",
    "recovered_partial",
    "recovered_none",
    "still_at_zero",
    "zero_median_s",
    "zero_p95_s",
    "zero_max_s",
    "notified_decrease",
    "notified_restore",
    "what",
]
# What caused it, as data: the columns that apply to its cause, the others empty.
DETAIL_COLUMNS = [
    "param",
    "old_value",
    "new_value",
    "operator",
    "release_id",
    "changed_at",
    "rolled_back_at",
    "rollback_release",
    "model_version",
    "previous_version",
    "traffic_pct",
    "feed",
    "batch_status",
    "batch_records",
    "null_records",
    "used_from",
    "used_until",
    "component",
    "errors",
    "error_count",
    "errors_from",
    "errors_until",
]
OWED_COLUMNS = [
    "user_id",
    "cause",
    "cause_ref",
    "zeroed_at",
    "limit_before",
    "limit_now",
    "shortfall",
    "notified",
    "other_zeroings",
    "recovery",
    "restored_at",
    "restored_limit",
]
# A bin of an incident's blast radius over time.
BIN_MS = 5 * 60 * 1000


def _fen(column: str) -> pl.Expr:
    """A yuan column as the audit writes it ("50000.07") back to exact fen."""
    return pl.col(column).str.replace(".", "", literal=True).cast(pl.Int64)


def incidents(zeroings: pl.DataFrame, options: AuditOptions) -> pl.DataFrame:
    """One row an incident (INCIDENT_COLUMNS without `what`, and `per_5min`: its zeroings
    in each five minutes from its first), most users hit first."""
    z = zeroings.filter(pl.col("cause").is_in(INCIDENT_CAUSES)).with_columns(
        _fen("limit_before").alias("_before"),
        _fen("limit_now").alias("_now"),
        from_iso("zeroed_at").alias("_at"),
    )
    user = pl.col("user_id")
    restored = pl.col("zero_duration_s").drop_nulls()
    ranked = pl.col("cause").replace_strict(
        {c: i for i, c in enumerate(INCIDENT_CAUSES)}, return_dtype=pl.UInt8
    )
    found = z.group_by("cause", "cause_ref").agg(
        pl.col("zeroed_at").min().alias("first_zeroed_at"),
        pl.col("zeroed_at").max().alias("last_zeroed_at"),
        pl.len().cast(pl.Int64).alias("zeroings"),
        user.n_unique().cast(pl.Int64).alias("users"),
        yuan(pl.col("_before").sum()).alias("limit_removed"),
        *(
            (pl.col("recovery") == r).sum().cast(pl.Int64).alias(f"recovered_{r}")
            for r in ("full", "partial", "none")
        ),
        user.filter(pl.col("_now") <= options.below_fen)
        .n_unique()
        .cast(pl.Int64)
        .alias("still_at_zero"),
        restored.median().round(3).alias("zero_median_s"),
        restored.quantile(0.95, "linear").round(3).alias("zero_p95_s"),
        restored.max().round(3).alias("zero_max_s"),
        user.filter("notified").n_unique().cast(pl.Int64).alias("notified_decrease"),
        user.filter("restore_notified").n_unique().cast(pl.Int64).alias("notified_restore"),
    )
    return found.join(_per_bin(z), on=["cause", "cause_ref"], how="left").sort(
        [pl.col("users"), pl.col("zeroings"), ranked, pl.col("cause_ref")],
        descending=[True, True, False, False],
    )


def _per_bin(z: pl.DataFrame) -> pl.DataFrame:
    """Each incident's zeroings in each BIN_MS from its first (`per_5min`, a list)."""
    key = ["cause", "cause_ref"]
    since = pl.col("_at") - pl.col("_at").min().over(key)
    counted = (
        z.with_columns((since.dt.total_milliseconds() // BIN_MS).alias("_bin"))
        .group_by(*key, "_bin")
        .len()
    )
    every = (
        counted.group_by(key)
        .agg(pl.int_range(0, pl.col("_bin").max() + 1).alias("_bin"))
        .explode("_bin")
    )
    return (
        every.join(counted, on=[*key, "_bin"], how="left")
        .sort(*key, "_bin")
        .group_by(key, maintain_order=True)
        .agg(pl.col("len").fill_null(0).cast(pl.Int64).alias("per_5min"))
    )


def owed(zeroings: pl.DataFrame, include_unexplained: bool = False) -> pl.DataFrame:
    """The users still owed a limit (OWED_COLUMNS), largest shortfall first: zeroed by a
    cause not of their own making (and, if asked, by nothing the dump explains), and where
    the dump ends still below the limit they had before. A user zeroed more than once so is
    owed for the latest; `other_zeroings` names the others."""
    causes = NOT_OWN_RISK + (["unexplained"] if include_unexplained else [])
    z = zeroings.filter(pl.col("cause").is_in(causes)).with_row_index("_order")
    latest = pl.col("_order") == pl.col("_order").max().over("user_id")
    named = pl.format("{} {} at {}", "cause", "cause_ref", "zeroed_at")
    others = z.filter(~latest).group_by("user_id").agg(named.str.join("; ").alias("other_zeroings"))
    shortfall = _fen("limit_before") - _fen("limit_now")
    return (
        z.filter(latest)
        .join(others, on="user_id", how="left")
        .with_columns(shortfall.alias("_short"), pl.col("other_zeroings").fill_null(""))
        .filter(pl.col("_short") > 0)
        .sort(["_short", "user_id"], descending=[True, False])
        .with_columns(yuan("_short").alias("shortfall"))
        .select(OWED_COLUMNS)
    )


def by_rule(zeroings: pl.DataFrame) -> pl.DataFrame:
    """The users' own risk (`risk_policy`), by the rule that stood: context, not incidents."""
    return _apart(zeroings.filter(pl.col("cause") == "risk_policy"), pl.col("cause_ref"), "rule")


def by_silence(zeroings: pl.DataFrame, silences: pl.DataFrame, tolerance_ms: int) -> pl.DataFrame:
    """The zeroings nothing explains, by the engine host silence (on corrected clocks) they
    fall in, if any: where the dump lost the records that would explain them."""
    z = zeroings.filter(pl.col("cause") == "unexplained").with_row_index("_z")
    at, tol = from_iso("zeroed_at"), pl.duration(milliseconds=tolerance_ms)
    inside = (
        z.select("_z", at.alias("_at"))
        .join(silences, how="cross")
        .filter((pl.col("_at") >= pl.col("start")) & (pl.col("_at") <= pl.col("end") + tol))
        .sort("_z", "start")
        .group_by("_z", maintain_order=True)
        .first()
        .select(
            "_z",
            pl.format("{} silent {} to {}", "host", iso_expr("start"), iso_expr("end")).alias(
                "silence"
            ),
        )
    )
    z = z.join(inside, on="_z", how="left")
    return _apart(z, pl.col("silence").fill_null("no engine silence"), "silence")


def _apart(z: pl.DataFrame, key: pl.Expr, name: str) -> pl.DataFrame:
    user = pl.col("user_id")
    return (
        z.group_by(key.alias(name))
        .agg(
            pl.len().cast(pl.Int64).alias("zeroings"),
            user.n_unique().cast(pl.Int64).alias("users"),
            pl.col("zeroed_at").min().alias("first_zeroed_at"),
            pl.col("zeroed_at").max().alias("last_zeroed_at"),
            yuan(_fen("limit_before").sum()).alias("limit_removed"),
        )
        .sort(["users", "zeroings", name], descending=[True, True, False])
    )
