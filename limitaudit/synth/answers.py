"""The expected audit, decided from the simulation's true facts (docs/causes.md).

Nothing here reads the dump back: the cause of a zeroing follows from the
decision as the engine made it, and "unexplained" from which records the dump
lost (silence, shipper drops, overwritten lines, the cut gzip).
"""

from __future__ import annotations

import polars as pl

from limitaudit.synth.dump import DumpLog
from limitaudit.synth.records import Records
from limitaudit.synth.render import money
from limitaudit.synth.simulate import (
    ANSWER_COLUMNS,
    CREDIT_MINUS1,
    CREDIT_NULL,
    FREEZE,
    SETLIM,
    UNFREEZE,
    USER_ID_BASE,
    Sim,
)
from limitaudit.synth.timeutil import format_ms
from limitaudit.synth.world import World

AUDIT_COLUMNS = (
    "user_id",
    "zeroed_at",
    "limit_before",
    "cause",
    "cause_ref",
    "recovery",
    "restored_at",
    "restored_limit",
    "change_id",
    "rule_id",
)
CAUSES = (
    "manual",
    "system_error",
    "data_anomaly",
    "parameter_error",
    "model_regression",
    "risk_policy",
    "unexplained",
)


def _iso(col: str, df: pl.DataFrame) -> pl.Series:
    return format_ms(df.get_column(col), "T", 0) + "Z"


def recovery(written: pl.DataFrame) -> pl.DataFrame:
    """For every ledger row: the user's first later row with limit_after > 0."""
    ws = (
        written.sort("u", "changed_at", "eid")
        .with_row_index("i")
        .with_columns(pl.col("i").cast(pl.Int64))
    )
    ws = ws.with_columns(
        nxt=pl.when(pl.col("after") > 0).then(pl.col("i")).shift(-1).backward_fill()
    )
    u = ws.get_column("u")
    after = ws.get_column("after")
    at = ws.get_column("changed_at")
    nxt = ws.get_column("nxt")
    idx = nxt.fill_null(0)
    same = (u.gather(idx) == u) & nxt.is_not_null()
    return ws.select("eid").with_columns(
        r_at=pl.when(pl.lit(same)).then(pl.lit(at.gather(idx))),
        r_limit=pl.when(pl.lit(same)).then(pl.lit(after.gather(idx))),
    )


