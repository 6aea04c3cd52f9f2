"""Ingest: every format, compression, time form and kind of dirt, each with its accounting."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from limitaudit.errors import DumpError
from limitaudit.model.dump import FileReport, Finding, SourceFile
from limitaudit.model.schema import LEDGER_SCHEMA, Rule, Time, event_schema
from limitaudit.read import lines as lines_module
from limitaudit.read import settle as settle_module
from tests.conftest import (
    ABSENT,
    LEDGER_COLUMNS,
    TEXT_TIME,
    USER,
    UTC_TIME,
    as_bytes,
    assert_counts,
    csv_lines,
    decision,
    gzip_members,
    json_record,
    read,
    rejects_of,
    report,
    text_record,
    write,
    zstd_frames,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
HEADER = "# service=limit-engine host=le-03"
DECISION_TEXT = text_record(
    "event=decision user_id=2088102000000123 change_id=chg-000088123 model_version=credit-v8.2"
    " param_version=pv-412 score=712.4 credit_score=712 overdue_days=0 fraud_flag=false"
    " bureau_batch=cb-20260314-03 rules=R_SCORE_CUTOFF/score_cutoff/6000/712.4/zero"
    " limit_before=50000.00 limit_after=0.00 fallback=false"
)
ERROR_TEXT = text_record(
    "event=engine_error component=score-service error=java.net.SocketTimeoutException"
    ' message="score-service timed out after 800ms" user_id=2088102000000456',
    at="2026-03-14 10:12:04.002",
    level="ERROR",
    trace="77ab01ee",
    logger="c.a.r.limit.ScoreClient",
)
STACK = [
    "java.net.SocketTimeoutException: Read timed out",
    "\tat java.base/java.net.SocketInputStream.socketRead0(Native Method)",
    "Caused by: java.io.IOException: connection reset",
    "\t... 42 more",
]


def utc(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC)


def column(table: pl.DataFrame, name: str) -> list[object]:
    return table[name].to_list()


# -- formats -----------------------------------------------------------------------------


def test_json_decision_is_typed_exactly(dump_dir: Path) -> None:
    line = (
        '{"@timestamp":"2026-03-14T10:12:03.481+08:00","level":"INFO","service":"limit-engine",'
        '"host":"le-07","trace_id":"9f2c1a7b","event":"decision","user_id":"2088102000000123",'
        '"change_id":"chg-000088123","model_version":"credit-v8.2","param_version":"pv-412",'
        '"score":712.4,"inputs":{"credit_score":712,"overdue_days":0,"fraud_flag":false,'
        '"bureau_batch":"cb-20260314-03"},"rules":[{"id":"R_SCORE_CUTOFF","param":"score_cutoff",'
        '"threshold":6000,"observed":712.4,"action":"zero"}],"limit_before":50000.0,'
        '"limit_after":0.0,"fallback":false}'
    )
    write(dump_dir, "le-07/limit-engine.log", [line])
    dump = read(dump_dir)
    expected = pl.DataFrame(
        [
            {
                "file_id": 0,
                "line": 1,
                "ts": UTC_TIME,
                "level": "INFO",
                "service": "limit-engine",
                "host": "le-07",
                "trace_id": "9f2c1a7b",
                "user_id": "2088102000000123",
                "change_id": "chg-000088123",
                "model_version": "credit-v8.2",
                "param_version": "pv-412",
                "score": 712.4,
                "credit_score": 712,
                "overdue_days": 0,
                "fraud_flag": False,
                "bureau_batch": "cb-20260314-03",
                "rules": [
                    {
                        "id": "R_SCORE_CUTOFF",
                        "param": "score_cutoff",
                        "threshold": 6000.0,
                        "observed": "712.4",
                        "action": "zero",
                    }
                ],
                "limit_before": 5_000_000,
                "limit_after": 0,
                "fallback": False,
                "credit_score_present": True,
            }
        ],
        schema=event_schema("decision"),
    )
    assert_frame_equal(dump.tables["decision"], expected)
    assert_counts(report(dump, "le-07/limit-engine.log"), lines=1, records=1)
    assert dump.findings == []


def test_text_decision_matches_its_json_twin(dump_dir: Path) -> None:
    write(dump_dir, "le-03/limit-engine.log", [HEADER, DECISION_TEXT])
    json_line = decision(
        trace_id="9f2c1a7b",
        host="le-03",
        change_id="chg-000088123",
        model_version="credit-v8.2",
        param_version="pv-412",
        score=712.4,
        inputs={
            "credit_score": 712,
            "overdue_days": 0,
            "fraud_flag": False,
            "bureau_batch": "cb-20260314-03",
        },
        rules=[
            {
                "id": "R_SCORE_CUTOFF",
                "param": "score_cutoff",
                "threshold": 6000,
                "observed": "712.4",
                "action": "zero",
            }
        ],
        fallback=False,
    )
    write(dump_dir, "twin/limit-engine.jsonl", [json_line])
    dump = read(dump_dir)
    text, twin = dump.tables["decision"].partition_by("file_id", maintain_order=True)
    assert_frame_equal(text.drop("file_id", "line"), twin.drop("file_id", "line"))
    file = report(dump, "le-03/limit-engine.log")
    assert (file.source.kind, file.service, file.host) == ("text_log", "limit-engine", "le-03")
    assert_counts(file, lines=2, records=1, meta=1)


def test_text_log_without_header_takes_host_from_directory(dump_dir: Path) -> None:
    write(dump_dir, "le-04/limit-engine.log.1", [DECISION_TEXT])
    dump = read(dump_dir)
    file = report(dump, "le-04/limit-engine.log.1")
    assert (file.service, file.host) == ("limit-engine", "le-04")
    table = dump.tables["decision"]
    assert (column(table, "host"), column(table, "service")) == (["le-04"], ["limit-engine"])
    assert_counts(file, lines=1, records=1)


def test_json_log_host_is_the_one_its_records_name(dump_dir: Path) -> None:
    write(dump_dir, "limit-engine.jsonl", [decision(host="le-07")])
    write(dump_dir, "mixed.jsonl", [decision(user_id="1", host="le-01"), decision(host="le-02")])
    dump = read(dump_dir)
    assert report(dump, "limit-engine.jsonl").host == "le-07"
    assert report(dump, "mixed.jsonl").host == "mixed"


def test_json_record_without_host_takes_it_from_directory(dump_dir: Path) -> None:
    write(dump_dir, "le-05/limit-engine.2026-03-14.log", [decision(host=ABSENT, service=ABSENT)])
    dump = read(dump_dir)
    table = dump.tables["decision"]
    assert (column(table, "host"), column(table, "service")) == (["le-05"], ["limit-engine"])


def test_ledger_csv(dump_dir: Path) -> None:
    rows = [
        [
            "chg-1",
            "2088102000000123",
            "2026-03-14T02:12:05.000Z",
            "50000.00",
            "0.00",
            "risk_engine",
        ],
        ["chg-2", "2088102000000123", "2026-03-15T02:00:00Z", "0", "20000.5", "manual"],
    ]
    write(dump_dir, "ledger/limit_history.csv", csv_lines(LEDGER_COLUMNS, rows))
    dump = read(dump_dir)
    expected = pl.DataFrame(
        {
            "file_id": [0, 0],
            "line": [2, 3],
            "change_id": ["chg-1", "chg-2"],
            "user_id": ["2088102000000123"] * 2,
            "changed_at": [utc("2026-03-14T02:12:05"), utc("2026-03-15T02:00:00")],
            "limit_before": [5_000_000, 0],
            "limit_after": [0, 2_000_050],
            "source": ["risk_engine", "manual"],
        },
        schema=LEDGER_SCHEMA,
    )
    assert_frame_equal(dump.ledger, expected)
    assert_counts(report(dump, "ledger/limit_history.csv"), lines=3, records=2, meta=1)


def test_ledger_csv_gz_with_reordered_and_extra_columns(dump_dir: Path) -> None:
    columns = ["source", "limit_after", "region", "changed_at", "user_id", "limit_before"]
    columns.insert(2, "change_id")
    rows = [["risk_engine", "0.00", "chg-1", "east", "2026-03-14T02:12:05Z", "2088", "100.10"]]
    write(dump_dir, "limit_history.csv.gz", csv_lines(columns, rows), compression="gzip")
    dump = read(dump_dir)
    file = report(dump, "limit_history.csv.gz")
    assert (file.source.kind, file.source.compression) == ("ledger_csv", "gzip")
    assert dump.ledger.drop("file_id").row(0) == (
        2,
        "chg-1",
        "2088",
        utc("2026-03-14T02:12:05"),
        10010,
        0,
        "risk_engine",
    )
    assert_counts(file, lines=2, records=1, meta=1)


def test_ledger_csv_quoted_fields_may_hold_commas(dump_dir: Path) -> None:
    lines = [
        '"change_id","user_id","changed_at","limit_before","limit_after","source","note"',
        'chg-1,2088,2026-03-14T02:12:05Z,"1,000.00",0,manual,x',
        'chg-2,2088,2026-03-14T02:13:05Z,100,0,manual,"raised, then ""frozen"""',
        'chg-3,2088,2026-03-14T02:14:05Z,100,0,manual,"cut off, no closing quote',
    ]
    write(dump_dir, "limit_history.csv", lines)
    dump = read(dump_dir)
    assert dump.ledger.select("line", "change_id", "limit_before").rows() == [(3, "chg-2", 10000)]
    assert rejects_of(dump) == [
        ("limit_history.csv", 2, "limit_before '1,000.00' is not an amount"),
        ("limit_history.csv", 4, "malformed CSV quoting"),
    ]
    assert_counts(report(dump, "limit_history.csv"), lines=4, records=1, meta=1, rejected=2)


