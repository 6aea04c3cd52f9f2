"""Type raw string records into the canonical tables, rejecting what does not fit.

Every check yields a reason naming the field and the value, so a rejected
line says what was wrong with it; no value is silently turned into a null.
"""

from __future__ import annotations

import functools

import polars as pl

from limitaudit.model.schema import (
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
    return (
        iso.str.to_datetime(_ISO, time_unit="ms", strict=False)
        .dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
    )


def epoch_ms(raw: pl.Expr) -> pl.Expr:
    ms = raw.cast(pl.Float64, strict=False)
    return (
        pl.when(ms.is_finite())
        .then(pl.from_epoch(ms.cast(pl.Int64), time_unit="ms"))
        .dt.replace_time_zone("UTC")
    )


def typed(raw: pl.Expr, kind: str) -> tuple[pl.Expr, pl.Expr]:
    """(typed value, problem) for one raw string field; problem is null when fine."""
    value = raw.str.strip_chars()
    num = value.cast(pl.Float64, strict=False)
    if kind == "float":
        return num, pl.when(num.is_null() | num.is_nan()).then(pl.lit("is not a number"))
    if kind == "int":
        bad = num.is_null() | ~num.is_finite() | (num != num.round())
        return num.cast(pl.Int64, strict=False), pl.when(bad).then(pl.lit("is not a whole number"))
    if kind == "money":
        fen = num * 100
        bad = num.is_null() | ~num.is_finite()
        problem = (
            pl.when(bad)
            .then(pl.lit("is not an amount"))
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


def record_time(tz: str) -> tuple[pl.Expr, pl.Expr]:
    """The UTC time of a raw record and the problem with it (text times are in `tz`)."""
    from_ms = epoch_ms(pl.col("ts_ms"))
    from_text = utc_time(pl.col("ts_text"), tz)
    ts = pl.when(pl.col("ts_text").is_not_null()).then(from_text).otherwise(from_ms)
    problem = (
        pl.when(pl.col("ts_text").is_null() & pl.col("ts_ms").is_null())
        .then(pl.lit("record without @timestamp or ts_ms"))
        .when(ts.is_null() & pl.col("ts_text").is_not_null())
        .then(pl.format("@timestamp '{}' is not a valid time", pl.col("ts_text").str.slice(0, 40)))
        .when(ts.is_null())
        .then(pl.format("ts_ms '{}' is not epoch milliseconds", pl.col("ts_ms").str.slice(0, 40)))
    )
    return ts, problem


# Not `reason`: manual_action has a field of that name, which the problem would overwrite.
_PROBLEM = "_problem"


def _set_aside(
    raw: pl.DataFrame, checks: list[tuple[str, pl.Expr, pl.Expr]], problem: pl.Expr
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows without a problem, and the others as rejects (file_id, line, reason).

    Whether a row has a problem is cheap to know; the message naming the field and
    value is built for the rejected rows alone.
    """
    failing = pl.any_horizontal(
        pl.lit(False), *(raw_ & problem_.is_not_null() for _, raw_, problem_ in checks)
    )
    staged = raw.with_columns(failing.alias(_PROBLEM))
    failed = staged.filter(pl.col(_PROBLEM))
    # The message's expression takes some 10 ms to plan: not for a block with no reject.
    rejects = (
        failed.select("file_id", "line", problem.alias("reason"))
        if failed.height
        else pl.DataFrame(schema={"file_id": pl.UInt32, "line": pl.UInt32, "reason": pl.String})
    )
    return staged.filter(~pl.col(_PROBLEM)).drop(_PROBLEM), rejects


def type_event(raw: pl.DataFrame, event: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed table for one event kind, and its rejects (file_id, line, reason)."""
    _, gates, problem = _typing(event)
    good, rejects = _set_aside(raw, gates, problem)
    return type_checked(good, event), rejects


def type_checked(good: pl.DataFrame, event: str) -> pl.DataFrame:
    """Typed table of raw records known to pass every check of their event (a skim
    vouches for the decisions it reads whole): `type_event` without the checks."""
    values, _, _ = _typing(event)
    schema = event_schema(event)
    good = good.with_columns(values).with_columns(pl.col("level").str.to_uppercase())
    if "stack" in schema and "stack" not in good.columns:
        good = good.with_columns(pl.lit(None, pl.String).alias("stack"))
    return good.select([pl.col(c).cast(t) for c, t in schema.items()])


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
    "local_time",
    "record_time",
    "type_checked",
    "type_event",
    "type_ledger",
    "typed",
    "utc_time",
]
