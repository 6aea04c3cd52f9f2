"""The CLI as a user runs it: exact output (golden files), exit codes, options.

Set UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change.
"""

from __future__ import annotations

import csv
import io
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from limitaudit import api
from limitaudit.cli import app
from limitaudit.commands.audit import audit
from limitaudit.model.audit import CAUSES, FINDING_KINDS, AuditOptions
from limitaudit.output import render
from limitaudit.read import read_dump
from limitaudit.status import ExitStatus
from tests.builders import (
    U1,
    U2,
    U3,
    decision,
    engine_error,
    feed_batch,
    ledger_row,
    manual,
    model_deploy,
    notice,
    param_change,
    rule,
    write_dump,
)

GOLDEN = Path(__file__).parent / "golden"
ENV = {"COLUMNS": "160", "NO_COLOR": "1", "LIMITAUDIT_DUMP": ""}


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    """One zeroing per cause, and a little dirt."""
    u4, u5, u6, u7 = "2088100000000004", "2088100000000005", "2088100000000006", "2088100000000007"
    records = [
        param_change(10, "score_cutoff", "600", "6000", "pv-2", "rel-bad"),
        param_change(50, "score_cutoff", "6000", "600", "pv-3", "rel-fix"),
        model_deploy(5, "credit-v8.3", "credit-v8.2", 100, "rel-m"),
        model_deploy(45, "credit-v8.2", "credit-v8.3", 100, "rel-m-back"),
        feed_batch(1, "cb-01", status="partial", nulls=12),
        decision(
            U1,
            20,
            50000,
            0,
            [rule("R_SCORE_CUTOFF", "score_cutoff", 6000, 712.4)],
            change_id="c1",
            pv="pv-2",
            score=712.4,
        ),
        decision(
            U2,
            21,
            30000,
            0,
            [rule("R_NO_SCORE")],
            change_id="c2",
            score=None,
            credit_score=None,
            batch="cb-01",
        ),
        engine_error(22, "t-1"),
        decision(
            U3,
            22,
            8000,
            0,
            [rule("R_FAIL_CLOSED")],
            change_id="c3",
            fallback=True,
            trace="t-1",
            score=None,
        ),
        decision(
            u4,
            23,
            20000,
            0,
            [rule("R_SCORE_CUTOFF", "score_cutoff", 600, 540)],
            change_id="c4",
            model="credit-v8.3",
            score=540,
        ),
        decision(
            u5,
            24,
            15000,
            0,
            [rule("R_OVERDUE", "overdue_max_days", 30, 45)],
            change_id="c5",
            overdue=45,
        ),
        manual(25, u6, "OPS-1", 9000, 0, reason='=HYPERLINK("x") 客户投诉', change_id="c6"),
        notice(21, U1),
        decision(u7, 90, 1000, 1000, []),
    ]
    ledger = [
        ledger_row("c1", U1, 20.05, 50000, 0),
        ledger_row("c2", U2, 21.05, 30000, 0),
        ledger_row("c3", U3, 22.05, 8000, 0),
        ledger_row("c4", u4, 23.05, 20000, 0),
        ledger_row("c5", u5, 24.05, 15000, 0),
        ledger_row("c6", u6, 25.05, 9000, 0, "manual"),
        ledger_row("c7", u7, 26, 1000, 0),
        ledger_row("c8", U1, 70, 0, 50000, "repayment"),
        ledger_row("c9", U2, 75, 0, 10000, "campaign"),
    ]
    root = write_dump(tmp_path / "dump", records, ledger)
    (root / "README.txt").write_text("copied off the hosts\n")
    return root


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env={**ENV, **(env or {})})


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_audit_csv_matches_golden_and_exits_1_on_unexplained(dump: Path) -> None:
    result = invoke("audit", str(dump), "--format", "csv")
    assert result.exit_code == ExitStatus.FINDINGS
    assert result.stderr == (
        "skipped: 1 file(s), README.txt (`limitaudit scan` says why)\nfailing: 1 unexplained\n"
    )
    golden("audit.csv", result.stdout)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0])[:8] == [
        "user_id",
        "zeroed_at",
        "limit_before",
        "cause",
        "cause_ref",
        "recovery",
        "restored_at",
        "restored_limit",
    ]
    causes = {r["cause"] for r in rows}
    assert causes == {
        "parameter_error",
        "data_anomaly",
        "system_error",
        "model_regression",
        "risk_policy",
        "manual",
        "unexplained",
    }
    # Written a few rows at a time, it is the same text, with one header.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render, "CSV_ROWS", 3)
        assert invoke("audit", str(dump), "--format", "csv").stdout == result.stdout