def test_header_only_csv_has_no_rows(dump_dir: Path) -> None:
    write(dump_dir, "limit_history.csv", [",".join(LEDGER_COLUMNS)])
    dump = read(dump_dir)
    assert dump.ledger.height == 0
    assert_counts(report(dump, "limit_history.csv"), lines=1, meta=1)


def _parquet(changed_at: pa.Array) -> bytes:
    table = pa.table(
        {
            "user_id": pa.array([2088102000000123, 2088102000000124], pa.int64()),
            "change_id": ["chg-1", "chg-2"],
            "changed_at": changed_at,
            "limit_before": [50000.07, 0.0],
            "limit_after": [0.0, 12.34],
            "source": ["risk_engine", "manual"],
            "batch": ["x", "y"],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.mark.parametrize(
    "changed_at",
    [
        pa.array(
            [datetime(2026, 3, 14, 2, 12, 5, 123000), datetime(2026, 3, 14, 3)],
            pa.timestamp("ms", tz="UTC"),
        ),
        pa.array(
            [datetime(2026, 3, 14, 2, 12, 5, 123000), datetime(2026, 3, 14, 3)],
            pa.timestamp("us"),
        ),
        pa.array(
            [
                datetime(2026, 3, 14, 10, 12, 5, 123000, tzinfo=SHANGHAI),
                datetime(2026, 3, 14, 11, tzinfo=SHANGHAI),
            ],
            pa.timestamp("us", tz="Asia/Shanghai"),
        ),
    ],
    ids=["utc", "naive-is-utc", "shanghai-zone"],
)
def test_ledger_parquet(dump_dir: Path, changed_at: pa.Array) -> None:
    write(dump_dir, "limit_history.parquet", _parquet(changed_at))
    dump = read(dump_dir)
    expected = pl.DataFrame(
        {
            "file_id": [0, 0],
            "line": [1, 2],
            "change_id": ["chg-1", "chg-2"],
            "user_id": ["2088102000000123", "2088102000000124"],
            "changed_at": [utc("2026-03-14T02:12:05.123"), utc("2026-03-14T03:00:00")],
            "limit_before": [5_000_007, 0],
            "limit_after": [0, 1234],
            "source": ["risk_engine", "manual"],
        },
        schema=LEDGER_SCHEMA,
    )
    assert_frame_equal(dump.ledger, expected)
    assert_counts(report(dump, "limit_history.parquet"), lines=2, records=2)


def test_unrecognised_files_are_skipped_and_said_so(dump_dir: Path) -> None:
    write(dump_dir, "SHA256SUMS", ["0" * 64 + "  limit-engine.log"])
    write(dump_dir, "le-01/limit-engine.log", [decision()])
    dump = read(dump_dir)
    assert report(dump, "SHA256SUMS").source.kind == "other"
    assert [f.kind for f in dump.findings] == ["skipped"]
    assert dump.findings[0].file == "SHA256SUMS"


def test_log_opening_with_a_long_stack_trace_is_still_a_log(dump_dir: Path) -> None:
    frames = [f"\tat com.example.Boot.step{i}(Boot.java:{i})" for i in range(80)]
    write(dump_dir, "le-03/limit-engine.log", [ERROR_TEXT, STACK[0], *frames, DECISION_TEXT])
    dump = read(dump_dir)
    file = report(dump, "le-03/limit-engine.log")
    assert file.source.kind == "text_log"
    assert_counts(file, lines=83, records=2, continuation=81)


def test_small_log_ending_without_newline_is_still_a_log(dump_dir: Path) -> None:
    write(dump_dir, "le-01/a.log", "\n\n" + decision())
    dump = read(dump_dir)
    assert_counts(report(dump, "le-01/a.log"), lines=3, records=1, blank=2)


# -- compression -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pack"),
    [
        ("limit-engine.log", lambda b: b),
        ("limit-engine.log.gz", gzip_members),
        ("limit-engine.log.gz", lambda b: gzip_members(b[:50], b[50:])),
        ("limit-engine.log.zst", zstd_frames),
        ("limit-engine.log.zst", lambda b: zstd_frames(b[:70], b[70:])),
    ],
    ids=["plain", "gzip", "gzip-multi-member", "zstd", "zstd-multi-frame"],
)
def test_each_compression_reads_every_record(
    dump_dir: Path, name: str, pack: Callable[[bytes], bytes]
) -> None:
    lines = [decision(user_id=str(1000 + i)) for i in range(3)]
    write(dump_dir, f"le-01/{name}", pack(as_bytes(lines)))
    dump = read(dump_dir)
    assert column(dump.tables["decision"], "user_id") == ["1000", "1001", "1002"]
    assert_counts(report(dump, f"le-01/{name}"), lines=3, records=3)
    assert dump.findings == []


def test_truncated_gzip_keeps_complete_lines_and_rejects_the_tail(dump_dir: Path) -> None:
    # Distinct, poorly compressible lines, so the cut loses only the end.
    lines = [
        decision(user_id=str(10**15 + i * 7919), trace_id=f"{i * 2654435761:x}") for i in range(400)
    ]
    whole = gzip_members(as_bytes(lines))
    write(dump_dir, "le-01/limit-engine.log.gz", whole[: len(whole) * 2 // 3])
    dump = read(dump_dir)
    file = report(dump, "le-01/limit-engine.log.gz")
    n = file.counts["lines"]
    assert 100 < n < 400
    assert column(dump.tables["decision"], "line") == list(range(1, n))
    assert_counts(file, lines=n, records=n - 1, rejected=1)
    assert rejects_of(dump) == [
        ("le-01/limit-engine.log.gz", n, "incomplete last line: the file is cut off")
    ]
    assert dump.findings == [
        Finding(
            "truncated",
            "le-01/limit-engine.log.gz",
            "le-01/limit-engine.log.gz: gzip stream ends before its end marker (file cut off);"
            f" read {n} line(s) before the cut",
        )
    ]


def test_compressed_file_cut_before_any_line_is_skipped_not_empty(dump_dir: Path) -> None:
    write(dump_dir, "le-01/limit-engine.log.zst", zstd_frames(as_bytes([decision()]))[:5])
    write(dump_dir, "le-01/limit-engine.log", [decision()])
    dump = read(dump_dir)
    file = report(dump, "le-01/limit-engine.log.zst")
    assert file.source.kind == "other"
    assert [(f.kind, f.file) for f in dump.findings] == [("skipped", "le-01/limit-engine.log.zst")]
    assert "cut off" in dump.findings[0].message


def test_empty_files(dump_dir: Path) -> None:
    write(dump_dir, "le-01/limit-engine.log", b"")
    write(dump_dir, "le-01/limit-engine.log.1.gz", gzip_members(b""))
    write(dump_dir, "le-01/limit-engine.log.2", [decision()])
    dump = read(dump_dir)
    assert [(f.kind, f.file) for f in dump.findings] == [
        ("empty", "le-01/limit-engine.log"),
        ("empty", "le-01/limit-engine.log.1.gz"),
    ]
    assert_counts(report(dump, "le-01/limit-engine.log"))
    assert_counts(report(dump, "le-01/limit-engine.log.2"), lines=1, records=1)


def test_dump_of_only_empty_and_ledger_files_reads(dump_dir: Path) -> None:
    # No log at all: nothing to deduplicate, which must not trip the reader.
    write(dump_dir, "empty.log", b"")
    write(dump_dir, "limit_history.csv", [",".join(LEDGER_COLUMNS)])
    dump = read(dump_dir)
    assert dump.ledger.height == 0
    assert all(t.height == 0 for t in dump.tables.values())


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(DumpError, match="no such file or directory"):
        read(tmp_path / "nope")


# -- time --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "tz"),
    [
        ({"at": "2026-03-14T10:12:03.481+08:00"}, "UTC"),
        ({"at": "2026-03-14T02:12:03.481Z"}, "Asia/Shanghai"),
        ({"at": "2026-03-14T10:12:03.481"}, "Asia/Shanghai"),
        ({"at": "2026-03-13T22:12:03.481"}, "America/New_York"),
        ({"at": ABSENT, "ts_ms": 1773454323481}, "America/New_York"),
        ({"at": ABSENT, "ts_ms": "1773454323481"}, "Asia/Shanghai"),
    ],
    ids=["offset", "z", "naive-shanghai", "naive-new-york", "ts_ms", "ts_ms-string"],
)
def test_json_time_forms(dump_dir: Path, fields: dict[str, object], tz: str) -> None:
    write(dump_dir, "le-01/a.log", [decision(**fields)])
    dump = read(dump_dir, tz=tz)
    assert column(dump.tables["decision"], "ts") == [UTC_TIME]


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        ("Asia/Shanghai", UTC_TIME),
        ("UTC", utc("2026-03-14T10:12:03.481")),
        # New York is on daylight time (UTC-4) from 8 March 2026.
        ("America/New_York", utc("2026-03-14T14:12:03.481")),
    ],
)
def test_text_time_is_in_the_given_zone(dump_dir: Path, tz: str, expected: datetime) -> None:
    write(dump_dir, "le-03/limit-engine.log", [HEADER, DECISION_TEXT])
    dump = read(dump_dir, tz=tz)
    assert column(dump.tables["decision"], "ts") == [expected]
    file = report(dump, "le-03/limit-engine.log")
    assert (file.first, file.last) == (expected, expected)


