"""`limitaudit ingest DUMP --store DIR`: read a dump once into a store, or add new files to one.

Files are known by name. One already in the store with the same size and sha256 is left
alone; a new one is read and added; one whose size or content changed stops the ingest
(nothing is mixed in) unless --replace rebuilds the store from the dump as given.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from limitaudit import __version__
from limitaudit.analysis.facts import decisions_detailed, decisions_needed
from limitaudit.atomic import owned, sweep
from limitaudit.errors import DumpError, UsageError
from limitaudit.model.audit import AuditOptions
from limitaudit.model.dump import COUNTS, DEFAULT_TZ, Dump, FileReport, Progress, SourceFile
from limitaudit.read.discover import discover, is_store
from limitaudit.read.parallel import read_files
from limitaudit.read.settle import settle
from limitaudit.store import (
    DecisionSpill,
    StoreError,
    manifest_files,
    merge,
    read_manifest,
    sha256_of,
    unsettled,
    write_store,
)
from limitaudit.store.layout import check_target
from limitaudit.store.manifest import verify

CREATED, ADDED, UNCHANGED, REPLACED = "created", "added", "unchanged", "replaced"
# Building a store puts the decisions aside here, beside the store: .limitaudit-spill-PID-...
SPILL_FOLDER = ".limitaudit-spill-"


@dataclass(frozen=True)
class IngestedFile:
    path: str
    kind: str
    counts: dict[str, int]

    def to_data(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, **self.counts}


@dataclass
class IngestResult:
    store: str
    action: str  # created | added | unchanged | replaced
    read: list[IngestedFile]  # the files read this time
    unchanged: int  # files of the dump already in the store
    kept: list[str]  # files in the store that this dump no longer names: kept
    files: int  # files in the store now
    totals: dict[str, int]  # the store's accounting, all files
    tables: dict[str, int]  # rows per table in the store
    tz: str  # the zone log times without an offset were read in

    def to_data(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "action": self.action,
            "read": [f.to_data() for f in self.read],
            "unchanged": self.unchanged,
            "kept": self.kept,
            "files": self.files,
            "totals": self.totals,
            "tables": self.tables,
            "time_zone": self.tz,
        }


def ingest_store(
    inputs: Sequence[str | Path],
    store: Path,
    tz: str | None = None,
    replace: bool = False,
    progress: Progress | None = None,
) -> IngestResult:
    if any(is_store(i) for i in inputs):
        raise UsageError("the dump to ingest is a store already: name the log files")
    check_target(store, f"--store {store}")
    sources = [s for s in discover(inputs) if not _inside(s.path, store)]
    if not sources:
        raise DumpError("the dump holds no files")
    _unique_names(sources)
    if replace or not is_store(store):
        action = REPLACED if is_store(store) else CREATED
        return _build(sources, store, tz or DEFAULT_TZ, action, progress)
    manifest = read_manifest(store)
    # A damaged store is never "up to date", nor added to: it is rebuilt, or left alone.
    verify(store, manifest)
    if tz is not None and tz != manifest["time_zone"]:
        raise StoreError(
            f"{store}: the store read log times in {manifest['time_zone']}, not {tz}: "
            "nothing was ingested; --replace rebuilds it with --tz"
        )
    known = {e["name"]: e for e in manifest["files"]}
    # The new files are hashed as they are read, once.
    hashes = {s.name: sha256_of(s.path) for s in sources if s.name in known}
    changed = [
        _change(s, known[s.name], hashes[s.name])
        for s in sources
        if s.name in known
        and (s.size != known[s.name]["size"] or hashes[s.name] != known[s.name]["sha256"])
    ]
    if changed:
        raise StoreError(
            f"{store}: {len(changed)} file(s) changed since they were ingested: "
            + "; ".join(changed)
            + ". Nothing was ingested; --replace rebuilds the store from this dump"
        )
    new = [s for s in sources if s.name not in known]
    names = {s.name for s in sources}
    kept = [name for name in known if name not in names]
    if not new:
        files = manifest_files(manifest)
        tables = manifest["tables"]
        return _result(
            store, UNCHANGED, [], len(sources), kept, files, tables, manifest["time_zone"]
        )
    _same_versions(store, manifest)
    # As in _build, the decisions wait on disk, the store's in its files, and only those
    # the audit facts read are in memory.
    needed, detail = decisions_needed(AuditOptions()), decisions_detailed(AuditOptions())
    with _spilling(store) as spill:
        # The new files first: the read's worker processes and the merged tables are not
        # in memory together.
        raw = read_files(new, manifest["time_zone"], progress, needed, spill, detail=detail)
        old = unsettled(store, manifest, needed)
        dump, decisions = merge(old, raw, store / manifest["generation"] / "decision", spill)
        everything = {**{e["name"]: e["sha256"] for e in manifest["files"]}, **_read_hashes(dump)}
        sizes = write_store(dump, store, everything, decisions)
    return _result(store, ADDED, new, len(sources) - len(new), kept, dump.files, sizes, dump.tz)


@contextmanager
def _spilling(store: Path) -> Iterator[DecisionSpill]:
    """A spill for the decisions read, in a folder beside the store (on its disk), swept
    of what killed runs left."""
    near = store.parent if store.parent.is_dir() else None
    sweep(near or Path(tempfile.gettempdir()), SPILL_FOLDER)
    with tempfile.TemporaryDirectory(prefix=owned(SPILL_FOLDER), dir=near) as folder:
        yield DecisionSpill(Path(folder))


def _build(
    sources: list[SourceFile], store: Path, tz: str, action: str, progress: Progress | None
) -> IngestResult:
    # The decisions go to disk as they are read, and only those an audit uses stay in
    # memory (to make the audit facts): a dump much larger than memory becomes a store.
    with _spilling(store) as spill:
        # The decisions it keeps in memory are those the audit facts read.
        needed, detail = decisions_needed(AuditOptions()), decisions_detailed(AuditOptions())
        dump = settle(read_files(sources, tz, progress, needed, spill, detail=detail), keep=True)
        dump.require_readable()
        # Hashed as they were read: the store records the bytes it holds, and a file is
        # read once (the others, skipped or a Parquet export, are hashed now).
        sizes = write_store(dump, store, _read_hashes(dump), spill)
    return _result(store, action, sources, 0, [], dump.files, sizes, dump.tz)


def _read_hashes(dump: Dump) -> dict[str, str]:
    """The sha256 of each file the read hashed (a read with a spill hashes the bytes it
    reads); write_store hashes the others."""
    return {f.source.name: f.sha256 for f in dump.files if f.sha256}


def _result(
    store: Path,
    action: str,
    read: list[SourceFile],
    unchanged: int,
    kept: list[str],
    files: list[FileReport],
    tables: dict[str, int],
    tz: str,
) -> IngestResult:
    reports = {f.source.name: f for f in files}
    return IngestResult(
        store=str(store),
        action=action,
        read=[IngestedFile(s.name, s.kind, dict(reports[s.name].counts)) for s in read],
        unchanged=unchanged,
        kept=kept,
        files=len(files),
        totals={c: sum(f.counts[c] for f in files) for c in COUNTS},
        tables=dict(tables),
        tz=tz,
    )


def _change(source: SourceFile, entry: dict[str, Any], sha256: str) -> str:
    if source.size != entry["size"]:
        return f"{source.name} ({entry['size']:,} bytes then, {source.size:,} now)"
    return (
        f"{source.name} (same size, other content: "
        f"sha256 {entry['sha256'][:12]}… then, {sha256[:12]}… now)"
    )


def _same_versions(store: Path, manifest: dict[str, Any]) -> None:
    """Added files are deduplicated against the store's line hashes: only the same Polars
    (whose hash is not promised stable across versions) and the same parser may add them."""
    for what, theirs, ours in (
        ("Polars", manifest["polars_version"], pl.__version__),
        ("limitaudit", manifest["tool_version"], __version__),
    ):
        if theirs != ours:
            raise StoreError(
                f"{store}: written by {what} {theirs}, this is {what} {ours}: new files cannot "
                "be added to it (its duplicate detection would not match); "
                "ingest the whole dump again with --replace"
            )


def _unique_names(sources: list[SourceFile]) -> None:
    seen: dict[str, Path] = {}
    for s in sources:
        if s.name in seen:
            raise UsageError(
                f"{s.name}: two files have this name ({seen[s.name]} and {s.path}); a store "
                "knows files by name: ingest one directory holding both under different names"
            )
        seen[s.name] = s.path


def _inside(path: Path, store: Path) -> bool:
    try:
        path.resolve().relative_to(store.resolve())
    except ValueError:
        return False
    return True