def test_audit_json_and_ndjson_match_golden(dump: Path) -> None:
    result = invoke("audit", str(dump), "--format", "json", "--fail-on", "none")
    assert result.exit_code == ExitStatus.OK
    data = json.loads(result.stdout)
    data["findings"] = [f for f in data["findings"] if f["kind"] != "skipped"]
    golden("audit.json", json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    nd = invoke("audit", str(dump), "--format", "ndjson", "--fail-on", "none")
    lines = [json.loads(x) for x in nd.stdout.splitlines()]
    assert lines == data["zeroings"]
    # Streamed a few rows at a time (never the whole text at once), it is the same text.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render, "CSV_ROWS", 3)
        again = invoke("audit", str(dump), "--format", "ndjson", "--fail-on", "none")
        assert again.stdout == nd.stdout


def test_audit_table_matches_golden(dump: Path) -> None:
    result = invoke("audit", str(dump), "--fail-on", "none")
    assert result.exit_code == ExitStatus.OK
    golden("audit_table.txt", result.stdout)


def test_trace_table_and_json_match_golden(dump: Path) -> None:
    result = invoke("trace", U1, str(dump))
    assert result.exit_code == ExitStatus.OK, result.stderr
    golden("trace_table.txt", result.stdout)
    data = json.loads(invoke("trace", U1, str(dump), "--format", "json").stdout)
    golden("trace.json", json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    assert data["zeroings"][0]["cause"] == "parameter_error"


def test_csv_is_spreadsheet_safe_and_keeps_chinese(dump: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.csv"
    result = invoke("audit", str(dump), "--format", "csv", "--bom", "--output", str(out))
    assert result.exit_code == ExitStatus.FINDINGS
    assert result.stdout == ""
    raw = out.read_bytes()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    manual_row = next(r for r in rows if r["cause"] == "manual")
    assert "客户投诉" in manual_row["evidence"]
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value


def test_csv_is_the_same_through_bytes_or_text(dump: Path) -> None:
    """write_audit_csv writes a UTF-8 stream's bytes directly, others through the text."""
    result = audit(read_dump([dump]), AuditOptions())
    streams: dict[str, bytes] = {}
    for name, encoding in (("utf-8", "utf-8"), ("gb18030", "gb18030")):
        raw = io.BytesIO()
        text = io.TextIOWrapper(raw, encoding=encoding, newline="")
        render.write_audit_csv(result, text, bom=True)
        text.flush()
        streams[name] = raw.getvalue()
    plain = io.StringIO()
    render.write_audit_csv(result, plain, bom=True)
    assert render._utf8_bytes(io.TextIOWrapper(io.BytesIO(), encoding="UTF8")) is not None
    assert render._utf8_bytes(plain) is None
    assert streams["utf-8"] == plain.getvalue().encode("utf-8")
    assert streams["gb18030"] == plain.getvalue().encode("gb18030")
    assert "客户投诉".encode() in streams["utf-8"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["audit", "/no/such/dump"], "/no/such/dump: no such file or directory"),
        (["audit", "{dump}", "--format", "xml"], "--format xml: choose table, csv, json or ndjson"),
        (["audit", "{dump}", "--fail-on", "bogus"], "--fail-on: unknown bogus"),
        (["audit", "{dump}", "--tz", "Mars/Base"], "--tz Mars/Base: not a known time zone"),
        (["audit", "{dump}", "--bom"], "--bom goes with --format csv"),
        (["trace", "2088100000000009", "{dump}"], "nearest ids in the dump: 2088100000000007"),
        (["trace", "abc", "{dump}"], "abc: a user_id is a string of digits"),
        (["trace", "²³", "{dump}"], "²³: a user_id is a string of digits"),
        (["audit", "{dump}", "--below", "nan"], "--below nan: not a finite number"),
        (["audit", "{dump}", "--below", "inf"], "--below inf: not a finite number"),
        (["audit", "{dump}", "--below", "1e400"], "--below inf: not a finite number"),
        (["audit", "{dump}", "--tolerance", "nan"], "--tolerance nan: not a finite number"),
        (["trace", U1, "{dump}", "--below", "-1"], "--below must be 0 or more"),
        (["audit"], "no dump given"),
    ],
)
def test_usage_errors_exit_2_with_one_line(dump: Path, args: list[str], fragment: str) -> None:
    result = invoke(*[a.replace("{dump}", str(dump)) for a in args])
    assert result.exit_code == ExitStatus.ERROR
    assert result.stdout == ""
    assert fragment in result.stderr
    assert result.stderr.count("\n") == 1


def test_fail_on_takes_causes_and_findings(dump: Path) -> None:
    assert invoke("audit", str(dump), "--fail-on", "none").exit_code == ExitStatus.OK
    assert invoke("audit", str(dump), "--fail-on", "manual").exit_code == ExitStatus.FINDINGS
    skipped = invoke("audit", str(dump), "--fail-on", "skipped")
    assert skipped.exit_code == ExitStatus.FINDINGS
    assert skipped.stderr.endswith("\nfailing: 1 skipped\n")
    assert invoke("audit", str(dump), "--fail-on", "chain_break").exit_code == ExitStatus.OK


def test_dump_from_environment_and_config_file(dump: Path, tmp_path: Path) -> None:
    by_env = invoke("trace", U1, env={"LIMITAUDIT_DUMP": str(dump)})
    assert by_env.exit_code == ExitStatus.OK
    (tmp_path / "limitaudit.toml").write_text(f'dump = "{dump.name}"\n')
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        by_file = invoke("trace", U1)
    finally:
        os.chdir(cwd)
    assert by_file.exit_code == ExitStatus.OK
    assert by_file.stdout == by_env.stdout


def test_empty_dump_exits_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = invoke("audit", str(tmp_path / "empty"))
    assert result.exit_code == ExitStatus.ERROR
    assert "the dump holds no files" in result.stderr


def test_dump_with_nothing_readable_exits_2(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "README.txt").write_text("nothing here\n")
    for command in (["audit"], ["trace", U1]):
        result = invoke(*command, str(tmp_path / "d"))
        assert result.exit_code == ExitStatus.ERROR
        assert result.stderr == (
            "limitaudit: nothing in the dump is a risk-engine log or a ledger export\n"
        )


def test_a_bug_exits_70_with_one_line_asking_for_a_report(
    dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(api, "audit", broken)
    result = invoke("audit", str(dump))
    assert result.exit_code == ExitStatus.INTERNAL
    assert int(ExitStatus.INTERNAL) == 70
    assert result.stdout == ""
    assert result.stderr == (
        "limitaudit: internal error, please report it with the command that led to it: "
        "RuntimeError: boom\n"
    )


def test_ctrl_c_exits_130_quietly(dump: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "scan", interrupted)
    result = invoke("scan", str(dump))
    assert result.exit_code == ExitStatus.INTERRUPTED
    assert int(ExitStatus.INTERRUPTED) == 130
    assert (result.stdout, result.stderr) == ("", "limitaudit: interrupted\n")


def test_audit_says_on_stderr_what_it_could_not_read() -> None:
    sample = Path(__file__).resolve().parent.parent / "sample_logs"
    result = invoke("audit", str(sample), "--format", "csv")
    assert result.stderr.splitlines() == [
        "skipped: 2 file(s), README.txt, SHA256SUMS (`limitaudit scan` says why)",
        "empty: 1 file(s), ops-01/ops-console.log.1",
        "truncated: 1 file(s), le-04/limit-engine.2026-03-14.log.gz (records stop at "
        "2026-03-14T05:24:49.411Z); 13 unexplained zeroing(s) come after that",
        "rejected: 19 line(s) in 13 file(s), le-01/limit-engine.log, le-01/limit-engine.log.1, "
        "le-03/limit-engine.log and 10 more (`limitaudit scan --rejects FILE` lists them); "
        "1 unexplained zeroing(s) are of users those lines name",
        "failing: 13 unexplained",
    ]


def test_junit_report_validates_and_fails_where_fail_on_trips(dump: Path, tmp_path: Path) -> None:
    xmlschema = pytest.importorskip("xmlschema")
    report, summary = tmp_path / "r.xml", tmp_path / "s.json"
    result = invoke("audit", str(dump), "--junit", str(report), "--summary", str(summary))
    assert result.exit_code == ExitStatus.FINDINGS
    schema = xmlschema.XMLSchema(Path(__file__).parent / "schemas" / "junit.xsd")
    schema.validate(report)
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "15" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert list(cases) == [*CAUSES, *FINDING_KINDS]
    failure = cases["unexplained"].find("failure")
    assert failure is not None and failure.get("message") == "1 zeroing(s)"
    assert failure.text is not None and failure.text.startswith("2088100000000007 ")
    assert "no decision or manual action" in failure.text
    assert cases["manual"].find("failure") is None
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert (data["exit_status"], data["failing"], data["zeroings"]) == (1, {"unexplained": 1}, 7)
    assert data["unread"] == [
        {"kind": "skipped", "files": ["README.txt"], "lines": 0, "unexplained_zeroings": None}
    ]
