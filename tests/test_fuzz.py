"""Fuzz: dumps built from the real file kinds and from garbage, for every command.

For each dump: no traceback and no internal error, an exit status of 0, 1 or 2, every
line of every file accounted for, and every file either read or given a finding.
A quick, deterministic slice runs with the suite; `-m slow` runs many more examples.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from limitaudit.cli import app

ENV = {"COLUMNS": "120", "NO_COLOR": "1", "LIMITAUDIT_DUMP": ""}
PARTS = ("records", "continuation", "meta", "blank", "duplicates", "rejected")
USER = "2088102000000001"

# Free text as hostile data writes it: Rich markup, control characters, Chinese, quotes.
nasty = st.lists(
    st.sampled_from([*"ab 额度[]/=\"',;\\{}\t\x1b\x00\r", "[bold]", "[/x]"]), max_size=8
).map("".join)
user_ids = st.sampled_from([USER, "2088102000000002", "²³", "2088１０２", "12a", "", "0"])


def json_record(event: str, minute: int, user: str, text: str, zero: bool) -> str:
    base: dict[str, object] = {
        "@timestamp": f"2026-03-14T10:{minute:02d}:03,481+08:00",
        "level": "INFO",
        "service": "limit-engine",
        "host": "le-01",
        "event": event,
        "user_id": user,
    }
    if event == "decision":
        base |= {
            "change_id": f"c{minute}",
            "score": 712.4,
            "inputs": {"credit_score": 712, "overdue_days": 0, "fraud_flag": False},
            "rules": [{"id": "R_SCORE_CUTOFF", "action": "zero"}] if zero else [],
            "limit_before": 5000.0,
            "limit_after": 0.0 if zero else 5000.0,
            "fallback": False,
        }
    else:
        base |= {"operator": text, "action": "freeze", "ticket": text, "reason": text}
        base |= {"limit_before": 5000.0, "limit_after": 0.0}
    return json.dumps(base, ensure_ascii=False)


@st.composite
def json_log(draw: st.DrawFn) -> bytes:
    lines = []
    for minute in range(draw(st.integers(1, 6))):
        event = draw(st.sampled_from(["decision", "manual_action"]))
        lines.append(json_record(event, minute, draw(user_ids), draw(nasty), draw(st.booleans())))
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["{", "", "garbage", lines[-1], '{"event":1}'])))
    return ("\n".join(lines) + "\n").encode()


@st.composite
def text_log(draw: st.DrawFn) -> bytes:
    lines = ["# service=limit-engine host=le-02"]
    for minute in range(draw(st.integers(1, 4))):
        sep = draw(st.sampled_from([".", ","]))
        lines.append(
            f"2026-03-14 10:{minute:02d}:03{sep}481 INFO  [t-1] [traceId=ab] c.a.Logger - "
            f"event=decision user_id={draw(user_ids)} change_id=t{minute} score=700 "
            "credit_score=700 rules=R_SCORE_CUTOFF/score_cutoff/600/500/zero "
            f'reason="{draw(nasty)}" '
            "limit_before=5000.00 limit_after=0.00 fallback=false"
        )
        if draw(st.booleans()):
            lines.append("\tat com.x.Y.z(Y.java:1)")
    return ("\n".join(lines) + "\n").encode()


LEDGER = ["change_id", "user_id", "changed_at", "limit_before", "limit_after", "source"]


@st.composite
def ledger_csv(draw: st.DrawFn) -> bytes:
    columns = list(LEDGER)
    if draw(st.booleans()):
        columns.remove(draw(st.sampled_from(LEDGER)))  # a ledger missing one column
    rows = [",".join(columns)]
    for i in range(draw(st.integers(0, 5))):
        values = {
            "change_id": f"c{i}",
            "user_id": draw(user_ids),
            "changed_at": f"2026-03-14T02:0{i}:05.000Z",
            "limit_before": "5000.00",
            "limit_after": draw(st.sampled_from(["0.00", "5000.00", "x", ""])),
            "source": "risk_engine",
        }
        rows.append(",".join(values[c] for c in columns))
    return ("\n".join(rows) + "\n").encode()


def damaged(data: bytes, how: str, at: float) -> bytes:
    """`data` compressed (gzip or zstd), then cut or bit-flipped at `at` of its length."""
    packed = gzip.compress(data) if how.startswith("gzip") else zstandard.compress(data)
    where = max(1, int(len(packed) * at))
    if how.endswith("cut"):
        return packed[:where]
    if how.endswith("flip"):
        flipped = bytearray(packed)
        flipped[min(where, len(flipped) - 1)] ^= 0x5A
        return bytes(flipped)
    return packed


contents = st.one_of(json_log(), text_log(), ledger_csv(), st.binary(max_size=200))
special = st.sampled_from(["fifo", "broken-link", "loop", "empty"])
files = st.lists(
    st.one_of(
        st.tuples(st.just("plain"), contents, st.just(0.0)),
        st.tuples(
            st.sampled_from(["gzip", "gzip-cut", "gzip-flip", "zstd", "zstd-cut", "zstd-flip"]),
            contents,
            st.floats(0.05, 0.95),
        ),
        st.tuples(special, st.just(b""), st.just(0.0)),
    ),
    min_size=1,
    max_size=5,
)


def write_dump(root: Path, chosen: list[tuple[str, bytes, float]]) -> list[str]:
    names = []
    for i, (how, data, at) in enumerate(chosen):
        name = f"f{i}.log"
        path = root / name
        if how == "fifo":
            os.mkfifo(path)
        elif how == "broken-link":
            path.symlink_to(root / "nowhere")
        elif how == "loop":
            path.symlink_to(path)
        elif how == "empty":
            path.write_bytes(b"")
        elif how == "plain":
            path.write_bytes(data)
        else:
            path.write_bytes(damaged(data, how, at))
        names.append(name)
    return names


def check(root: Path, names: list[str]) -> None:
    runner = CliRunner()
    results = [
        runner.invoke(app, ["scan", str(root), "--format", "json"], env=ENV),
        runner.invoke(app, ["audit", str(root), "--format", "csv"], env=ENV),
        runner.invoke(app, ["audit", str(root)], env=ENV),
        runner.invoke(app, ["trace", USER, str(root)], env=ENV),
    ]
    for result in results:
        assert result.exit_code in (0, 1, 2), (result.exit_code, result.output)
        assert "Traceback" not in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
        if result.exit_code == 2:
            assert result.stderr.count("\n") == 1, result.stderr
    scan = results[0]
    if scan.exit_code != 0:
        return
    data = json.loads(scan.stdout)
    listed = {f["path"]: f for f in data["files"]}
    assert set(listed) == set(names)
    with_finding = {f["file"] for f in data["findings"]}
    for name, f in listed.items():
        assert f["lines"] == sum(f[k] for k in PARTS), f
        if f["kind"] in ("other", "empty", "unreadable"):
            assert name in with_finding, (name, f["kind"])


def fuzz(chosen: list[tuple[str, bytes, float]]) -> None:
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        check(root, write_dump(root, chosen))
    finally:
        shutil.rmtree(root, ignore_errors=True)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(files)
def test_fuzz_quick_slice(chosen: list[tuple[str, bytes, float]]) -> None:
    fuzz(chosen)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(files)
def test_fuzz_many(chosen: list[tuple[str, bytes, float]]) -> None:
    fuzz(chosen)
