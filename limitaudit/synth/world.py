"""The simulated fleet and its day-by-day incident schedule (true times, UTC ms)."""

from __future__ import annotations

from dataclasses import dataclass, field

from limitaudit.synth.rand import Rng
from limitaudit.synth.timeutil import DAY, MIN, SEC, ymd

ENGINE = "limit-engine"

# The configuration in force before the dump's first change: each parameter at
# the old_value of its first param_change (the rule for versions no change names).
INITIAL_PARAMS: dict[str, int] = {
    "score_cutoff": 600,
    "overdue_max_days": 30,
    "score_band_step": 50,
}
INITIAL_VERSION = 400
BAD_CUTOFF = 6000
BAD_OVERDUE_MAX = 3
BAD_BAND_STEP = 500
STANDING_CUTOFF = 620

OPERATORS = ("zhang.wei", "li.na", "wang.fang", "chen.jie", "liu.yang")


@dataclass(frozen=True)
class Host:
    idx: int
    name: str  # the directory name and the `host` field
    service: str
    fmt: str  # "json" | "text"
    time_form: str  # "+08:00" | "Z" | "naive" | "ts_ms" | "text"
    offset_ms: int
    encoding: str = "utf-8"
    crlf: bool = False
    old_build: bool = False  # writes neither change_id nor rules' observed values
    extras: bool = False  # writes fields the tool does not know
    archive: str = "gz"

    @property
    def engine(self) -> bool:
        return self.service == ENGINE


@dataclass(frozen=True)
class ParamChange:
    idx: int
    t: int
    param: str
    old: int
    new: int
    version: str
    release_id: str
    operator: str
    comment: str | None
    role: str  # "bad" | "rollback" | "standing"
    day: int


@dataclass(frozen=True)
class ModelDeploy:
    t: int
    model_version: str
    previous_version: str
    traffic_pct: int
    release_id: str
    operator: str
    role: str  # "canary" | "full" | "rollback" | "standing"
    day: int


@dataclass(frozen=True)
class FeedBatch:
    t: int
    feed: str
    batch_id: str
    records: int
    null_records: int
    status: str


@dataclass(frozen=True)
class Burst:
    host: int  # engine host position (0-based, le-01 is 0)
    start: int
    end: int
    component: str
    error: str
    message: str
    day: int


@dataclass(frozen=True)
class Silence:
    host: int  # engine host position
    start: int
    end: int
    day: int


@dataclass
class DayPlan:
    idx: int
    start: int
    windows: dict[str, tuple[int, int]] = field(default_factory=dict)
    quiet: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class ParamInfo:
    """What a parameter was under one param_version, and where the value came from."""

    value: int
    release_id: str | None  # change that brought the value in (None: the initial configuration)
    rolled_back: bool
    old_value: int | None


@dataclass
class World:
    start: int
    end: int
    days: int
    hosts: list[Host]
    engine: list[Host]
    cfg: Host
    mdl: Host
    feed: Host
    ops: Host
    ntf: Host
    param_changes: list[ParamChange]
    apply_ms: list[list[int]]  # [change][engine host] -> when that host started serving it
    versions: list[str]
    version_params: list[dict[str, ParamInfo]]
    model_deploys: list[ModelDeploy]
    model_segments: list[tuple[int, str, str | None, int]]  # (from, primary, canary, canary pct)
    rolled_back_models: set[str]
    depressing_models: set[str]
    batches: list[FeedBatch]
    bursts: list[Burst]
    silences: list[Silence]
    plans: list[DayPlan]
    cut_host: int | None  # engine host position whose archive is cut mid-gzip
    multimember_host: int | None


def _jitter(rng: Rng, minutes: int) -> int:
    return rng.randint(-minutes * 60, minutes * 60) * SEC


