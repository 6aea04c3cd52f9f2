"""Writing result files: atomically, so a reader never sees half a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import polars as pl

from limitaudit.errors import UsageError


def write_atomic(path: Path, write: Callable[[TextIO], object], encoding: str = "utf-8") -> None:
    """Write through a temporary file in the same directory, then rename over `path`."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"{path}: the directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table(frame: pl.DataFrame, path: Path) -> None:
    """A frame as CSV, or as JSON lines when the name ends in .jsonl or .ndjson."""
    if path.suffix in (".jsonl", ".ndjson"):
        write_atomic(path, lambda fh: fh.write(frame.write_ndjson()))
    else:
        write_atomic(path, lambda fh: fh.write(frame.write_csv()))
