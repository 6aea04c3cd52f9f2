"""Type raw string records into the canonical tables, rejecting what does not fit.

Every check yields a reason naming the field and the value, so a rejected
line says what was wrong with it; no value is silently turned into a null.
"""

from __future__ import annotations

import functools

import polars as pl

from limitaudit.model.schema import (
    ACTION_FIELDS,
    EVENTS,
    LEDGER_FIELDS,
    LEDGER_REQUIRED,
    LEDGER_SCHEMA,
    REQUIRED,
    RULE_FIELDS,
    Rule,
    Time,
    event_schema,
)

_OFFSET = r"(?:Z|z|[+-]\d{2}:?\d{2})$"
_ISO = "%Y-%m-%dT%H:%M:%S%.f"


def utc_time(raw: pl.Expr, tz: str) -> pl.Expr:
    """ISO 8601 (`T` or space) to UTC: with an offset or `Z` as given, without one in `tz`."""
    iso = _iso(raw)
    aware = iso.str.to_datetime(_ISO + "%#z", time_unit="ms", time_zone="UTC", strict=False)
    return pl.when(iso.str.contains(_OFFSET)).then(aware).otherwise(_local(iso, tz))


def local_time(raw: pl.Expr, tz: str) -> pl.Expr:
    """`utc_time` of a time known to carry no offset (a logback line's): half the work."""
    return _local(_iso(raw), tz)


def _iso(raw: pl.Expr) -> pl.Expr:
    # ISO 8601 allows a decimal comma before the fraction of a second, which logback's
    # ISO8601 pattern and many JSON encoders write: no other comma belongs in a time.
    return (
        raw.str.strip_chars()
        .str.replace(" ", "T", literal=True)
        .str.replace(",", ".", literal=True)
    )


def _local(iso: pl.Expr, tz: str) -> pl.Expr:
    return _zoned(iso.str.to_datetime(_ISO, time_unit="ms", strict=False), tz)


def _zoned(local: pl.Expr, tz: str) -> pl.Expr:
    """Local times in `tz` as UTC: a time that falls twice is the earlier, one that never
    falls (in a spring-forward gap) none."""
    zoned = local.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
    return zoned.dt.convert_time_zone("UTC")


# Epoch milliseconds beyond this (the year 33658) are no log's time, and from 9.2e15 on
# the microseconds a time is held in overflow: the cast would fail the whole block.
EPOCH_MS_LIMIT = 1e15


def epoch_ms(raw: pl.Expr) -> pl.Expr:
    ms = raw.cast(pl.Float64, strict=False)
    return (
        pl.when(ms.is_finite() & (ms.abs() < EPOCH_MS_LIMIT))
        .then(pl.from_epoch(ms.cast(pl.Int64), time_unit="ms"))
        .dt.replace_time_zone("UTC")
    )


# A whole number (or amount in fen) this large has no Int64: the cast would leave it null,
# and the record would lose the value without a word.
INT64_LIMIT = 2.0**63
OUT_OF_RANGE = "is out of range"


def typed(raw: pl.Expr, kind: str) -> tuple[pl.Expr, pl.Expr]:
    """(typed value, problem) for one raw string field; problem is null when fine."""
    value = raw.str.strip_chars()
    num = value.cast(pl.Float64, strict=False)
    if kind == "float":
        return num, pl.when(num.is_null() | num.is_nan()).then(pl.lit("is not a number"))
    if kind == "int":
        bad = num.is_null() | ~num.is_finite() | (num != num.round())
        problem = (
            pl.when(bad)
            .then(pl.lit("is not a whole number"))
            .when(num.abs() >= INT64_LIMIT)
            .then(pl.lit(OUT_OF_RANGE))
        )
        return num.cast(pl.Int64, strict=False), problem
    if kind == "money":
        fen = num * 100
        bad = num.is_null() | ~num.is_finite()
        problem = (
            pl.when(bad)
            .then(pl.lit("is not an amount"))
            .when(fen.abs() >= INT64_LIMIT)
            .then(pl.lit(OUT_OF_RANGE))
            .when((fen - fen.round()).abs() > 1e-6)
            .then(pl.lit("has more than two decimals"))
        )
        return fen.round().cast(pl.Int64, strict=False), problem
    if kind == "bool":
        low = value.str.to_lowercase()
        ok = low.is_in(["true", "false", "1", "0"])
        return low.is_in(["true", "1"]), pl.when(~ok).then(pl.lit("is not true or false"))
    if kind == "user":
        return value, pl.when(~value.str.contains(r"^\d+$")).then(
            pl.lit("is not a string of digits")
        )
    if kind == "time":
        ts = utc_time(value, "UTC")
        return ts, pl.when(ts.is_null()).then(pl.lit("is not an ISO 8601 time"))
    return raw, pl.lit(None, pl.String)


