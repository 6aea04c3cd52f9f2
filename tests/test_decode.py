"""A line's verdict is its own: decoding a block whole gives every line the reading it gets
alone (bad lines are found by exception, a failing batch cut down to them), the checks that
vouch for plain values never pass a value the full checks refuse, and a read that leaves
out the decisions it does not use reads every line as a whole read does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from limitaudit.analysis.match import CHANGES
from limitaudit.model.schema import ORIGIN
from limitaudit.read import decode as decode_module
from limitaudit.read import read_dump
from limitaudit.read.decode import decode, parse_records
from limitaudit.read.normalise import _set_aside, _typing, checked, record_times, typed
from limitaudit.read.parse import TEXT_HEAD, TEXT_LINE, text_parts
from tests.conftest import ISO_TIME, TEXT_TIME, USER, decision, text_record
from tests.test_properties import garbage, recordish

HOST = "le-03"
KEEP = CHANGES | (pl.col("limit_after") <= 0)

# Each field's values: the forms the checks pass, and some they refuse.
MONEY = ["10", 10, 10.5, "10.50", "10.505", "x", None, -3, 0, "1e3", " 10 ", True, 1.5e9, ""]
ANY: list[Any] = [None, "", "a", 1, 1.5, "1.5", True, "true", "null", [], {}, {"k": 1}, [1]]
FIELDS: dict[str, list[Any]] = {
    "@timestamp": [
        ISO_TIME,
        "2026-03-14T02:12:03.481Z",
        "2026-03-14 10:12:03",
        "2026-03-14T10:12:03,481+08:00",
        "2026-03-14T10:12:03.481",
        " 2026-03-14T10:12:03.481+08:00",
        "2026-03-14T10:12:03.481+08",
        "2026-03-14T10:12:03.481z",
        "2026-02-30T10:00:00.000+08:00",
        "x",
        None,
        5,
    ],
    "ts_ms": [1773454323481, "1773454323481", "x", None, 1.5],
    "host": [HOST, "le-09", "", None, 7, "h\u00e9", "le\\u002d03"],
    "user_id": [USER, int(USER), "12a", "", None, -1, 1.5, " 1 ", "\u0663"],
    "score": [700.5, "700", None, "NaN", "x", 1e300, [], -2, -0.0, 0.1, 1234567890.1234567, ""],
    "level": ["INFO", *ANY, 'a"b', "\u00e9"],
    "trace_id": ["t-1", *ANY],
    "fallback": [False, True, "false", "FALSE", 0, 1, "no", None, "", " true"],
    "model_version": ANY,
    "change_id": ANY,
    "extra": ANY,
    "rules": [
        [],
        None,
        [{"id": "R_SCORE_BAND", "param": "p", "threshold": 600, "action": "reduce"}],
        [{"action": "hold", "id": "R", "observed": "5"}],
        [{"id": "R", "threshold": "x", "action": "hold"}],
        [{"id": "R", "threshold": " 6 ", "action": "ZERO "}],
        [{"id": "R", "observed": "]", "action": "zero"}, {"id": "[", "action": "hold"}],
        [{"id": "R"}],
        [{"action": "zero"}],
        ["R"],
        {"id": "R", "action": "zero"},
        "R/x//1/hold",
    ],
    "inputs": [
        {"credit_score": 700, "overdue_days": 0, "fraud_flag": False, "bureau_batch": "cb-2"},
        {"credit_score": "700", "bureau_batch": None},
        {"credit_score": -1, "fraud_flag": "maybe"},
        {"overdue_days": 2.5, "credit_score": 7.0},
        {"bureau_batch": 12},
        {"score": 1},
        [1],
        None,
        "x",
    ],
}


def _text_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ";".join(
            "/".join(str(r.get(f, "")) for f in ("id", "param", "threshold", "observed", "action"))
            if isinstance(r, dict)
            else str(r)
            for r in value
        )
    text = str(value)
    return f'"{text}"' if " " in text or not text else text


@st.composite
def decision_lines(draw: st.DrawFn) -> str:
    """Mostly the forms the checks pass (the first two of each list), some they refuse."""

    def value(options: list[Any]) -> Any:
        return draw(st.sampled_from(options[:2] if draw(st.integers(0, 4)) else options))

    before = value(MONEY)
    after = before if draw(st.booleans()) else value(MONEY)
    fields = {n: value(v) for n, v in FIELDS.items() if draw(st.booleans())}
    fields = {"event": "decision", "limit_before": before, "limit_after": after, **fields}
    names = draw(st.permutations(list(fields)))
    if draw(st.booleans()):
        record = {n: fields[n] for n in names}
        if "ts_ms" not in record:
            record.setdefault("@timestamp", ISO_TIME)
        separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
        line = json.dumps(record, ensure_ascii=False, separators=separators)
        if draw(st.integers(0, 5)) == 0:  # a second inputs, which the decoder ignores
            line = line.replace('"inputs"', '"inputs":{"credit_score":1},"inputs"', 1)
        if draw(st.integers(0, 8)) == 0:  # cut off
            line = line[: draw(st.integers(1, len(line)))]
        return line
    inputs = fields.pop("inputs", None)
    flat = {**fields, **(inputs if isinstance(inputs, dict) else {})}
    for name in ("@timestamp", "ts_ms", "level", "trace_id"):
        flat.pop(name, None)
    message = " ".join(f"{n}={_text_value(v)}" for n, v in flat.items())
    if draw(st.integers(0, 6)) == 0:  # spacing the literal form cannot read
        message = draw(st.sampled_from([" ", "  "])) + message.replace(" ", "  ", 1)
    logger = draw(st.sampled_from(["c.a.r.limit.DecisionLogger", "limit_after=0"]))
    trace = draw(st.sampled_from(["9f2c1a7b", "", " "]))
    at = draw(st.sampled_from([TEXT_TIME, "2026-03-14 10:12:03,481", "2026-03-14 25:12:03.481"]))
    return text_record(message, at=at, logger=logger, trace=trace)


def _other_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False)


any_line = st.one_of(
    decision_lines(),
    decision_lines(),
    recordish.map(_other_line),
    garbage.map(lambda b: b.decode("utf-8", "replace").replace("\n", " ")),
)


def _candidates(lines: list[str]) -> pl.DataFrame:
    """Record candidates as `parse_records` takes them (line, text, fmt)."""
    return pl.DataFrame(
        {
            "line": pl.Series(range(1, len(lines) + 1), dtype=pl.UInt32),
            "text": lines,
            "fmt": ["json" if line.lstrip().startswith("{") else "text" for line in lines],
        }
    )


def _records(found: list[pl.DataFrame]) -> pl.DataFrame:
    if not found:
        return pl.DataFrame(schema={"line": pl.UInt32})
    return pl.concat(found, how="diagonal_relaxed").sort("line")


def _parsed(lines: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    found, bad = parse_records(_candidates(lines))
    return _records(found), bad.sort("line")


def _alone(lines: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Each line parsed by itself, numbered as in the block."""
    found, bad = [], []
    for n, line in enumerate(lines, start=1):
        records, rejects = parse_records(_candidates([line]))
        found += [r.with_columns(pl.lit(n, pl.UInt32).alias("line")) for r in records]
        bad.append(rejects.with_columns(pl.lit(n, pl.UInt32).alias("line")))
    return _records(found), pl.concat(bad).sort("line")


