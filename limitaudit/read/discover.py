"""Find the files of a dump and tell what each one is, by its content."""

from __future__ import annotations

import glob
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from limitaudit.errors import DumpError
from limitaudit.model.dump import LEDGER_REFUSED, SourceFile
from limitaudit.read.lines import read_head
from limitaudit.read.parse import CONTINUATION_LINE, TEXT_RECORD_START

PARQUET_MAGIC = b"PAR1"
LEDGER_ORDER = ("change_id", "user_id", "changed_at", "limit_before", "limit_after")
LEDGER_COLUMNS = frozenset(LEDGER_ORDER)
_TEXT_RECORD = re.compile(TEXT_RECORD_START)
_STACK_LINE = re.compile(CONTINUATION_LINE)
_SNIFF_LINES = 50
# A text log's first line may name its service and host.
HEADER = re.compile(r"^#\s*service=(\S+)\s+host=(\S+)")
_ROTATION = re.compile(r"(\.(log|txt|json|jsonl|ndjson|gz|zst|\d+|\d{4}-\d{2}-\d{2}))+$")
_HEAD_BYTES = 1 << 16
# A store (limitaudit ingest --store) is known by this file and the format it names.
STORE_MANIFEST = "manifest.json"
STORE_FORMAT = "limitaudit-store"
# A store's generation folder (g000001), or one being written: `.generation-PID-g000002`
# (by the process PID), `.g000002.tmp` (by earlier versions).
GENERATION = re.compile(r"^(?:\.generation-\d+-|\.)?g(\d{6})(?:\.tmp)?$")
PARTIAL_GENERATION = ".generation-"
_WRITTEN = re.compile(r"^g\d{6}$")


def discover(inputs: Iterable[str | Path]) -> list[SourceFile]:
    """Expand directories, files and globs into sniffed source files, in a stable order."""
    found: dict[Path, str] = {}
    for item in inputs:
        for path, name in _expand(str(item)):
            # The same file named twice is read once; a link that leads nowhere (broken, a
            # loop) is its own entry, reported as unreadable.
            key = os.path.realpath(path) if path.exists() else os.path.abspath(path)
            found.setdefault(Path(key), name)
    return [sniff(path, name) for path, name in sorted(found.items(), key=lambda kv: kv[1])]


def is_store(path: str | Path) -> bool:
    """A directory holding a store's manifest, or a store's layout (a generation folder
    with its per-user tables): a store whose manifest is cut short, emptied or gone is a
    damaged store (the store says so), never a dump whose Parquet would pass for a ledger."""
    directory = Path(path)
    manifest = directory / STORE_MANIFEST
    try:
        if manifest.is_file() and STORE_FORMAT.encode() in manifest.read_bytes()[:_HEAD_BYTES]:
            return True
        return directory.is_dir() and any(
            _WRITTEN.match(p.name) and (p / "ledger").is_dir() for p in directory.iterdir()
        )
    except OSError:
        return False


def _files_under(directory: Path) -> list[Path]:
    """The files of a directory tree, less any store inside it: a store kept next to the
    logs it was made from is not part of the dump (its Parquet would pass for a ledger)."""
    # Every entry but directories: a FIFO, a broken link or a link loop is listed too, and
    # reported as unreadable, never left out unsaid.
    files = sorted(p for p in directory.rglob("*") if not p.is_dir())
    maybe = {p.parent for p in files if p.name == STORE_MANIFEST}
    maybe |= {a.parent for p in files for a in p.parents if _WRITTEN.match(a.name)}
    stores = {d for d in maybe if is_store(d)}
    if not stores:
        return files
    return [p for p in files if stores.isdisjoint(p.parents)]