def test_bad_times_are_rejected_with_reasons(dump_dir: Path) -> None:
    write(
        dump_dir,
        "le-01/a.log",
        [
            decision(at="garbage"),
            decision(at=ABSENT, ts_ms="abc"),
            decision(at=ABSENT),
            decision(at="2026-03-14T10:12:03.481+08:00"),
            # Found by test_properties: past Polars' microseconds, it failed the block.
            decision(at=ABSENT, ts_ms=9.223372036854776e18),
        ],
    )
    dump = read(dump_dir)
    assert rejects_of(dump) == [
        ("le-01/a.log", 1, "@timestamp 'garbage' is not a valid time"),
        ("le-01/a.log", 2, "ts_ms 'abc' is not epoch milliseconds"),
        ("le-01/a.log", 3, "record without @timestamp or ts_ms"),
        ("le-01/a.log", 5, "ts_ms '9223372036854776000' is not epoch milliseconds"),
    ]
    assert_counts(report(dump, "le-01/a.log"), lines=5, records=1, rejected=4)


# -- encodings ---------------------------------------------------------------------------


def test_gbk_text_log_decodes_chinese(dump_dir: Path) -> None:
    manual = text_record(
        "event=manual_action user_id=2088102000000123 operator=wang.fang action=freeze"
        ' ticket=OPS-1187 reason="用户申请冻结 额度" limit_before=50000.00 limit_after=0.00',
        logger="c.a.r.limit.OpsConsole",
    )
    write(dump_dir, "le-old/limit-engine.log", [HEADER, manual], encoding="gbk")
    dump = read(dump_dir)
    file = report(dump, "le-old/limit-engine.log")
    assert file.encoding == "gbk"
    assert column(dump.tables["manual_action"], "reason") == ["用户申请冻结 额度"]
    assert_counts(file, lines=2, records=1, meta=1)
    assert dump.rejects.height == 0


