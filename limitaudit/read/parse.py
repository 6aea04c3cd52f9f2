"""Split a block of log lines into records and everything else, as raw strings.

Both log formats end up in one flat frame of string fields: a JSON line is
decoded with every leaf typed as a string (so `"712.4"` and `712.4` agree), and
a logback line's `key=value` message is rewritten into a JSON object and
decoded the same way. Typing and value checks happen in `normalise`.
"""

from __future__ import annotations

import polars as pl

from limitaudit.model.schema import EVENT_FIELDS, EVENTS, INPUT_FIELDS, RULE_FIELDS, DType

BLANK, META, CONTINUATION, RECORD, REJECTED = "blank", "meta", "continuation", "record", "rejected"
LINE_CLASSES = [BLANK, META, CONTINUATION, RECORD, REJECTED]
LineClass = pl.Enum(LINE_CLASSES)

TEXT_LINE = (
    r"^(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[.,]\d{3})\s+(?P<level>[A-Za-z]+)\s+"
    r"\[(?P<thread>[^\]]*)\]\s+\[traceId=(?P<trace_id>[^\]]*)\]\s+(?P<logger>\S+)\s+-\s?(?P<msg>.*)$"
)
TEXT_HEAD = (
    r"^(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[.,]\d{3})\s+(?P<level>[A-Za-z]+)\s+"
    r"\[(?P<thread>[^\]]*)\]\s+\[traceId=(?P<trace_id>[^\]]*)\]\s+(?P<logger>\S+)$"
)
# Logback's own ISO8601 pattern writes the milliseconds after a comma, as ISO 8601 allows.
TEXT_RECORD_START = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[.,]\d{3}\s"
# A Java stack trace under an ERROR line: indented frames, "Caused by:", "... 42 more",
# or "some.pkg.SomeException: message".
CONTINUATION_LINE = (
    r"^(?:\s|at\s|Caused by:|\.\.\. \d+ more|Suppressed:|"
    r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?:Exception|Error|Throwable)?:)"
)
# key=value or key="quoted \"value\"", rewritten as a JSON member.
_PAIR = r'([A-Za-z_][\w.]*)=(?:"((?:[^"\\]|\\.)*)"|(\S*))'

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
_EVENT = dict.fromkeys(EVENT_FIELDS, pl.String)
JSON_DOC = pl.Struct(
    {
        **_COMMON,
        **_EVENT,
        "inputs": pl.Struct(dict.fromkeys(INPUT_FIELDS, pl.String)),
        "rules": RAW_RULES,
    }
)
TEXT_DOC = pl.Struct(
    {**_EVENT, **dict.fromkeys(INPUT_FIELDS, pl.String), "event": pl.String, "rules": pl.String}
)
# json_decode's cost grows with the width of the schema, so each event kind is decoded
# with its own fields only; the wide documents above serve unknown events.
_OWN = {
    e: [f for f in fields if f not in INPUT_FIELDS and f != "rules"] for e, fields in EVENTS.items()
}
JSON_DOCS = {
    e: pl.Struct(
        {
            **_COMMON,
            **dict.fromkeys(own, pl.String),
            **(
                {"inputs": JSON_DOC.to_schema()["inputs"], "rules": RAW_RULES}
                if e == "decision"
                else {}
            ),
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
# Bare NaN / Infinity are not JSON; one in a batch would fail the whole decode.
_NOT_A_NUMBER = r"[:\[,]\s*-?(?:NaN|Infinity)\s*[,}\]]"

# The flat frame every record becomes, before typing: raw strings, plus where the
# time came from, whether `credit_score` was written at all, and the line's hashes.
_RAW: dict[str, DType] = {
    "line": pl.UInt32,
    "ts_text": pl.String,
    "ts_ms": pl.String,
    "text_time": pl.Boolean,
    "level": pl.String,
    "service": pl.String,
    "host": pl.String,
    "trace_id": pl.String,
    "event": pl.String,
    **dict.fromkeys(EVENT_FIELDS, pl.String),
    **dict.fromkeys(INPUT_FIELDS, pl.String),
    "credit_score_present": pl.Boolean,
    "rules": RAW_RULES,
    "h1": pl.UInt64,
    "h2": pl.UInt64,
}
RAW_SCHEMA = pl.Schema(_RAW)


def classify(block: pl.DataFrame, record_above: bool) -> pl.DataFrame:
    """Add `cls` (a first guess: record candidates are confirmed by decoding) and `fmt`.

    `pre_reason`, where set, rejects the line before anything else is looked at
    (undecodable bytes, the cut-off tail of a truncated file).
    """
    text = pl.col("text")
    # Regexes rather than a stripped copy of every line.
    is_json = text.str.contains(r"^\s*\{")
    is_text = text.str.contains(TEXT_RECORD_START)
    candidate = is_json | is_text
    # A continuation line needs a record somewhere above it in the same file.
    seen_record = candidate.cast(pl.UInt32).cum_sum() > 0
    if record_above:
        seen_record = pl.lit(True)
    block = block.with_columns(
        is_json.alias("_json"),
        candidate.alias("_candidate"),
        seen_record.alias("_seen"),
    )
    # Computed once, for the class and the reason alike; a record candidate never continues.
    continues = ~pl.col("_candidate") & text.str.contains(CONTINUATION_LINE)
    cls = (
        pl.when(pl.col("pre_reason").is_not_null())
        .then(pl.lit(REJECTED))
        .when(pl.col("_candidate"))
        .then(pl.lit(RECORD))
        .when(text.str.contains(r"^\s*$"))
        .then(pl.lit(BLANK))
        .when(text.str.starts_with("#"))
        .then(pl.lit(META))
        .when(pl.col("_continues") & pl.col("_seen"))
        .then(pl.lit(CONTINUATION))
        .otherwise(pl.lit(REJECTED))
        .cast(LineClass)
    )
    reason = (
        pl.when(pl.col("pre_reason").is_not_null())
        .then(pl.col("pre_reason"))
        .when(pl.col("_continues"))
        .then(pl.lit("stack-trace line with no record above it"))
        .otherwise(pl.lit("neither a JSON object nor a logback record"))
    )
    block = block.with_columns(continues.alias("_continues")).with_columns(cls=cls)
    return block.with_columns(
        fmt=pl.when(pl.col("_json")).then(pl.lit("json")).otherwise(pl.lit("text")),
        reason=pl.when(pl.col("cls") == REJECTED).then(reason),
    ).drop("_json", "_candidate", "_seen", "_continues")


def _decode_tolerant(docs: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, list[int]]:
    try:
        return docs.str.json_decode(dtype), []
    except (pl.exceptions.ComputeError, pl.exceptions.PolarsError):
        if len(docs) == 1:
            return pl.Series(docs.name, [None], dtype=dtype), [0]
    half = len(docs) // 2
    left, bad_left = _decode_tolerant(docs.slice(0, half), dtype)
    right, bad_right = _decode_tolerant(docs.slice(half), dtype)
    # One chunk: a string column whose chunks a later filter leaves empty makes
    # `pl.format` panic (Polars 2.1, "assertion failed: i < self.len()").
    return pl.concat([left, right], rechunk=True), bad_left + [half + i for i in bad_right]


def parse_records(lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode record candidates. Returns (records as RAW_SCHEMA, rejected: line, reason)."""
    json_lines = lines.filter(pl.col("fmt") == "json").select("line", "text")
    text_lines = lines.filter(pl.col("fmt") == "text").select("line", "text")
    parts: list[pl.DataFrame] = []
    rejected: list[pl.DataFrame] = []
    if json_lines.height:
        rec, rej = _parse_json(json_lines)
        parts.append(rec)
        rejected.append(rej)
    if text_lines.height:
        rec, rej = _parse_text(text_lines)
        parts.append(rec)
        rejected.append(rej)
    records = pl.concat(parts, how="vertical") if parts else _empty_records()
    reject = (
        pl.concat(rejected)
        if rejected
        else pl.DataFrame(schema={"line": pl.UInt32, "reason": pl.String})
    )
    return records.sort("line"), reject


def _split(
    frame: pl.DataFrame, doc: pl.Series, dtype: pl.DataType
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode JSON documents; returns (rows with the decoded fields, rejects: line, reason).

    `json_decode` fails a whole batch on one line it dislikes (polars #13768). A
    clean batch is decoded in one pass; only a batch that fails pays for a
    per-line check (`json_path_match` flags invalid JSON as null without raising),
    a shape check of the nested fields, and, for what still fails, bisection.
    """
    shaped = doc.str.strip_chars()
    looks = (
        shaped.str.starts_with("{")
        & shaped.str.ends_with("}")
        & ~shaped.str.contains(_NOT_A_NUMBER)
    )
    try:
        return _decoded(frame.filter(looks), doc.filter(looks), dtype), _rejects(
            frame.filter(~looks), "invalid JSON or not a JSON object"
        )
    except pl.exceptions.PolarsError:
        pass
    valid = doc.str.json_path_match("$").is_not_null() & looks
    misshapen = valid & _misshapen(doc, dtype)
    invalid = [
        _rejects(frame.filter(~valid), "invalid JSON or not a JSON object"),
        _rejects(
            frame.filter(misshapen), "JSON with a plain value where an object or list belongs"
        ),
    ]
    keep = valid & ~misshapen
    frame, doc = frame.filter(keep), doc.filter(keep)
    decoded, failed = _decode_tolerant(doc, dtype)
    frame = frame.with_columns(decoded.alias("doc"))
    if failed:
        rejected = pl.int_range(frame.height, eager=True).is_in(failed)
        invalid.append(
            _rejects(frame.filter(rejected), "JSON the decoder rejects (bad types or nesting)")
        )
        frame = frame.filter(~rejected)
    return frame.unnest("doc"), pl.concat(invalid)


def _decoded(frame: pl.DataFrame, doc: pl.Series, dtype: pl.DataType) -> pl.DataFrame:
    return frame.with_columns(doc.str.json_decode(dtype).alias("doc")).unnest("doc")


def _rejects(frame: pl.DataFrame, reason: str) -> pl.DataFrame:
    return frame.select("line", pl.lit(reason).alias("reason"))


def _misshapen(doc: pl.Series, dtype: pl.DataType) -> pl.Series:
    """Lines whose nested fields have the wrong JSON type for `dtype` (a cheap pre-check)."""
    assert isinstance(dtype, pl.Struct)
    checks = []
    for field in dtype.fields:
        opener = (
            "{"
            if isinstance(field.dtype, pl.Struct)
            else "["
            if isinstance(field.dtype, pl.List)
            else ""
        )
        value = pl.col("doc").str.json_path_match(f"$.{field.name}")
        if opener:
            checks.append(value.is_not_null() & ~value.str.starts_with(opener))
    if not checks:
        return pl.Series([False] * len(doc))
    return doc.to_frame("doc").select(pl.any_horizontal(checks)).to_series()


def hashes() -> list[pl.Expr]:
    # Two independent 64-bit hashes of the line: the exact-repeat key for duplicates.
    return [
        pl.col("text").hash(seed=7).alias("h1"),
        pl.col("text").hash(seed=1_000_003).alias("h2"),
    ]


def _split_by_event(
    frame: pl.DataFrame,
    doc: pl.Series,
    event: pl.Series,
    shapes: dict[str, pl.Struct],
    whole: pl.Struct,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`_split` per event kind, each with the narrow document of that kind."""
    frame = frame.with_columns(doc.alias("_doc"), event.alias("_event"))
    goods, bads = [], []
    for (name,), group in frame.group_by("_event"):
        shape = shapes.get(name, whole) if isinstance(name, str) else whole
        good, bad = _split(group.drop("_doc", "_event"), group["_doc"], shape)
        goods.append(good)
        bads.append(bad)
    good = (
        pl.concat(goods, how="diagonal_relaxed") if goods else frame.clear().drop("_doc", "_event")
    )
    bad = pl.concat(bads) if bads else pl.DataFrame(schema={"line": pl.UInt32, "reason": pl.String})
    for name, dtype in whole.to_schema().items():
        if name not in good.columns:
            good = good.with_columns(pl.lit(None, dtype).alias(name))
    return good, bad


def _parse_json(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    event = frame["text"].str.extract(_JSON_EVENT)
    good, bad = _split_by_event(frame, frame["text"], event, JSON_DOCS, JSON_DOC)
    good = good.unnest("inputs").with_columns(
        pl.col("@timestamp").alias("ts_text"),
        pl.lit(False).alias("text_time"),
        json_credit_score_present().alias("credit_score_present"),
        *hashes(),
    )
    return _finish(good), bad


def _parse_text(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    parts = _text_parts(frame)
    malformed = parts.filter(pl.col("msg").is_null()).select(
        "line", pl.lit("logback line that does not follow the pattern").alias("reason")
    )
    parts = parts.filter(pl.col("msg").is_not_null())
    doc = parts.select(_message_json(pl.col("msg"))).to_series()
    event = parts["msg"].str.extract(_TEXT_EVENT)
    good, bad = _split_by_event(parts, doc, event, TEXT_DOCS, TEXT_DOC)
    bad = bad.with_columns(pl.lit("message is not key=value pairs").alias("reason"))
    good = good.with_columns(
        pl.col("ts").alias("ts_text"),
        pl.lit(None, pl.String).alias("ts_ms"),
        pl.lit(True).alias("text_time"),
        pl.col("level").str.to_uppercase(),
        pl.lit(None, pl.String).alias("service"),
        pl.lit(None, pl.String).alias("host"),
        pl.when(pl.col("trace_id").str.strip_chars() != "").then(pl.col("trace_id")),
        pl.col("msg").str.contains(r"(?:^|\s)credit_score=").alias("credit_score_present"),
        text_rules(pl.col("rules")),
        *hashes(),
    )
    # A text value of null is null.
    fields = [*EVENT_FIELDS, *INPUT_FIELDS]
    good = good.with_columns(logback_value(pl.col(fields)).name.keep())
    return _finish(good), pl.concat([malformed, bad])


def _text_parts(frame: pl.DataFrame) -> pl.DataFrame:
    """The logback pattern's parts: ts, level, thread, trace_id, logger, msg (null: no match).

    The header is matched on its own (the text before the first " - "): a capture
    regex running to the end of every long line costs several times more. A line
    whose header that does not fit (a thread name holding " - ") gets the full pattern.
    """
    halves = pl.col("text").str.splitn(" - ", 2)
    parts = frame.with_columns(
        halves.struct.field("field_0").str.extract_groups(TEXT_HEAD).alias("p"),
        halves.struct.field("field_1").alias("msg"),
    ).unnest("p")
    fits = pl.col("ts").is_not_null() & pl.col("msg").is_not_null()
    odd = parts.filter(~fits).select("line", "text")
    if odd.height == 0:
        return parts
    full = odd.with_columns(pl.col("text").str.extract_groups(TEXT_LINE).alias("p")).unnest("p")
    return pl.concat([parts.filter(fits), full.select(parts.columns)]).sort("line")


def _message_json(msg: pl.Expr) -> pl.Expr:
    """`k=v k2="v 2"` as a JSON object of strings.

    A message of plain pairs (no quotes, no backslashes, single spaces, one `=` per
    pair) becomes JSON by two literal replacements; the rest takes the regex, which
    is ten times slower.
    """
    plain = ~msg.str.contains(r'["\\]|  |^ | $') & (
        msg.str.count_matches("=", literal=True) == msg.str.count_matches(" ", literal=True) + 1
    )
    literal = (
        '{"'
        + msg.str.replace_all(" ", '","', literal=True).str.replace_all("=", '":"', literal=True)
        + '"}'
    )
    regex = "{" + msg.str.replace_all(_PAIR, r'"${1}":"${2}${3}",').str.strip_chars_end(", ") + "}"
    return pl.when(plain).then(literal).otherwise(regex).alias("doc")


def text_rules(rules: pl.Expr) -> pl.Expr:
    """`id/param/threshold/observed/action;...` into the list of rule structs JSON has."""
    slot = pl.element()
    return rules.str.split(";").list.eval(
        slot.filter(slot.str.strip_chars() != "")
        .str.split("/")
        .list.eval(pl.when(pl.element() != "").then(pl.element()))
        .list.to_struct(fields=RULE_FIELDS)
    )


def json_credit_score_present() -> pl.Expr:
    """Whether a JSON line writes `credit_score` at all (null or not)."""
    return pl.col("text").str.contains(r'"credit_score"\s*:')


def logback_value(value: pl.Expr) -> pl.Expr:
    """A logback message's value as the full path reads it: null or nothing is null."""
    return pl.when(~value.is_in(["null", ""])).then(value)


def _finish(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        (pl.col(c) if c in frame.columns else pl.lit(None)).cast(dtype).alias(c)
        for c, dtype in RAW_SCHEMA.items()
    )


def _empty_records() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_SCHEMA)
