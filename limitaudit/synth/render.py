"""Records to lines: JSON objects or logback text, built column-wise.

A record type is described once, as an ordered list of fields; one serialiser
writes it as a JSON object, the other as `key=value` pairs after the logback
pattern.  Lines are built with one flat Polars `concat_str` per record type and
host (never json.dumps per record): the benchmark dumps hold tens of millions
of lines, and every nested expression costs tens of nanoseconds a row.
Numbers become text through lookup tables for the same reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import polars as pl

from limitaudit.synth.simulate import CREDIT_ABSENT, CREDIT_MINUS1, CREDIT_NULL
from limitaudit.synth.timeutil import SHANGHAI, format_ms
from limitaudit.synth.world import Host

STACKS = {
    "score-service": (
        "java.net.SocketTimeoutException: Read timed out\n"
        "\tat java.base/java.net.SocketInputStream.socketRead0(Native Method)\n"
        "\tat java.base/java.net.SocketInputStream.socketRead(SocketInputStream.java:115)\n"
        "\tat com.alipay.risk.limit.score.ScoreClient.fetch(ScoreClient.java:212)\n"
        "\t... 42 more"
    ),
    "feature-store": (
        "redis.clients.jedis.exceptions.JedisConnectionException: "
        "Could not get a resource from the pool\n"
        "\tat redis.clients.jedis.util.Pool.getResource(Pool.java:84)\n"
        "\tat com.alipay.risk.limit.feature.FeatureStore.load(FeatureStore.java:97)\n"
        "Caused by: java.net.ConnectException: Connection refused\n"
        "\tat java.base/sun.nio.ch.Net.connect0(Native Method)\n"
        "\t... 17 more"
    ),
}

Seg = str | pl.Expr

_INT_TABLE_SIZE = 10_000


@cache
def _int_table() -> pl.Series:
    return pl.Series([str(i) for i in range(_INT_TABLE_SIZE)], dtype=pl.String)


@cache
def _tenths_table() -> pl.Series:
    return pl.Series([f"{i // 10}.{i % 10}" for i in range(_INT_TABLE_SIZE)], dtype=pl.String)


@cache
def _cents_table() -> pl.Series:
    return pl.Series([f"{i:02d}" for i in range(100)], dtype=pl.String)


@cache
def _yuan_table(size: int) -> pl.Series:
    return pl.Series([str(i) for i in range(size)], dtype=pl.String)


def small_int(c: str | pl.Expr) -> pl.Expr:
    """Text of a non-negative int below 10,000 (null stays null)."""
    e = pl.col(c) if isinstance(c, str) else c
    return pl.lit(_int_table()).gather(e)


def tenths(c: str | pl.Expr) -> pl.Expr:
    """`712.4` from 7124 (scores are kept in tenths of a point)."""
    e = pl.col(c) if isinstance(c, str) else c
    return pl.lit(_tenths_table()).gather(e)


def money_segs(c: str, yuan_max: int) -> list[Seg]:
    """`50000.00` from 5,000,000 cents, as flat segments."""
    size = max(1024, 1 << (yuan_max + 1).bit_length())
    return [
        pl.lit(_yuan_table(size)).gather(pl.col(c) // 100),
        ".",
        pl.lit(_cents_table()).gather(pl.col(c) % 100),
    ]


def money(c: str | pl.Expr) -> pl.Expr:
    """Slower, table-free form for the few places without a known maximum."""
    e = pl.col(c) if isinstance(c, str) else c
    return pl.concat_str(
        [(e // 100).cast(pl.String), pl.lit("."), pl.lit(_cents_table()).gather(e % 100)]
    )


def cat(segs: list[Seg]) -> pl.Expr:
    """One concat_str over the segments, adjacent literals merged."""
    out: list[pl.Expr] = []
    buf: list[str] = []
    for s in segs:
        if isinstance(s, str):
            buf.append(s)
            continue
        if buf:
            out.append(pl.lit("".join(buf), pl.String))
            buf = []
        out.append(s)
    if buf:
        out.append(pl.lit("".join(buf), pl.String))
    if len(out) == 1:
        return out[0]
    return pl.concat_str(out)


@dataclass(frozen=True)
class F:
    """One field: its value as text segments.

    kind "s": a safe string, quoted in JSON; "f": free text (escaped in JSON,
    quoted in text when it holds spaces, quotes or `=`); "r": written as is (a
    number, `true`, a JSON list).  `nullable`: a null value is written `null`
    (single-segment values only).  `optional`: the key is left out when the
    value is null.  `text`: another value for the text form (rules).
    """

    key: str
    value: list[Seg]
    kind: str = "s"
    nullable: bool = False
    optional: bool = False
    text: list[Seg] | None = None
    group: str | None = None
    json_only: bool = False


def _escape(e: pl.Expr) -> pl.Expr:
    return e.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)


def _value(f: F, for_json: bool) -> list[Seg]:
    segs = f.value if (for_json or f.text is None) else f.text
    if f.kind == "f":
        assert len(segs) == 1 and isinstance(segs[0], pl.Expr)
        e = segs[0]
        quoted = pl.concat_str([pl.lit('"'), _escape(e), pl.lit('"')])
        if for_json:
            return [quoted]
        needs = e.str.contains(r'[\s"=\\]') | (e == "")
        return [pl.when(needs).then(quoted).otherwise(e)]
    if f.kind == "s" and for_json:
        segs = ['"', *segs, '"']
    if f.nullable:
        assert len(segs) == 1 and isinstance(segs[0], pl.Expr)
        return [segs[0].fill_null("null")]
    return list(segs)


def json_line(host: Host, level: Seg, fields: list[F], ts: pl.Series | None) -> pl.Expr:
    segs: list[Seg]
    if host.time_form == "ts_ms":
        segs = ['{"ts_ms":', pl.col("w").cast(pl.String)]
    else:
        suffix = {"+08:00": "+08:00", "Z": "Z", "naive": ""}[host.time_form]
        assert ts is not None
        segs = ['{"@timestamp":"', pl.lit(ts), suffix + '"']
    segs += [',"level":"', level, f'","service":"{host.service}","host":"{host.name}"']
    i = 0
    while i < len(fields):
        g = fields[i].group
        if g is None:
            segs += _json_field(fields[i], lead=True, trail=False)
            i += 1
            continue
        members = []
        while i < len(fields) and fields[i].group == g:
            members.append(fields[i])
            i += 1
        segs.append(f',"{g}":{{')
        first = next(k for k, m in enumerate(members) if not m.optional)
        for k, m in enumerate(members):
            segs += _json_field(m, lead=k > first, trail=k < first)
        segs.append("}")
    segs.append("}")
    return cat(segs)


def _json_field(f: F, *, lead: bool, trail: bool) -> list[Seg]:
    body: list[Seg] = [("," if lead else "") + f'"{f.key}":', *_value(f, True)]
    if trail:
        body.append(",")
    if f.optional:
        return [cat(body).fill_null("")]
    return body


def text_line(
    fields: list[F], ts: pl.Series, *, level: Seg, thread: Seg, trace: Seg | None, logger: str
) -> pl.Expr:
    segs: list[Seg] = [pl.lit(ts), " ", level, " [", thread, "] [traceId="]
    if trace is not None:
        segs.append(trace)
    segs.append(f"] {logger} - ")
    first = True
    for f in fields:
        if f.json_only:
            continue
        body: list[Seg] = [("" if first else " ") + f"{f.key}=", *_value(f, False)]
        first = False
        if f.optional:
            segs.append(cat(body).fill_null(""))
        else:
            segs += body
    return cat(segs)


def timestamps(host: Host, w: pl.Series) -> pl.Series:
    if host.fmt == "text":
        return format_ms(w, " ", SHANGHAI)
    if host.time_form == "Z":
        return format_ms(w, "T", 0)
    return format_ms(w, "T", SHANGHAI)


# ---------------------------------------------------------------------------
# decisions


def _rules(df: pl.DataFrame, host: Host, for_json: bool) -> pl.Series:
    """The rules value of every decision; built only for decisions where some fired."""
    observed = not host.old_build
    score = tenths("score")
    specs: list[tuple[str, str, str | None, str | None, pl.Expr | None, str]] = [
        ("fb", "R_FAIL_CLOSED", None, None, None, "zero"),
        ("r_ns", "R_NO_SCORE", None, None, None, "zero"),
        ("r_sc", "R_SCORE_CUTOFF", "score_cutoff", "cutoff", score, "zero"),
        ("r_ov", "R_OVERDUE", "overdue_max_days", "ovd_max", small_int("overdue_in"), "zero"),
        ("r_fr", "R_FRAUD", None, None, pl.lit("true"), "zero"),
        ("r_band", "R_SCORE_BAND", "score_band_step", "step", score, "reduce"),
    ]
    pieces: list[pl.Expr] = []
    for flag, rid, param, thr, obs, action in specs:
        if for_json:
            segs: list[Seg] = [f'{{"id":"{rid}"']
            if param and thr:
                segs += [f',"param":"{param}","threshold":', small_int(thr)]
            if obs is not None and observed:
                segs += [',"observed":', obs]
            segs.append(f',"action":"{action}"}}')
        else:
            segs = [rid + "/"]
            if param and thr:
                segs += [param + "/", small_int(thr)]
            else:
                segs.append("/")
            segs.append("/")
            if obs is not None and observed:
                segs.append(obs)
            segs.append("/" + action)
        pieces.append(pl.when(pl.col(flag)).then(cat(segs)))
    expr = pl.concat_str(pieces, separator="," if for_json else ";", ignore_nulls=True)
    has = df.select(
        pl.any_horizontal("fb", "r_ns", "r_sc", "r_ov", "r_fr", "r_band").arg_true()
    ).to_series()
    empty = pl.select(pl.repeat("", df.height, dtype=pl.String)).to_series()
    if has.len() == 0:
        return empty
    vals = df[has].select(expr).to_series()
    return empty.scatter(has, vals)


def decision_fields(host: Host, yuan_max: int, df: pl.DataFrame) -> list[F]:
    cm = pl.col("credit_mode")
    credit = (
        pl.when(cm == CREDIT_ABSENT)
        .then(pl.lit(None, pl.String))
        .when(cm == CREDIT_NULL)
        .then(pl.lit("null"))
        .when(cm == CREDIT_MINUS1)
        .then(pl.lit("-1"))
        .otherwise(small_int(pl.col("credit").clip(0, _INT_TABLE_SIZE - 1)))
    )
    rules = _rules(df, host, True) if host.fmt == "json" else _rules(df, host, False)
    fields = [
        F("event", ["decision"]),
        F("user_id", [pl.col("user_id")]),
        F("change_id", [pl.col("change_id")], optional=True),
        F("model_version", [pl.col("model")]),
        F("param_version", [pl.col("pv")]),
        F("score", [tenths("score")], "r", nullable=True),
        F("credit_score", [credit], "r", optional=True, group="inputs"),
        F("overdue_days", [small_int("overdue_in")], "r", group="inputs"),
        F(
            "fraud_flag",
            [pl.when(pl.col("fraud_in")).then(pl.lit("true")).otherwise(pl.lit("false"))],
            "r",
            group="inputs",
        ),
        F(
            "bureau_batch",
            [pl.when(~pl.col("omit_batch")).then(pl.col("batch_id"))],
            optional=True,
            group="inputs",
        ),
        F("rules", ["[", pl.lit(rules), "]"], "r", text=[pl.lit(rules)]),
        F("limit_before", money_segs("before", yuan_max), "r"),
        F("limit_after", money_segs("after", yuan_max), "r"),
        F("fallback", [pl.when(pl.col("fb")).then(pl.lit("true")).otherwise(pl.lit("false"))], "r"),
    ]
    if host.extras:
        fields.append(F("latency_ms", [small_int("latency")], "r"))
        fields.append(F("thread", ["limit-exec-", small_int("thread")], json_only=True))
    return fields


# ---------------------------------------------------------------------------


_NUMSTR = re.compile(r'"(score|limit_before|limit_after)":(-?[0-9.]+)')
_USERID = re.compile(r'"user_id":"(\d+)"')


def _variants(lines: pl.Series, flags: pl.Series) -> pl.Series:
    """Numbers written as strings and ids as numbers, on the few flagged JSON lines."""
    idx = flags.arg_true()
    if idx.len() == 0:
        return lines
    new = []
    for i in idx.to_list():
        s = str(lines[i])
        s = _NUMSTR.sub(r'"\1":"\2"', s)
        s = _USERID.sub(r'"user_id":\1', s)
        new.append(s)
    return lines.scatter(idx, pl.Series(new, dtype=pl.String))


def render_frame(
    kind: str, df: pl.DataFrame, host: Host, *, numeric_ids: bool, yuan_max: int
) -> pl.DataFrame:
    """Lines for one record type on one host: rec_id, w, line, and the flags."""
    df = df.with_columns(w=pl.col("t") + host.offset_ms)
    ts = timestamps(host, df.get_column("w"))
    trace: Seg | None = None
    thread: Seg = "main"
    logger = "c.a.r.Main"
    level: Seg = "INFO"
    uid_kind = "r" if (numeric_ids or host.fmt == "text") else "s"
    fields: list[F]
    if kind == "decision":
        fields = decision_fields(host, yuan_max, df)
        level = pl.when(pl.col("fb")).then(pl.lit("WARN ")).otherwise(pl.lit("INFO "))
        trace = pl.col("trace")
        thread = cat(["limit-exec-", small_int("thread")])
        logger = "c.a.r.limit.DecisionLogger"
    elif kind == "engine_error":
        level = "ERROR"
        trace = pl.col("trace")
        thread = cat(["limit-exec-", small_int("thread")])
        logger = "c.a.r.limit.ScoreClient"
        fields = [
            F("event", ["engine_error"]),
            F("component", [pl.col("component")]),
            F("error", [pl.col("error")]),
            F("message", [pl.col("message")], "f"),
            F("user_id", [pl.col("user_id")], uid_kind, optional=True),
        ]
        if host.fmt == "json" and host.extras:
            stack = pl.col("component").replace_strict(
                {k: v.replace("\n", "\\n").replace("\t", "\\t") for k, v in STACKS.items()},
                return_dtype=pl.String,
            )
            fields.append(F("stack_trace", [stack]))
    elif kind == "manual_action":
        thread = cat(["http-nio-8080-exec-", small_int("thread")])
        logger = "c.a.r.ops.ManualActionAudit"
        fields = [
            F("event", ["manual_action"]),
            F("user_id", [pl.col("user_id")], uid_kind),
            F("operator", [pl.col("operator")]),
            F("action", [pl.col("action")]),
            F("ticket", [pl.col("ticket")]),
            F("reason", [pl.col("reason")], "f"),
            F("change_id", [pl.col("change_id")], optional=True),
            F("limit_before", money_segs("before", yuan_max), "r"),
            F("limit_after", money_segs("after", yuan_max), "r"),
        ]
    elif kind == "user_notice":
        thread = "notice-worker-1"
        logger = "c.a.r.notify.NoticeSender"
        fields = [
            F("event", ["user_notice"]),
            F("user_id", [pl.col("user_id")], uid_kind),
            F("channel", [pl.col("channel")]),
            F("template", [pl.col("template")]),
            F("change_id", [pl.col("change_id")], optional=True),
        ]
        if host.extras:
            fields.append(F("msg_id", [pl.col("msg_id")]))
    elif kind == "param_change":
        logger = "c.a.r.config.ReleaseService"
        fields = [
            F("event", ["param_change"]),
            F("param", [pl.col("param")]),
            F("old_value", [pl.col("old_value")]),
            F("new_value", [pl.col("new_value")]),
            F("param_version", [pl.col("param_version")]),
            F("operator", [pl.col("operator")]),
            F("release_id", [pl.col("release_id")]),
            F("comment", [pl.col("comment")], "f", optional=True),
        ]
    elif kind == "model_deploy":
        logger = "c.a.r.model.DeployService"
        fields = [
            F("event", ["model_deploy"]),
            F("model_version", [pl.col("model_version")]),
            F("previous_version", [pl.col("previous_version")]),
            F("traffic_pct", [pl.col("traffic_pct").cast(pl.String)], "r"),
            F("release_id", [pl.col("release_id")]),
            F("operator", [pl.col("operator")]),
        ]
    elif kind == "feed_batch":
        logger = "c.a.r.feed.BatchReporter"
        level = pl.when(pl.col("status") == "ok").then(pl.lit("INFO ")).otherwise(pl.lit("WARN "))
        fields = [
            F("event", ["feed_batch"]),
            F("feed", [pl.col("feed")]),
            F("batch_id", [pl.col("batch_id")]),
            F("records", [pl.col("records").cast(pl.String)], "r"),
            F("null_records", [pl.col("null_records").cast(pl.String)], "r"),
            F("status", [pl.col("status")]),
        ]
    elif kind == "unknown":
        level = "DEBUG"
        logger = "c.a.r.support.Heartbeat"
        fields = [
            F("event", [pl.col("event")]),
            F("uptime_s", [pl.col("uptime").cast(pl.String)], "r"),
            F("queue_depth", [pl.col("depth").cast(pl.String)], "r"),
        ]
    else:
        raise ValueError(kind)

    if host.fmt == "json":
        if trace is not None:
            fields = [F("trace_id", [trace]), *fields]
        lvl = level.str.strip_chars_end() if isinstance(level, pl.Expr) else level.strip()
        line = json_line(host, lvl, fields, None if host.time_form == "ts_ms" else ts)
    else:
        lvl5 = level if isinstance(level, pl.Expr) else f"{level:<5}"
        line = text_line(fields, ts, level=lvl5, thread=thread, trace=trace, logger=logger)
        if kind == "engine_error":
            stack = pl.col("component").replace_strict(STACKS, return_dtype=pl.String)
            line = pl.concat_str([line, pl.lit("\n"), stack])
    out = df.select(
        "rec_id",
        "w",
        line.alias("line"),
        "planted",
        "replaceable",
        "zcand",
        "numstr",
        nanable=(~pl.col("changed") & pl.col("replaceable"))
        if kind == "decision"
        else pl.lit(False),
        nl=pl.col("component").replace_strict(
            {k: v.count("\n") + 2 for k, v in STACKS.items()}, return_dtype=pl.Int64
        )
        if (kind == "engine_error" and host.fmt == "text")
        else pl.lit(1, pl.Int64),
    )
    if kind == "decision" and host.fmt == "json":
        out = out.with_columns(line=_variants(out.get_column("line"), out.get_column("numstr")))
    else:
        out = out.with_columns(numstr=pl.lit(False))
    return out