def _same(block: pl.DataFrame, alone: pl.DataFrame) -> None:
    assert_frame_equal(block, alone.select(block.columns), check_dtypes=False)


@settings(max_examples=80, deadline=None)
@given(lines=st.lists(any_line, min_size=1, max_size=30))
def test_a_block_reads_each_line_as_the_line_reads_alone(lines: list[str]) -> None:
    block, block_bad = _parsed(lines)
    alone, alone_bad = _alone(lines)
    assert_frame_equal(block_bad, alone_bad)
    assert sorted(block.columns) == sorted(alone.columns)
    _same(block, alone)


@pytest.mark.parametrize("pieces", [2, 3, 16])
def test_a_failing_batch_is_cut_down_to_its_bad_lines(
    monkeypatch: pytest.MonkeyPatch, pieces: int
) -> None:
    monkeypatch.setattr(decode_module, "PIECES", pieces)
    good = '{"a":"1"}'
    docs = [good] * 40
    for at in (0, 7, 8, 39):
        docs[at] = '{"a":1,}'  # fails its batch: found by cutting the batch
    for at in (3, 21):
        docs[at] = '{"a":'  # cut off: decoded alone from the start
    decoded, failed = decode(pl.Series(docs), pl.Struct({"a": pl.String}))
    assert failed.arg_true().to_list() == [0, 3, 7, 8, 21, 39]
    assert decoded.struct.field("a").to_list() == [None if f else "1" for f in failed]