def test_json_manual_action_keeps_its_reason(dump_dir: Path) -> None:
    line = json_record(
        "manual_action",
        user_id=USER,
        operator="wang.fang",
        action="set_limit",
        ticket="OPS-1",
        reason="客户投诉",
        change_id="chg-9",
        limit_before=100,
        limit_after="0.00",
    )
    write(dump_dir, "ops/console.jsonl", [line])
    dump = read(dump_dir)
    expected = pl.DataFrame(
        [
            {
                "file_id": 0,
                "line": 1,
                "ts": UTC_TIME,
                "level": "INFO",
                "service": "limit-engine",
                "host": "le-07",
                "trace_id": None,
                "user_id": USER,
                "operator": "wang.fang",
                "action": "set_limit",
                "ticket": "OPS-1",
                "reason": "客户投诉",
                "change_id": "chg-9",
                "limit_before": 10000,
                "limit_after": 0,
            }
        ],
        schema=event_schema("manual_action"),
    )
    assert_frame_equal(dump.tables["manual_action"], expected)


def test_undecodable_line_is_rejected_and_neighbours_keep_their_text(dump_dir: Path) -> None:
    data = (
        as_bytes([json_record("manual_action", user_id="1", action="freeze", reason="客户投诉")])
        + b'{"event":"x","junk":"\xe7\x94"}\n'
        + as_bytes([json_record("manual_action", user_id="2", action="freeze", reason="逾期")])
    )
    write(dump_dir, "ops/console.jsonl", data)
    dump = read(dump_dir)
    assert column(dump.tables["manual_action"], "reason") == ["客户投诉", "逾期"]
    assert rejects_of(dump) == [
        ("ops/console.jsonl", 2, "undecodable bytes (neither UTF-8 nor GBK)")
    ]
    assert report(dump, "ops/console.jsonl").encoding == "utf-8"


