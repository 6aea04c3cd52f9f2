"""The one way limitaudit writes a file: whole or not at all.

A result file (`--output`, `--rejects`) and a store's manifest are written through a
temporary file in the same directory and renamed over the target, so that a reader never
sees half a file, and an interrupted run leaves the previous one.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from glob import escape as glob_escape
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
    check_writable(path)
    directory = path.parent if str(path.parent) else Path(".")
    sweep(directory, f".{path.name}.")
    fd, tmp = tempfile.mkstemp(prefix=owned(f".{path.name}."), dir=directory)
    try:
        # mkstemp makes the file 0600: give it the target's mode, or else what the umask
        # leaves of 0666, as cp and editors do.
        os.chmod(fd, _mode_for(path))
        with os.fdopen(fd, "w", encoding=encoding, newline="") as fh:
            write(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(path: Path, option: str | None = None) -> None:
    """That `path` can take a file: its directory exists and it is not itself a directory.
    Checked before a long read, so that a mistyped path is said at once."""
    name = f"{option} {path}" if option else str(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"{name}: the directory {directory} does not exist")
    if path.is_dir():
        raise UsageError(f"{name}: is a directory; name a file")


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    # Linux says it without changing it; os.umask can only read it by setting it, which
    # for a moment would hold for the reader threads' files too.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


# -- what a killed run leaves --------------------------------------------------------
#
# A run's temporary files and folders are named `PREFIX<pid>-...` after the process that
# owns them. A run killed outright (SIGKILL, the OOM killer) cannot remove its own; the
# next run that looks in the same place removes those whose owner no longer runs.


def owned(prefix: str) -> str:
    """The name prefix of this process's temporary files: `prefix`, its pid and a dash."""
    return f"{prefix}{os.getpid()}-"


def sweep(directory: Path, prefix: str) -> list[Path]:
    """Remove the entries of `directory` named `owned(prefix)` by a process that has ended;
    returns them."""
    gone: list[Path] = []
    try:
        entries = list(directory.glob(f"{glob_escape(prefix)}*"))
    except OSError:
        return gone
    for entry in entries:
        pid = _owner(entry.name, prefix)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        gone.append(entry)
    return gone


def _owner(name: str, prefix: str) -> int | None:
    pid, dash, _ = name[len(prefix) :].partition("-")
    return int(pid) if dash and pid.isascii() and pid.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