NESTED = [
    # The event a regex meets first is not the record's own.
    '{"inputs":{"event":"param_change"},"event":"decision","user_id":"1","rules":"x"}',
    '{"inputs":{"event":"param_change"},"event":"decision","user_id":"1",'
    '"limit_before":1,"limit_after":1}',
    '{"x":{"event":"decision"},"event":"param_change","param":"p","new_value":"1","rules":5}',
    '{"event":"decision","event":"feed_batch","feed":"f","batch_id":"b"}',
    '{"event":{"k":1},"user_id":"1"}',
    decision(limit_before=1.0, limit_after=1.0),
    json.dumps({"event": "param_change", "param": "p", "new_value": "1", "inputs": 5}),
]


@pytest.mark.parametrize("first", range(len(NESTED)))
def test_a_line_is_decoded_as_its_own_kind_whatever_comes_first(first: int) -> None:
    lines = [NESTED[first], *NESTED[:first], *NESTED[first + 1 :]]
    block, block_bad = _parsed(lines)
    alone, alone_bad = _alone(lines)
    assert_frame_equal(block_bad, alone_bad)
    _same(block, alone)


def test_the_reasons_of_lines_that_fail_alone() -> None:
    lines = [
        decision(score=700).replace("700", "NaN"),
        '{"event":"decision","user_id":"1","rules":"R/x//1/hold"}',
        '{"event":"decision","user_id":"1","inputs":[1]}',
        '{"event":"decision","user_id":{"x":1}}',
        '{"event":"decision"',
        decision(message="retrying: NaN, later"),  # NaN in a string is a string
        text_record('event=decision user_id=1 note="unterminated'),
        text_record("event=decision user_id=1 a b"),
    ]
    _, bad = _parsed(lines)
    assert bad.rows() == [
        (1, "invalid JSON or not a JSON object"),
        (2, "JSON with a plain value where an object or list belongs"),
        (3, "JSON with a plain value where an object or list belongs"),
        (4, "JSON the decoder rejects (bad types or nesting)"),
        (5, "invalid JSON or not a JSON object"),
        (7, "message is not key=value pairs"),
        (8, "message is not key=value pairs"),
    ]


def _parts_by_captures(frame: pl.DataFrame) -> pl.DataFrame:
    """The logback parts as the pattern's captures give them: what `text_parts` must give."""
    halves = pl.col("text").str.splitn(" - ", 2)
    parts = frame.with_columns(
        halves.struct.field("field_0").str.extract_groups(TEXT_HEAD).alias("p"),
        halves.struct.field("field_1").alias("msg"),
    ).unnest("p")
    fits = pl.col("ts").is_not_null() & pl.col("msg").is_not_null()
    full = parts.filter(~fits).select("line", "text")
    full = full.with_columns(pl.col("text").str.extract_groups(TEXT_LINE).alias("p")).unnest("p")
    parts = pl.concat([parts.filter(fits), full.select(parts.columns)]).sort("line")
    return parts.select("line", "text", "ts", "level", "trace_id", "msg")


head_bits = st.sampled_from(
    [" ", "  ", "\t", "\u3000", "[", "]", " - ", "-", "=", "traceId=", "[traceId=x]", "a", "é"]
)


@st.composite
def logback_lines(draw: st.DrawFn) -> str:
    def bits() -> str:
        return "".join(draw(st.lists(head_bits, max_size=4)))

    at = draw(st.sampled_from([TEXT_TIME, "2026-03-14 10:12:03,481", "2026-03-14 10:12:03"]))
    level = draw(st.sampled_from(["INFO ", "WARN", "error", "", "IN FO"]))
    return (
        f"{at}{draw(st.sampled_from([' ', '  ', '', chr(9)]))}{level}"
        f"{draw(st.sampled_from([' ', '  ', '']))}[{bits()}]{bits()}[traceId={bits()}]"
        f"{draw(st.sampled_from([' ', '  ', '']))}{bits() or 'c.a.Logger'}{bits()} - "
        f"event=decision{bits()}"
    )


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(logback_lines(), min_size=1, max_size=20))
def test_a_logback_head_is_cut_where_the_pattern_puts_its_parts(lines: list[str]) -> None:
    frame = _candidates(lines).select("line", "text")
    got = text_parts(frame).select("line", "text", "ts", "level", "trace_id", "msg")
    assert_frame_equal(got, _parts_by_captures(frame))


# -- the checks: what vouches for a plain value never passes one the checks refuse -------


def _raw_decisions(lines: list[str]) -> pl.DataFrame:
    found, _ = parse_records(_candidates(lines))
    raw = _records([f for f in found if "limit_before" in f.columns and "rules" in f.columns])
    if raw.height == 0:
        return raw
    raw = raw.with_columns(
        pl.lit(0, pl.UInt32).alias("file_id"),
        pl.col("host").fill_null(HOST),
        pl.col("service").fill_null("limit-engine"),
    )
    return record_times(raw, "Asia/Shanghai")


