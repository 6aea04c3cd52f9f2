"""Decode record lines into raw records: a frame of string fields per kind of document.

A block's JSON lines are decoded by one `str.json_decode` per event kind, each with that
kind's own fields (the decoder's cost grows with the width of its schema); a logback line's
`key=value` message is rewritten as a JSON object and decoded the same way. Every leaf is
decoded as a string, so that `"712.4"` and `712.4` agree; typing and checking the values is
`normalise`'s.

Bad lines are found by exception. `json_decode` fails a whole batch on one line it refuses
(polars #13768), and such lines are rare, so a batch is decoded whole, and only a batch
that fails is cut into pieces, and a failing piece again, down to the lines that fail
alone. A line's verdict is therefore its own: the batch it comes in never changes it
(`tests/test_decode.py` holds a block's reading to the reading of each line alone). Only
the lines that fail are looked at again, for the reason they are rejected with.
"""

from __future__ import annotations

import polars as pl

from limitaudit.model.schema import EVENT_FIELDS, EVENTS, INPUT_FIELDS, RULE_FIELDS
from limitaudit.read.parse import (
    hashes,
    literal_json,
    logback_value,
    pairs_json,
    plain_message,
    text_parts,
    text_rules,
)

_RULE = pl.Struct(dict.fromkeys(RULE_FIELDS, pl.String))
# A record's rules as decoded, before typing: a list of rules of strings.
RAW_RULES = pl.List(_RULE)
_COMMON = {
    "@timestamp": pl.String,
    "ts_ms": pl.String,
    "level": pl.String,
    "service": pl.String,
    "host": pl.String,
    "trace_id": pl.String,
    "event": pl.String,
}
_INPUTS = pl.Struct(dict.fromkeys(INPUT_FIELDS, pl.String))
# Every field of every event: the document of a line whose event no kind knows.
JSON_DOC = pl.Struct(
    {**_COMMON, **dict.fromkeys(EVENT_FIELDS, pl.String), "inputs": _INPUTS, "rules": RAW_RULES}
)
TEXT_DOC = pl.Struct(
    {
        "event": pl.String,
        **dict.fromkeys(EVENT_FIELDS, pl.String),
        **dict.fromkeys(INPUT_FIELDS, pl.String),
        "rules": pl.String,
    }
)
_OWN = {
    e: [f for f in fields if f not in INPUT_FIELDS and f != "rules"] for e, fields in EVENTS.items()
}
JSON_DOCS = {
    e: pl.Struct(
        {
            **_COMMON,
            **dict.fromkeys(own, pl.String),
            **({"inputs": _INPUTS, "rules": RAW_RULES} if e == "decision" else {}),
        }
    )
    for e, own in _OWN.items()
}
TEXT_DOCS = {
    e: pl.Struct(
        {
            "event": pl.String,
            **dict.fromkeys(own, pl.String),
            **(
                {**dict.fromkeys(INPUT_FIELDS, pl.String), "rules": pl.String}
                if e == "decision"
                else {}
            ),
        }
    )
    for e, own in _OWN.items()
}
_JSON_EVENT = r'"event"\s*:\s*"([^"\\]*)"'
_TEXT_EVENT = r'(?:^|\s)event="?([^\s"]+)'
# Bare NaN / Infinity are not JSON: only said, for a line that fails, as the reason.
_NOT_A_NUMBER = r"[:\[,]\s*-?(?:NaN|Infinity)\s*[,}\]]"
# A failing batch is cut into this many pieces, and a failing piece again: a block with a
# bad line or two is decoded about once more in all, not once a line.
PIECES = 16

INVALID_JSON = "invalid JSON or not a JSON object"
PLAIN_VALUE = "JSON with a plain value where an object or list belongs"
REFUSED_JSON = "JSON the decoder rejects (bad types or nesting)"
NOT_PAIRS = "message is not key=value pairs"
NOT_LOGBACK = "logback line that does not follow the pattern"
REJECTS = {"line": pl.UInt32, "reason": pl.String}


