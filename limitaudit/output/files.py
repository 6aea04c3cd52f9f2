"""Result files other than the audit CSV: tables as CSV or JSON lines, written atomically."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from limitaudit.atomic import write_atomic


def write_table(frame: pl.DataFrame, path: Path) -> None:
    """A frame as CSV, or as JSON lines when the name ends in .jsonl or .ndjson."""
    if path.suffix in (".jsonl", ".ndjson"):
        write_atomic(path, lambda fh: fh.write(frame.write_ndjson()))
    else:
        write_atomic(path, lambda fh: fh.write(frame.write_csv()))