def attribute(world: World, sim: Sim, recs: Records, log: DumpLog) -> pl.DataFrame:
    w = sim.written
    z = w.filter((pl.col("before") > 0) & (pl.col("after") == 0)).select(
        "eid", "u", "changed_at", "before", "source", "change_id"
    )
    ev = sim.events.select(ANSWER_COLUMNS)
    z = z.join(ev, on="eid", how="left", maintain_order="left")
    z = z.join(recovery(w), on="eid", how="left", maintain_order="left")
    tickets = recs.manual.select(eid="rec_id", ticket="ticket")
    z = z.join(tickets, on="eid", how="left", maintain_order="left")

    dropped = recs.decisions.filter(pl.col("drop")).select("rec_id", "t", "host")
    silent_ids: list[int] = []
    for s in world.silences:
        silent_ids += (
            dropped.filter(
                (pl.col("host") == s.host) & (pl.col("t") >= s.start) & (pl.col("t") < s.end)
            )
            .get_column("rec_id")
            .to_list()
        )
    reasons: dict[int, str] = dict.fromkeys(dropped.get_column("rec_id").to_list(), "shipper")
    reasons.update(dict.fromkeys(silent_ids, "silence"))
    reasons.update(log.loss_reason)
    loss = pl.DataFrame(
        {"eid": list(reasons), "loss": list(reasons.values())},
        schema={"eid": pl.Int64, "loss": pl.String},
    )
    z = z.join(loss, on="eid", how="left", maintain_order="left")

    comps = dict(enumerate(b.component for b in world.bursts))
    rolled = sorted(world.rolled_back_models)
    bad_credit = pl.col("credit_mode").is_in([CREDIT_NULL, CREDIT_MINUS1])
    z = (
        z.with_columns(
            data_sc=pl.col("r_sc") & (bad_credit | pl.col("score").is_null()),
        )
        .with_columns(
            param_sc=pl.col("r_sc")
            & ~pl.col("data_sc")
            & pl.col("cut_rb").fill_null(False)
            & ~(pl.col("score") < pl.col("cut_old") * 10).fill_null(True),
        )
        .with_columns(
            model_sc=pl.col("r_sc")
            & ~pl.col("data_sc")
            & ~pl.col("param_sc")
            & pl.col("model").is_in(rolled),
            param_ov=pl.col("r_ov")
            & pl.col("ovd_rb").fill_null(False)
            & ~(pl.col("overdue_in") > pl.col("ovd_old")).fill_null(True),
        )
        .with_columns(
            stand_sc=pl.col("r_sc")
            & ~pl.col("data_sc")
            & ~pl.col("param_sc")
            & ~pl.col("model_sc"),
            stand_ov=pl.col("r_ov") & ~pl.col("param_ov"),
        )
    )
    manual = pl.col("kind").is_in([FREEZE, UNFREEZE, SETLIM])
    any_stand = pl.col("stand_sc") | pl.col("stand_ov") | pl.col("r_fr")
    data_any = pl.col("r_ns") | pl.col("data_sc")
    param_any = pl.col("param_sc") | pl.col("param_ov")
    lost = pl.col("loss").is_not_null()
    z = z.with_columns(
        cause=pl.when(lost)
        .then(pl.lit("unexplained"))
        .when(manual)
        .then(pl.lit("manual"))
        .when(pl.col("fb"))
        .then(pl.lit("system_error"))
        .when(any_stand)
        .then(pl.lit("risk_policy"))
        .when(data_any)
        .then(pl.lit("data_anomaly"))
        .when(param_any)
        .then(pl.lit("parameter_error"))
        .when(pl.col("model_sc"))
        .then(pl.lit("model_regression"))
        .otherwise(pl.lit("?")),
    )
    stand_rule = (
        pl.when(pl.col("stand_sc"))
        .then(pl.lit("R_SCORE_CUTOFF"))
        .when(pl.col("stand_ov"))
        .then(pl.lit("R_OVERDUE"))
        .otherwise(pl.lit("R_FRAUD"))
    )
    c = pl.col("cause")
    z = z.with_columns(
        rule_id=pl.when(c == "system_error")
        .then(pl.lit("R_FAIL_CLOSED"))
        .when(c == "risk_policy")
        .then(stand_rule)
        .when(c == "data_anomaly")
        .then(
            pl.when(pl.col("r_ns")).then(pl.lit("R_NO_SCORE")).otherwise(pl.lit("R_SCORE_CUTOFF"))
        )
        .when(c == "parameter_error")
        .then(
            pl.when(pl.col("param_sc"))
            .then(pl.lit("R_SCORE_CUTOFF"))
            .otherwise(pl.lit("R_OVERDUE"))
        )
        .when(c == "model_regression")
        .then(pl.lit("R_SCORE_CUTOFF")),
        cause_ref=pl.when(c == "manual")
        .then(pl.col("ticket"))
        .when(c == "system_error")
        .then(pl.col("burst").replace_strict(comps, default=None, return_dtype=pl.String))
        .when(c == "risk_policy")
        .then(stand_rule)
        .when(c == "data_anomaly")
        .then(pl.col("batch_id"))
        .when(c == "parameter_error")
        .then(pl.when(pl.col("param_sc")).then(pl.col("cut_rel")).otherwise(pl.col("ovd_rel")))
        .when(c == "model_regression")
        .then(pl.col("model")),
    )
    bad = z.filter(pl.col("cause") == "?")
    if bad.height:
        raise AssertionError(f"zeroings with no cause: {bad.head(3)}")

    zeroed_at = _iso("changed_at", z)
    restored_at = _iso("r_at", z)
    z = z.with_columns(
        user_id=(pl.col("u") + USER_ID_BASE).cast(pl.String),
        zeroed_at=pl.lit(zeroed_at),
        limit_before=money("before"),
        recovery=pl.when(pl.col("r_at").is_null())
        .then(pl.lit("none"))
        .when(pl.col("r_limit") >= pl.col("before"))
        .then(pl.lit("full"))
        .otherwise(pl.lit("partial")),
        restored_at=pl.lit(restored_at),
        restored_limit=pl.when(pl.col("r_limit").is_not_null()).then(money("r_limit")),
    )
    return z.sort("zeroed_at", "user_id")


def audit_frame(z: pl.DataFrame) -> pl.DataFrame:
    return z.select(list(AUDIT_COLUMNS))


