"""Skim the decision lines a read will not keep, without decoding them.

Most of a dump is decisions that change nothing, and a read that filters the decisions
(`read_dump(decisions=...)`) keeps only their stamps and line hashes. Decoding and typing a
line costs some 20 µs; skimming one costs a few. A line is skimmed only when one regular
expression, run by Polars' DFA without captures, shows that the full path would accept
it as it is: every field the record schema knows has a value of its kind (the forms the
full path reads the same way, and nothing it would refuse or read otherwise), and the
event is a decision. Its limits (and user) then say whether the read keeps it; if not,
its time, host and feed batch are all that is taken from it. A decision the read keeps
is read whole by a few extractions, when a stricter expression shows that each value
is written in a form whose text is its value (what the full decode would make of it).
Every other line, and any whose time does not parse, takes the full path, which gives
its verdict and reason.

The regular expressions accept less than the full path does (no escapes in the values
that are read, no unknown field holding an object or a list, plain `key=value` messages,
known names only where they belong): what they leave out costs time, never an answer.
`tests/test_skim.py` checks that a skimmed line is one the full path accepts with the
same stamp, and that a decision read whole is the row the full path makes of it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import NamedTuple

import polars as pl

from limitaudit.model.schema import EVENTS, INPUT_FIELDS, RULE_FIELDS, DType, Time
from limitaudit.read.normalise import local_time, typed, utc_time
from limitaudit.read.parse import (
    JSON_DOC,
    RAW_RULES,
    TEXT_DOC,
    hashes,
    json_credit_score_present,
    logback_value,
    text_rules,
)

# What a skimmed decision can be kept or left by: the filter's columns must be among these.
SKIM_COLUMNS = {"limit_before": "money", "limit_after": "money", "user_id": "user"}

# Every name a record, its inputs or its rules know: a member with one of these names
# must have the value its kind allows; only other names may hold anything.
KNOWN = sorted(
    {*JSON_DOC.to_schema(), *TEXT_DOC.to_schema(), *INPUT_FIELDS, *RULE_FIELDS}
    | {f for fields in EVENTS.values() for f in fields}
)


Trie = dict[str, "Trie"]


def _not_any(names: Iterable[str], chars: str) -> str:
    """A regex for a non-empty run of `chars` (the inside of a character class) that is
    none of `names`.

    Rust's regex has no lookahead: the complement of a set of words is spelt out over
    their trie (a word ends early, leaves the trie, or runs on past a leaf).
    """
    trie: Trie = {}
    for name in names:
        node = trie
        for c in name:
            node = node.setdefault(c, {})
        node[""] = {}
    anything = f"[{chars}]"

    def outside(node: Trie, root: bool) -> str:
        options = [] if "" in node or root else [""]
        children = [c for c in node if c]
        other = f"[{chars}&&[^{re.escape(''.join(children))}]]" if children else anything
        options.append(f"{other}{anything}*")
        options += [f"{re.escape(c)}(?:{outside(node[c], False)})" for c in children]
        return "|".join(options)

    return f"(?:{outside(trie, True)})"


# -- JSON ------------------------------------------------------------------------------

_SP = r"\x20?"
_PLAIN = r'"[^"\\\x00-\x1f]*"'  # a string whose text is its value: no escapes
_STRING = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9A-Fa-f]{4})*"'
_INT = r"-?(?:0|[1-9][0-9]{0,14})"
_FLOAT = rf"{_INT}(?:\.[0-9]{{1,15}})?"
_MONEY = r"-?(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,2})?"
_SCALAR = rf"(?:{_STRING}|{_FLOAT}|true|false|null)"
# A decision read whole is read from its text, so its values must be written as the full
# decode writes them back: plain strings, and bare numbers of up to 15 digits (exact in a
# double) without a negative zero (the decoder writes `-0` back as `0`). Strings in its
# rules hold no bracket, so that the list ends at the first `]`.
_TEXT = f"{_PLAIN}|null"
_EXACT_INT = r"(?:0|-?[1-9][0-9]{0,14})"
_EXACT_FLOAT = rf"(?:{_EXACT_INT}|-?(?:0|[1-9][0-9]{{0,8}})\.[0-9]{{1,6}})"
_NO_BRACKET = r'"(?:[^"\\\x00-\x1f\[\]]|\\["\\/bfnrt]|\\u[0-9A-Fa-f]{4})*"'
_PLAIN_NO_BRACKET = r'"[^"\\\x00-\x1f\[\]]*"'
# Names of fields no schema knows: plain ASCII ones are skimmed, any other is not.
_KEY_CHARS = r"A-Za-z0-9_.@$\-"


def _object(member: str) -> str:
    return rf"\{{(?:{member}(?:,{_SP}{member})*)?\}}"


def _member(name: str, value: str) -> str:
    return f'"{name}"{_SP}:{_SP}(?:{value})'


def _either(value: str) -> str:
    """A number the full path reads as text either way: bare or quoted."""
    return f'{value}|"{value}"'


_KINDS = {
    "str": _SCALAR,
    "user": r'"[0-9]{1,30}"|(?:0|[1-9][0-9]{0,17})',
    "float": f"{_either(_FLOAT)}|null",
    "int": f"{_either(_INT)}|null",
    "bool": 'true|false|"true"|"false"|null',
    "money": _either(_MONEY),
}
# What the kinds allow in a decision read whole (a quoted number is its own text).
_EXACT_KINDS = {
    **_KINDS,
    "str": _TEXT,
    "float": f'{_EXACT_FLOAT}|"{_FLOAT}"|null',
    "int": f'{_EXACT_INT}|"{_INT}"|null',
}


# Built when first skimmed, not at import: `trace` on a store starts in under a second.
@functools.cache
def json_decision(exact: bool = False) -> str:
    """The JSON decision line a skim vouches for, whole; `exact`: one it can read whole."""
    fields = EVENTS["decision"]
    kinds = _EXACT_KINDS if exact else _KINDS
    text, scalar = (_TEXT, _SCALAR.replace(_STRING, _NO_BRACKET)) if exact else (_SCALAR, _SCALAR)
    other_key = '"' + _not_any(KNOWN, _KEY_CHARS) + '"'
    rule_id = _member("id", _PLAIN_NO_BRACKET if exact else _PLAIN)
    rule = "|".join(
        [
            rule_id,
            _member("param", scalar),
            _member("threshold", f"{_either(_FLOAT)}|null"),
            _member("observed", scalar),
            f"{other_key}{_SP}:{_SP}{scalar}",
        ]
    )
    # A rule must name its id and action, each once: either may come first.
    no_id = rule.replace(rule_id + "|", "")
    action = _member("action", '"(?:zero|reduce|hold)"')
    rules_object = (
        rf"\{{{rule_id}(?:,{_SP}(?:{no_id}))*,{_SP}{action}\}}"
        rf"|\{{{action}(?:,{_SP}(?:{no_id}))*,{_SP}{rule_id}\}}"
    )
    rules = rf"\[(?:(?:{rules_object})(?:,{_SP}(?:{rules_object}))*)?\]|null"
    inputs = (
        _object(
            "(?:"
            + "|".join(
                [
                    *(_member(n, kinds[fields[n]]) for n in INPUT_FIELDS if n != "bureau_batch"),
                    _member("bureau_batch", f"{_PLAIN}|null"),
                    f"{other_key}{_SP}:{_SP}{_SCALAR}",
                ]
            )
            + ")"
        )
        + "|null"
    )
    own = [
        _member(n, kinds[k]) for n, k in fields.items() if n not in INPUT_FIELDS and n != "rules"
    ]
    members = [
        _member("@timestamp", f"{_PLAIN}|null"),
        _member("host", f"{_PLAIN}|null"),
        _member("event", '"decision"'),
        _member("ts_ms", _SCALAR),
        *(_member(n, text) for n in ("level", "service", "trace_id")),
        *own,
        _member("inputs", inputs),
        _member("rules", rules),
        f"{other_key}{_SP}:{_SP}{_SCALAR}",
    ]
    member = "(?:" + "|".join(members) + ")"
    # Each member is followed by a comma or the closing brace, which must end the line:
    # one copy of the (long) member pattern rather than two.
    return rf"^\{{(?:{member}(?:,{_SP}|\}}$))+$"


_JSON_IS_DECISION = rf'"event"{_SP}:{_SP}"decision"'


def _has(name: str) -> str:
    return rf'"{name}"{_SP}:'


def _json_value(name: str) -> str:
    """A number or boolean, bare or quoted; a null is null (the first value counts)."""
    return rf'"{name}"{_SP}:{_SP}(?:null|"?([^",}}\]]*))'


def _json_text(name: str) -> str:
    # A null matches too: the full decode takes a repeated key's first value, null or not.
    return rf'"{name}"{_SP}:{_SP}(?:"([^"]*)"|null)'


# -- logback ----------------------------------------------------------------------------

# No control character: the full path's decoder refuses one in a value.
_WORD = r'[^\s"\\=\x00-\x1f]'
_TEXT_NUMBER = r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?"
_TEXT_KINDS = {
    "str": f"{_WORD}*",
    "user": "[0-9]{1,30}",
    "float": f"{_TEXT_NUMBER}|null|",
    "int": r"-?[0-9]{1,15}|null|",
    "bool": "true|false|null|",
    "money": r"-?[0-9]{1,12}(?:\.[0-9]{1,2})?",
}
_SLOT = r'[^\s/;"\\=\x00-\x1f]'


@functools.cache
def text_decision() -> str:
    """The logback decision line a skim vouches for, whole."""
    fields = EVENTS["decision"]
    rule = f"{_SLOT}+/{_SLOT}*/(?:{_TEXT_NUMBER})?/{_SLOT}*/(?:zero|reduce|hold)"
    pairs = [
        *(f"{n}=(?:{_TEXT_KINDS[k]})" for n, k in fields.items() if k != "rules"),
        # `rules=null` is not null: the full path reads it as a rule with no action.
        f"rules=(?:(?:{rule})(?:;(?:{rule}))*)?",
        "event=decision",
        f"{_not_any(KNOWN, _KEY_CHARS)}={_WORD}*",
    ]
    pair = "(?:" + "|".join(pairs) + ")"
    # A thread without brackets and a logger without `=`: the message's pairs and the
    # trace id are then the first of their kind in the line.
    head = (
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}[.,][0-9]{3} +[A-Za-z]+ +"
        r"\[[^\[\]\s]*\] +\[traceId=[^\]\s]*\] +[^\s=]+ - "
    )
    return rf"{head}{pair}(?: {pair})*$"


def _text_value(name: str) -> str:
    return rf" {name}=([^ ]*)"


def skimmable(keep: pl.Expr | None) -> bool:
    """Whether decisions kept by `keep` can be told apart from skimmed lines."""
    return keep is not None and set(keep.meta.root_names()) <= set(SKIM_COLUMNS)


class Skim(NamedTuple):
    """A block's record candidates, sorted by what the read does with them."""

    # The decisions the read leaves out: SKIMMED.
    left: pl.DataFrame
    # The decisions it keeps, read whole: raw fields as `normalise.type_checked` takes them.
    kept: pl.DataFrame
    # The candidates left for the full path.
    rest: pl.DataFrame