def test_byte_order_mark_does_not_hide_the_header(dump_dir: Path) -> None:
    write(dump_dir, "x/limit-engine.log", "\ufeff" + HEADER + "\n" + DECISION_TEXT + "\n")
    write(dump_dir, "y/limit-engine.jsonl", "\ufeff" + decision(user_id="1") + "\n")
    dump = read(dump_dir)
    assert_counts(report(dump, "x/limit-engine.log"), lines=2, records=1, meta=1)
    assert report(dump, "x/limit-engine.log").host == "le-03"
    assert_counts(report(dump, "y/limit-engine.jsonl"), lines=1, records=1)


# -- stack traces ------------------------------------------------------------------------


def test_stack_trace_belongs_to_the_error_record(dump_dir: Path) -> None:
    write(dump_dir, "le-03/limit-engine.log", [HEADER, DECISION_TEXT, ERROR_TEXT, *STACK])
    dump = read(dump_dir)
    errors = dump.tables["engine_error"]
    assert errors.select("line", "component", "error", "message", "user_id", "stack").rows() == [
        (
            3,
            "score-service",
            "java.net.SocketTimeoutException",
            "score-service timed out after 800ms",
            "2088102000000456",
            "\n".join(STACK),
        )
    ]
    assert column(errors, "ts") == [utc("2026-03-14T02:12:04.002")]
    assert_counts(
        report(dump, "le-03/limit-engine.log"), lines=7, records=2, meta=1, continuation=4
    )


