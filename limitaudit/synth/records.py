"""Log records (still unrendered) from the true history, and which of them are lost.

Each record type is one frame with the common columns

    rec_id, host (index into World.hosts), t (true UTC ms), planted, drop,
    replaceable (dirt may overwrite it), zcand (it set a limit to zero),
    numstr (a JSON decision written with numbers as strings and the id as a number)

plus the fields of its event.  Decisions and manual actions take their event
id as rec_id, so an answer can name the record behind a zeroing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from limitaudit.synth.rand import Rng
from limitaudit.synth.simulate import (
    ACTION,
    DEC,
    FREEZE,
    FREEZE_REASONS,
    SETLIM,
    SETLIM_REASONS,
    UNFREEZE,
    UNFREEZE_REASONS,
    USER_ID_BASE,
    Sim,
)
from limitaudit.synth.timeutil import DAY, HOUR, SEC
from limitaudit.synth.world import OPERATORS, World

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

ERR_BASE = 1 << 40
NOTICE_BASE = 2 << 40
META_BASE = 3 << 40


@dataclass
class Records:
    decisions: pl.DataFrame
    manual: pl.DataFrame
    errors: pl.DataFrame
    notices: pl.DataFrame
    params: pl.DataFrame
    models: pl.DataFrame
    feeds: pl.DataFrame
    unknown: pl.DataFrame

    def frames(self) -> dict[str, pl.DataFrame]:
        return {
            "decision": self.decisions,
            "manual_action": self.manual,
            "engine_error": self.errors,
            "user_notice": self.notices,
            "param_change": self.params,
            "model_deploy": self.models,
            "feed_batch": self.feeds,
            "unknown": self.unknown,
        }


def _meta_frame(
    host: int,
    items: Sequence[Any],
    columns: dict[str, tuple[str, PolarsDataType]],
    rec_base: int,
) -> pl.DataFrame:
    """One record per item of the world (a config change, a deploy, a batch) on one host.

    `columns` maps each column to the item's attribute and its type; text columns take
    the attribute's text (parameter values are numbers in the world, strings in logs).
    """

    def value(item: Any, attr: str, dtype: PolarsDataType) -> object:
        v = getattr(item, attr)
        return str(v) if dtype == pl.String and v is not None else v

    frame = pl.DataFrame(
        {
            "host": [host] * len(items),
            **{c: [value(i, a, t) for i in items] for c, (a, t) in columns.items()},
        },
        schema={"host": pl.Int32, **{c: t for c, (_, t) in columns.items()}},
    )
    return _common(frame.with_columns(rec_id=pl.int_range(frame.height, dtype=pl.Int64) + rec_base))


def _common(df: pl.DataFrame, **flags: pl.Expr | bool) -> pl.DataFrame:
    defaults: dict[str, pl.Expr] = {
        "planted": pl.lit(False),
        "drop": pl.lit(False),
        "replaceable": pl.lit(False),
        "zcand": pl.lit(False),
        "numstr": pl.lit(False),
    }
    for k, v in flags.items():
        defaults[k] = v if isinstance(v, pl.Expr) else pl.lit(v)
    return df.with_columns(**defaults)


def _pick(values: tuple[str, ...], idx: pl.Series) -> pl.Series:
    return pl.Series(list(values), dtype=pl.String).gather(idx)


def build_records(world: World, sim: Sim, *, change_ids: bool, dirt: bool, seed: int) -> Records:
    rng = Rng(seed, "records")
    ev = sim.events
    # eid is the row number of sim.events: scatter, not a join
    cid_full = (
        pl.select(pl.repeat(None, ev.height, dtype=pl.String))
        .to_series()
        .scatter(sim.ledger.get_column("eid"), sim.ledger.get_column("change_id"))
    )
    ev = ev.with_columns(change_id=cid_full)

    # ---- decisions -----------------------------------------------------------
    old = [h.idx for h in world.engine if h.old_build]
    dec = ev.filter(pl.col("kind") == DEC)
    n = dec.height
    dec = dec.with_columns(
        rec_id=pl.col("eid"),
        user_id=(pl.col("u") + USER_ID_BASE).cast(pl.String),
        change_id=pl.when(pl.lit(change_ids) & ~pl.col("host").is_in(old)).then(
            pl.col("change_id")
        ),
        latency=pl.lit(rng.ints(n, 3, 180)),
    )
    dec = _common(
        dec,
        planted=pl.col("scenario").is_not_null(),
        drop=pl.col("f_drop").fill_null(False),
        replaceable=pl.col("scenario").is_null(),
        zcand=pl.col("changed") & (pl.col("after") == 0),
    )
    # a few JSON decisions with numbers as strings and the user id as a number
    json_hosts = [h.idx for h in world.engine if h.fmt == "json" and h.idx != world.cut_host]
    cand = (
        dec.select(pl.col("host").is_in(json_hosts) & ~pl.col("planted") & ~pl.col("drop"))
        .to_series()
        .arg_true()
    )
    numstr = pl.select(pl.repeat(False, n, dtype=pl.Boolean)).to_series()
    if dirt and cand.len():
        k = max(3, round(cand.len() * 0.0005))
        pick = sorted(rng.sub("numstr").sample(range(cand.len()), k))
        numstr = numstr.scatter(cand.gather(pick), True)
    dec = dec.with_columns(numstr=numstr)
    dec = dec.select(
        "rec_id",
        "host",
        "t",
        "trace",
        "thread",
        "user_id",
        "change_id",
        "model",
        "pv",
        "score",
        "credit_mode",
        "credit",
        "overdue_in",
        "fraud_in",
        "batch_id",
        "omit_batch",
        "fb",
        "r_ns",
        "r_sc",
        "r_ov",
        "r_fr",
        "r_band",
        "cutoff",
        "ovd_max",
        "step",
        "before",
        "after",
        "changed",
        "latency",
        "burst",
        "u",
        "scenario",
        "planted",
        "drop",
        "replaceable",
        "zcand",
        "numstr",
    )

    # ---- manual actions (ops console) ----------------------------------------
    man = ev.filter(pl.col("kind").is_in([FREEZE, UNFREEZE, SETLIM]) & pl.col("changed"))
    man = man.sort("t", "eid")
    m = man.height
    r_freeze = rng.ints(m, 0, len(FREEZE_REASONS) - 1)
    r_unf = rng.ints(m, 0, len(UNFREEZE_REASONS) - 1)
    r_set = rng.ints(m, 0, len(SETLIM_REASONS) - 1)
    man = man.with_columns(
        rec_id=pl.col("eid"),
        host=pl.lit(world.ops.idx, pl.Int32),
        user_id=(pl.col("u") + USER_ID_BASE).cast(pl.String),
        operator=_pick(OPERATORS, rng.ints(m, 0, len(OPERATORS) - 1)),
        action=pl.col("kind").replace_strict(ACTION, return_dtype=pl.String),
        ticket=pl.format("OPS-{}", (pl.int_range(m) * 7 + 20_417).cast(pl.String)),
        reason=pl.when(pl.col("kind") == FREEZE)
        .then(pl.lit(_pick(FREEZE_REASONS, r_freeze)))
        .when(pl.col("kind") == UNFREEZE)
        .then(pl.lit(_pick(UNFREEZE_REASONS, r_unf)))
        .otherwise(pl.lit(_pick(SETLIM_REASONS, r_set))),
        change_id=pl.when(pl.lit(change_ids) & pl.lit(rng.coarse(m) < 0.85)).then(
            pl.col("change_id")
        ),
        thread=pl.lit(rng.ints(m, 1, 16)),
    )
    man = _common(
        man,
        planted=pl.col("scenario").is_not_null(),
        zcand=pl.col("after") == 0,
    ).select(
        "rec_id",
        "host",
        "t",
        "user_id",
        "operator",
        "action",
        "ticket",
        "reason",
        "change_id",
        "before",
        "after",
        "thread",
        "u",
        "scenario",
        "planted",
        "drop",
        "replaceable",
        "zcand",
        "numstr",
    )

    # ---- engine errors: one per fallback, plus retries that recovered --------
    fbd = dec.filter(pl.col("fb")).sort("t", "rec_id")
    k = fbd.height
    comps = [b.component for b in world.bursts]
    errs = [b.error for b in world.bursts]
    msgs = [b.message for b in world.bursts]
    zh = rng.coarse(k) < 0.3
    fb_err = fbd.select(
        "host",
        "trace",
        "thread",
        "burst",
        t=pl.col("t") - pl.lit(rng.ints(k, 20, 800)),
        user_id=pl.when(pl.lit(rng.coarse(k) < 0.7)).then(pl.col("user_id")),
        cn=pl.lit(zh),
    )
    extra_parts = []
    for bi, b in enumerate(world.bursts):
        c = max(1, (b.end - b.start) // (20 * SEC))
        sub = rng.sub(f"burst{bi}")
        extra_parts.append(
            pl.DataFrame(
                {
                    "host": pl.Series([b.host] * c, dtype=pl.Int32),
                    "trace": sub.hex(c, 8),
                    "thread": sub.ints(c, 1, 24),
                    "burst": pl.Series([bi] * c, dtype=pl.Int32),
                    "t": sub.ints(c, b.start, b.end - 1),
                    "user_id": pl.Series([None] * c, dtype=pl.String),
                    "cn": sub.uniform(c) < 0.3,
                }
            )
        )
    err = pl.concat([fb_err, *extra_parts], how="vertical_relaxed").sort("t", "trace")
    err = err.with_columns(
        rec_id=pl.int_range(err.height, dtype=pl.Int64) + ERR_BASE,
        component=pl.col("burst").replace_strict(dict(enumerate(comps)), return_dtype=pl.String),
        error=pl.col("burst").replace_strict(dict(enumerate(errs)), return_dtype=pl.String),
        message=pl.when(
            pl.col("cn")
            & (pl.col("burst").is_in([i for i, c in enumerate(comps) if c == "score-service"]))
        )
        .then(pl.lit("评分服务读取超时 800ms"))
        .otherwise(pl.col("burst").replace_strict(dict(enumerate(msgs)), return_dtype=pl.String)),
    )
    err = _common(err).select(
        "rec_id",
        "host",
        "t",
        "trace",
        "thread",
        "component",
        "error",
        "message",
        "user_id",
        "burst",
        "planted",
        "drop",
        "replaceable",
        "zcand",
        "numstr",
    )

    # ---- user notices --------------------------------------------------------
    led = sim.ledger.filter(pl.col("source") != "migration")
    q = led.height
    uq = rng.coarse(q)
    zeroing = (pl.col("before") > 0) & (pl.col("after") == 0)
    decrease = pl.col("after") < pl.col("before")
    notices = led.with_columns(
        send=pl.when(zeroing)
        .then(pl.lit(uq) < 0.9)
        .when(decrease)
        .then(pl.lit(uq) < 0.4)
        .otherwise(pl.lit(uq) < 0.25),
        template=pl.when(decrease)
        .then(pl.lit("LIMIT_DECREASE"))
        .otherwise(pl.lit("LIMIT_INCREASE")),
        nt=pl.col("changed_at") + pl.lit(rng.ints(q, 20_000, 300_000)),
        channel=_pick(("sms", "app_push", "email"), rng.ints(q, 0, 2)),
        with_cid=pl.lit(rng.coarse(q) < 0.7),
    ).filter(pl.col("send"))
    notices = notices.sort("nt", "change_id").select(
        rec_id=pl.int_range(notices.height, dtype=pl.Int64) + NOTICE_BASE,
        host=pl.lit(world.ntf.idx, pl.Int32),
        t=pl.col("nt"),
        user_id=(pl.col("u") + USER_ID_BASE).cast(pl.String),
        channel=pl.col("channel"),
        template=pl.col("template"),
        change_id=pl.when(pl.lit(change_ids) & pl.col("with_cid")).then(pl.col("change_id")),
    )
    nn = notices.height
    notices = _common(
        notices,
        replaceable=True,
        drop=pl.lit(rng.coarse(nn) < 0.0002),
    ).with_columns(msg_id=pl.lit(rng.hex(nn, 6)))

    # ---- config, models, feeds ----------------------------------------------
    params = _meta_frame(
        world.cfg.idx,
        world.param_changes,
        {
            "t": ("t", pl.Int64),
            "param": ("param", pl.String),
            "old_value": ("old", pl.String),
            "new_value": ("new", pl.String),
            "param_version": ("version", pl.String),
            "operator": ("operator", pl.String),
            "release_id": ("release_id", pl.String),
            "comment": ("comment", pl.String),
        },
        META_BASE,
    )
    models = _meta_frame(
        world.mdl.idx,
        world.model_deploys,
        {
            "t": ("t", pl.Int64),
            "model_version": ("model_version", pl.String),
            "previous_version": ("previous_version", pl.String),
            "traffic_pct": ("traffic_pct", pl.Int64),
            "release_id": ("release_id", pl.String),
            "operator": ("operator", pl.String),
        },
        META_BASE + 100_000,
    )
    feeds = _meta_frame(
        world.feed.idx,
        world.batches,
        {
            "t": ("t", pl.Int64),
            "feed": ("feed", pl.String),
            "batch_id": ("batch_id", pl.String),
            "records": ("records", pl.Int64),
            "null_records": ("null_records", pl.Int64),
            "status": ("status", pl.String),
        },
        META_BASE + 200_000,
    )

    # ---- events nobody asked for: counted and ignored by the tool -----------
    uh: list[int] = []
    ut: list[int] = []
    ue: list[str] = []
    ur = rng.sub("unknown")
    for d in range(world.days):
        ds = world.start + d * DAY
        for h in world.engine:
            for q6 in range(4):
                uh.append(h.idx)
                ut.append(ds + q6 * 6 * HOUR + ur.randint(0, 60_000))
                ue.append("heartbeat")
        for hh, name in (
            (world.cfg, "cache_refresh"),
            (world.mdl, "model_health"),
            (world.cfg, "cache_refresh"),
        ):
            uh.append(hh.idx)
            ut.append(ds + ur.randint(1, 23) * HOUR + ur.randint(0, 3_599_999))
            ue.append(name)
    unknown = pl.DataFrame(
        {"host": uh, "t": ut, "event": ue},
        schema={"host": pl.Int32, "t": pl.Int64, "event": pl.String},
    )
    un = unknown.height
    unknown = unknown.with_columns(
        rec_id=pl.int_range(un, dtype=pl.Int64) + META_BASE + 300_000,
        uptime=pl.lit(ur.ints(un, 1_000, 9_000_000)),
        depth=pl.lit(ur.ints(un, 0, 40)),
    )
    unknown = _common(unknown, replaceable=True)

    recs = Records(dec, man, err, notices, params, models, feeds, unknown)
    return _apply_losses(world, recs, rng.sub("loss"))


def _apply_losses(world: World, recs: Records, rng: Rng) -> Records:
    """A host silent for an hour, and a shipper that drops a line now and then."""

    def silence(df: pl.DataFrame) -> pl.DataFrame:
        cond: pl.Expr = pl.lit(False)
        for s in world.silences:
            cond = cond | (
                (pl.col("host") == s.host) & (pl.col("t") >= s.start) & (pl.col("t") < s.end)
            )
        return df.with_columns(drop=pl.col("drop") | cond)

    def shipper(df: pl.DataFrame, rate: float) -> pl.DataFrame:
        u = rng.coarse(df.height)
        return df.with_columns(drop=pl.col("drop") | (~pl.col("planted") & pl.lit(u < rate)))

    return Records(
        decisions=shipper(silence(recs.decisions), 0.0002),
        manual=recs.manual,
        errors=silence(recs.errors),
        notices=recs.notices,
        params=recs.params,
        models=recs.models,
        feeds=recs.feeds,
        unknown=shipper(silence(recs.unknown), 0.002),
    )
