"""What lies behind each incident, as data and as a sentence: the configuration change a
release brought in and its rollback, the model deploy and its rollback, the feed batch
and when decisions used it, the failing component's errors. Times are corrected for the
hosts' clock offsets, as the audit's evidence gives them."""

from __future__ import annotations

import polars as pl

from limitaudit.analysis.attribute import model_history, param_history
from limitaudit.analysis.incidents import DETAIL_COLUMNS
from limitaudit.analysis.match import corrected
from limitaudit.model.audit import AuditFacts
from limitaudit.model.format import from_iso, iso_expr

_KEY = ["cause", "cause_ref"]
_TEXT = pl.String()
_SCHEMA: dict[str, pl.DataType] = {
    **dict.fromkeys(_KEY, _TEXT),
    **dict.fromkeys(DETAIL_COLUMNS, _TEXT),
    "traffic_pct": pl.Float64(),
    "batch_records": pl.Int64(),
    "null_records": pl.Int64(),
    "error_count": pl.Int64(),
    "what": _TEXT,
}


def origins(
    found: pl.DataFrame, tables: dict[str, pl.DataFrame], facts: AuditFacts, tolerance_ms: int
) -> pl.DataFrame:
    """`found` (incidents: cause, cause_ref, first_ and last_zeroed_at) with DETAIL_COLUMNS
    and `what`, the sentence."""
    offsets = facts.offsets
    parts = [
        _parameters(corrected(tables["param_change"], offsets)),
        _models(corrected(tables["model_deploy"], offsets)),
        _batches(corrected(tables["feed_batch"], offsets)),
        _errors(found, corrected(tables["engine_error"], offsets), tolerance_ms),
        found.filter(pl.col("cause") == "manual").select(
            *_KEY, pl.format("manual action under ticket {}", "cause_ref").alias("what")
        ),
    ]
    details = pl.concat([_shaped(p) for p in parts], how="vertical")
    return found.join(details, on=_KEY, how="left", maintain_order="left")


def _shaped(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
        for c, t in _SCHEMA.items()
    )


def _parameters(changes: pl.DataFrame) -> pl.DataFrame:
    """A release's parameter changes, each with the later change that restored its old
    value (attribute.param_history: what makes a parameter_error)."""
    history = param_history(changes)
    sentence = pl.format(
        "{} {}→{} by {} in {} at {}{}",
        "param",
        pl.col("old_value").fill_null("?"),
        pl.col("new_value").fill_null("?"),
        pl.col("operator").fill_null("?"),
        "release_id",
        iso_expr("cts"),
        pl.when(pl.col("rb_cts").is_not_null())
        .then(
            pl.format(
                ", rolled back in {} at {}", pl.col("rb_release").fill_null("?"), iso_expr("rb_cts")
            )
        )
        .otherwise(pl.lit(", never rolled back in the dump")),
    )
    return (
        history.filter(pl.col("release_id").is_not_null())
        .sort("seq")
        .with_columns(sentence.alias("what"))
        .group_by("release_id", maintain_order=True)
        .agg(
            pl.lit("parameter_error").alias("cause"),
            pl.col("param").str.join("; "),
            pl.col("old_value").fill_null("").str.join("; "),
            pl.col("new_value").fill_null("").str.join("; "),
            pl.col("operator").fill_null("").first(),
            iso_expr(pl.col("cts").first()).alias("changed_at"),
            iso_expr(pl.col("rb_cts").first()).alias("rolled_back_at"),
            pl.col("rb_release").first().alias("rollback_release"),
            pl.col("what").str.join("; "),
        )
        .with_columns(pl.col("release_id").alias("cause_ref"))
    )