@pytest.mark.parametrize("block_bytes", [64, 300, 1 << 20], ids=["lines", "some", "all"])
def test_stack_trace_spanning_blocks_stays_with_its_record(
    dump_dir: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    """Blocks of a line or so, of a few lines, or the whole file at once."""
    monkeypatch.setattr(lines_module, "RAW_CHUNK", 32)
    monkeypatch.setattr(lines_module, "BLOCK_BYTES", block_bytes)
    write(dump_dir, "le-03/limit-engine.log", [HEADER, ERROR_TEXT, *STACK, DECISION_TEXT])
    dump = read(dump_dir)
    assert column(dump.tables["engine_error"], "stack") == ["\n".join(STACK)]
    assert report(dump, "le-03/limit-engine.log").host == "le-03"
    assert_counts(
        report(dump, "le-03/limit-engine.log"), lines=7, records=2, meta=1, continuation=4
    )


def test_stack_trace_at_the_top_of_a_file_is_rejected(dump_dir: Path) -> None:
    write(dump_dir, "le-03/limit-engine.log", [*STACK[:2], DECISION_TEXT])
    dump = read(dump_dir)
    reason = "stack-trace line with no record above it"
    assert rejects_of(dump) == [
        ("le-03/limit-engine.log", 1, reason),
        ("le-03/limit-engine.log", 2, reason),
    ]
    assert_counts(report(dump, "le-03/limit-engine.log"), lines=3, records=1, rejected=2)


def test_stack_trace_under_a_rejected_record_is_not_given_to_an_earlier_one(
    dump_dir: Path,
) -> None:
    broken = text_record(
        'event=engine_error component=x error=E message="unterminated', level="ERROR"
    )
    write(dump_dir, "le-03/limit-engine.log", [ERROR_TEXT, STACK[0], broken, *STACK[1:]])
    dump = read(dump_dir)
    assert column(dump.tables["engine_error"], "stack") == [STACK[0]]
    under = "stack-trace line under the rejected record at line 3"
    assert rejects_of(dump) == [
        ("le-03/limit-engine.log", 3, "message is not key=value pairs"),
        ("le-03/limit-engine.log", 4, under),
        ("le-03/limit-engine.log", 5, under),
        ("le-03/limit-engine.log", 6, under),
    ]
    assert_counts(
        report(dump, "le-03/limit-engine.log"), lines=6, records=1, continuation=1, rejected=4
    )


# -- dirt --------------------------------------------------------------------------------


def test_crlf_and_blank_lines(dump_dir: Path) -> None:
    lines = [decision(user_id="1"), "", "   ", decision(user_id="2"), ""]
    write(dump_dir, "le-01/a.log", "\r\n".join(lines) + "\r\n")
    dump = read(dump_dir)
    assert column(dump.tables["decision"], "user_id") == ["1", "2"]
    assert column(dump.tables["decision"], "line") == [1, 4]
    assert_counts(report(dump, "le-01/a.log"), lines=5, records=2, blank=3)


@pytest.mark.parametrize("slice_rows", [4_000_000, 1])
def test_exact_duplicates_within_and_across_files(
    dump_dir: Path, slice_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Repeats are looked for a slice of the hashes at a time; one hash a slice is the most.
    monkeypatch.setattr(settle_module, "REPEAT_ROWS", slice_rows)
    one, two, three = (decision(user_id=str(i)) for i in (1, 2, 3))
    heartbeat = json_record("heartbeat")
    write(dump_dir, "le-01/a.log", [one, two, one, heartbeat])
    # CRLF does not make a line different.
    write(dump_dir, "le-01/b.log", "\r\n".join([two, three, heartbeat]) + "\r\n")
    dump = read(dump_dir)
    table = dump.tables["decision"]
    assert table.select("file_id", "line", "user_id").rows() == [
        (0, 1, "1"),
        (0, 2, "2"),
        (1, 2, "3"),
    ]
    assert_counts(report(dump, "le-01/a.log"), lines=4, records=3, duplicates=1, ignored=1)
    assert_counts(report(dump, "le-01/b.log"), lines=3, records=1, duplicates=2)


def test_ledger_repeats(dump_dir: Path) -> None:
    rows = [
        ["chg-1", "2088", "2026-03-14T02:12:05Z", "100", "0", "risk_engine"],
        ["chg-1", "2088", "2026-03-14T02:12:05Z", "100", "0", "risk_engine"],
        ["chg-2", "2088", "2026-03-14T03:00:00Z", "0", "50", "manual"],
    ]
    write(dump_dir, "a/limit_history.csv", csv_lines(LEDGER_COLUMNS, rows))
    # The same change again in another export, once with the same values (a duplicate)
    # and once with other ones (a conflict: the first stays).
    later = [
        ["chg-2", "2088", "2026-03-14T03:00:00.000Z", "0.00", "50.00", "manual"],
        ["chg-1", "2088", "2026-03-14T02:12:05Z", "100", "10", "risk_engine"],
    ]
    write(dump_dir, "b/limit_history.csv", csv_lines(LEDGER_COLUMNS, later))
    dump = read(dump_dir)
    assert dump.ledger.select("file_id", "line", "change_id", "limit_after").rows() == [
        (0, 2, "chg-1", 0),
        (0, 4, "chg-2", 5000),
    ]
    assert_counts(report(dump, "a/limit_history.csv"), lines=4, records=2, meta=1, duplicates=1)
    assert_counts(report(dump, "b/limit_history.csv"), lines=3, meta=1, duplicates=2)
    assert dump.findings == [
        Finding(
            "ledger_conflict",
            "b/limit_history.csv",
            "b/limit_history.csv:3: change_id chg-1 repeats a/limit_history.csv:2 with other"
            " values; the first is kept",
        )
    ]


def test_bad_ledger_rows_are_rejected_with_reasons(dump_dir: Path) -> None:
    rows = [
        ["chg-1", "2088", "2026-03-14T02:12:05Z", "100.005", "0", "risk_engine"],
        ["chg-2", "user-9", "2026-03-14T02:12:05Z", "100", "0", "risk_engine"],
        ["chg-3", "2088", "yesterday", "100", "0", "risk_engine"],
        ["", "2088", "2026-03-14T02:12:05Z", "100", "0", "risk_engine"],
        ["chg-5", "2088", "2026-03-14T02:12:05Z", "100", "0"],
    ]
    write(dump_dir, "limit_history.csv", [*csv_lines(LEDGER_COLUMNS, rows), ""])
    dump = read(dump_dir)
    name = "limit_history.csv"
    assert rejects_of(dump) == [
        (name, 2, "limit_before '100.005' has more than two decimals"),
        (name, 3, "user_id 'user-9' is not a string of digits"),
        (name, 4, "changed_at 'yesterday' is not an ISO 8601 time"),
        (name, 5, "ledger row without change_id"),
        (name, 6, "expected 6 fields, got 5"),
    ]
    assert_counts(report(dump, name), lines=7, meta=1, blank=1, rejected=5)


def test_unknown_events_are_records_counted_as_ignored(dump_dir: Path) -> None:
    write(
        dump_dir, "le-01/a.log", [json_record("heartbeat"), json_record("cache_warm"), decision()]
    )
    write(dump_dir, "le-02/limit-engine.log", [text_record("event=heartbeat uptime=12")])
    dump = read(dump_dir)
    assert_counts(report(dump, "le-01/a.log"), lines=3, records=3, ignored=2)
    assert_counts(report(dump, "le-02/limit-engine.log"), lines=1, records=1, ignored=1)
    assert dump.tables["decision"].height == 1


def test_non_object_and_broken_json_is_rejected(dump_dir: Path) -> None:
    lines = [
        "[1,2]",
        '"x"',
        "42",
        "{",
        '{"event":"decision","score":NaN}',
        decision(score=float("nan")),
        decision(inputs="not an object"),
        decision(),
    ]
    write(dump_dir, "le-01/a.log", lines)
    dump = read(dump_dir)
    not_json = "neither a JSON object nor a logback record"
    invalid = "invalid JSON or not a JSON object"
    assert rejects_of(dump) == [
        ("le-01/a.log", 1, not_json),
        ("le-01/a.log", 2, not_json),
        ("le-01/a.log", 3, not_json),
        ("le-01/a.log", 4, invalid),
        ("le-01/a.log", 5, invalid),
        ("le-01/a.log", 6, invalid),
        ("le-01/a.log", 7, "JSON with a plain value where an object or list belongs"),
    ]
    assert_counts(report(dump, "le-01/a.log"), lines=8, records=1, rejected=7)


def test_ids_as_numbers_and_numbers_as_strings(dump_dir: Path) -> None:
    line = (
        '{"@timestamp":"2026-03-14T10:12:03.481+08:00","event":"decision",'
        '"user_id":2088102000000123,"change_id":88123,"score":"712.4","limit_before":"50000.07",'
        '"limit_after":"0","fallback":"false","inputs":{"credit_score":"712","overdue_days":"3",'
        '"fraud_flag":"true"},"rules":[{"id":"R_FRAUD","threshold":"0.5","action":"ZERO"}]}'
    )
    write(dump_dir, "le-01/a.log", [line])
    dump = read(dump_dir)
    row = dump.tables["decision"].select(
        "user_id",
        "change_id",
        "score",
        "limit_before",
        "limit_after",
        "fallback",
        "credit_score",
        "overdue_days",
        "fraud_flag",
        "rules",
    )
    assert row.row(0) == (
        "2088102000000123",
        "88123",
        712.4,
        5_000_007,
        0,
        False,
        712,
        3,
        True,
        [{"id": "R_FRAUD", "param": None, "threshold": 0.5, "observed": None, "action": "zero"}],
    )


def test_amounts_are_exact_to_the_fen(dump_dir: Path) -> None:
    lines = [
        decision(user_id="1", limit_before=50000.07),
        decision(user_id="2", limit_before=0.1 + 0.2),
        decision(user_id="3", limit_before=1e2, limit_after=-0.0),
        decision(user_id="4", limit_before=1.005),
        decision(user_id="5", limit_before="1,000.00"),
        decision(user_id="6", limit_after="12.345"),
        # No Int64 holds it in fen: it was read as null, with no reason given.
        decision(user_id="7", limit_before=1e30),
    ]
    write(dump_dir, "le-01/a.log", lines)
    dump = read(dump_dir)
    table = dump.tables["decision"]
    assert table.select("user_id", "limit_before", "limit_after").rows() == [
        ("1", 5_000_007, 0),
        ("2", 30, 0),
        ("3", 10_000, 0),
    ]
    assert rejects_of(dump) == [
        ("le-01/a.log", 4, "limit_before '1.005' has more than two decimals"),
        ("le-01/a.log", 5, "limit_before '1,000.00' is not an amount"),
        ("le-01/a.log", 6, "limit_after '12.345' has more than two decimals"),
        ("le-01/a.log", 7, "limit_before '1000000000000000000000000000000' is out of range"),
    ]


def test_credit_score_absent_versus_null(dump_dir: Path) -> None:
    lines = [
        decision(user_id="1", inputs={"overdue_days": 0}),
        decision(user_id="2", inputs={"credit_score": None}),
        decision(user_id="3", inputs={"credit_score": -1}),
        decision(user_id="4"),
    ]
    write(dump_dir, "le-01/a.log", lines)
    write(
        dump_dir,
        "le-02/limit-engine.log",
        [
            text_record("event=decision user_id=5 overdue_days=0 limit_before=1 limit_after=0"),
            text_record("event=decision user_id=6 credit_score=null limit_before=1 limit_after=0"),
        ],
    )
    dump = read(dump_dir)
    table = dump.tables["decision"]
    assert table.select("user_id", "credit_score", "credit_score_present").rows() == [
        ("1", None, False),
        ("2", None, True),
        ("3", -1, True),
        ("4", None, False),
        ("5", None, False),
        ("6", None, True),
    ]


def test_text_rules_and_null_values(dump_dir: Path) -> None:
    message = (
        "event=decision user_id=2088 model_version=null score=null fallback=true"
        " rules=R_FAIL_CLOSED////zero;R_SCORE_BAND/score_band_step/50//reduce;"
        " limit_before=100.00 limit_after=0"
    )
    write(dump_dir, "le-01/limit-engine.log", [text_record(message)])
    dump = read(dump_dir)
    table = dump.tables["decision"]
    assert table.select("model_version", "score", "fallback").row(0) == (None, None, True)
    expected = pl.Series(
        "rules",
        [
            [
                {
                    "id": "R_FAIL_CLOSED",
                    "param": None,
                    "threshold": None,
                    "observed": None,
                    "action": "zero",
                },
                {
                    "id": "R_SCORE_BAND",
                    "param": "score_band_step",
                    "threshold": 50.0,
                    "observed": None,
                    "action": "reduce",
                },
            ]
        ],
        dtype=pl.List(Rule),
    )
    pl.testing.assert_series_equal(table["rules"], expected)


def test_malformed_text_lines_are_rejected_with_reasons(dump_dir: Path) -> None:
    lines = [
        text_record("event=decision user_id=1 limit_before=1 limit_after=0 free words here"),
        f"{TEXT_TIME} INFO broken",
        text_record(""),
        text_record("event=decision user_id=1 limit_before=1"),
        text_record("event=decision user_id=12a limit_before=1 limit_after=0"),
        text_record("event=decision user_id=1 rules=R_X/p/abc//zero limit_before=1 limit_after=0"),
        text_record("event=decision user_id=1 rules=R_X/p/1/2/ limit_before=1 limit_after=0"),
    ]
    write(dump_dir, "le-01/limit-engine.log", lines)
    dump = read(dump_dir)
    name = "le-01/limit-engine.log"
    bad_rule = "has no id, an unknown action or a non-numeric threshold"
    assert rejects_of(dump) == [
        (name, 1, "message is not key=value pairs"),
        (name, 2, "logback line that does not follow the pattern"),
        (name, 3, "record without event"),
        (name, 4, "decision without limit_after"),
        (name, 5, "user_id '12a' is not a string of digits"),
        (name, 6, f"rules 'R_X/p/abc//zero' {bad_rule}"),
        (name, 7, f"rules 'R_X/p/1/2/' {bad_rule}"),
    ]
    assert_counts(report(dump, name), lines=7, rejected=7)


def test_rejects_keep_the_line_text(dump_dir: Path) -> None:
    write(dump_dir, "le-01/a.log", [decision(), "not a record"])
    dump = read(dump_dir)
    expected = pl.DataFrame(
        {
            "file_id": [0],
            "line": [2],
            "reason": ["neither a JSON object nor a logback record"],
            "text": ["not a record"],
        },
        schema={"file_id": pl.UInt32, "line": pl.UInt32, "reason": pl.String, "text": pl.String},
    )
    assert_frame_equal(dump.rejects, expected)


def test_every_event_kind_lands_in_its_table(dump_dir: Path) -> None:
    lines = [
        decision(),
        json_record(
            "param_change",
            param="score_cutoff",
            old_value=600,
            new_value="650",
            param_version="pv-413",
            operator="zhang.wei",
            release_id="rel-7",
        ),
        json_record(
            "model_deploy",
            model_version="credit-v8.3",
            previous_version="credit-v8.2",
            traffic_pct="10",
            release_id="rel-8",
            operator="li.na",
        ),
        json_record(
            "feed_batch",
            feed="credit_bureau",
            batch_id="cb-1",
            records="1000",
            null_records=12,
            status="partial",
        ),
        json_record("manual_action", user_id=USER, action="freeze"),
        json_record("engine_error", component="score-service", error="E", message="m"),
        json_record("user_notice", user_id=USER, channel="sms", template="LIMIT_DECREASE"),
    ]
    write(dump_dir, "le-01/a.log", lines)
    dump = read(dump_dir)
    heights = {name: t.height for name, t in dump.tables.items()}
    assert heights == {
        "decision": 1,
        "param_change": 1,
        "model_deploy": 1,
        "feed_batch": 1,
        "manual_action": 1,
        "engine_error": 1,
        "user_notice": 1,
        "ledger": 0,
    }
    for name, table in dump.tables.items():
        assert table.schema == (LEDGER_SCHEMA if name == "ledger" else event_schema(name))
    assert dump.tables["param_change"].select("old_value", "new_value").row(0) == ("600", "650")
    assert dump.tables["model_deploy"]["traffic_pct"].to_list() == [10.0]
    assert dump.tables["feed_batch"].select("records", "null_records").row(0) == (1000, 12)
    assert dump.tables["decision"]["ts"].dtype == Time


def test_file_time_range_covers_its_records(dump_dir: Path) -> None:
    write(
        dump_dir,
        "le-01/a.log",
        [
            decision(user_id="1", at="2026-03-14T10:12:05.000+08:00"),
            decision(user_id="2", at="2026-03-14T10:12:03.481+08:00"),
        ],
    )
    file = report(read(dump_dir), "le-01/a.log")
    assert (file.first, file.last) == (UTC_TIME, utc("2026-03-14T02:12:05"))


def test_globs_and_file_lists(dump_dir: Path) -> None:
    write(dump_dir, "le-01/a.log", [decision(user_id="1")])
    write(dump_dir, "le-02/a.log", [decision(user_id="2")])
    write(dump_dir, "notes.txt", ["hello"])
    dump = read([dump_dir / "le-01" / "a.log", Path(f"{dump_dir}/le-0*/*.log")])
    assert dump.tables["decision"]["user_id"].sort().to_list() == ["1", "2"]
    assert len(dump.files) == 2
    assert [f.source.kind for f in dump.files] == ["json_log", "json_log"]


def test_an_object_where_a_string_belongs_is_rejected_alone(dump_dir: Path) -> None:
    bad = decision().replace('"user_id":"2088102000000123"', '"user_id":{"id":1}')
    assert bad != decision()
    lines = [decision(), bad, decision(change_id="chg-2")]
    write(dump_dir, "le-01/a.log", lines)
    dump = read(dump_dir)
    assert rejects_of(dump) == [
        ("le-01/a.log", 2, "JSON the decoder rejects (bad types or nesting)")
    ]
    assert_counts(report(dump, "le-01/a.log"), lines=3, records=2, rejected=1)


@pytest.mark.parametrize("shuffled", [False, True])
def test_the_first_ledger_row_of_a_change_stays_in_any_order_given(shuffled: bool) -> None:
    """Readers hand ledger rows over in (file, line) order, and _dedup_ledger skips its
    sort then; rows in another order are sorted first, and the answer is the same."""
    t = datetime(2026, 3, 14, tzinfo=UTC)
    rows = [
        (0, 2, "c2", "u2", t, 100, 0, "risk_engine"),
        (0, 9, "c1", "u1", t, 500, 0, "risk_engine"),
        (1, 5, "c1", "u1", t, 500, 100, "manual"),  # the same change_id, other values
    ]
    given = rows[::-1] if shuffled else rows
    ledger = pl.DataFrame(given, schema=LEDGER_SCHEMA, orient="row")
    files = [
        FileReport(SourceFile(Path(n), n, "ledger_csv", "none", 1)) for n in ("a.csv", "b.csv")
    ]
    findings: list[Finding] = []
    kept, dups = settle_module._dedup_ledger(ledger, files, findings)
    assert_frame_equal(kept, pl.DataFrame(rows[:2], schema=LEDGER_SCHEMA, orient="row"))
    assert_frame_equal(dups, pl.DataFrame(rows[2:], schema=LEDGER_SCHEMA, orient="row"))
    assert [f.message for f in findings] == [
        "b.csv:5: change_id c1 repeats a.csv:9 with other values; the first is kept"
    ]
