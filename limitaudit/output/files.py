"""Result files other than the audit CSV: tables as CSV or JSON lines, written atomically."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from limitaudit.atomic import write_atomic
from limitaudit.output.render import write_frame_csv


def write_table(frame: pl.DataFrame, path: Path) -> None:
    """A frame as CSV, or as JSON lines when the name ends in .jsonl or .ndjson.

    The CSV is the one a spreadsheet opens (a rejected line starting with `=` would
    otherwise run as a formula: it gets a leading `'`, as the audit CSV's cells do); the
    JSON lines keep every text exactly as read."""
    if path.suffix in (".jsonl", ".ndjson"):
        write_atomic(path, lambda fh: fh.write(frame.write_ndjson()))
    else:
        write_atomic(path, lambda fh: write_frame_csv(frame, fh))