def _models(deploys: pl.DataFrame) -> pl.DataFrame:
    """A model version's deploys (a canary's steps of traffic) until the full-traffic deploy
    that took it back (attribute.model_history: what makes a model_regression)."""
    history = model_history(deploys)
    first = history.sort("seq").group_by("model_version", maintain_order=True).first()
    step = pl.format(
        "{}% in {} at {}",
        pl.col("traffic_pct").cast(pl.String).fill_null("?"),
        pl.col("release_id").fill_null("?"),
        iso_expr("cts"),
    )
    steps = (
        history.join(
            first.select("model_version", pl.col("rb_cts").alias("_back")), on="model_version"
        )
        .filter(pl.col("_back").is_null() | (pl.col("cts") < pl.col("_back")))
        .sort("seq")
        .group_by("model_version", maintain_order=True)
        .agg(step.str.join(", ").alias("_steps"), pl.col("traffic_pct").max().alias("_top"))
    )
    sentence = pl.format(
        "{} (replacing {}) deployed: {}{}",
        "model_version",
        pl.col("previous_version").fill_null("?"),
        "_steps",
        pl.when(pl.col("rb_cts").is_not_null())
        .then(
            pl.format(
                "; rolled back to {} in {} at {}",
                pl.col("previous_version").fill_null("?"),
                pl.col("rb_release").fill_null("?"),
                iso_expr("rb_cts"),
            )
        )
        .otherwise(pl.lit("; never rolled back in the dump")),
    )
    return first.join(steps, on="model_version", how="left").select(
        pl.lit("model_regression").alias("cause"),
        pl.col("model_version").alias("cause_ref"),
        "model_version",
        "previous_version",
        pl.col("_top").alias("traffic_pct"),
        "release_id",
        "operator",
        iso_expr("cts").alias("changed_at"),
        iso_expr("rb_cts").alias("rolled_back_at"),
        pl.col("rb_release").alias("rollback_release"),
        sentence.alias("what"),
    )


def _batches(batches: pl.DataFrame) -> pl.DataFrame:
    """A feed batch, and when decisions took their credit data from it: from its arrival
    to the next batch of its feed."""
    batches = batches.sort("cts").with_columns(pl.col("cts").shift(-1).over("feed").alias("_next"))
    nulls = pl.when(pl.col("null_records").is_not_null()).then(
        pl.format(", {} of {} records null", "null_records", pl.col("records").fill_null(0))
    )
    sentence = pl.format(
        "{} batch {} ({}{}) arrived at {}; decisions used it until {}",
        "feed",
        "batch_id",
        pl.col("status").fill_null("?"),
        nulls.otherwise(pl.lit("")),
        iso_expr("cts"),
        pl.when(pl.col("_next").is_not_null())
        .then(iso_expr("_next"))
        .otherwise(pl.lit("the dump's end")),
    )
    return (
        batches.group_by("batch_id", maintain_order=True)
        .first()
        .select(
            pl.lit("data_anomaly").alias("cause"),
            pl.col("batch_id").alias("cause_ref"),
            "feed",
            pl.col("status").alias("batch_status"),
            pl.col("records").alias("batch_records"),
            "null_records",
            iso_expr("cts").alias("used_from"),
            iso_expr("_next").alias("used_until"),
            sentence.alias("what"),
        )
    )


def _errors(found: pl.DataFrame, errors: pl.DataFrame, tolerance_ms: int) -> pl.DataFrame:
    """A failing component's engine errors while its incident lasted (within the clock
    tolerance of its first and last zeroing), by exception class."""
    tol = pl.duration(milliseconds=tolerance_ms)
    spans = found.filter(pl.col("cause") == "system_error").select(
        *_KEY,
        (from_iso("first_zeroed_at") - tol).alias("_from"),
        (from_iso("last_zeroed_at") + tol).alias("_until"),
    )
    seen = (
        spans.join(errors, left_on="cause_ref", right_on="component")
        .filter(pl.col("cts").is_between("_from", "_until"))
        .with_columns(pl.col("error").fill_null("?"))
    )
    classes = (
        seen.group_by(*_KEY, "error")
        .len()
        .sort(*_KEY, "len", "error", descending=[False, False, True, False])
        .group_by(_KEY, maintain_order=True)
        .agg(pl.format("{} ×{}", "error", "len").str.join(", ").alias("errors"))
    )
    window = seen.group_by(_KEY).agg(
        pl.len().cast(pl.Int64).alias("error_count"),
        iso_expr(pl.col("cts").min()).alias("errors_from"),
        iso_expr(pl.col("cts").max()).alias("errors_until"),
    )
    return (
        spans.select(*_KEY)
        .join(classes, on=_KEY, how="left")
        .join(window, on=_KEY, how="left")
        .with_columns(
            pl.col("cause_ref").alias("component"),
            pl.when(pl.col("error_count").is_not_null())
            .then(
                pl.format(
                    "{} failed: {} from {} to {}",
                    "cause_ref",
                    "errors",
                    "errors_from",
                    "errors_until",
                )
            )
            .otherwise(pl.format("{} failed (no engine error of it logged then)", "cause_ref"))
            .alias("what"),
        )
    )