def skim(candidates: pl.DataFrame, keep: pl.Expr, tz: str, host: str) -> Skim:
    """Sort record candidates (line, text, fmt) into the decisions `keep` leaves out, those
    it keeps that can be read whole, and the rest."""
    parts = [
        _skim(group, keep, tz, host, fmt == "json")
        for (fmt,), group in candidates.group_by("fmt", maintain_order=True)
    ]
    left = pl.concat([p[0] for p in parts]) if parts else pl.DataFrame(schema=SKIMMED)
    kept = pl.concat([p[1] for p in parts]) if parts else pl.DataFrame(schema=WHOLE)
    done = pl.concat([left.select("line"), kept.select("line")])
    rest = candidates.join(done, on="line", how="anti", maintain_order="left")
    return Skim(left, kept, rest)


SKIMMED: dict[str, DType] = {
    "line": pl.UInt32,
    "ts": Time,
    "host": pl.String,
    "bureau_batch": pl.String,
    "h1": pl.UInt64,
    "h2": pl.UInt64,
}
# The raw fields of a decision read whole (besides ts, host, bureau_batch and the hashes).
_FIELDS = [n for n in EVENTS["decision"] if n != "bureau_batch"]
_KEPT = "_kept"
# The fields the skim has read already, as raw text.
_READ = ("limit_before", "limit_after")


