"""Every logged decision replayed under another configuration, with the engine's rule
catalogue (attribute.CATALOGUE): which outcomes would change.

A decision's outcome is what its fired rules do: `zero` if any zeroes, else `reduce`,
else `hold`, else `pass`. A what-if changes what a rule reads: a parameter's value
(`--set PARAM=VALUE`, or `--undo RELEASE`: each parameter that release brought in at the
value it replaced, for the decisions that ran with it) or, for the decisions a model
version scored, the score another version gave the same user (`--model VERSION=OTHER`,
where the dump holds decisions of both: a canary). A rule whose reading changes is
evaluated again by the catalogue; every other rule keeps its logged firing, and so does
one the catalogue cannot evaluate (no value to read), which the replay counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import polars as pl

from limitaudit.analysis.attribute import config_state
from limitaudit.errors import UsageError

# The rules the catalogue evaluates again, what they read, and how they fire.
PARAM_RULES = {
    "R_SCORE_CUTOFF": ("score_cutoff", "score", "lt"),
    "R_OVERDUE": ("overdue_max_days", "overdue_days", "gt"),
}
OUTCOMES = ["zero", "reduce", "hold", "pass"]


@dataclass(frozen=True)
class WhatIf:
    """Another configuration: parameter values, undone releases, model versions swapped."""

    settings: dict[str, float] = field(default_factory=dict)
    undo: tuple[str, ...] = ()
    models: dict[str, str] = field(default_factory=dict)


def check(what: WhatIf) -> None:
    """A parameter the catalogue's rules do not read cannot be set: nothing would change."""
    readable = {param for param, _, _ in PARAM_RULES.values()}
    unknown = sorted(set(what.settings) - readable)
    if unknown:
        raise UsageError(
            f"--set: the rule catalogue reads no parameter {', '.join(unknown)}; "
            f"it reads {', '.join(sorted(readable))}"
        )
    for name, value in what.settings.items():
        if not math.isfinite(value):
            raise UsageError(f"--set {name}={value}: not a finite number")


def outcome(actions: pl.Expr) -> pl.Expr:
    """A decision's outcome from the actions of its fired rules (a list)."""
    return (
        pl.when(actions.list.contains("zero"))
        .then(pl.lit("zero"))
        .when(actions.list.contains("reduce"))
        .then(pl.lit("reduce"))
        .when(actions.list.contains("hold"))
        .then(pl.lit("hold"))
        .otherwise(pl.lit("pass"))
    )


def replay(decisions: pl.DataFrame, params: pl.DataFrame, what: WhatIf) -> pl.DataFrame:
    """Each decision (file_id, line, cts, user_id, change_id, param_version, model_version,
    score, overdue_days, rules), in the order given, with `outcome_logged`,
    `outcome_whatif`, `changed` (the rules whose firing changes, in catalogue order) and
    `unevaluable` (the rules whose reading changed but that the catalogue cannot evaluate
    for it)."""
    d = _with_swapped(config_state(decisions.with_row_index("_d"), params), what.models)
    logged_ids = pl.col("rules").list.eval(pl.element().struct.field("id"))
    blind = pl.col("_blind")  # a swapped version whose user the other never scored
    fired: list[pl.Expr] = []
    unevaluable: list[pl.Expr] = []
    for rule_id, (param, reads, op) in PARAM_RULES.items():
        d = d.join(_values(d, params, param, what), on="_d", how="left")
        before, after = pl.col(f"_{param}_now"), pl.col(f"_{param}_whatif")
        scored = reads == "score"
        observed = pl.col("_score") if scored else pl.col(reads).cast(pl.Float64)
        moved = _differ(after, before) | (pl.col("_swapped") if scored else pl.lit(False))
        can = observed.is_not_null() & after.is_not_null() & (~blind if scored else True)
        fires = observed < after if op == "lt" else observed > after
        logged = logged_ids.list.contains(rule_id)
        fired.append(pl.when(moved & can).then(fires).otherwise(logged).alias(rule_id))
        unevaluable.append(_listed(moved & ~can, rule_id))
    # R_NO_SCORE reads the score alone: it moves with a model swapped.
    no_score = pl.when(pl.col("_swapped") & ~blind).then(pl.col("_score").is_null())
    fired.append(no_score.otherwise(logged_ids.list.contains("R_NO_SCORE")).alias("R_NO_SCORE"))
    unevaluable.append(_listed(pl.col("_swapped") & blind, "R_NO_SCORE"))
    names = [*PARAM_RULES, "R_NO_SCORE"]
    d = d.with_columns(*fired, pl.concat_list(unevaluable).alias("unevaluable"))
    actions = pl.element().struct.field("action")
    kept = pl.col("rules").list.eval(
        pl.element().filter(~pl.element().struct.field("id").is_in(names))
    )
    added = pl.concat_list(_listed(pl.col(n), "zero") for n in names)
    return d.sort("_d").select(
        "file_id",
        "line",
        "cts",
        "user_id",
        "change_id",
        outcome(pl.col("rules").list.eval(actions)).alias("outcome_logged"),
        outcome(pl.concat_list(kept.list.eval(actions), added)).alias("outcome_whatif"),
        pl.concat_list(_listed(pl.col(n) != logged_ids.list.contains(n), n) for n in names).alias(
            "changed"
        ),
        "unevaluable",
    )


