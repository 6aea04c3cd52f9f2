"""Why a matched decision zeroed a limit: each zeroing rule explained, or standing.

docs/causes.md. Each zeroing rule is explained by the first of system, data,
parameter, model that holds; if any rule stands the zeroing is `risk_policy`;
otherwise the first factor that explains a rule gives the cause, and the first
rule it explains gives the cause_ref. A fallback decision is `system_error`.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from limitaudit.analysis import evidence, refs

CAUSE_OF = {
    "system": "system_error",
    "data": "data_anomaly",
    "parameter": "parameter_error",
    "model": "model_regression",
}
SCORE_RULES = ["R_NO_SCORE", "R_SCORE_CUTOFF"]


@dataclass(frozen=True)
class Rule:
    """One row of the rule catalogue (docs/causes.md)."""

    reads: str | None  # the decision field the rule reads
    param: str | None
    fires_when: str | None  # "gt": observed > threshold, "lt": observed < threshold


CATALOGUE = {
    "R_FAIL_CLOSED": Rule(None, None, None),
    "R_NO_SCORE": Rule("score", None, None),
    "R_FRAUD": Rule("fraud_flag", None, None),
    "R_OVERDUE": Rule("overdue_days", "overdue_max_days", "gt"),
    "R_SCORE_CUTOFF": Rule("score", "score_cutoff", "lt"),
    "R_SCORE_BAND": Rule("score", "score_band_step", None),
}


def _catalogue_expr(attr: str) -> pl.Expr:
    mapping = {rule_id: getattr(rule, attr) for rule_id, rule in CATALOGUE.items()}
    return pl.col("rule_id").replace_strict(mapping, default=None, return_dtype=pl.String)


def param_history(params: pl.DataFrame) -> pl.DataFrame:
    """Parameter changes in order (`seq`), each with the later change that rolled it back."""
    history = params.sort("cts", "file_id", "line").with_row_index("seq")
    later = history.select(
        "param",
        pl.col("seq").alias("rb_seq"),
        pl.col("new_value").alias("rb_value"),
        pl.col("release_id").alias("rb_release"),
        pl.col("cts").alias("rb_cts"),
        pl.col("operator").alias("rb_operator"),
    )
    rollbacks = (
        history.select("seq", "param", "old_value")
        .join(later, on="param")
        .filter((pl.col("rb_seq") > pl.col("seq")) & (pl.col("rb_value") == pl.col("old_value")))
        # The first later change that undoes it.
        .filter(pl.col("rb_seq") == pl.col("rb_seq").min().over("seq"))
        .select("seq", "rb_seq", "rb_release", "rb_cts", "rb_operator")
    )
    return history.join(rollbacks, on="seq", how="left")


def model_history(deploys: pl.DataFrame) -> pl.DataFrame:
    """Model deploys in order, each with the later full-traffic deploy that rolled it back."""
    history = deploys.sort("cts", "file_id", "line").with_row_index("seq")
    later = history.filter(pl.col("traffic_pct").fill_null(100) >= 100).select(
        pl.col("seq").alias("rb_seq"),
        pl.col("model_version").alias("rb_to"),
        pl.col("previous_version").alias("rb_from"),
        pl.col("release_id").alias("rb_release"),
        pl.col("cts").alias("rb_cts"),
    )
    rollbacks = (
        history.select("seq", "model_version", "previous_version")
        .join(later, left_on="previous_version", right_on="rb_to")
        .filter(
            (pl.col("rb_seq") > pl.col("seq"))
            & (pl.col("rb_from").is_null() | (pl.col("rb_from") == pl.col("model_version")))
        )
        # The first later change that undoes it.
        .filter(pl.col("rb_seq") == pl.col("rb_seq").min().over("seq"))
        .select("seq", "rb_seq", "rb_release", "rb_cts")
    )
    return history.join(rollbacks, on="seq", how="left")


def explain(decisions: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    """Cause, cause_ref, rule_id and evidence for each zeroing matched to a decision.

    `decisions` has one row per zeroing (`zid`) with the decision's fields and `cts`.
    """
    rules = _zeroing_rules(decisions, ctx)
    per_zeroing = _decide(rules)
    out = decisions.join(per_zeroing, on="zid", how="left")
    system_ref = refs.system_refs(decisions, ctx.errors)
    data_ref = refs.data_refs(decisions, ctx.batches)
    out = out.join(system_ref, on="zid", how="left").join(data_ref, on="zid", how="left")
    fallback = pl.col("fallback").fill_null(False)
    cause = (
        pl.when(fallback)
        .then(pl.lit("system_error"))
        .when(pl.col("factor") == "stands")
        .then(pl.lit("risk_policy"))
        .when(pl.col("factor").is_null())
        .then(pl.lit("risk_policy"))
        .otherwise(pl.col("factor").replace_strict(CAUSE_OF, default=None))
    )
    ref = (
        pl.when(fallback | (pl.col("factor") == "system"))
        .then(pl.col("component"))
        .when(pl.col("factor") == "data")
        .then(pl.col("batch"))
        .when(pl.col("factor") == "parameter")
        .then(pl.col("param_release"))
        .when(pl.col("factor") == "model")
        .then(pl.col("model_version"))
        .otherwise(pl.col("ref_rule"))
    )
    rule_id = pl.when(fallback).then(pl.lit("R_FAIL_CLOSED")).otherwise(pl.col("ref_rule"))
    notes = pl.concat_str(
        pl.col("rule_notes"),
        pl.when(fallback).then(
            pl.format(
                "fallback decision: the engine failed closed after {} in {}",
                pl.col("error").fill_null("an engine error"),
                pl.col("component").fill_null("an unknown component"),
            )
        ),
        separator="; ",
        ignore_nulls=True,
    )
    return out.with_columns(
        cause.alias("cause"),
        ref.fill_null("").alias("cause_ref"),
        rule_id.fill_null("").alias("rule_id"),
        notes.alias("rule_notes"),
    )


@dataclass(frozen=True)
class Context:
    params: pl.DataFrame  # param_history()
    models: pl.DataFrame  # model_history()
    errors: pl.DataFrame  # engine_error with cts
    # feed_batch with cts, of the one feed decisions take their credit data from (quoted_feed)
    batches: pl.DataFrame
    tolerance_ms: int


def _zeroing_rules(decisions: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    """One row per zeroing rule of each decision, with the factor that explains it."""
    rules = (
        decisions.select(
            "zid",
            "cts",
            "param_version",
            "model_version",
            "score",
            "credit_score",
            "credit_score_present",
            "overdue_days",
            "fraud_flag",
            "bureau_batch",
            pl.col("rules").list.eval(
                pl.element().struct.with_fields(pl.int_range(pl.len()).alias("pos"))
            ),
        )
        .explode("rules")
        .unnest("rules")
        .filter(pl.col("action") == "zero")
        .rename({"id": "rule_id"})
    )
    rules = rules.with_columns(
        pl.coalesce(pl.col("param"), _catalogue_expr("param")).alias("param"),
        _catalogue_expr("reads").alias("reads"),
        _catalogue_expr("fires_when").alias("fires_when"),
    )
    rules = _with_param_state(rules, ctx)
    rules = _with_model_state(rules, ctx)
    reads_score = pl.col("rule_id").is_in(SCORE_RULES)
    bad_credit = pl.col("credit_score_present").fill_null(False) & (
        pl.col("credit_score").is_null() | (pl.col("credit_score") == -1)
    )
    data = reads_score & (bad_credit | pl.col("score").is_null())
    parameter = pl.col("param_rolled_back") & pl.col("fires_with_old").not_()
    model = reads_score & pl.col("model_rolled_back")
    factor = (
        pl.when(pl.col("rule_id") == "R_FAIL_CLOSED")
        .then(pl.lit("system"))
        .when(data)
        .then(pl.lit("data"))
        .when(parameter.fill_null(False))
        .then(pl.lit("parameter"))
        .when(model.fill_null(False))
        .then(pl.lit("model"))
        .otherwise(pl.lit("stands"))
    )
    rules = rules.with_columns(factor.alias("factor"))
    return rules.with_columns(evidence.rule_note().alias("note"))


def _observed() -> pl.Expr:
    from_catalogue = (
        pl.when(pl.col("reads") == "score")
        .then(pl.col("score"))
        .when(pl.col("reads") == "overdue_days")
        .then(pl.col("overdue_days").cast(pl.Float64))
    )
    return pl.coalesce(pl.col("observed").cast(pl.Float64, strict=False), from_catalogue)


def config_state(rules: pl.DataFrame, params: pl.DataFrame) -> pl.DataFrame:
    """Each rule's (or decision's) configuration state (`state_seq`): the last parameter
    change its decision's param_version names, or for a decision naming none, the last
    change before it; -1 is the configuration before the dump's first change."""
    versions = dict(params.group_by("param_version").agg(pl.col("seq").max()).iter_rows())
    seq_by_version = pl.col("param_version").replace_strict(
        versions, default=-1, return_dtype=pl.Int64
    )
    times = params.select("cts", pl.col("seq").cast(pl.Int64).alias("time_seq")).sort("cts")
    rules = rules.sort("cts")
    rules = (
        rules.join_asof(times, on="cts", strategy="backward")
        if times.height
        else (rules.with_columns(pl.lit(None, pl.Int64).alias("time_seq")))
    )
    return rules.with_columns(
        pl.when(pl.col("param_version").is_null())
        .then(pl.col("time_seq").fill_null(-1))
        .otherwise(seq_by_version)
        .alias("state_seq")
    ).drop("time_seq")


