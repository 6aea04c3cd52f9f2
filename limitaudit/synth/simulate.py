"""The true history: users, their events, every decision's inputs and rules, the limits.

Everything here is fact, decided before anything is written; the dump is a
lossy, dirty rendering of it and the answers are derived from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from limitaudit.synth.rand import Rng
from limitaudit.synth.timeutil import DAY, MIN, SEC
from limitaudit.synth.world import World

# event kinds
DEC = 0
REPAY = 1
CAMPAIGN = 2
FREEZE = 3
UNFREEZE = 4
SETLIM = 5
MIGR = 6
PREREPAY = 7  # planted: a repayment that guarantees a planted zeroing has a limit to lose

SOURCE = {
    DEC: "risk_engine",
    REPAY: "repayment",
    PREREPAY: "repayment",
    CAMPAIGN: "campaign",
    FREEZE: "manual",
    UNFREEZE: "manual",
    SETLIM: "manual",
    MIGR: "migration",
}
ACTION = {FREEZE: "freeze", UNFREEZE: "unfreeze", SETLIM: "set_limit"}

# credit_score as the engine saw it
CREDIT_ABSENT = 0  # no key at all: a thin-file user, not an anomaly
CREDIT_OK = 1
CREDIT_NULL = 2
CREDIT_MINUS1 = 3

MIN_GAP = 6 * MIN  # the brief's spacing of one user's events, so answers stay unambiguous
USER_ID_BASE = 2088102000000000

FREEZE_REASONS = (
    "客户申请冻结额度",
    "疑似盗用，临时冻结",
    "=风险排查 冻结",
    "+86 号码异常，冻结处理",
    "-逾期催收中",
    "@风控组 要求冻结",
    '=HYPERLINK("http://x","点击")',
    "司法协查冻结",
)
UNFREEZE_REASONS = ("核实完成，解冻", "客户已还款 解冻")
SETLIM_REASONS = ("人工调额", "客户投诉 复核后调整额度")


@dataclass
class Plant:
    user: int
    t: int
    kind: int
    scenario: str
    host: int | None = None  # engine host position
    score: int | None = None  # tenths of a point
    score_null: bool = False
    credit_mode: int | None = None
    credit: int | None = None
    fraud: bool | None = None
    overdue: int | None = None
    fallback: bool | None = None
    model: str | None = None
    omit_batch: bool | None = None
    drop: bool = False
    value: int | None = None  # cents, for manual set_limit / unfreeze


@dataclass
class Sim:
    users: pl.DataFrame
    events: pl.DataFrame  # every event, sorted by (user, t); eid = row number
    ledger: pl.DataFrame  # the true ledger: one row per change
    written: pl.DataFrame  # the rows that reach the export
    chain_breaks: pl.DataFrame
    ledger_gaps: pl.DataFrame
    plants: list[Plant] = field(default_factory=list)


# ---------------------------------------------------------------------------
# users


def make_users(n: int, rng: Rng) -> pl.DataFrame:
    idx = pl.Series("u", range(n), dtype=pl.Int64)
    l0 = rng.ints(n, 50, 800) * 100 * 100  # 5,000..80,000 yuan in whole hundreds, as cents
    odd = rng.uniform(n)
    overdue = (
        pl.DataFrame(
            {"o": odd, "a": rng.ints(n, 1, 3), "b": rng.ints(n, 4, 30), "c": rng.ints(n, 31, 120)}
        )
        .select(
            pl.when(pl.col("o") < 0.88)
            .then(0)
            .when(pl.col("o") < 0.94)
            .then(pl.col("a"))
            .when(pl.col("o") < 0.985)
            .then(pl.col("b"))
            .otherwise(pl.col("c"))
        )
        .to_series()
    )
    regions = pl.Series(["cn-east-1", "cn-east-2", "cn-north-1", "cn-south-1"])
    return pl.DataFrame(
        {
            "u": idx,
            "user_id": (idx + USER_ID_BASE).cast(pl.String),
            "l0": l0,
            "l1": ((l0 * 6) // 1000) * 100,  # the reduced level: 60 %, in whole yuan
            "l2": l0 + ((l0 * 2) // 1000) * 100,
            "base": rng.normal(n, 7150.0, 550.0).round().cast(pl.Int64).clip(3000, 8800),
            "fraud": rng.coarse(n) < 0.004,
            "overdue": overdue,
            "thin": rng.coarse(n) < 0.005,
            "depressed": rng.coarse(n) < 0.30,
            "region": regions.gather(rng.ints(n, 0, 3)),
        }
    )


# ---------------------------------------------------------------------------
# plants: the few events that guarantee every incident and cause at small sizes


class _Planner:
    def __init__(self, world: World, users: int, rng: Rng) -> None:
        self.world = world
        self.users = users
        self.rng = rng
        self.busy: dict[int, list[tuple[int, int]]] = {}
        self.plants: list[Plant] = []
        n = len(world.engine)
        cut = world.cut_host
        self.safe = [i for i in range(n) if i != cut] or list(range(n))

    def _free(self, user: int, lo: int, hi: int) -> bool:
        return all(hi <= a or lo >= b for a, b in self.busy.get(user, []))

    def add(
        self,
        scenario: str,
        windows: list[tuple[int, int]],
        count: int,
        attrs: dict[str, object] | None = None,
        *,
        hosts: list[int] | None = None,
        kind: int = DEC,
        unfreeze_after: int = 0,
    ) -> None:
        """Plant `count` events of one scenario at random times in `windows`.

        Each comes with a repayment 7-15 minutes before (so there is a limit to
        lose) and, for the first `unfreeze_after`, an unfreeze 20-40 minutes
        after.  Values in `attrs` that are callables are drawn per plant.
        """
        spans = [(a, b) for a, b in windows if b > a]
        if not spans:
            return
        total = sum(b - a for a, b in spans)
        for k in range(count):
            for _ in range(400):
                x = self.rng.randint(0, total - 1)
                t = spans[0][0]
                for a, b in spans:
                    if x < b - a:
                        t = a + x
                        break
                    x -= b - a
                pre = t - self.rng.randint(7 * 60, 15 * 60) * SEC
                post = t + self.rng.randint(20 * 60, 40 * 60) * SEC if k < unfreeze_after else t
                lo, hi = pre - MIN_GAP - SEC, post + MIN_GAP + SEC
                user = self.rng.randint(0, self.users - 1)
                if not self._free(user, lo, hi):
                    continue
                self.busy.setdefault(user, []).append((lo, hi))
                host = self.rng.choice(hosts if hosts else self.safe)
                self.plants.append(Plant(user, pre, PREREPAY, scenario + ":pre"))
                p = Plant(user, t, kind, scenario, host=host)
                for key, val in (attrs or {}).items():
                    setattr(p, key, val() if callable(val) else val)
                self.plants.append(p)
                if post != t:
                    self.plants.append(Plant(user, post, UNFREEZE, scenario + ":unfreeze"))
                break
            else:
                return  # too few users for this window: best effort


def plan_plants(world: World, users: int, rng: Rng) -> list[Plant]:
    planner = _Planner(world, users, rng)
    add = planner.add

    def score(lo: int, hi: int) -> Callable[[], int]:
        return lambda: rng.randint(lo * 10, hi * 10)

    def draw(lo: int, hi: int) -> Callable[[], int]:
        return lambda: rng.randint(lo, hi)

    base: dict[str, object] = {
        "credit_mode": CREDIT_OK,
        "credit": draw(640, 880),
        "fraud": False,
        "overdue": 0,
        "fallback": False,
    }

    def like(**over: object) -> dict[str, object]:
        return {**base, **over}

    null_credit = {"credit_mode": CREDIT_NULL, "credit": None}
    minus1 = {"credit_mode": CREDIT_MINUS1, "credit": None}
    for plan in world.plans:
        w = plan.windows
        p0, p1 = w["param"]
        part0, part1 = w["partial"]
        o0, o1 = w["ovd"]
        # the bad cutoff: every host serves it between p0 + 60 s and p1
        win = [(p0 + 75 * SEC, p1 - 15 * SEC)]
        add("param_error", win, 5, like(score=score(640, 880)))
        add("param_low_stands", win, 2, like(score=score(450, 590)))
        add("param_fraud_stands", win, 1, like(score=score(650, 850), fraud=True))
        null_win = [(p0 + 75 * SEC, min(p1, part1) - 15 * SEC)]
        add("param_null_data", null_win, 2, like(score_null=True, **null_credit))
        add("param_minus1_data", null_win, 1, like(score=score(10, 400), **minus1))
        ovd = [(o0 + 75 * SEC, o1 - 15 * SEC)]
        add("overdue_param", ovd, 3, like(score=score(660, 880), overdue=draw(4, 30)))
        add("overdue_stands", ovd, 1, like(score=score(660, 880), overdue=draw(31, 90)))
        data = [(part0 + 10 * MIN, p0 - 10 * MIN)]
        add("data_null_nobatch", data, 1, like(score_null=True, omit_batch=True, **null_credit))
        add("data_null", data, 2, like(score_null=True, omit_batch=False, **null_credit))
        add("data_minus1", data, 1, like(score=score(10, 450), omit_batch=False, **minus1))
        for b in (x for x in world.bursts if x.day == plan.idx):
            bw = [(b.start + 30 * SEC, b.end - 30 * SEC)]
            n_fb = 5 if b.component == "score-service" else 2
            add("fallback_nullscore", bw, 2, like(score_null=True, fallback=True), hosts=[b.host])
            add(
                "fallback", bw, n_fb - 2, like(score=score(600, 800), fallback=True), hosts=[b.host]
            )
        bad_model = next(
            m.model_version for m in world.model_deploys if m.day == plan.idx and m.role == "canary"
        )
        c0, c1 = w["canary"]
        _, c2 = w["full"]
        add(
            "model_canary",
            [(c0 + 30 * SEC, c1 - 30 * SEC)],
            2,
            like(model=bad_model, score=score(480, 590)),
        )
        add(
            "model_full",
            [(c1 + 30 * SEC, c2 - 30 * SEC)],
            3,
            like(model=bad_model, score=score(480, 590)),
        )
        quiet = plan.quiet
        add("stands_fraud", quiet, 1, like(score=score(650, 850), fraud=True))
        add("stands_overdue", quiet, 1, like(score=score(650, 850), overdue=draw(40, 100)))
        add("stands_low", quiet, 1, like(score=score(400, 590)))
        if "stand_cut" in w:
            sc = w["stand_cut"][0]
            add(
                "stands_new_cutoff",
                [(sc + 11 * MIN, sc + 40 * MIN)],
                1,
                like(score=score(601, 619)),
            )
        add("manual_freeze", quiet, 4, kind=FREEZE, unfreeze_after=2)
        add("manual_set_zero", quiet, 1, {"value": 0}, kind=SETLIM)
        for s in (x for x in world.silences if x.day == plan.idx):
            add(
                "silent_host",
                [(s.start + 2 * MIN, s.end - 2 * MIN)],
                3,
                like(score=score(400, 590)),
                hosts=[s.host],
            )
        add("shipper_drop", quiet, 2, like(score=score(400, 590), drop=True))
    return planner.plants


# ---------------------------------------------------------------------------
# events


def natural_events(world: World, users: int, rng: Rng) -> pl.DataFrame:
    k = 15 * world.days + 6
    n = users * k
    mean_gap = 138.0 * MIN  # with the 6-minute floor: about ten events a user a day
    pos = pl.int_range(n, eager=True, dtype=pl.Int64)
    df = pl.DataFrame(
        {
            "u": pos // k,
            "k": pos % k,
            "first": rng.uniform(n) * (144 * MIN),
            "gap": rng.exponential(n, mean_gap),
        }
    ).with_columns(
        gap=pl.when(pl.col("k") == 0)
        .then(10 * MIN + pl.col("first"))
        .otherwise(MIN_GAP + pl.col("gap"))
        .round()
        .cast(pl.Int64)
    )
    cs = pl.col("gap").cum_sum()
    df = df.with_columns(cs=cs).with_columns(
        base=pl.when(pl.col("k") == 0).then(pl.col("cs") - pl.col("gap")).forward_fill()
    )
    df = df.select("u", t=world.start + pl.col("cs") - pl.col("base")).filter(
        pl.col("t") < world.end - 2 * MIN
    )
    m = df.height
    kind_u = rng.coarse(m)
    df = df.with_columns(
        kind=pl.when(kind_u < 0.016)
        .then(REPAY)
        .when(kind_u < 0.020)
        .then(CAMPAIGN)
        .when(kind_u < 0.0206)
        .then(FREEZE)
        .when(kind_u < 0.0209)
        .then(SETLIM)
        .otherwise(DEC)
        .cast(pl.Int8)
    )
    # An operator who froze an account often lifts it at the user's next event.
    unf = rng.coarse(m) < 0.5
    prev_freeze = (pl.col("kind").shift(1) == FREEZE) & (pl.col("u").shift(1) == pl.col("u"))
    return df.with_columns(
        kind=pl.when(prev_freeze & pl.lit(unf))
        .then(pl.lit(UNFREEZE, pl.Int8))
        .otherwise(pl.col("kind"))
    )


_PLANT_SCHEMA: dict[str, pl.DataType] = {
    "u": pl.Int64(),
    "t": pl.Int64(),
    "kind": pl.Int8(),
    "scenario": pl.String(),
    "f_host": pl.Int32(),
    "f_score": pl.Int64(),
    "f_score_null": pl.Boolean(),
    "f_credit_mode": pl.Int8(),
    "f_credit": pl.Int64(),
    "f_fraud": pl.Boolean(),
    "f_overdue": pl.Int64(),
    "f_fallback": pl.Boolean(),
    "f_model": pl.String(),
    "f_omit_batch": pl.Boolean(),
    "f_drop": pl.Boolean(),
    "f_value": pl.Int64(),
}


def plants_frame(plants: list[Plant]) -> pl.DataFrame:
    rows = {
        "u": [p.user for p in plants],
        "t": [p.t for p in plants],
        "kind": [p.kind for p in plants],
        "scenario": [p.scenario for p in plants],
        "f_host": [p.host for p in plants],
        "f_score": [p.score for p in plants],
        "f_score_null": [p.score_null for p in plants],
        "f_credit_mode": [p.credit_mode for p in plants],
        "f_credit": [p.credit for p in plants],
        "f_fraud": [p.fraud for p in plants],
        "f_overdue": [p.overdue for p in plants],
        "f_fallback": [p.fallback for p in plants],
        "f_model": [p.model for p in plants],
        "f_omit_batch": [p.omit_batch for p in plants],
        "f_drop": [p.drop for p in plants],
        "f_value": [p.value for p in plants],
    }
    return pl.DataFrame(rows, schema=_PLANT_SCHEMA)


def merge_plants(
    natural: pl.DataFrame, plants: list[Plant], world: World, users: pl.DataFrame, rng: Rng
) -> pl.DataFrame:
    pf = plants_frame(plants)
    # Natural events too close to a planted one go: every pair of one user's
    # events stays at least MIN_GAP apart.
    near = (
        natural.with_row_index("rid")
        .join(pf.select("u", pt="t"), on="u", how="inner")
        .filter((pl.col("t") - pl.col("pt")).abs() < MIN_GAP + SEC)
        .select("rid")
        .unique()
    )
    kept = (
        natural.with_row_index("rid")
        .join(near, on="rid", how="anti", maintain_order="left")
        .drop("rid")
    )
    nat = kept.with_columns(
        scenario=pl.lit(None, pl.String),
        **{c: pl.lit(None, dt) for c, dt in _PLANT_SCHEMA.items() if c.startswith("f_")},
    )
    mig = users.select(
        "u",
        t=world.start + (rng.uniform(users.height) * (300 * SEC)).round().cast(pl.Int64),
        kind=pl.lit(MIGR, pl.Int8),
    ).with_columns(
        scenario=pl.lit(None, pl.String),
        **{c: pl.lit(None, dt) for c, dt in _PLANT_SCHEMA.items() if c.startswith("f_")},
    )
    ev = pl.concat([mig, nat.select(pf.columns), pf], how="vertical")
    ev = ev.sort("u", "t", "kind", maintain_order=True)
    return ev.with_row_index("eid").with_columns(pl.col("eid").cast(pl.Int64))


# ---------------------------------------------------------------------------
# decisions


def decide(ev: pl.DataFrame, users: pl.DataFrame, world: World, rng: Rng) -> pl.DataFrame:
    n = ev.height
    ne = len(world.engine)
    # events are sorted by user and users.u is the row number: a gather, not a join
    ucols = users.select("l0", "l1", "l2", "base", "fraud", "overdue", "thin", "depressed")
    ev = ev.hstack(ucols[ev.get_column("u")])
    ev = ev.with_columns(
        host=pl.coalesce(pl.col("f_host"), pl.lit(rng.ints(n, 0, ne - 1)).cast(pl.Int32)),
        trace=pl.lit(rng.hex(n, 8)),
        thread=pl.lit(rng.ints(n, 1, 24)),
    )
    t = ev.get_column("t")

    def at_time(times: list[int]) -> pl.Series:
        """Index of the last entry at or before each event (times sorted ascending)."""
        pos = pl.Series(times, dtype=pl.Int64).search_sorted(t, side="right")
        return (pos.cast(pl.Int64) - 1).clip(0, None)

    segs = world.model_segments
    si = at_time([x[0] for x in segs])
    cbs = [b for b in world.batches if b.feed == "credit_bureau"]
    bi = at_time([b.t for b in cbs])
    ev = ev.hstack(
        [
            pl.Series("m_primary", [x[1] for x in segs], dtype=pl.String).gather(si),
            pl.Series("m_canary", [x[2] for x in segs], dtype=pl.String).gather(si),
            pl.Series("m_pct", [x[3] for x in segs], dtype=pl.Int64).gather(si),
            pl.Series("batch_id", [b.batch_id for b in cbs], dtype=pl.String).gather(bi),
            pl.Series("batch_t", [b.t for b in cbs], dtype=pl.Int64).gather(bi),
            pl.Series(
                "next_batch_t", [b.t for b in cbs[1:]] + [world.end + DAY], dtype=pl.Int64
            ).gather(bi),
            pl.Series(
                "null_frac",
                [b.null_records / b.records if b.records else 0.0 for b in cbs],
                dtype=pl.Float64,
            ).gather(bi),
        ]
    )

    # param_version: each host starts serving a release a few seconds after it;
    # per host the apply times rise with the change index, so the version in
    # force is the count of releases that host applied so far.
    host = ev.get_column("host")
    ver_expr: pl.Expr = pl.lit(0, pl.Int64)
    for h in range(ne):
        applied = pl.Series(
            [world.apply_ms[ci][h] for ci in range(len(world.param_changes))], dtype=pl.Int64
        )
        assert applied.is_sorted()
        count = applied.search_sorted(t, side="right").cast(pl.Int64)
        ver_expr = pl.when(pl.lit(host) == h).then(pl.lit(count)).otherwise(ver_expr)
    ver = pl.select(ver_expr).to_series()
    vp = world.version_params

    def vcol(name: str, param: str, what: str, dtype: pl.DataType) -> pl.Series:
        vals = [getattr(v[param], what) for v in vp]
        return pl.Series(name, vals, dtype=dtype).gather(ver)

    ev = ev.hstack(
        [
            pl.Series("pv", world.versions, dtype=pl.String).gather(ver),
            vcol("cutoff", "score_cutoff", "value", pl.Int64()),
            vcol("cut_rel", "score_cutoff", "release_id", pl.String()),
            vcol("cut_rb", "score_cutoff", "rolled_back", pl.Boolean()),
            vcol("cut_old", "score_cutoff", "old_value", pl.Int64()),
            vcol("ovd_max", "overdue_max_days", "value", pl.Int64()),
            vcol("ovd_rel", "overdue_max_days", "release_id", pl.String()),
            vcol("ovd_rb", "overdue_max_days", "rolled_back", pl.Boolean()),
            vcol("ovd_old", "overdue_max_days", "old_value", pl.Int64()),
            vcol("step", "score_band_step", "value", pl.Int64()),
        ]
    )

    # fallback: decisions on a host during its error burst
    burst_idx: pl.Expr = pl.lit(None, pl.Int32)
    for i, b in reversed(list(enumerate(world.bursts))):
        inside = (pl.col("host") == b.host) & (pl.col("t") >= b.start) & (pl.col("t") < b.end)
        burst_idx = pl.when(inside).then(pl.lit(i, pl.Int32)).otherwise(burst_idx)
    u_fb = rng.coarse(n)
    ev = ev.with_columns(burst=burst_idx)
    ev = ev.with_columns(
        fb=pl.coalesce(pl.col("f_fallback"), pl.col("burst").is_not_null() & pl.lit(u_fb < 0.85))
    )
    ev = ev.with_columns(
        burst=pl.when(pl.col("fb")).then(pl.col("burst")),
    )

    depress = sorted(world.depressing_models)
    ev = ev.with_columns(
        model=pl.coalesce(
            pl.col("f_model"),
            pl.when(
                pl.col("m_canary").is_not_null() & (pl.lit(rng.coarse(n)) * 100 < pl.col("m_pct"))
            )
            .then(pl.col("m_canary"))
            .otherwise(pl.col("m_primary")),
        )
    )
    partial_null = pl.lit(rng.coarse(n)) < pl.col("null_frac")
    null_kind = pl.lit(rng.coarse(n)) < 0.5
    ev = ev.with_columns(
        credit_mode=pl.coalesce(
            pl.col("f_credit_mode"),
            pl.when(pl.col("thin"))
            .then(pl.lit(CREDIT_ABSENT, pl.Int8))
            .when(partial_null & null_kind)
            .then(pl.lit(CREDIT_NULL, pl.Int8))
            .when(partial_null)
            .then(pl.lit(CREDIT_MINUS1, pl.Int8))
            .otherwise(pl.lit(CREDIT_OK, pl.Int8)),
        ),
        credit_nat=(
            (pl.col("base") // 10) + pl.lit(rng.normal(n, 0.0, 15.0)).round().cast(pl.Int64)
        ).clip(300, 950),
    )
    bad_credit = pl.col("credit_mode").is_in([CREDIT_NULL, CREDIT_MINUS1])
    model_effect = (
        pl.when(pl.col("model").is_in(depress) & pl.col("depressed"))
        .then(-1600)
        .when(pl.col("model").is_in(depress))
        .then(-50)
        .otherwise(0)
    )
    score_nat = (
        pl.col("base") + pl.lit(rng.normal(n, 0.0, 100.0)).round().cast(pl.Int64) + model_effect
    ).clip(0, 9999)
    garbage = pl.lit(rng.ints(n, 50, 4500))
    # A score-service timeout leaves no score more often than a feature-store one.
    score_bursts = [i for i, b in enumerate(world.bursts) if b.component == "score-service"]
    fb_null = pl.lit(rng.coarse(n)) < pl.when(pl.col("burst").is_in(score_bursts)).then(
        0.6
    ).otherwise(0.3)
    u_sn = pl.lit(rng.coarse(n))
    ev = ev.with_columns(
        score=pl.when(pl.col("f_score_null").fill_null(False))
        .then(pl.lit(None, pl.Int64))
        .when(pl.col("f_score").is_not_null())
        .then(pl.col("f_score"))
        .when(pl.col("fb") & fb_null)
        .then(pl.lit(None, pl.Int64))
        .when(bad_credit & (u_sn < 0.6))
        .then(pl.lit(None, pl.Int64))
        .when(bad_credit)
        .then(garbage)
        .otherwise(score_nat),
        credit=pl.when(pl.col("credit_mode") == CREDIT_OK)
        .then(pl.coalesce(pl.col("f_credit"), pl.col("credit_nat")))
        .when(pl.col("credit_mode") == CREDIT_MINUS1)
        .then(pl.lit(-1, pl.Int64))
        .otherwise(pl.lit(None, pl.Int64)),
        fraud_in=pl.coalesce(pl.col("f_fraud"), pl.col("fraud")),
        overdue_in=pl.coalesce(pl.col("f_overdue"), pl.col("overdue")),
        omit_batch=pl.coalesce(
            pl.col("f_omit_batch"),
            # only well inside a batch's span, so "the latest batch before the
            # decision" cannot flip under clock correction
            (pl.lit(rng.coarse(n)) < 0.15)
            & (pl.col("t") >= pl.col("batch_t") + 5 * MIN)
            & (pl.col("t") < pl.col("next_batch_t") - 5 * MIN),
        ),
    )
    # The engine's rule order: score rules, then the user's own risk data.
    nfb = ~pl.col("fb")
    ev = ev.with_columns(
        r_ns=nfb & pl.col("score").is_null(),
        r_sc=nfb & pl.col("score").is_not_null() & (pl.col("score") < pl.col("cutoff") * 10),
        r_ov=nfb & (pl.col("overdue_in") > pl.col("ovd_max")),
        r_fr=nfb & pl.col("fraud_in"),
    )
    zero = pl.col("fb") | pl.col("r_ns") | pl.col("r_sc") | pl.col("r_ov") | pl.col("r_fr")
    ev = ev.with_columns(zero=zero).with_columns(
        r_band=~pl.col("zero")
        & pl.col("score").is_not_null()
        & (pl.col("score") < (pl.col("cutoff") + pl.col("step")) * 10)
    )
    return ev.drop("credit_nat", "m_primary", "m_canary", "m_pct", "null_frac", "next_batch_t")


# ---------------------------------------------------------------------------
# limits


def chain(ev: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """Every event's limit_before and limit_after, without a per-row Python loop.

    Events are absolute sets (zeroings, repayments, manual actions), reductions
    to the user's reduced level (min(limit, l1)), restores that only act on a
    limit the engine itself zeroed, and holds.  Sorted by (user, time) and with a
    migration row first for every user, each value is a forward fill within
    segments that start at an absolute set.
    """
    n = ev.height
    k = pl.col("kind")
    is_dec = k == DEC
    u1 = pl.lit(rng.coarse(n))
    u2 = pl.lit(rng.coarse(n))
    partial = ((pl.col("l0") * pl.lit(rng.uniform(n) * 0.6 + 0.2)).round().cast(pl.Int64)).clip(
        100, None
    )
    ev = ev.with_columns(
        is_abs=(is_dec & pl.col("zero")) | (k != DEC),
        abs_val=pl.when(is_dec)
        .then(pl.lit(0, pl.Int64))
        .when(k == MIGR)
        .then(pl.col("l0"))
        .when(k == PREREPAY)
        .then(pl.col("l0"))
        .when(k == REPAY)
        .then(pl.when(u1 < 0.6).then(pl.col("l0")).otherwise(partial))
        .when(k == CAMPAIGN)
        .then(pl.col("l2"))
        .when(k == FREEZE)
        .then(pl.lit(0, pl.Int64))
        .when(k == UNFREEZE)
        .then(
            pl.coalesce(
                pl.col("f_value"), pl.when(u1 < 0.7).then(pl.col("l0")).otherwise(pl.col("l1"))
            )
        )
        .otherwise(pl.coalesce(pl.col("f_value"), pl.col("l1"))),
        is_min=is_dec & ~pl.col("zero") & pl.col("r_band"),
        is_riz=is_dec & ~pl.col("zero") & ~pl.col("r_band") & (u2 < 0.35),
        riz_val=pl.when(u1 < 0.7).then(pl.col("l0")).otherwise(pl.col("l1")),
    )
    ev = ev.with_columns(
        v1=pl.when(pl.col("is_abs")).then(pl.col("abs_val")).forward_fill(),
        zsrc=pl.when(pl.col("is_abs")).then(is_dec).forward_fill(),
        rc=pl.col("is_riz").cast(pl.Int64).cum_sum(),
    ).with_columns(
        riz_rank=pl.col("rc") - pl.when(pl.col("is_abs")).then(pl.col("rc")).forward_fill(),
    )
    ev = (
        ev.with_columns(
            eff_abs=pl.col("is_abs")
            | (pl.col("is_riz") & (pl.col("v1") == 0) & pl.col("zsrc") & (pl.col("riz_rank") == 1)),
        )
        .with_columns(
            v2=pl.when(pl.col("is_abs"))
            .then(pl.col("abs_val"))
            .when(pl.col("eff_abs"))
            .then(pl.col("riz_val"))
            .forward_fill(),
            mc=pl.col("is_min").cast(pl.Int64).cum_sum(),
        )
        .with_columns(
            min_seen=(pl.col("mc") - pl.when(pl.col("eff_abs")).then(pl.col("mc")).forward_fill())
            > 0
        )
    )
    ev = (
        ev.with_columns(
            after=pl.when(pl.col("min_seen"))
            .then(pl.min_horizontal("v2", "l1"))
            .otherwise(pl.col("v2")),
        )
        .with_columns(
            before=pl.when(k == MIGR).then(pl.lit(0, pl.Int64)).otherwise(pl.col("after").shift(1)),
        )
        .with_columns(changed=pl.col("after") != pl.col("before"))
    )
    return ev.drop(
        "is_abs",
        "abs_val",
        "is_min",
        "is_riz",
        "riz_val",
        "v1",
        "zsrc",
        "rc",
        "riz_rank",
        "eff_abs",
        "v2",
        "mc",
        "min_seen",
    )


def make_ledger(ev: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    ch = ev.filter(pl.col("changed")).select(
        "eid",
        "u",
        "t",
        "kind",
        "before",
        "after",
        "scenario",
    )
    m = ch.height
    delay = (rng.uniform(m) * 5000).floor().cast(pl.Int64)
    ch = ch.with_columns(
        changed_at=pl.when(pl.col("kind").is_in([DEC, FREEZE, UNFREEZE, SETLIM]))
        .then(pl.col("t") + pl.lit(delay))
        .otherwise(pl.col("t")),
        source=pl.col("kind").replace_strict(SOURCE, return_dtype=pl.String),
    ).sort("changed_at", "u", "eid")
    return ch.with_columns(
        change_id=pl.format("chg-{}", pl.int_range(1, m + 1).cast(pl.String).str.zfill(9))
    )


def choose_missing(ledger: pl.DataFrame, rng: Rng) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Ledger rows that never reach the export: never zeroings, never first restores."""
    quiet = (pl.col("before") > 0) & (pl.col("after") > 0) & pl.col("scenario").is_null()
    breaks = ledger.filter(quiet & pl.col("source").is_in(["repayment", "campaign", "manual"]))
    gaps = ledger.filter(quiet & (pl.col("source") == "risk_engine"))

    def pick(df: pl.DataFrame, name: str) -> pl.DataFrame:
        k = min(df.height, max(2, round(ledger.height * 0.0002)))
        if k == 0:
            return df.head(0)
        idx = sorted(rng.sub(name).sample(range(df.height), k))
        return df[idx]

    return pick(breaks, "breaks"), pick(gaps, "gaps")