def decode(docs: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, pl.Series]:
    """Decode JSON documents: (decoded, whether each failed), null where one failed.

    A document cut off before its closing brace, the commonest bad line, would fail its
    batch: each is decoded alone, and the others as a batch."""
    whole = docs.str.ends_with("}")
    if whole.all():
        return _decode(docs, dtype)
    at = pl.int_range(len(docs), eager=True, dtype=pl.UInt32)
    parts = [(at.filter(whole), *_decode(docs.filter(whole), dtype))]
    parts += [(at.slice(i, 1), *_decode(docs.slice(i, 1), dtype)) for i in (~whole).arg_true()]
    order = pl.concat([p[0] for p in parts]).arg_sort()
    return (
        pl.concat([p[1] for p in parts], rechunk=True).gather(order),
        pl.concat([p[2] for p in parts], rechunk=True).gather(order),
    )


def _decode(docs: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, pl.Series]:
    try:
        return docs.str.json_decode(dtype), pl.repeat(False, len(docs), eager=True)
    except pl.exceptions.PolarsError:
        if len(docs) == 1:
            return pl.Series(docs.name, [None], dtype=dtype), pl.Series([True])
    step = -(-len(docs) // PIECES)
    pieces = [_decode(docs.slice(at, step), dtype) for at in range(0, len(docs), step)]
    # One chunk: a string column whose chunks a later filter leaves empty makes `pl.format`
    # panic (Polars 2.1, "assertion failed: i < self.len()").
    return (
        pl.concat([p[0] for p in pieces], rechunk=True),
        pl.concat([p[1] for p in pieces], rechunk=True),
    )


def parse_records(lines: pl.DataFrame) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    """Decode record candidates (line, text, fmt). Returns the records, a frame a kind of
    document: line, ts_text, ts_ms, level, service, host, trace_id, event, that kind's
    fields as strings (a decision's rules as a list of rules of strings, and whether it
    writes credit_score), and the line's hashes h1, h2; and the rejected lines (line,
    reason)."""
    records: list[pl.DataFrame] = []
    rejects: list[pl.DataFrame] = []
    for (fmt,), group in lines.group_by("fmt", maintain_order=True):
        parse = _parse_json if fmt == "json" else _parse_text
        found, bad = parse(group.select("line", "text"))
        records += found
        rejects.append(bad)
    return records, pl.concat(rejects) if rejects else pl.DataFrame(schema=REJECTS)


def _by_event(
    frame: pl.DataFrame, docs: pl.Expr, guess: pl.Expr, json: bool
) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    """Decode each line's document with its event kind's own fields (an event no kind
    knows, or none, with every field): the decoded rows, a frame a kind, and the lines that
    fail (line, _doc, _event).

    A block is nearly always of one kind: all its documents are first decoded as the kind
    `guess` reads in the first line. A document that decodes as another kind is decoded
    again with that kind's fields; one that fails, with the fields of the kind its own
    `event` names (decoded alone). Which kind a document is decoded as is thus its own,
    whatever the block: the guess only saves the others a look at their event."""
    shapes, whole = (JSON_DOCS, JSON_DOC) if json else (TEXT_DOCS, TEXT_DOC)
    frame = frame.with_columns(docs.alias("_doc"))
    if frame.height == 0:
        return [], pl.DataFrame(schema=_FAILED)
    first = frame.head(1).select(guess).item()
    decoded, bad = decode(frame.get_column("_doc"), shapes.get(first, whole))
    event = decoded.struct.field("event")
    own = ~bad & event.eq_missing(first)
    found = [frame.filter(own).with_columns(decoded.filter(own).alias("_f")).drop("_doc")]
    if not own.all():
        rest = frame.filter(~own)
        failed = bad.filter(~own)
        kind = event.filter(~own)
        if failed.any():
            named = decode(rest.get_column("_doc"), _EVENT_ONLY)[0].struct.field("event")
            kind = kind.zip_with(~failed, named)
        rest = rest.with_columns(kind.alias("_event"))
    else:
        rest = frame.clear().with_columns(pl.lit(None, pl.String).alias("_event"))
    failed_rows = [pl.DataFrame(schema=_FAILED)]
    for (name,), group in rest.group_by("_event", maintain_order=True):
        dtype = shapes.get(name, whole) if isinstance(name, str) else whole
        decoded, bad = decode(group.get_column("_doc"), dtype)
        failed_rows.append(group.filter(bad).select(*_FAILED))
        good = group.filter(~bad).with_columns(decoded.filter(~bad).alias("_f"))
        found.append(good.drop("_doc", "_event"))
    return [f.unnest("_f") for f in found if f.height], pl.concat(failed_rows)


# What decides a document's kind: its `event`, and nothing else.
_EVENT_ONLY = pl.Struct({"event": pl.String})
_FAILED = {"line": pl.UInt32, "_doc": pl.String, "_event": pl.String}


def _parse_json(frame: pl.DataFrame) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    text = pl.col("text")
    found, failed = _by_event(frame, text, text.str.extract(_JSON_EVENT), json=True)
    records = [
        part.rename({"@timestamp": "ts_text"})
        .with_columns(
            *(
                [json_credit_score_present().alias("credit_score_present")]
                if "inputs" in part.columns
                else []
            ),
            *hashes(),
        )
        .drop("text")
        for part in found
    ]
    records = [p.unnest("inputs") if "inputs" in p.columns else p for p in records]
    return records, _json_reasons(failed)


def _json_reasons(failed: pl.DataFrame) -> pl.DataFrame:
    """Why each line that failed to decode did (line, reason)."""
    if failed.height == 0:
        return pl.DataFrame(schema=REJECTS)
    doc = pl.col("_doc")
    shaped = doc.str.strip_chars()
    looks = (
        shaped.str.starts_with("{")
        & shaped.str.ends_with("}")
        & ~shaped.str.contains(_NOT_A_NUMBER)
    )
    valid = doc.str.json_path_match("$").is_not_null() & looks
    parts = []
    for (name,), group in failed.group_by("_event", maintain_order=True):
        dtype = JSON_DOCS.get(name, JSON_DOC) if isinstance(name, str) else JSON_DOC
        reason = (
            pl.when(~valid)
            .then(pl.lit(INVALID_JSON))
            .when(_misshapen(dtype))
            .then(pl.lit(PLAIN_VALUE))
            .otherwise(pl.lit(REFUSED_JSON))
        )
        parts.append(group.select("line", reason.alias("reason")))
    return pl.concat(parts)


def _misshapen(dtype: pl.Struct) -> pl.Expr:
    """Whether a document's nested fields have the wrong JSON type for `dtype`."""
    checks = [pl.lit(False)]
    for field in dtype.fields:
        if isinstance(field.dtype, pl.Struct | pl.List):
            opener = "{" if isinstance(field.dtype, pl.Struct) else "["
            value = pl.col("_doc").str.json_path_match(f"$.{field.name}")
            checks.append(value.is_not_null() & ~value.str.starts_with(opener))
    return pl.any_horizontal(checks)


def _parse_text(frame: pl.DataFrame) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    parts = text_parts(frame)
    malformed = parts.filter(pl.col("msg").is_null()).select(
        "line", pl.lit(NOT_LOGBACK).alias("reason")
    )
    msg = pl.col("msg")
    event = msg.str.extract(_TEXT_EVENT)
    parts = parts.filter(msg.is_not_null()).with_columns(plain_message(msg).alias("_plain"))
    # A message of plain pairs is made JSON by two literal replacements; the others, and
    # those whose literal form does not decode, take the regular expression.
    found, failed = _by_event(parts.filter("_plain"), literal_json(msg), event, json=False)
    again = parts.filter(~pl.col("_plain") | pl.col("line").is_in(failed["line"].implode()))
    if again.height:
        more, failed = _by_event(again, pairs_json(msg), event, json=False)
        found += more
    bad = failed.select("line", pl.lit(NOT_PAIRS).alias("reason"))
    records = [_text_record(part) for part in found]
    return records, pl.concat([malformed, bad])


def _text_record(part: pl.DataFrame) -> pl.DataFrame:
    fields = [c for c in (*EVENT_FIELDS, *INPUT_FIELDS) if c in part.columns]
    decision = "rules" in part.columns
    return (
        part.rename({"ts": "ts_text"})
        .with_columns(
            *(pl.lit(None, pl.String).alias(c) for c in ("ts_ms", "service", "host")),
            pl.col("level").str.to_uppercase(),
            pl.when(pl.col("trace_id").str.strip_chars() != "").then(pl.col("trace_id")),
            # A text value of null is null.
            *(logback_value(pl.col(f)).alias(f) for f in fields),
            *(
                [
                    pl.col("msg")
                    .str.contains(r"(?:^|\s)credit_score=")
                    .alias("credit_score_present"),
                    text_rules(pl.col("rules")),
                ]
                if decision
                else []
            ),
            *hashes(),
        )
        .drop("msg", "text", "_plain")
    )


def json_credit_score_present() -> pl.Expr:
    """Whether a JSON line writes `credit_score` at all (null or not)."""
    return pl.col("text").str.contains(r'"credit_score"\s*:')