def _first_problem(checks: list[tuple[str, pl.Expr, pl.Expr]]) -> pl.Expr:
    """The first failing check, as `field 'value' problem`; checks see non-null values only."""
    chain: pl.Expr = pl.lit(None, pl.String)
    for name, raw, problem in reversed(checks):
        message = pl.format("{} '{}' {}", pl.lit(name), raw.str.slice(0, 60), problem)
        chain = pl.when(raw.is_not_null() & problem.is_not_null()).then(message).otherwise(chain)
    return chain


def _missing(required: list[str], kind: str) -> pl.Expr:
    chain: pl.Expr = pl.lit(None, pl.String)
    for name in reversed(required):
        chain = (
            pl.when(pl.col(name).is_null()).then(pl.lit(f"{kind} without {name}")).otherwise(chain)
        )
    return chain


# The forms most times are written in, parsed in one pass; any other takes `utc_time`.
_AWARE = _ISO + "%#z"
_LOGBACK = "%Y-%m-%d %H:%M:%S%.f"


def record_times(raw: pl.DataFrame, tz: str) -> pl.DataFrame:
    """`raw` with `ts`, the UTC time of each record, and `time_problem`, what is wrong with
    it (null when fine); a record's text time is in `tz` unless it carries an offset.

    A frame's times are parsed in the one form most of them share (an ISO time with an
    offset, or logback's local time), at half the cost of `utc_time`; the times that form
    does not read take `utc_time`. The two agree wherever both read a time: a string the
    form reads is one `utc_time` leaves as it is."""
    text = pl.col("ts_text")
    offset = text.str.contains(_OFFSET)
    fast: pl.Expr
    if raw.select(offset.any()).item():
        fast = pl.when(offset).then(
            text.str.to_datetime(_AWARE, time_unit="ms", time_zone="UTC", strict=False)
        )
    else:
        fast = _zoned(text.str.to_datetime(_LOGBACK, time_unit="ms", strict=False), tz)
    raw = raw.with_columns(fast.alias("ts"))
    written = text.is_not_null() | pl.col("ts_ms").is_not_null()
    left = raw.select(pl.col("ts").is_null() & written).to_series().arg_true()
    if len(left):
        slow = (
            pl.when(text.is_not_null())
            .then(utc_time(text, tz))
            .otherwise(epoch_ms(pl.col("ts_ms")))
        )
        ts = raw.get_column("ts").scatter(left, raw[left].select(slow).to_series())
        raw = raw.with_columns(ts)
    if raw.get_column("ts").null_count() == 0:
        return raw.with_columns(pl.lit(None, pl.String).alias("time_problem"))
    problem = (
        pl.when(pl.col("ts").is_not_null())
        .then(pl.lit(None, pl.String))
        .when(~written)
        .then(pl.lit("record without @timestamp or ts_ms"))
        .when(text.is_not_null())
        .then(pl.format("@timestamp '{}' is not a valid time", text.str.slice(0, 40)))
        .otherwise(
            pl.format("ts_ms '{}' is not epoch milliseconds", pl.col("ts_ms").str.slice(0, 40))
        )
    )
    return raw.with_columns(problem.alias("time_problem"))


# Not `reason`: manual_action has a field of that name, which the problem would overwrite.
_PROBLEM = "_problem"


