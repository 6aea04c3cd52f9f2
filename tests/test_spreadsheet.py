"""The audit CSV in a real spreadsheet: LibreOffice reads it back cell for cell.

Formula evaluation is switched on in the import filter, so a cell that could run
as a formula would come back changed. Skipped where LibreOffice is not installed.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from limitaudit.cli import app
from tests.test_cli import dump  # noqa: F401  (the fixture)

SOFFICE = shutil.which("soffice")
# separator, quote, UTF-8, from line 1, no column types, language, quoted fields NOT
# forced to text, no special numbers, save as shown, no formulas out, keep spaces,
# first sheet, EVALUATE FORMULAS: a formula cell would come back as its result.
FILTER = "44,34,76,1,,0,false,false,true,false,false,1,true"


@pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not installed")
def test_libreoffice_reads_the_csv_back_unchanged(dump: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "audit.csv"
    result = CliRunner().invoke(
        app, ["audit", str(dump), "--format", "csv", "--output", str(out), "--fail-on", "none"]
    )
    assert result.exit_code == 0, result.stderr
    converted = tmp_path / "lo"
    subprocess.run(
        [
            str(SOFFICE),
            f"-env:UserInstallation=file://{tmp_path}/profile",
            "--headless",
            f"--infilter=CSV:{FILTER}",
            "--convert-to",
            f"csv:Text - txt - csv (StarCalc):{FILTER}",
            "--outdir",
            str(converted),
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    ours = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    # LibreOffice names the output after the file and its sheet: audit-audit.csv.
    (written,) = converted.glob("audit*.csv")
    theirs = list(csv.reader(io.StringIO(written.read_text(encoding="utf-8"))))
    assert len(theirs) == len(ours)
    for mine, read in zip(ours, theirs, strict=True):
        assert [_cell(c) for c in mine] == [_cell(c) for c in read]
    manual = next(row for row in theirs if "manual" in row)
    assert any("客户投诉" in cell for cell in manual)


def _cell(text: str) -> str | float:
    """A cell as a spreadsheet holds it: numbers by value, text without the guard apostrophe."""
    try:
        return float(text)
    except ValueError:
        return text.removeprefix("'")