def _listed(when: pl.Expr, value: str) -> pl.Expr:
    """[value] where `when` holds, [] elsewhere: to build a list from flags."""
    return pl.when(when).then(pl.lit([value])).otherwise(pl.lit([], pl.List(pl.String)))


def _differ(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return (a != b).fill_null(a.is_not_null() | b.is_not_null())


def _values(d: pl.DataFrame, params: pl.DataFrame, param: str, what: WhatIf) -> pl.DataFrame:
    """Each decision's value of `param` as it ran (`_{param}_now`) and under the what-if
    (`_{param}_whatif`); null where the dump does not tell."""
    mine = params.filter(pl.col("param") == param)
    changes = mine.select(
        pl.col("seq").cast(pl.Int64).alias("c_seq"),
        pl.col("old_value").cast(pl.Float64, strict=False).alias("c_old"),
        pl.col("new_value").cast(pl.Float64, strict=False).alias("c_new"),
        pl.col("release_id").alias("c_release"),
    )
    # Before the dump's first change of it, a parameter is at that change's old value.
    initial = mine.sort("seq").select(pl.col("old_value").cast(pl.Float64, strict=False))
    first = initial.item(0, 0) if initial.height else None
    in_force = (
        d.select("_d", "state_seq")
        .join(changes, how="cross")
        .filter(pl.col("c_seq") <= pl.col("state_seq"))
        .filter(pl.col("c_seq") == pl.col("c_seq").max().over("_d"))
    )
    now = (
        d.select("_d")
        .join(in_force, on="_d", how="left")
        .with_columns(pl.col("c_new").fill_null(pl.lit(first, pl.Float64)).alias("_now"))
    )
    if param in what.settings:
        later = pl.lit(what.settings[param], pl.Float64)
    else:
        undone = pl.col("c_release").is_in(list(what.undo)).fill_null(False)
        later = pl.when(undone).then(pl.col("c_old")).otherwise(pl.col("_now"))
    return now.select("_d", pl.col("_now").alias(f"_{param}_now"), later.alias(f"_{param}_whatif"))


def _with_swapped(d: pl.DataFrame, models: dict[str, str]) -> pl.DataFrame:
    """`d` with `_score`, the score under `models` swapped: for a decision a swapped version
    scored, the score the other version gave the same user in the decision nearest in
    time; `_swapped` where that applies, `_blind` where the other version never scored the
    user (nothing to read). Every other decision keeps its own score."""
    d = d.with_columns(
        pl.col("score").alias("_score"),
        pl.lit(False).alias("_swapped"),
        pl.lit(False).alias("_blind"),
    )
    for version, other in models.items():
        theirs = (
            d.filter(pl.col("model_version") == other)
            .select("user_id", "cts", pl.col("score").alias("_other"), pl.lit(True).alias("_seen"))
            .sort("user_id", "cts")
        )
        mine = d.filter(pl.col("model_version") == version).select("_d", "user_id", "cts")
        # Sorted by (user, time) as join_asof's `by` needs (polars #21724).
        near = mine.sort("user_id", "cts").join_asof(
            theirs, on="cts", by="user_id", strategy="nearest", check_sortedness=False
        )
        swap = pl.col("model_version") == version
        d = (
            d.join(near.select("_d", "_other", "_seen"), on="_d", how="left")
            .with_columns(
                pl.when(swap).then(pl.col("_other")).otherwise(pl.col("_score")).alias("_score"),
                (swap | pl.col("_swapped")).alias("_swapped"),
                ((swap & pl.col("_seen").is_null()) | pl.col("_blind")).alias("_blind"),
            )
            .drop("_other", "_seen")
        )
    return d