def build_world(
    *,
    seed: int,
    start: int,
    days: int,
    engine_hosts: int,
    text_share: float,
    max_skew_s: float,
    dirt: bool,
) -> World:
    rng = Rng(seed, "world")
    n = engine_hosts
    k_text = round(text_share * n)
    text_pos = set(rng.sample(range(n), k_text))
    json_pos = [i for i in range(n) if i not in text_pos]
    z_pos = rng.choice(json_pos[1:]) if len(json_pos) >= 2 else None
    old_pos = n - 1 if n >= 3 else None
    cut_pos: int | None = None
    if dirt and n >= 2:
        cands = [i for i in json_pos if i != old_pos] or json_pos or list(range(n))
        cut_pos = rng.choice(cands)
    rest = [i for i in range(n) if i != cut_pos]
    zst_pos = rng.choice(rest) if n >= 3 else None
    rest2 = [i for i in rest if i != zst_pos]
    multi_pos = rng.choice(rest2) if (dirt and rest2) else None

    def offset() -> int:
        return round(rng.uniform1(-max_skew_s, max_skew_s) * 1000)

    hosts: list[Host] = []
    for i in range(n):
        is_text = i in text_pos
        hosts.append(
            Host(
                idx=len(hosts),
                name=f"le-{i + 1:02d}",
                service=ENGINE,
                fmt="text" if is_text else "json",
                time_form="text" if is_text else ("Z" if i == z_pos else "+08:00"),
                offset_ms=offset(),
                old_build=i == old_pos,
                extras=i % 2 == 0,
                archive="zst" if i == zst_pos else "gz",
            )
        )
    specs = [
        ("cfg-01", "config-center", "json", "naive", False, False),
        ("mdl-01", "model-platform", "json", "ts_ms", False, False),
        ("feed-01", "feed-gateway", "text", "text", dirt, False),
        ("ops-01", "ops-console", "text", "text", False, dirt),
        ("ntf-01", "notifier", "json", "Z", False, False),
    ]
    for name, service, fmt, form, crlf, gbk in specs:
        hosts.append(
            Host(
                idx=len(hosts),
                name=name,
                service=service,
                fmt=fmt,
                time_form=form,
                offset_ms=offset(),
                encoding="gbk" if gbk else "utf-8",
                crlf=crlf,
                extras=service == "notifier",
            )
        )
    engine = hosts[:n]
    cfg, mdl, feed, ops, ntf = hosts[n:]

    # ---- schedule ------------------------------------------------------------
    raw_params: list[tuple[int, str, int, int, str, str | None, int, str]] = []
    raw_models: list[tuple[int, str, str, int, str, int]] = []
    batches: list[FeedBatch] = []
    bursts: list[Burst] = []
    silences: list[Silence] = []
    plans: list[DayPlan] = []
    cutoff = INITIAL_PARAMS["score_cutoff"]
    safe = [i for i in range(n) if i != cut_pos] or list(range(n))
    for d in range(days):
        ds = start + d * DAY
        r = rng.sub(f"day{d}")
        plan = DayPlan(idx=d, start=ds)
        w = plan.windows
        day_tag = ymd(ds)

        cb: list[FeedBatch] = []
        for k in range(12):
            t = ds + (5 + 120 * k) * MIN + r.randint(0, 180) * SEC
            total = r.randint(80_000, 120_000)
            partial = k == 2
            nulls = round(total * r.uniform1(0.10, 0.15)) if partial else 0
            cb.append(
                FeedBatch(
                    t,
                    "credit_bureau",
                    f"cb-{day_tag}-{k + 1:02d}",
                    total,
                    nulls,
                    "partial" if partial else "ok",
                )
            )
        batches.extend(cb)
        for k in range(4):
            t = ds + (60 + 360 * k) * MIN + r.randint(0, 300) * SEC
            failed = d == 0 and k == 1
            total = 0 if failed else r.randint(5_000, 9_000)
            batches.append(
                FeedBatch(
                    t,
                    "income_verify",
                    f"iv-{day_tag}-{k + 1:02d}",
                    total,
                    0,
                    "failed" if failed else "ok",
                )
            )
        w["partial"] = (cb[2].t, cb[3].t)

        p0 = ds + 320 * MIN + _jitter(r, 5)
        p1 = p0 + 40 * MIN + _jitter(r, 1)
        w["param"] = (p0, p1)
        op = r.choice(OPERATORS)
        raw_params.append((p0, "score_cutoff", cutoff, BAD_CUTOFF, op, "调整评分阈值", d, "bad"))
        raw_params.append(
            (
                p1,
                "score_cutoff",
                BAD_CUTOFF,
                cutoff,
                r.choice(OPERATORS),
                "rollback: 阈值配置错误",
                d,
                "rollback",
            )
        )

        o0 = ds + 490 * MIN + _jitter(r, 5)
        o1 = o0 + 30 * MIN + _jitter(r, 1)
        w["ovd"] = (o0, o1)
        raw_params.append(
            (
                o0,
                "overdue_max_days",
                INITIAL_PARAMS["overdue_max_days"],
                BAD_OVERDUE_MAX,
                r.choice(OPERATORS),
                None,
                d,
                "bad",
            )
        )
        raw_params.append(
            (
                o1,
                "overdue_max_days",
                BAD_OVERDUE_MAX,
                INITIAL_PARAMS["overdue_max_days"],
                r.choice(OPERATORS),
                "revert",
                d,
                "rollback",
            )
        )

        b0 = ds + 570 * MIN + _jitter(r, 5)
        b_host = safe[(2 * d) % len(safe)]
        w["burst1"] = (b0, b0 + 15 * MIN)
        bursts.append(
            Burst(
                b_host,
                b0,
                b0 + 15 * MIN,
                "score-service",
                "java.net.SocketTimeoutException",
                "score-service timed out after 800ms",
                d,
            )
        )

        c0 = ds + 660 * MIN + _jitter(r, 5)
        c1 = c0 + 30 * MIN
        c2 = c1 + 60 * MIN + _jitter(r, 2)
        w["canary"] = (c0, c1)
        w["full"] = (c1, c2)
        base_m = f"credit-v8.{2 + 2 * d}"
        bad_m = f"credit-v8.{3 + 2 * d}"
        stand_m = f"credit-v8.{4 + 2 * d}"
        raw_models.append((c0, bad_m, base_m, 10, "canary", d))
        raw_models.append((c1, bad_m, base_m, 100, "full", d))
        raw_models.append((c2, base_m, bad_m, 100, "rollback", d))

        n0 = ds + 840 * MIN + _jitter(r, 5)
        n1 = n0 + 30 * MIN
        w["band"] = (n0, n1)
        raw_params.append(
            (
                n0,
                "score_band_step",
                INITIAL_PARAMS["score_band_step"],
                BAD_BAND_STEP,
                r.choice(OPERATORS),
                "band tuning",
                d,
                "bad",
            )
        )
        raw_params.append(
            (
                n1,
                "score_band_step",
                BAD_BAND_STEP,
                INITIAL_PARAMS["score_band_step"],
                r.choice(OPERATORS),
                None,
                d,
                "rollback",
            )
        )

        s0 = ds + 900 * MIN + _jitter(r, 5)
        s_host = safe[(2 * d + 1) % len(safe)]
        w["silence"] = (s0, s0 + 60 * MIN)
        silences.append(Silence(s_host, s0, s0 + 60 * MIN, d))

        if d == 0:
            sc = ds + 1020 * MIN + _jitter(r, 5)
            w["stand_cut"] = (sc, sc)
            raw_params.append(
                (
                    sc,
                    "score_cutoff",
                    cutoff,
                    STANDING_CUTOFF,
                    r.choice(OPERATORS),
                    "新策略：阈值上调",
                    d,
                    "standing",
                )
            )
            cutoff = STANDING_CUTOFF

        m0 = ds + 1080 * MIN + _jitter(r, 5)
        w["stand_model"] = (m0, m0)
        raw_models.append((m0, stand_m, base_m, 100, "standing", d))

        e0 = ds + 1200 * MIN + _jitter(r, 5)
        e_host = safe[(2 * d + 3) % len(safe)]
        w["burst2"] = (e0, e0 + 6 * MIN)
        bursts.append(
            Burst(
                e_host,
                e0,
                e0 + 6 * MIN,
                "feature-store",
                "redis.clients.jedis.exceptions.JedisConnectionException",
                "Could not get a resource from the pool",
                d,
            )
        )

        busy = [
            (w["partial"][0] - 10 * MIN, w["partial"][1] + 10 * MIN),
            (w["ovd"][0] - 10 * MIN, w["ovd"][1] + 10 * MIN),
            (w["burst1"][0] - 10 * MIN, w["burst1"][1] + 10 * MIN),
            (c0 - 10 * MIN, c2 + 10 * MIN),
            (n0 - 10 * MIN, n1 + 10 * MIN),
            (s0 - 10 * MIN, s0 + 70 * MIN),
            (m0 - 10 * MIN, m0 + 10 * MIN),
            (e0 - 10 * MIN, e0 + 16 * MIN),
        ]
        if "stand_cut" in w:
            busy.append((w["stand_cut"][0] - 10 * MIN, w["stand_cut"][0] + 10 * MIN))
        plan.quiet = _complement(ds + 30 * MIN, ds + DAY - 30 * MIN, busy)
        plans.append(plan)

    # Release ids and versions are numbered in time order, as the systems would.
    raw_params.sort(key=lambda x: x[0])
    raw_models.sort(key=lambda x: x[0])
    rel_counter: dict[int, int] = {}
    releases: dict[tuple[str, int], str] = {}
    timeline = sorted(
        [(p[0], "p", i) for i, p in enumerate(raw_params)]
        + [(m[0], "m", i) for i, m in enumerate(raw_models)]
    )
    for t, kind, i in timeline:
        d = (t - start) // DAY
        rel_counter[d] = rel_counter.get(d, 0) + 1
        releases[(kind, i)] = f"rel-{ymd(start + d * DAY)}-{rel_counter[d]:02d}"

    param_changes = [
        ParamChange(
            idx=i,
            t=p[0],
            param=p[1],
            old=p[2],
            new=p[3],
            version=f"pv-{INITIAL_VERSION + 1 + i}",
            release_id=releases[("p", i)],
            operator=p[4],
            comment=p[5],
            role=p[7],
            day=p[6],
        )
        for i, p in enumerate(raw_params)
    ]
    model_deploys = [
        ModelDeploy(
            t=m[0],
            model_version=m[1],
            previous_version=m[2],
            traffic_pct=m[3],
            release_id=releases[("m", i)],
            operator=rng.choice(OPERATORS),
            role=m[4],
            day=m[5],
        )
        for i, m in enumerate(raw_models)
    ]
    apply_ms = [[c.t + rng.randint(2_000, 60_000) for _ in range(n)] for c in param_changes]

    versions = [f"pv-{INITIAL_VERSION}"] + [c.version for c in param_changes]
    version_params: list[dict[str, ParamInfo]] = []
    current = {p: ParamInfo(v, None, False, None) for p, v in INITIAL_PARAMS.items()}
    version_params.append(dict(current))
    for c in param_changes:
        rolled = any(c2.t > c.t and c2.param == c.param and c2.new == c.old for c2 in param_changes)
        current[c.param] = ParamInfo(c.new, c.release_id, rolled, c.old)
        version_params.append(dict(current))

    rolled_models: set[str] = set()
    for dpl in model_deploys:
        for d2 in model_deploys:
            if (
                d2.t > dpl.t
                and d2.traffic_pct == 100
                and d2.model_version == dpl.previous_version
                and d2.previous_version == dpl.model_version
            ):
                rolled_models.add(dpl.model_version)
    depressing = {m.model_version for m in model_deploys if m.role == "canary"}

    segments: list[tuple[int, str, str | None, int]] = [(start - DAY, "credit-v8.2", None, 0)]
    for dpl in model_deploys:
        _, primary, _, _ = segments[-1]
        if dpl.traffic_pct >= 100:
            segments.append((dpl.t, dpl.model_version, None, 0))
        else:
            segments.append((dpl.t, primary, dpl.model_version, dpl.traffic_pct))

    batches.sort(key=lambda b: (b.t, b.batch_id))
    return World(
        start=start,
        end=start + days * DAY,
        days=days,
        hosts=hosts,
        engine=engine,
        cfg=cfg,
        mdl=mdl,
        feed=feed,
        ops=ops,
        ntf=ntf,
        param_changes=param_changes,
        apply_ms=apply_ms,
        versions=versions,
        version_params=version_params,
        model_deploys=model_deploys,
        model_segments=segments,
        rolled_back_models=rolled_models,
        depressing_models=depressing,
        batches=batches,
        bursts=bursts,
        silences=silences,
        plans=plans,
        cut_host=cut_pos,
        multimember_host=multi_pos,
    )


def _complement(lo: int, hi: int, busy: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    cur = lo
    for a, b in sorted(busy):
        if a > cur:
            out.append((cur, min(a, hi)))
        cur = max(cur, b)
        if cur >= hi:
            break
    if cur < hi:
        out.append((cur, hi))
    return [(a, b) for a, b in out if b - a >= 10 * MIN]
