"""A skimmed line is one the full path reads as a decision the read leaves out, with the
same stamp and line hashes: skimming changes the cost of a line, never its verdict."""

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
from limitaudit.model.dump import DEFAULT_TZ
from limitaudit.read import read_dump
from limitaudit.read.lines import ReadOutcome, read_blocks
from limitaudit.read.parse import RECORD, classify
from limitaudit.read.reader import _pre_reason
from limitaudit.read.skim import skim, skimmable
from tests.conftest import ISO_TIME, TEXT_TIME, USER, decision, text_record

HOST = "le-03"
KEEP = CHANGES | (pl.col("limit_after") <= 0)


def _skimmed(path: Path, keep: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The lines skimmed and left out, and those read whole."""
    outcome = ReadOutcome()
    left, kept = [], []
    for block in read_blocks(path, outcome):
        lines = classify(block.with_columns(_pre_reason(outcome)), False)
        done = skim(lines.filter(pl.col("cls") == RECORD), keep, DEFAULT_TZ, HOST)
        left.append(done.left)
        kept.append(done.kept.select("line"))
    return pl.concat(left), pl.concat(kept)


def _check(
    tmp_path: Path, lines: list[str], keep: pl.Expr = KEEP, whole: list[int] | None = None
) -> pl.DataFrame:
    """Skim `lines`, and check every skimmed one against the full path; returns those left
    out. The decisions read whole (at lines `whole`, if given) must be the full path's
    rows, and all else alike."""
    path = tmp_path / HOST / "limit-engine.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    skimmed, read_whole = _skimmed(path, keep)
    skimmed = skimmed.sort("line")
    full = read_dump([path])
    lean = read_dump([path], decisions=keep)
    assert_frame_equal(lean.tables["decision"], full.tables["decision"].filter(keep))
    assert_frame_equal(lean.rejects, full.rejects)
    assert lean.files[0].counts == full.files[0].counts
    assert read_whole["line"].is_in(lean.tables["decision"]["line"].implode()).all()
    if whole is not None:
        assert sorted(read_whole["line"]) == whole
    decisions = full.tables["decision"]
    assert full.stamps is not None
    stamps = full.stamps.collect().with_columns(pl.col(pl.Categorical).cast(pl.String))
    read_as = skimmed.join(
        decisions.select("line", "limit_before", "limit_after", "user_id"), on="line", how="left"
    )
    # The full path read every skimmed line as a decision...
    assert read_as["limit_before"].null_count() == 0, read_as.filter(
        pl.col("limit_before").is_null()
    )
    # ...that the read leaves out...
    assert not read_as.select(keep.fill_null(False).any()).item()
    # ...with the same stamp.
    want = stamps.filter(pl.col("line").is_in(skimmed["line"].implode())).select(
        "line", "ts", "host", pl.col("batch").alias("bureau_batch")
    )
    assert_frame_equal(skimmed.select("line", "ts", "host", "bureau_batch"), want)
    return skimmed


def test_a_plain_decision_that_changes_nothing_is_skimmed(tmp_path: Path) -> None:
    same = {"limit_before": 5000.0, "limit_after": 5000.0}
    lines = [
        decision(**same, inputs={"credit_score": 700, "bureau_batch": "cb-1"}),
        text_record(f"event=decision user_id={USER} limit_before=10.00 limit_after=10.00"),
        decision(limit_before=5000.0, limit_after=0.0),  # kept: it zeroes
        decision(limit_before=5000.0, limit_after=4000.0),  # kept: it changes
    ]
    skimmed = _check(tmp_path, lines, whole=[3, 4])
    assert skimmed["line"].to_list() == [1, 2]
    assert skimmed["bureau_batch"].to_list() == ["cb-1", None]


@pytest.mark.parametrize(
    "line",
    [
        decision(limit_before=10.0, limit_after=10.0, score="abc"),
        decision(limit_before=10.0, limit_after=10.0, inputs={"credit_score": 1.5}),
        decision(limit_before=10.0, limit_after=10.0, rules=[{"id": "R", "action": "nope"}]),
        decision(limit_before="10.001", limit_after="10.001"),
        decision(limit_before=10.0, limit_after=10.0, at="2026-02-30T10:00:00.000+08:00"),
        decision(limit_before=10.0, limit_after=10.0, user_id=None),
        decision(limit_before=10.0, limit_after=10.0, host="le\\u002d03"),
        text_record(f"event=decision user_id={USER} limit_before=10 limit_after=10 score=x"),
        text_record(f'event=decision user_id={USER} limit_before=10 limit_after=10 m="a b"'),
        # Found by the property test: the full decode reads the first inputs alone.
        decision(limit_before=10.0, limit_after=10.0, inputs={"bureau_batch": "cb-2"}).replace(
            '"inputs"', '"inputs":{"credit_score":1},"inputs"'
        ),
    ],
    ids=[
        "score",
        "credit_score",
        "rule",
        "cents",
        "date",
        "user",
        "escape",
        "text",
        "quoted",
        "two-inputs",
    ],
)
def test_what_the_full_path_must_judge_is_not_skimmed(tmp_path: Path, line: str) -> None:
    assert _check(tmp_path, [line]).height == 0


ZEROING = {"limit_before": 5000.0, "limit_after": 0.0}
RULE = {"id": "R_OVERDUE", "param": "overdue_max_days", "threshold": 30, "observed": "104"}


def test_a_kept_decision_is_read_whole_as_the_full_path_reads_it(tmp_path: Path) -> None:
    rules = [{**RULE, "action": "zero"}, {"action": "hold", "id": "R_2", "observed": 1.5}]
    lines = [
        decision(
            **ZEROING,
            change_id="chg-1",
            model_version="credit-v8.2",
            score="712.40",
            fallback=True,
            inputs={"credit_score": 700, "overdue_days": "3", "fraud_flag": "false"},
            rules=rules,
            trace_id="t-1",
            service=None,
            extra={"nested": [1]},  # an object no schema knows: the full path judges it
        ),
        decision(**ZEROING, score=-0.5, inputs=None, rules=None, level="warn"),
        decision(**ZEROING, score=0.10, inputs={"credit_score": None}, model_version=None),
        text_record(
            f"event=decision user_id={USER} change_id=chg-2 score=701.5 credit_score=null "
            "fraud_flag=true fallback= rules=R_1/p/30/104/zero;R_2//1.5//hold "
            "limit_before=10.00 limit_after=0",
            level="warn",
            trace="",
        ),
        text_record(f"event=decision user_id={USER} limit_before=10 limit_after=0 rules="),
    ]
    _check(tmp_path, lines, whole=[2, 3, 4, 5])


@pytest.mark.parametrize(
    "line",
    [
        decision(**ZEROING, model_version="credit\\u002dv8"),
        decision(**ZEROING, level=7),
        decision(**ZEROING, score="N").replace('"N"', "-0"),
        decision(**ZEROING, score=1234567890.1234567),
        decision(**ZEROING, rules=[{**RULE, "observed": "[1]", "action": "zero"}]),
        decision(**ZEROING, inputs={"credit_score": 700}).replace(
            '"inputs"', '"inputs":{"overdue_days":1},"inputs"'
        ),
    ],
    ids=["escape", "number", "negative-zero", "long", "bracket", "two-inputs"],
)
def test_a_kept_decision_the_skim_cannot_read_whole_takes_the_full_path(
    tmp_path: Path, line: str
) -> None:
    _check(tmp_path, [line], whole=[])


@pytest.mark.parametrize(
    "line",
    [
        text_record(f"event=decision user_id={USER} limit_before=10 limit_after=10 m=a\x01b"),
        text_record(f"event=decision user_id={USER} limit_before=10 limit_after=0 m=a\x01b"),
        text_record(
            f"event=decision user_id={USER} limit_before=10 limit_after=10",
            logger="limit_after=0",
        ),
        text_record(f"event=decision user_id={USER} limit_before=10 limit_after=0").replace(
            "[limit-exec-12] [traceId=9f2c1a7b]", "[[traceId=x] [traceId=9f2c1a7b]"
        ),
    ],
    ids=["control-left-out", "control-kept", "logger", "thread"],
)
def test_a_logback_line_the_skim_could_misread_takes_the_full_path(
    tmp_path: Path, line: str
) -> None:
    assert _check(tmp_path, [line], whole=[]).height == 0


def test_a_repeated_key_reads_as_its_first_value(tmp_path: Path) -> None:
    """The full decode takes a key's first value, null or not: so does the skim."""
    line = (
        '{"@timestamp":null,"@timestamp":"2026-03-14T10:12:03.481+08:00",'
        '"host":null,"host":"le-09","event":"decision","user_id":"2088102000000123",'
        '"limit_before":10,"limit_after":10,"limit_after":0,'
        '"inputs":{"bureau_batch":null,"bureau_batch":"cb-1"}}'
    )
    changes = '"limit_after":10,"limit_after":0'
    kept_first = line.replace(changes, '"limit_after":0,"limit_after":10')
    timed = line.replace('"@timestamp":null,', "")
    skimmed = _check(tmp_path, [line, kept_first, timed])
    assert skimmed["line"].to_list() == [3]
    assert skimmed["host"].to_list() == [HOST]
    assert skimmed["bureau_batch"].to_list() == [None]


def test_a_read_that_keeps_a_user_skims_the_others(tmp_path: Path) -> None:
    other = "2088102000000999"
    lines = [
        decision(user_id=USER, limit_before=10.0, limit_after=10.0),
        decision(user_id=int(other), limit_before=10.0, limit_after=10.0),
    ]
    keep = KEEP | (pl.col("user_id") == USER)
    assert skimmable(keep)
    assert _check(tmp_path, lines, keep)["line"].to_list() == [2]


def test_a_filter_on_other_columns_is_not_skimmed() -> None:
    assert not skimmable(pl.col("score") > 1)
    assert not skimmable(None)


# Each field's values: the forms the full path reads, and some it refuses.
MONEY = ["10", 10, 10.5, "10.50", "10.505", "x", None, -3, 0, "1e3", " 10 ", True]
ANY: list[Any] = [None, "", "a", 1, 1.5, "1.5", True, "true", "null", [], {}, {"k": 1}, [1]]
FIELDS: dict[str, list[Any]] = {
    "@timestamp": [ISO_TIME, "2026-03-14T02:12:03.481Z", "2026-03-14 10:12:03", "x", None, 5],
    "host": [HOST, "le-09", "", None, 7, "h\u00e9"],
    "user_id": [USER, int(USER), "12a", "", None, -1, 1.5],
    "score": [700.5, "700", None, "NaN", "x", 1e300, [], -2, -0.0, 0.1, 1234567890.1234567],
    "level": ["INFO", *ANY, 'a"b', "\u00e9"],
    "trace_id": ["t-1", *ANY],
    "fallback": [False, True, "false", "FALSE", 0, "no", None],
    "model_version": ANY,
    "change_id": ANY,
    "extra": ANY,
    "rules": [
        [],
        None,
        [{"id": "R_SCORE_BAND", "param": "p", "threshold": 600, "action": "reduce"}],
        [{"action": "hold", "id": "R", "observed": "5"}],
        [{"id": "R", "threshold": "x", "action": "hold"}],
        [{"id": "R", "observed": "]", "action": "zero"}, {"id": "[", "action": "hold"}],
        [{"id": "R"}],
        ["R"],
        "R/x//1/hold",
    ],
    "inputs": [
        {"credit_score": 700, "overdue_days": 0, "fraud_flag": False, "bureau_batch": "cb-2"},
        {"credit_score": "700", "bureau_batch": None},
        {"credit_score": -1, "fraud_flag": "maybe"},
        {"overdue_days": 2.5},
        {"bureau_batch": 12},
        {"score": 1},
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
    return str(value)


@st.composite
def decision_lines(draw: st.DrawFn) -> str:
    """Mostly the forms the full path reads (the first of each list), some it refuses."""

    def value(options: list[Any]) -> Any:
        return draw(st.sampled_from(options[:2] if draw(st.integers(0, 4)) else options))

    before = value(MONEY)
    after = before if draw(st.booleans()) else value(MONEY)
    fields = {n: value(v) for n, v in FIELDS.items() if draw(st.booleans())}
    fields = {"event": "decision", "limit_before": before, "limit_after": after, **fields}
    names = draw(st.permutations(list(fields)))
    if draw(st.booleans()):
        record = {n: fields[n] for n in names}
        record.setdefault("@timestamp", ISO_TIME)
        separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
        line = json.dumps(record, ensure_ascii=False, separators=separators)
        if draw(st.integers(0, 5)) == 0:  # a second inputs, which the full decode ignores
            line = line.replace('"inputs"', '"inputs":{"credit_score":1},"inputs"', 1)
        return line
    inputs = fields.pop("inputs", None)
    flat = {**fields, **(inputs if isinstance(inputs, dict) else {})}
    for name in ("@timestamp", "level", "trace_id"):
        flat.pop(name, None)
    message = " ".join(f"{n}={_text_value(v)}" for n, v in flat.items())
    logger = draw(st.sampled_from(["c.a.r.limit.DecisionLogger", "limit_after=0"]))
    trace = draw(st.sampled_from(["9f2c1a7b", "", " "]))
    return text_record(message, at=TEXT_TIME, logger=logger, trace=trace)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(decision_lines(), min_size=1, max_size=40))
def test_every_skimmed_line_reads_the_same_in_full(tmp_path: Path, lines: list[str]) -> None:
    # A repeated line is settled after the read, skimmed or not: one of each here.
    _check(tmp_path, list(dict.fromkeys(lines)))
