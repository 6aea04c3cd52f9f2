"""The one way limitaudit writes a file: whole or not at all.

A result file (`--output`, `--rejects`) and a store's manifest are written through a
temporary file in the same directory and renamed over the target, so that a reader never
sees half a file, and an interrupted run leaves the previous one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from limitaudit.errors import UsageError


def write_atomic(
    path: Path,
    write: Callable[[TextIO], object],
    encoding: str = "utf-8",
    durable: bool = False,
) -> None:
    """Write through a temporary file beside `path`, then rename it over `path`.

    `durable` also puts the data on disk before the rename (fsync): what a store's
    manifest needs, since it points at data that must be there after a crash.
    """
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"{path}: the directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as fh:
            write(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
