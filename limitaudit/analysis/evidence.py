"""The evidence of each verdict, as sentences: what matched, what was missing, what the
findings say. Built as Polars expressions over the attributed zeroings."""

from __future__ import annotations

import polars as pl

from limitaudit.model.audit import CSV_COLUMNS
from limitaudit.model.dump import Dump, Finding
from limitaudit.model.format import iso_expr, yuan, yuan_text


def manual(zero: pl.DataFrame, dump: Dump) -> pl.DataFrame:
    manual = dump.tables["manual_action"].select(
        pl.col("file_id").alias("a_file"),
        pl.col("line").alias("a_line"),
        "ticket",
        "operator",
        "action",
        "reason",
    )
    rows = zero.filter(pl.col("act") == "manual_action").join(
        manual, on=["a_file", "a_line"], how="left"
    )
    return rows.with_columns(
        pl.lit("manual").alias("cause"),
        pl.col("ticket").fill_null("").alias("cause_ref"),
        pl.lit("").alias("rule_id"),
        pl.format(
            "manual {} by {} (ticket {}): {}",
            pl.col("action").fill_null("?"),
            pl.col("operator").fill_null("?"),
            pl.col("ticket").fill_null("?"),
            pl.col("reason").fill_null(""),
        ).alias("why"),
    ).drop("ticket", "operator", "action", "reason")