def simulate(world: World, users_n: int, seed: int) -> Sim:
    rng = Rng(seed, "sim")
    users = make_users(users_n, rng.sub("users"))
    natural = natural_events(world, users_n, rng.sub("events"))
    plants = plan_plants(world, users_n, rng.sub("plants"))
    ev = merge_plants(natural, plants, world, users, rng.sub("merge"))
    ev = decide(ev, users, world, rng.sub("decide"))
    ev = chain(ev, rng.sub("chain"))
    # the overrides and user attributes have done their work; at tens of
    # millions of events every column dropped is hundreds of megabytes
    ev = ev.drop(
        [c for c in ev.columns if c.startswith("f_") and c != "f_drop"]
        + ["l0", "l1", "l2", "base", "fraud", "overdue", "thin", "depressed", "batch_t", "zero"]
    )
    ledger = make_ledger(ev, rng.sub("ledger"))
    breaks, gaps = choose_missing(ledger, rng.sub("missing"))
    missing = pl.concat([breaks.select("eid"), gaps.select("eid")])
    written = ledger.join(missing, on="eid", how="anti").sort("changed_at", "u", "eid")
    return Sim(users, ev, ledger, written, breaks, gaps, plants)


ANSWER_COLUMNS = (
    "eid",
    "kind",
    "t",
    "host",
    "scenario",
    "fb",
    "r_ns",
    "r_sc",
    "r_ov",
    "r_fr",
    "credit_mode",
    "score",
    "batch_id",
    "model",
    "burst",
    "pv",
    "cut_rb",
    "cut_old",
    "cut_rel",
    "ovd_rb",
    "ovd_old",
    "ovd_rel",
    "overdue_in",
)


def keep_zeroing_events(sim: Sim) -> None:
    """Once the records exist, the answers need only the events that zeroed a limit."""
    sim.events = sim.events.filter(pl.col("changed") & (pl.col("after") == 0)).select(
        ANSWER_COLUMNS
    )