def detail_frame(world: World, z: pl.DataFrame, log: DumpLog) -> pl.DataFrame:
    names = {h.idx: h.name for h in world.hosts}
    where_file = {k: v[0] for k, v in log.where.items()}
    where_line = {k: v[1] for k, v in log.where.items()}
    eids = z.get_column("eid").to_list()
    manual = z.get_column("kind").is_in([FREEZE, UNFREEZE, SETLIM]).to_list()
    hosts = z.get_column("host").to_list()
    decided = _iso("t", z)
    return z.select(
        "change_id",
        "user_id",
        "zeroed_at",
        "cause",
        "cause_ref",
        "rule_id",
        "source",
        "scenario",
        "loss",
        true_time=pl.lit(decided),
        record_host=pl.Series(
            [world.ops.name if m else names.get(h, "") for m, h in zip(manual, hosts, strict=True)],
            dtype=pl.String,
        ),
        record_file=pl.Series([where_file.get(e) for e in eids], dtype=pl.String),
        record_line=pl.Series([where_line.get(e) for e in eids], dtype=pl.Int64),
        param_version=pl.when(~pl.lit(pl.Series(manual, dtype=pl.Boolean))).then(pl.col("pv")),
        model_version=pl.when(~pl.lit(pl.Series(manual, dtype=pl.Boolean))).then(pl.col("model")),
    )


# What a correct `limitaudit incidents` and `limitaudit owed` print, from the same facts.
INCIDENT_CAUSES = ("manual", "system_error", "data_anomaly", "parameter_error", "model_regression")
NOT_OWN_RISK = ("system_error", "data_anomaly", "parameter_error", "model_regression")
NOTICE_BEFORE_MS = 5 * 60 * 1000
NOTICE_AFTER_MS = 24 * 3600 * 1000


def with_outcome(z: pl.DataFrame, sim: Sim, recs: Records, log: DumpLog) -> pl.DataFrame:
    """The answers `z` with each user's limit where the dump's ledger ends (`now`, cents)
    and whether the user was sent a notice that reached the dump within five minutes
    before to a day after the zeroing (`told`)."""
    last = (
        sim.written.sort("u", "changed_at", "eid")
        .group_by("u", maintain_order=True)
        .last()
        .select("u", now="after")
    )
    lost = set(log.loss_reason)
    notices = recs.notices.filter(~pl.col("drop") & ~pl.col("rec_id").is_in(list(lost))).select(
        u=pl.col("user_id").cast(pl.Int64) - USER_ID_BASE, nt="t"
    )
    told = (
        z.select("eid", "u", "changed_at")
        .join(notices, on="u")
        .filter(
            (pl.col("nt") >= pl.col("changed_at") - NOTICE_BEFORE_MS)
            & (pl.col("nt") - pl.col("changed_at") <= NOTICE_AFTER_MS)
        )
        .select("eid")
        .unique()
        .with_columns(told=pl.lit(True))
    )
    return (
        z.join(last, on="u", how="left", maintain_order="left")
        .join(told, on="eid", how="left", maintain_order="left")
        .with_columns(pl.col("told").fill_null(False))
    )


def incidents_frame(z: pl.DataFrame) -> pl.DataFrame:
    """One row an incident: a cause with its cause_ref, but the users' own risk and what
    nothing explains; most users hit first."""
    order = {c: i for i, c in enumerate(INCIDENT_CAUSES)}
    user = pl.col("user_id")
    return (
        z.filter(pl.col("cause").is_in(INCIDENT_CAUSES))
        .group_by("cause", "cause_ref")
        .agg(
            first_zeroed_at=pl.col("zeroed_at").min(),
            last_zeroed_at=pl.col("zeroed_at").max(),
            zeroings=pl.len().cast(pl.Int64),
            users=user.n_unique().cast(pl.Int64),
            removed=pl.col("before").sum(),
            recovered_full=(pl.col("recovery") == "full").sum().cast(pl.Int64),
            recovered_partial=(pl.col("recovery") == "partial").sum().cast(pl.Int64),
            recovered_none=(pl.col("recovery") == "none").sum().cast(pl.Int64),
            still_at_zero=user.filter(pl.col("now") <= 0).n_unique().cast(pl.Int64),
        )
        .with_columns(
            limit_removed=money("removed"),
            _order=pl.col("cause").replace_strict(order, return_dtype=pl.Int64),
        )
        .sort(["users", "zeroings", "_order", "cause_ref"], descending=[True, True, False, False])
        .select(
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
        )
    )


def owed_frame(z: pl.DataFrame) -> pl.DataFrame:
    """Each user a cause not of their own making zeroed (the latest such zeroing) who is
    still below the limit they had before it; largest shortfall first."""
    mine = z.filter(pl.col("cause").is_in(NOT_OWN_RISK)).sort("changed_at", "u", "eid")
    latest = mine.group_by("u", maintain_order=True).last()
    return (
        latest.with_columns(short=pl.col("before") - pl.col("now"))
        .filter(pl.col("short") > 0)
        .sort(["short", "user_id"], descending=[True, False])
        .select(
            "user_id",
            "cause",
            "cause_ref",
            "zeroed_at",
            "limit_before",
            limit_now=money("now"),
            shortfall=money("short"),
            notified="told",
        )
    )