def unexplained(
    zero: pl.DataFrame,
    acts: pl.DataFrame,
    silences: pl.DataFrame,
    tol: int,
    names: pl.DataFrame,
) -> pl.DataFrame:
    """Say what is missing: the user's nearest record, and any engine host silent at the time."""
    rows = zero.filter(pl.col("act_id").is_null()).drop("host", "ts", "cts")
    nearest = _nearest(rows, acts, names)
    silent = _silent_hosts(rows, silences)
    why = pl.concat_str(
        pl.format(
            "no decision or manual action setting the limit to zero for user {} within ±{} s",
            "user_id",
            pl.lit(tol // 1000),
        ),
        pl.col("nearest"),
        pl.col("silence"),
        separator="; ",
        ignore_nulls=True,
    )
    return (
        rows.join(nearest, on="zid", how="left")
        .join(silent, on="zid", how="left")
        .with_columns(
            pl.lit("unexplained").alias("cause"),
            pl.lit("").alias("cause_ref"),
            pl.lit("").alias("rule_id"),
            why.alias("why"),
        )
        .drop("nearest", "silence")
    )


def _nearest(rows: pl.DataFrame, acts: pl.DataFrame, names: pl.DataFrame) -> pl.DataFrame:
    """Per unexplained zeroing, the user's record nearest in time, as a sentence."""
    return (
        rows.select("zid", "user_id", "changed_at")
        .join(
            acts.select(
                "user_id",
                pl.col("cts").alias("n_cts"),
                pl.col("file_id").alias("n_file"),
                pl.col("line").alias("n_line"),
                pl.col("limit_after").alias("n_after"),
                pl.col("source").alias("n_source"),
            ),
            on="user_id",
        )
        .with_columns((pl.col("n_cts") - pl.col("changed_at")).dt.total_seconds().alias("n_dt"))
        .sort("zid", pl.col("n_dt").abs())
        .group_by("zid", maintain_order=True)
        .first()
        .join(names.rename({"file_id": "n_file", "file": "n_name"}), on="n_file", how="left")
        .select(
            "zid",
            pl.format(
                "nearest record of the user: {} {}:{} {} s from the ledger time, setting {}",
                "n_source",
                "n_name",
                "n_line",
                "n_dt",
                yuan("n_after"),
            ).alias("nearest"),
        )
    )


def _silent_hosts(rows: pl.DataFrame, silences: pl.DataFrame) -> pl.DataFrame:
    return (
        rows.select("zid", "changed_at")
        .join(silences, how="cross")
        .filter((pl.col("start") <= pl.col("changed_at")) & (pl.col("changed_at") <= pl.col("end")))
        .rechunk()
        .with_columns(
            pl.format(
                "engine host {} wrote nothing from {} to {}",
                "host",
                iso_expr("start"),
                iso_expr("end"),
            ).alias("s")
        )
        .group_by("zid")
        .agg(pl.col("s").sort().str.join("; ").alias("silence"))
    )


def finish(out: pl.DataFrame, names: pl.DataFrame) -> pl.DataFrame:
    out = out.join(names.rename({"file_id": "a_file", "file": "a_name"}), on="a_file", how="left")
    record = pl.when(pl.col("a_name").is_not_null()).then(pl.format("{}:{}", "a_name", "a_line"))
    head = pl.when(pl.col("act").is_not_null()).then(
        pl.format(
            "{} {} on {} at {}{} set {}→{} (matched by {})",
            "act",
            record,
            "host",
            iso_expr("cts"),
            # Times compare across hosts only once corrected; say what the host wrote too.
            pl.when(pl.col("cts") != pl.col("ts"))
            .then(pl.format(" (its clock: {})", iso_expr("ts")))
            .otherwise(pl.lit("")),
            yuan("a_before"),
            yuan("a_after"),
            "matched_by",
        )
    )
    evidence = pl.concat_str(head, pl.col("why"), separator="; ", ignore_nulls=True)
    return (
        out.sort("changed_at", "user_id", maintain_order=True)
        .select(
            "user_id",
            iso_expr("changed_at").alias("zeroed_at"),
            yuan("limit_before").alias("limit_before"),
            "cause",
            pl.col("cause_ref").fill_null(""),
            "recovery",
            iso_expr("restored_at").alias("restored_at"),
            yuan("restored_limit").alias("restored_limit"),
            pl.col("rule_id").fill_null(""),
            evidence.fill_null("").alias("evidence"),
            "zero_duration_s",
            "notified",
            pl.col("matched_by").fill_null(""),
            "change_id",
            record.fill_null("").alias("record"),
            pl.col("host").fill_null(""),
            yuan("limit_now").alias("limit_now"),
            "restore_notified",
        )
        .select(CSV_COLUMNS)
    )


def findings_of(
    dump: Dump, breaks: pl.DataFrame, gaps: pl.DataFrame, names: pl.DataFrame
) -> list[Finding]:
    findings = list(dump.findings)
    named = breaks.join(names, on="file_id", how="left").join(
        names.rename({"file_id": "prev_file_id", "file": "prev_file"}),
        on="prev_file_id",
        how="left",
    )
    for r in named.sort("changed_at", "user_id", maintain_order=True).iter_rows(named=True):
        findings.append(
            Finding(
                "chain_break",
                r["file"],
                f"user {r['user_id']}: {r['file']}:{r['line']} ({r['change_id']}) starts at "
                f"{yuan_text(r['limit_before'])} but {r['prev_file']}:{r['prev_line']} "
                f"({r['prev_change_id']}) left {yuan_text(r['prev_after'])}: "
                "rows are missing between",
            )
        )
    for r in (
        gaps.join(names, on="file_id", how="left")
        .sort("ts", "user_id", maintain_order=True)
        .iter_rows(named=True)
    ):
        findings.append(
            Finding(
                "ledger_gap",
                r["file"],
                f"user {r['user_id']}: {r['source']} {r['file']}:{r['line']} changed the limit "
                f"{yuan_text(r['limit_before'])}→{yuan_text(r['limit_after'])}"
                f"{' (' + r['change_id'] + ')' if r['change_id'] else ''} but no ledger row has it",
            )
        )
    return findings


def rule_note() -> pl.Expr:
    """What each zeroing rule's factor says: what fired, with what value, and the
    counterfactual (at the rolled-back value it would, or would not, have fired)."""
    at = iso_expr("c_cts")
    rb_at = iso_expr("rb_cts")
    observed = number_text(pl.col("observed_num")).fill_null("?")
    fired = pl.format(
        "{} fired with {}={} (observed {})",
        pl.col("rule_id"),
        pl.col("param").fill_null("?"),
        number_text(pl.col("threshold")).fill_null("?"),
        observed,
    )
    history = pl.format(
        "{} went {}→{} by {} in {} at {} and back to {} in {} at {}",
        pl.col("param"),
        pl.col("c_old").fill_null("?"),
        pl.col("c_new").fill_null("?"),
        pl.col("c_operator").fill_null("?"),
        pl.col("param_release").fill_null("?"),
        at.fill_null("?"),
        pl.col("c_old").fill_null("?"),
        pl.col("rb_release").fill_null("?"),
        rb_at.fill_null("?"),
    )
    param_note = pl.format(
        "{}; {}; at {} the rule would not have fired", fired, history, pl.col("c_old")
    )
    anyway = pl.format(
        "{}; {}; at {} the rule would have fired anyway", fired, history, pl.col("c_old")
    )
    return (
        pl.when(pl.col("factor") == "system")
        .then(pl.lit("R_FAIL_CLOSED: fail-closed default"))
        .when(pl.col("factor") == "data")
        .then(_data_note())
        .when(pl.col("factor") == "parameter")
        .then(param_note)
        .when(pl.col("factor") == "model")
        .then(_model_note())
        .when(pl.col("param_rolled_back") & pl.col("fires_with_old").fill_null(False))
        .then(anyway)
        .otherwise(_stands_note(fired))
    )


def _data_note() -> pl.Expr:
    return pl.format(
        "{} fired on missing credit data: credit_score={}, score={} (batch {})",
        pl.col("rule_id"),
        pl.col("credit_score").cast(pl.String).fill_null("null"),
        pl.col("score").cast(pl.String).fill_null("null"),
        pl.col("bureau_batch").fill_null("not quoted"),
    )


def _model_note() -> pl.Expr:
    return pl.format(
        "{} fired on a score from {} (deployed in {} at {}), rolled back to {} in {} at {}",
        pl.col("rule_id"),
        pl.col("model_version"),
        pl.col("m_release").fill_null("?"),
        iso_expr("m_cts").fill_null("?"),
        pl.col("m_previous").fill_null("?"),
        pl.col("m_rb_release").fill_null("?"),
        iso_expr("m_rb_cts").fill_null("?"),
    )


def _what_it_reads() -> pl.Expr:
    """A rule's observed value where the record omits it: what the rule reads (the
    catalogue's `reads`), as the record wrote it."""
    return (
        pl.when(pl.col("reads") == "fraud_flag")
        .then(pl.col("fraud_flag").cast(pl.String))
        .when(pl.col("reads") == "score")
        .then(pl.col("score").cast(pl.String).fill_null("null"))
        .when(pl.col("reads") == "overdue_days")
        .then(pl.col("overdue_days").cast(pl.String))
    )


def _stands_note(fired: pl.Expr) -> pl.Expr:
    return (
        pl.when(pl.col("threshold").is_not_null())
        .then(
            pl.format("{}: it stands (the user's own data under a configuration that stood)", fired)
        )
        .otherwise(
            pl.format(
                "{} fired (observed {}): it stands "
                "(the user's own data under a configuration that stood)",
                pl.col("rule_id"),
                pl.coalesce(pl.col("observed"), _what_it_reads()).fill_null("?"),
            )
        )
    )


def number_text(expr: pl.Expr) -> pl.Expr:
    """A number as people write it: 600 not 600.0."""
    return (
        pl.when(expr == expr.round())
        .then(expr.cast(pl.Int64).cast(pl.String))
        .otherwise(expr.cast(pl.String))
    )