def _set_aside(
    raw: pl.DataFrame,
    checks: list[tuple[str, pl.Expr, pl.Expr]],
    problem: pl.Expr,
    vouched: pl.Expr | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows without a problem, and the others as rejects (file_id, line, reason).

    `vouched` rows pass every check for sure (see `_vouch`): the checks run on the others
    alone, and the message naming the field and value is built for the rejected rows alone.
    """
    failing = pl.any_horizontal(
        pl.lit(False), *(raw_ & problem_.is_not_null() for _, raw_, problem_ in checks)
    )
    if vouched is None:
        doubtful, fails = raw, raw.select(failing).to_series()
    else:
        doubt = raw.select(~vouched.fill_null(False)).to_series().arg_true()
        doubtful = raw[doubt]
        fails = (
            doubtful.select(failing).to_series() if len(doubt) else pl.Series([], dtype=pl.Boolean)
        )
    if not fails.any():
        return raw, pl.DataFrame(schema=_REJECTS)
    # The message's expression takes some 10 ms to plan: not for a block with no reject.
    rejects = doubtful.filter(fails).select("file_id", "line", problem.alias("reason"))
    if vouched is not None:
        fails = pl.repeat(False, raw.height, eager=True).scatter(doubt, fails)
    return raw.filter(~fails), rejects


_REJECTS = {"file_id": pl.UInt32, "line": pl.UInt32, "reason": pl.String}
# The values every check passes: short plain forms, each read exactly by its kind's typing
# (money up to seven digits of yuan, where fen * 100 is within 1e-6 of a whole number).
_PLAIN_NUMBER = r"-?(?:0|[1-9][0-9]{0,14})"
_PLAIN = {
    "user": r"^[0-9]+$",
    "float": rf"^{_PLAIN_NUMBER}(?:\.[0-9]{{1,15}})?$",
    "int": rf"^{_PLAIN_NUMBER}$",
    "money": r"^-?(?:0|[1-9][0-9]{0,6})(?:\.[0-9]{1,2})?$",
    "bool": r"^(?:true|false)$",
}


@functools.cache
def _vouch(event: str) -> pl.Expr:
    """Records of `event` that pass every check for sure: a time, each required field, and
    each value in a plain form its typing reads."""
    plain = [pl.col("time_problem").is_null()]
    for name, kind in EVENTS[event].items():
        form = pl.col(name).str.contains(_PLAIN[kind]) if kind in _PLAIN else None
        if kind == "rules":
            form = pl.col(name).list.eval(_plain_rule()).list.all()
        if name in REQUIRED[event]:
            plain.append(pl.col(name).is_not_null() if form is None else form)
        elif form is not None:
            plain.append(pl.col(name).is_null() | form)
    return pl.all_horizontal(plain)


def _plain_rule() -> pl.Expr:
    rule = pl.element().struct
    threshold = rule.field("threshold")
    return (
        rule.field("id").is_not_null()
        & rule.field("action").is_in(["zero", "reduce", "hold"])
        & (threshold.is_null() | threshold.str.contains(_PLAIN["float"]))
    ).fill_null(False)


def checked(raw: pl.DataFrame, event: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The raw records of one event kind that pass its checks, and the others as rejects
    (file_id, line, reason)."""
    _, gates, problem = _typing(event)
    return _set_aside(raw, gates, problem, _vouch(event))


def type_checked(good: pl.DataFrame, event: str) -> pl.DataFrame:
    """Typed table of raw records that passed the checks of their event (`checked`)."""
    values, _, _ = _typing(event)
    schema = event_schema(event)
    good = good.with_columns(values).with_columns(pl.col("level").str.to_uppercase())
    if "stack" in schema and "stack" not in good.columns:
        good = good.with_columns(pl.lit(None, pl.String).alias("stack"))
    return good.select([pl.col(c).cast(t) for c, t in schema.items()])


def action_fields(good: pl.DataFrame, event: str) -> pl.DataFrame:
    """ACTION_FIELDS of raw records that passed their checks, typed (alone)."""
    typing, schema = _values(event), event_schema(event)
    return good.select(typing.get(c, pl.col(c)).cast(schema[c]) for c in ACTION_FIELDS)


def _values(event: str) -> dict[str, pl.Expr]:
    return dict(zip(EVENTS[event], _typing(event)[0], strict=True))


def _typed_mask(good: pl.DataFrame, keep: pl.Expr, event: str) -> pl.Series:
    """`keep` on raw records, reading the typed values of its columns (only those typed)."""
    values = _values(event)
    columns = good.select(values[name] for name in dict.fromkeys(keep.meta.root_names()))
    return columns.select(keep.fill_null(False)).to_series()


def kept_by(good: pl.DataFrame, keep: pl.Expr, event: str) -> pl.DataFrame:
    """The raw records `keep` keeps, `keep` reading the typed values of its columns (only
    those are typed here)."""
    return good.filter(_typed_mask(good, keep, event))


# Built once an event: building them took as long as running them on a block of records.
@functools.cache
def _typing(event: str) -> tuple[list[pl.Expr], list[tuple[str, pl.Expr, pl.Expr]], pl.Expr]:
    """(typed values, gates, the first problem) of an event kind (see _set_aside)."""
    fields = EVENTS[event]
    checks: list[tuple[str, pl.Expr, pl.Expr]] = []
    values: list[pl.Expr] = []
    for name, kind in fields.items():
        if kind == "rules":
            value, rule_problem, bad_rule = _typed_rules()
            values.append(value.alias(name))
            checks.append(("rules", bad_rule, rule_problem))
            continue
        value, problem = typed(pl.col(name), kind)
        values.append(value.alias(name))
        checks.append((name, pl.col(name), problem))
    problem = pl.coalesce(
        pl.col("time_problem"), _missing(REQUIRED[event], event), _first_problem(checks)
    )
    gates = [
        ("time", pl.col("time_problem").is_not_null(), pl.lit("")),
        *((n, pl.col(n).is_null(), pl.lit("")) for n in REQUIRED[event]),
        *((n, raw_.is_not_null(), problem_) for n, raw_, problem_ in checks),
    ]
    return values, gates, problem


def _typed_rules() -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(typed rules, problem, the first bad rule as `id/param/threshold/observed/action`)."""
    rule = pl.element().struct
    action = rule.field("action").str.strip_chars().str.to_lowercase()
    threshold = rule.field("threshold").str.strip_chars().cast(pl.Float64, strict=False)
    typed_rules = pl.col("rules").list.eval(
        pl.struct(
            rule.field("id").str.strip_chars().alias("id"),
            rule.field("param").alias("param"),
            threshold.alias("threshold"),
            rule.field("observed").alias("observed"),
            action.alias("action"),
        )
    )
    bad = (
        rule.field("id").is_null()
        | ~action.is_in(["zero", "reduce", "hold"]).fill_null(False)
        | (rule.field("threshold").is_not_null() & threshold.is_null())
    )
    as_text = pl.concat_str([rule.field(f).fill_null("") for f in RULE_FIELDS], separator="/")
    first_bad = pl.col("rules").list.eval(as_text.filter(bad)).list.first()
    problem = pl.when(first_bad.is_not_null()).then(
        pl.lit("has no id, an unknown action or a non-numeric threshold")
    )
    return typed_rules.fill_null(pl.lit([], dtype=pl.List(Rule))), problem, first_bad


def type_ledger(raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed ledger rows from string columns, and rejects (file_id, line, reason)."""
    checks = []
    values = []
    for name, kind in LEDGER_FIELDS.items():
        value, problem = typed(pl.col(name), kind)
        values.append(value.alias(name))
        checks.append((name, pl.col(name), problem))
    problem = pl.coalesce(_missing(LEDGER_REQUIRED, "ledger row"), _first_problem(checks))
    gates = [
        *((n, pl.col(n).is_null(), pl.lit("")) for n in LEDGER_REQUIRED),
        *((n, raw_.is_not_null(), problem_) for n, raw_, problem_ in checks),
    ]
    good, rejects = _set_aside(raw, gates, problem)
    good = good.with_columns(values)
    return good.select([pl.col(c).cast(t) for c, t in LEDGER_SCHEMA.items()]), rejects


__all__ = [
    "Time",
    "checked",
    "kept_by",
    "local_time",
    "record_times",
    "type_checked",
    "type_ledger",
    "typed",
    "utc_time",
]