# A decision read whole, as `skim` returns it.
WHOLE: dict[str, DType] = {
    **SKIMMED,
    **{n: RAW_RULES if n == "rules" else pl.String for n in _FIELDS},
    **dict.fromkeys(["level", "service", "trace_id"], pl.String),
    "credit_score_present": pl.Boolean,
}


def _skim(
    lines: pl.DataFrame, keep: pl.Expr, tz: str, host: str, json: bool
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The decisions among lines of one format that `keep` leaves out, as `skim` returns
    them, and those it keeps that can be read whole."""
    text = pl.col("text")
    if json:
        # A second `inputs` would be read in the wrong object: the full decode takes the first.
        shape = (
            text.str.contains(_JSON_IS_DECISION)
            & text.str.contains(json_decision())
            & (text.str.count_matches('"inputs"', literal=True) <= 1)
        )
        value = _json_value
    else:
        shape = text.str.contains(" event=decision", literal=True) & text.str.contains(
            text_decision()
        )
        value = _text_value
    # The limits are read; user_id only when `keep` reads it, else it need only be there
    # (a decision without one is rejected).
    names = ["limit_before", "limit_after"]
    if "user_id" in keep.meta.root_names():
        names.append("user_id")
    else:
        shape = shape & text.str.contains(_has("user_id") if json else " user_id=")
    # One lazy plan: Polars fuses the steps (a quarter faster than eager, measured).
    shaped = lines.lazy().filter(shape)
    shaped = shaped.with_columns(text.str.extract(value(n)).alias(f"_{n}") for n in names)
    present = pl.all_horizontal(pl.col(f"_{n}").is_not_null() for n in names)
    typed_values = [typed(pl.col(f"_{n}"), SKIM_COLUMNS[n])[0].alias(n) for n in names]
    out = shaped.filter(present).with_columns(typed_values)
    if json:
        stamp = [
            text.str.extract(_json_text("@timestamp")).alias("ts_text"),
            text.str.extract(_json_text("host")).fill_null(pl.lit(host)).alias("host"),
            text.str.extract(_json_text("bureau_batch")).alias("bureau_batch"),
        ]
    else:
        batch = text.str.extract(_text_value("bureau_batch"))
        stamp = [
            text.str.slice(0, 23).alias("ts_text"),
            pl.lit(host).alias("host"),
            logback_value(batch).alias("bureau_batch"),
        ]
    # A time that does not parse leaves the line to the full path, which says why. The
    # logback head's time, as the grammar has it, carries no offset.
    to_utc = utc_time if json else local_time
    out = out.with_columns(*stamp).with_columns(to_utc(pl.col("ts_text"), tz).alias("ts"))
    out = out.filter(pl.col("ts").is_not_null()).with_columns(
        keep.fill_null(False).alias(_KEPT), *hashes()
    )
    vouched = out.drop(names).rename({f"_{n}": n for n in names}).collect()
    left = vouched.filter(~pl.col(_KEPT)).select(list(SKIMMED))
    kept = vouched.filter(_KEPT)
    return left, (_whole_json(kept) if json else _whole_text(kept))


def _whole_json(kept: pl.DataFrame) -> pl.DataFrame:
    """The kept JSON decisions that can be read whole, as raw fields."""
    text = pl.col("text")
    exact = text.str.contains(json_decision(exact=True))
    kinds = EVENTS["decision"]

    def raw(name: str) -> pl.Expr:
        kind = kinds.get(name, "str")
        if name in _READ:
            return pl.col(name)
        if kind == "str":
            pattern = _json_text(name)
        elif kind == "rules":
            pattern = rf'"rules"{_SP}:{_SP}(?:null|(\[[^\]]*\]))'
        else:
            pattern = _json_value(name)
        return text.str.extract(pattern).alias(name)

    return (
        kept.lazy()
        .filter(exact)
        .with_columns(raw(n) for n in [*_FIELDS, "level", "service", "trace_id"])
        .with_columns(
            pl.col("rules").str.json_decode(RAW_RULES),
            json_credit_score_present().alias("credit_score_present"),
        )
        .select(list(WHOLE))
        .collect()
    )


def _whole_text(kept: pl.DataFrame) -> pl.DataFrame:
    """The kept logback decisions as raw fields: every one can be read whole."""
    text = pl.col("text")
    names = [n for n in _FIELDS if n != "rules" and n not in _READ]
    # As the full path reads a message: a value of null or nothing is null.
    fields = {n: logback_value(text.str.extract(_text_value(n))) for n in names}
    trace = text.str.extract(r"\] +\[traceId=([^\]\s]*)\]")
    return (
        kept.lazy()
        .with_columns(
            *(f.alias(n) for n, f in fields.items()),
            text_rules(text.str.extract(_text_value("rules"))).alias("rules"),
            text.str.extract(r"^\S+ \S+ +([A-Za-z]+)").alias("level"),
            pl.lit(None, pl.String).alias("service"),
            pl.when(trace.str.strip_chars() != "").then(trace).alias("trace_id"),
            text.str.contains(" credit_score=", literal=True).alias("credit_score_present"),
        )
        .select(list(WHOLE))
        .collect()
    )