def _expand(item: str) -> list[tuple[Path, str]]:
    path = Path(item)
    if path.is_dir():
        files = _files_under(path)
        return [(p, p.relative_to(path).as_posix()) for p in files]
    if path.is_file() or path.is_symlink() or path.exists():
        # A FIFO or a broken link named on the command line is listed, as unreadable.
        return [(path, item)]
    if glob.has_magic(item):
        matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
        files = [m for m in matches if m.is_file()]
        for directory in (m for m in matches if m.is_dir()):
            files.extend(_files_under(directory))
        if not files:
            raise DumpError(f"{item}: no file matches this pattern")
        return [(p, p.as_posix()) for p in files]
    raise DumpError(f"{item}: no such file or directory")


def sniff(path: Path, name: str) -> SourceFile:
    try:
        info = path.stat()
    except OSError as exc:  # a broken link, a link loop
        return SourceFile(path, name, "unreadable", "none", 0, _why(exc))
    if not stat.S_ISREG(info.st_mode):
        # Opening a FIFO would wait for a writer that never comes.
        return SourceFile(path, name, "unreadable", "none", 0, "not a regular file")
    size = info.st_size
    if size == 0:
        return SourceFile(path, name, "empty", "none", size)
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        return SourceFile(path, name, "unreadable", "none", size, _why(exc))
    if magic == PARQUET_MAGIC:
        return SourceFile(path, name, "ledger_parquet", "none", size)
    compression, head, outcome = read_head(path, _HEAD_BYTES)
    if not head and outcome.damaged_at == 0:
        # A magic number that is not one: a log may begin with those bytes by chance (a
        # garbled first line). Where the bytes read as a log or a ledger, they are one,
        # every line accounted for; a compressed file damaged at its start stays skipped.
        _, plain, _ = read_head(path, _HEAD_BYTES, "none")
        kind, reason = _kind_of_text(plain, whole=len(plain) < _HEAD_BYTES)
        if kind != "other":
            return SourceFile(path, name, kind, "none", size, reason)
    if not head and outcome.cut:
        reason = f"{outcome.cut}, nothing readable before the cut"
        return SourceFile(path, name, "other", compression, size, reason)
    if not head:
        return SourceFile(path, name, "empty", compression, size)
    kind, reason = _kind_of_text(head, whole=len(head) < _HEAD_BYTES)
    return SourceFile(path, name, kind, compression, size, reason)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _kind_of_text(head: bytes, whole: bool) -> tuple[str, str]:
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    pieces = text.split("\n")
    if not whole:
        # The head cut the line after its last newline short.
        pieces = pieces[:-1] or pieces
    present = [line.rstrip("\r") for line in pieces if line.strip()]
    if not present:
        return "other", "only blank lines"
    # A stack trace belongs to the record above it: it neither makes nor hides a log.
    lines = [line.strip() for line in present if not _STACK_LINE.match(line)][:_SNIFF_LINES]
    header = {c.strip().strip('"').lower() for c in lines[0].split(",")} if lines else set()
    if header >= LEDGER_COLUMNS:
        return "ledger_csv", ""
    json_votes = sum(line.startswith("{") and '"event"' in line for line in lines)
    text_votes = sum(bool(_TEXT_RECORD.match(line)) for line in lines)
    if lines and lines[0].startswith("# service="):
        text_votes += 1
    # Logs begin with records; a few garbled lines must not hide a real log.
    if max(json_votes, text_votes) * 3 >= len(lines) and (json_votes or text_votes):
        return ("json_log" if json_votes >= text_votes else "text_log"), ""
    if lines and lines[0].count(",") >= 2:
        if len(header & LEDGER_COLUMNS) >= 2:
            # Meant as a ledger export: say which of its columns it lacks.
            missing = [c for c in LEDGER_ORDER if c not in header]
            return "other", f"{LEDGER_REFUSED} {', '.join(missing)}"
        return "other", "CSV without the ledger's columns (change_id, user_id, changed_at, ...)"
    return "other", "neither a risk-engine log nor a ledger export"


def host_from_name(source: SourceFile) -> str:
    """Without a header line, a log's host is its directory (le-04/limit-engine.log)."""
    parent = Path(source.name).parent.name
    return parent or service_from_name(source)


def service_from_name(source: SourceFile) -> str:
    name = Path(source.name).name
    return _ROTATION.sub("", name) or name
