"""Tell a block's record lines from everything else, and take a logback line apart.

Each line gets a class (a record candidate, a stack-trace line, blank, a comment, or
rejected with its reason); record candidates are decoded in `decode`, which confirms or
rejects them. A logback line's head (time, level, thread, trace id, logger) is matched
here, and its `key=value` message rewritten as a JSON object for the decoder.
"""

from __future__ import annotations

import re

import polars as pl

from limitaudit.model.schema import RULE_FIELDS

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
# TEXT_HEAD without its captures: whether a head fits, not where its parts are.
_HEAD_SHAPE = re.sub(r"\(\?P<\w+>", "(?:", TEXT_HEAD)
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


def hashes() -> list[pl.Expr]:
    # Two independent 64-bit hashes of the line: the exact-repeat key for duplicates.
    return [
        pl.col("text").hash(seed=7).alias("h1"),
        pl.col("text").hash(seed=1_000_003).alias("h2"),
    ]


def text_parts(frame: pl.DataFrame) -> pl.DataFrame:
    """The logback pattern's parts: ts, level, trace_id, msg (null where a line does not
    follow the pattern).

    The head (the text before the first " - ") is matched on its own, by a regex without
    captures, and its parts are cut out where the match puts them: capturing them costs
    three times as much. A line whose head does not fit (a thread name holding " - ") is
    matched whole, with captures.
    """
    halves = pl.col("text").str.splitn(" - ", 2)
    head = pl.col("_head")
    parts = frame.with_columns(
        halves.struct.field("field_0").alias("_head"), halves.struct.field("field_1").alias("msg")
    )
    fits = parts.select(head.str.contains(_HEAD_SHAPE) & pl.col("msg").is_not_null()).to_series()
    fit = parts if fits.all() else parts.filter(fits)
    # The time is the first 23 characters; the level, the letters after it (their bytes
    # are characters: `find` counts bytes); the thread holds no `]`, so the trace id is in
    # the brackets after the first `]`.
    level = head.str.slice(23).str.strip_chars_start()
    after = head.str.splitn("]", 2).struct.field("field_1")
    trace = after.str.splitn("[traceId=", 2).struct.field("field_1")
    fit = fit.select(
        "line",
        "text",
        head.str.slice(0, 23).alias("ts"),
        level.str.slice(0, level.str.find(r"\s")).alias("level"),
        trace.str.splitn("]", 2).struct.field("field_0").alias("trace_id"),
        "msg",
    )
    if fit.height == frame.height:
        return fit
    odd = parts.filter(~fits).select("line", "text")
    full = odd.with_columns(pl.col("text").str.extract_groups(TEXT_LINE).alias("p")).unnest("p")
    return pl.concat([fit, full.select(fit.columns)]).sort("line")


def plain_message(msg: pl.Expr) -> pl.Expr:
    """A message without quotes or escapes: its pairs are written as they read."""
    return ~msg.str.contains(r'["\\]')


def literal_json(msg: pl.Expr) -> pl.Expr:
    """A plain message `k=v k2=v2` as a JSON object of strings, by two literal replacements.

    It decodes exactly when every space-separated word is one `key=value` pair: a word
    without `=` or with two, or an empty word (spaces doubled, leading or trailing), leaves
    a document the decoder refuses, and the message takes `pairs_json`.
    """
    return (
        '{"'
        + msg.str.replace_all(" ", '","', literal=True).str.replace_all("=", '":"', literal=True)
        + '"}'
    )


def pairs_json(msg: pl.Expr) -> pl.Expr:
    """`k=v k2="v 2"` as a JSON object of strings, by a regular expression (ten times the
    cost of `literal_json`, for the messages that need it)."""
    return "{" + msg.str.replace_all(_PAIR, r'"${1}":"${2}${3}",').str.strip_chars_end(", ") + "}"


def text_rules(rules: pl.Expr) -> pl.Expr:
    """`id/param/threshold/observed/action;...` into the list of rule structs JSON has."""
    slot = pl.element()
    return rules.str.split(";").list.eval(
        slot.filter(slot.str.strip_chars() != "")
        .str.split("/")
        .list.eval(pl.when(pl.element() != "").then(pl.element()))
        .list.to_struct(fields=RULE_FIELDS)
    )


def logback_value(value: pl.Expr) -> pl.Expr:
    """A logback message's value as the full path reads it: null or nothing is null."""
    return pl.when(~value.is_in(["null", ""])).then(value)
