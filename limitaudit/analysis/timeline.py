"""The dump over time: zeroings per minute, what changed around them, and how many of an
incident's users were at zero at each moment. What a report draws (commands.report).

Times are corrected for the hosts' clock offsets, as the audit's evidence gives them.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from limitaudit.analysis.attribute import model_history, param_history
from limitaudit.analysis.facts import shifted
from limitaudit.analysis.incidents import INCIDENT_CAUSES
from limitaudit.analysis.match import corrected
from limitaudit.model.audit import AuditFacts
from limitaudit.model.format import from_iso, iso_expr
from limitaudit.model.schema import Time

# Engine errors of one component less than this far apart belong to one burst, and a
# burst is worth marking from this many errors: a lone timeout is no event.
BURST_GAP_MS = 60_000
BURST_MIN = 5
# The kinds of marker, in the order a legend lists them.
MARKER_KINDS = [
    "parameter change",
    "parameter rollback",
    "model deploy",
    "model rollback",
    "feed batch",
    "host silence",
    "error burst",
]
MARKER_SCHEMA = pl.Schema(
    {"kind": pl.String(), "at": Time, "until": Time, "ref": pl.String(), "label": pl.String()}
)
_KEY = ["cause", "cause_ref"]
# The causes whose incidents a report shows together: a manual action's ticket names one
# user, and a dump of a few days holds hundreds of them.
GROUPED = ["manual"]


def per_minute(zeroings: pl.DataFrame) -> pl.DataFrame:
    """The audit's zeroings counted per minute (UTC) by cause and cause_ref: minute,
    cause, cause_ref, zeroings; minutes without one are left out."""
    return (
        zeroings.group_by(from_iso("zeroed_at").dt.truncate("1m").alias("minute"), *_KEY)
        .agg(pl.len().cast(pl.Int64).alias("zeroings"))
        .sort("minute", *_KEY)
    )


def at_zero(zeroings: pl.DataFrame, end: datetime | None) -> pl.DataFrame:
    """For each incident, how many of its zeroings were at zero over time: cause,
    cause_ref, at, at_zero, a step each minute in which a user was zeroed or got a limit
    back (the most at zero in it), and a last step at `end` (the dump's end) holding what
    was left. Manual actions are
    counted together, under a null cause_ref: a ticket is mostly one user."""
    whole = pl.col("cause").is_in(GROUPED)
    z = zeroings.filter(pl.col("cause").is_in(INCIDENT_CAUSES)).with_columns(
        pl.when(whole).then(None).otherwise(pl.col("cause_ref")).alias("cause_ref")
    )
    steps = pl.concat(
        [
            z.select(*_KEY, from_iso("zeroed_at").alias("at"), pl.lit(1).alias("step")),
            z.filter(pl.col("restored_at").is_not_null()).select(
                *_KEY, from_iso("restored_at").alias("at"), pl.lit(-1).alias("step")
            ),
        ]
    )
    # A step a minute, the most at zero in it: a large incident's users come and go by
    # the tens of thousands, which no chart needs one by one.
    counted = (
        steps.group_by(*_KEY, "at")
        .agg(pl.col("step").sum())
        .sort(*_KEY, "at")
        .with_columns(pl.col("step").cum_sum().over(_KEY).cast(pl.Int64).alias("at_zero"))
        .group_by(*_KEY, pl.col("at").dt.truncate("1m"))
        .agg(pl.col("at_zero").max())
        .sort(*_KEY, "at")
    )
    last = counted.group_by(_KEY, maintain_order=True).last()
    tail = last.with_columns(pl.max_horizontal(pl.col("at"), pl.lit(end, Time)).alias("at"))
    return pl.concat([counted, tail.select(counted.columns)]).unique(
        [*_KEY, "at"], keep="first", maintain_order=True
    )


def markers(tables: dict[str, pl.DataFrame], facts: AuditFacts) -> pl.DataFrame:
    """What changed in the dump, on corrected time (MARKER_SCHEMA): every release's
    parameter changes and the releases that rolled them back, model deploys (with their
    traffic) and rollbacks, feed batches that were partial or failed, engine host
    silences, and bursts of engine errors. `until` ends the spans (silences, bursts)."""
    offsets = facts.offsets
    parts = [
        _parameters(corrected(tables["param_change"], offsets)),
        _models(corrected(tables["model_deploy"], offsets)),
        _batches(corrected(tables["feed_batch"], offsets)),
        shifted(facts.silences, offsets).select(
            pl.lit("host silence").alias("kind"),
            pl.col("start").alias("at"),
            pl.col("end").alias("until"),
            pl.col("host").alias("ref"),
            pl.format("{} wrote nothing", "host").alias("label"),
        ),
        _bursts(corrected(tables["engine_error"], offsets)),
    ]
    order = pl.col("kind").replace_strict(
        {k: i for i, k in enumerate(MARKER_KINDS)}, return_dtype=pl.UInt8
    )
    return (
        pl.concat([p.select(MARKER_SCHEMA.keys()).cast(MARKER_SCHEMA) for p in parts])
        .drop_nulls("at")
        .sort(pl.col("at"), order, pl.col("ref"))
    )


def _parameters(changes: pl.DataFrame) -> pl.DataFrame:
    """A marker a release: its parameter changes; a rollback where it restored a value
    an earlier change had replaced (attribute.param_history)."""
    history = param_history(changes)
    undoing = history.select(pl.col("rb_seq").drop_nulls().unique().alias("seq"))
    change = pl.format(
        "{} {}→{}",
        "param",
        pl.col("old_value").fill_null("?"),
        pl.col("new_value").fill_null("?"),
    )
    return (
        history.with_columns(
            pl.col("seq").is_in(undoing["seq"].implode()).alias("_undo"),
            pl.col("release_id").fill_null("(no release)"),
        )
        .sort("seq")
        .group_by("release_id", maintain_order=True)
        .agg(
            pl.col("cts").min().alias("at"),
            pl.col("_undo").any(),
            change.str.join(", ").alias("_what"),
            pl.col("operator").drop_nulls().first(),
        )
        .select(
            pl.when("_undo")
            .then(pl.lit("parameter rollback"))
            .otherwise(pl.lit("parameter change"))
            .alias("kind"),
            "at",
            pl.lit(None, Time).alias("until"),
            pl.col("release_id").alias("ref"),
            pl.format(
                "{}: {} by {}", "release_id", "_what", pl.col("operator").fill_null("?")
            ).alias("label"),
        )
    )


def _models(deploys: pl.DataFrame) -> pl.DataFrame:
    """A marker a model deploy, with its traffic; a rollback where it took back an
    earlier deploy (attribute.model_history)."""
    history = model_history(deploys)
    undoing = history.select(pl.col("rb_seq").drop_nulls().unique().alias("seq"))
    traffic = pl.col("traffic_pct").fill_null(100)
    return history.select(
        pl.when(pl.col("seq").is_in(undoing["seq"].implode()))
        .then(pl.lit("model rollback"))
        .otherwise(pl.lit("model deploy"))
        .alias("kind"),
        pl.col("cts").alias("at"),
        pl.lit(None, Time).alias("until"),
        pl.col("model_version").alias("ref"),
        pl.format(
            "{} at {}% traffic (replacing {}) in {}",
            "model_version",
            pl.when(traffic == traffic.round())
            .then(traffic.cast(pl.Int64).cast(pl.String))
            .otherwise(traffic.cast(pl.String)),
            pl.col("previous_version").fill_null("?"),
            pl.col("release_id").fill_null("?"),
        ).alias("label"),
    )


def _batches(batches: pl.DataFrame) -> pl.DataFrame:
    """A marker a feed batch that arrived partial or failed."""
    nulls = pl.when(pl.col("null_records") > 0).then(
        pl.format(", {} of {} records null", "null_records", pl.col("records").fill_null(0))
    )
    return (
        batches.filter(pl.col("status").is_in(["partial", "failed"]))
        .sort("cts")
        .group_by("batch_id", maintain_order=True)
        .first()
        .select(
            pl.lit("feed batch").alias("kind"),
            pl.col("cts").alias("at"),
            pl.lit(None, Time).alias("until"),
            pl.col("batch_id").alias("ref"),
            pl.format(
                "{} batch {} {}{}", "feed", "batch_id", "status", nulls.otherwise(pl.lit(""))
            ).alias("label"),
        )
    )


def _bursts(errors: pl.DataFrame) -> pl.DataFrame:
    """Runs of one component's engine errors, each less than BURST_GAP_MS after the one
    before, of at least BURST_MIN errors: a span each, with its most frequent class."""
    component = pl.col("component").fill_null("?")
    runs = (
        errors.with_columns(component.alias("component"), pl.col("error").fill_null("?"))
        .sort("component", "cts")
        .with_columns(
            (pl.col("cts").diff().dt.total_milliseconds().over("component") > BURST_GAP_MS)
            .fill_null(True)
            .cum_sum()
            .alias("_run")
        )
    )
    return (
        runs.group_by("component", "_run")
        .agg(
            pl.col("cts").min().alias("at"),
            pl.col("cts").max().alias("until"),
            pl.len().alias("_n"),
            pl.col("error").mode().sort().first().alias("_error"),
        )
        .filter(pl.col("_n") >= BURST_MIN)
        .select(
            pl.lit("error burst").alias("kind"),
            "at",
            "until",
            pl.col("component").alias("ref"),
            pl.format(
                "{}: {} engine errors, mostly {}, {} to {}",
                "component",
                "_n",
                "_error",
                iso_expr("at"),
                iso_expr("until"),
            ).alias("label"),
        )
    )
