"""The library without the command line: `import limitaudit` and its four functions."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import limitaudit
from limitaudit.commands.trace import UnknownUser
from limitaudit.errors import DumpError, UsageError
from limitaudit.model.audit import CONTRACT_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_logs"


def test_the_readme_example_prints_what_its_comments_say() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## As a library") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    lines = code.group(1).splitlines()
    # Each print's expected output is the comment beside it or, for a long one, on the line
    # after it.
    expected = []
    for i, line in enumerate(lines):
        if line.startswith("print("):
            comment = line.partition("#")[2] or lines[i + 1].lstrip("# ")
            expected.append(comment.strip())
    out = io.StringIO()
    with contextlib.chdir(ROOT), contextlib.redirect_stdout(out):
        exec(compile(code.group(1), "README.md", "exec"), {})
    assert out.getvalue().splitlines() == expected


def test_importing_limitaudit_imports_no_polars() -> None:
    # The CLI sets Polars' allocator before Polars comes in (launch.py): the package and its
    # API must not bring it in on import.
    probe = "import sys, limitaudit; print('polars' in sys.modules, callable(limitaudit.audit))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]


def test_audit_gives_the_sample_answers_and_accepts_paths_or_lists() -> None:
    answers = ROOT / "tests" / "sample_answers" / "audit.csv"
    want = pl.read_csv(answers, infer_schema=False).select(CONTRACT_COLUMNS)
    got = limitaudit.audit(SAMPLE).zeroings.select(CONTRACT_COLUMNS)
    assert_frame_equal(got.fill_null(""), want.fill_null(""))
    as_list = limitaudit.audit([str(SAMPLE / "*" / "*"), str(SAMPLE / "ledger")])
    assert as_list.zeroings.height == got.height


def test_trace_takes_an_int_id_and_scan_counts_every_line() -> None:
    one = limitaudit.trace(2088102000000161, SAMPLE)
    assert one.user_id == "2088102000000161"
    assert one.zeroings["cause"].to_list() == ["parameter_error"]
    totals = limitaudit.scan(SAMPLE).totals
    parts = ("records", "continuation", "meta", "blank", "duplicates", "rejected")
    assert totals["lines"] == sum(totals[k] for k in parts)


def test_a_store_answers_as_its_dump(tmp_path: Path) -> None:
    store = tmp_path / "s.store"
    assert limitaudit.ingest(SAMPLE, store).action == "created"
    assert_frame_equal(limitaudit.audit(store).zeroings, limitaudit.audit(SAMPLE).zeroings)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: limitaudit.audit(SAMPLE, below=float("nan")), UsageError, "not a finite"),
        (lambda: limitaudit.audit(SAMPLE, tolerance=0), UsageError, "more than 0"),
        (lambda: limitaudit.scan(SAMPLE, tz="Mars/Base"), UsageError, "not a known time zone"),
        (lambda: limitaudit.trace("²³", SAMPLE), UsageError, "string of digits"),
        (lambda: limitaudit.trace("2088102000000999", SAMPLE), UnknownUser, "nearest ids"),
        (lambda: limitaudit.audit("/no/such/dump"), DumpError, "no such file"),
    ],
)
def test_errors_are_domain_errors_with_a_message(call, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call()


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'audits'"):
        limitaudit.audits  # noqa: B018