def _with_param_state(rules: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    """Each rule with the change that brought its parameter's value in (c_*), whether that
    was rolled back, its threshold, and whether it would fire at the value before."""
    params = ctx.params
    rules = config_state(rules.with_row_index("rid"), params)
    changes = params.select(
        "param",
        pl.col("seq").cast(pl.Int64).alias("c_seq"),
        pl.col("old_value").alias("c_old"),
        pl.col("new_value").alias("c_new"),
        pl.col("release_id").alias("param_release"),
        pl.col("operator").alias("c_operator"),
        pl.col("cts").alias("c_cts"),
        pl.col("rb_seq").is_not_null().alias("param_rolled_back"),
        pl.col("rb_release"),
        pl.col("rb_cts"),
    )
    in_force = (
        rules.select("rid", "param", "state_seq")
        .join(changes, on="param")
        .filter(pl.col("c_seq") <= pl.col("state_seq"))
        .filter(pl.col("c_seq") == pl.col("c_seq").max().over("rid"))
        .drop("param", "state_seq")
    )
    initial = params.filter(pl.col("seq") == pl.col("seq").min().over("param")).select(
        "param", pl.col("old_value").alias("initial_value")
    )
    rules = rules.join(in_force, on="rid", how="left").join(initial, on="param", how="left")
    threshold = pl.coalesce(
        pl.col("threshold"),
        pl.col("c_new").cast(pl.Float64, strict=False),
        pl.col("initial_value").cast(pl.Float64, strict=False),
    )
    old = pl.col("c_old").cast(pl.Float64, strict=False)
    observed = _observed()
    fires_old = (
        pl.when(pl.col("fires_when") == "gt")
        .then(observed > old)
        .when(pl.col("fires_when") == "lt")
        .then(observed < old)
    )
    return (
        rules.with_columns(
            threshold.alias("threshold"),
            observed.alias("observed_num"),
            fires_old.alias("fires_with_old"),
            pl.col("param_rolled_back").fill_null(False),
        )
        .sort("rid")
        .drop("rid")
    )


def _with_model_state(rules: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    models = ctx.models.select(
        pl.col("model_version"),
        pl.col("seq").alias("m_seq"),
        pl.col("cts").alias("m_cts"),
        pl.col("release_id").alias("m_release"),
        pl.col("previous_version").alias("m_previous"),
        pl.col("rb_seq").is_not_null().alias("model_rolled_back"),
        pl.col("rb_release").alias("m_rb_release"),
        pl.col("rb_cts").alias("m_rb_cts"),
    )
    keys = rules.select("zid", "cts", "model_version").unique()
    cands = keys.join(models, on="model_version").with_columns(
        (pl.col("m_cts") <= pl.col("cts") + pl.duration(milliseconds=ctx.tolerance_ms)).alias(
            "before"
        )
    )
    # The deploy that put this version in service: the latest one before the decision,
    # or, where clocks disagree too much to tell, the first one.
    chosen = (
        cands.sort("before", "m_seq", descending=[True, False])
        .with_columns(
            pl.when(pl.col("before").any().over("zid"))
            .then(pl.col("m_seq").filter(pl.col("before")).max().over("zid"))
            .otherwise(pl.col("m_seq").min().over("zid"))
            .alias("pick")
        )
        .filter(pl.col("m_seq") == pl.col("pick"))
        .drop("pick", "before", "cts", "model_version")
    )
    return rules.join(chosen, on="zid", how="left").with_columns(
        pl.col("model_rolled_back").fill_null(False)
    )


def _decide(rules: pl.DataFrame) -> pl.DataFrame:
    """Per zeroing: the deciding factor and the rule that gives the cause_ref."""
    rank = pl.col("factor").replace_strict(
        {"stands": 0, "system": 1, "data": 2, "parameter": 3, "model": 4}, return_dtype=pl.Int8
    )
    ranked = rules.with_columns(rank.alias("rank"))
    # Joins and group-bys need not keep row order (Polars 2 streaming engine): every
    # "first" below is made explicit by sorting on the rule's position.
    winner = ranked.group_by("zid").agg(
        pl.col("rank").min().alias("best"),
        pl.col("note").sort_by("pos").str.join("; ").alias("rule_notes"),
    )
    first = (
        ranked.join(winner, on="zid")
        .filter(pl.col("rank") == pl.col("best"))
        .sort("zid", "pos")
        .group_by("zid", maintain_order=True)
        .first()
        .select("zid", "factor", pl.col("rule_id").alias("ref_rule"), "param_release")
    )
    return winner.select("zid", "rule_notes").join(first, on="zid", how="left")