@settings(max_examples=80, deadline=None)
@given(lines=st.lists(decision_lines(), min_size=1, max_size=30))
def test_values_vouched_for_pass_every_check(lines: list[str]) -> None:
    raw = _raw_decisions(lines)
    if raw.height == 0 or "event" not in raw.columns:
        return
    raw = raw.filter(pl.col("event") == "decision")
    _, gates, problem = _typing("decision")
    good, rejects = checked(raw, "decision")
    every_good, every_reject = _set_aside(raw, gates, problem)
    assert_frame_equal(good, every_good)
    assert_frame_equal(rejects, every_reject)


def test_record_times_read_each_form_as_utc_time_does() -> None:
    times = [
        ISO_TIME,
        "2026-03-14T02:12:03.481Z",
        "2026-03-14T10:12:03,481+08:00",
        "2026-03-14T10:12:03.481",
        "2026-03-14 10:12:03.481",
        " 2026-03-14T10:12:03.481+08:00",
        "2026-03-14T10:12:03.481+0800",
        "2026-02-30T10:00:00.000+08:00",
        None,
    ]
    raw = pl.DataFrame(
        {"ts_text": times, "ts_ms": [None] * (len(times) - 1) + ["1773454323481"]},
        schema={"ts_text": pl.String, "ts_ms": pl.String},
    )
    for frame in (raw, raw.slice(4, 1), raw.slice(1, 1)):
        timed = record_times(frame, "Asia/Shanghai")
        alone = pl.concat(
            [record_times(frame.slice(i, 1), "Asia/Shanghai") for i in range(len(frame))]
        )
        assert_frame_equal(timed, alone)
    got = record_times(raw, "Asia/Shanghai")["ts"].to_list()
    assert got[:3] == [got[0]] * 3
    assert got[7] is None
    assert got[8] == got[0]


# -- a read that leaves decisions out reads every line as a whole read does -------------


def _lean_and_whole(tmp_path: Path, lines: list[str], keep: pl.Expr = KEEP) -> None:
    path = tmp_path / HOST / "limit-engine.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    whole = read_dump([path])
    lean = read_dump([path], decisions=keep)
    for event, table in whole.tables.items():
        want = table.filter(keep) if event == "decision" else table
        assert_frame_equal(lean.tables[event], want)
    assert_frame_equal(lean.rejects, whole.rejects)
    assert [f.counts for f in lean.files] == [f.counts for f in whole.files]
    assert whole.stamps is not None and lean.stamps is not None
    assert_frame_equal(
        whole.stamps.collect().sort(list(ORIGIN)), lean.stamps.collect().sort(list(ORIGIN))
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(any_line, min_size=1, max_size=40))
def test_a_lean_read_reads_every_line_as_a_whole_read(tmp_path: Path, lines: list[str]) -> None:
    # A repeated line is settled after the read: one of each here.
    _lean_and_whole(tmp_path, list(dict.fromkeys(lines)))


def test_a_read_that_keeps_a_user_keeps_all_of_theirs(tmp_path: Path) -> None:
    other = "2088102000000999"
    lines = [
        decision(user_id=USER, limit_before=10.0, limit_after=10.0),
        decision(user_id=int(other), limit_before=10.0, limit_after=10.0),
        text_record(f"event=decision user_id={other} limit_before=10 limit_after=10"),
    ]
    _lean_and_whole(tmp_path, lines, KEEP | (pl.col("user_id") == USER))
    path = tmp_path / HOST / "limit-engine.log"
    lean = read_dump([path], decisions=KEEP | (pl.col("user_id") == USER))
    assert lean.tables["decision"]["line"].to_list() == [1]


@pytest.mark.parametrize(
    ("kind", "values", "expected", "problems"),
    [
        (
            "int",
            ["712", "-9.2e18", "9.3e18", "1e30"],
            [712, -9_200_000_000_000_000_000, None, None],
            [None, None, "is out of range", "is out of range"],
        ),
        (
            "money",
            ["50000.07", "1e17", "1e30"],
            [5_000_007, None, None],
            [None, "is out of range", "is out of range"],
        ),
    ],
)
def test_a_number_no_int64_holds_is_out_of_range_not_null_without_a_word(
    kind: str, values: list[str], expected: list[int | None], problems: list[str | None]
) -> None:
    value, problem = typed(pl.col("v"), kind)
    got = pl.DataFrame({"v": values}).select(value.alias("value"), problem.alias("problem"))
    want = pl.DataFrame(
        {"value": expected, "problem": problems}, schema={"value": pl.Int64, "problem": pl.String}
    )
    assert_frame_equal(got, want)
