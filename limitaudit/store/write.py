"""Writing a store: a new generation in full, then the manifest that points at it."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from limitaudit.analysis.facts import users_apart, whole_dump_facts
from limitaudit.atomic import owned, sweep, write_atomic
from limitaudit.model.audit import AuditFacts, AuditOptions
from limitaudit.model.dump import Dump
from limitaudit.model.schema import ORIGIN, event_schema
from limitaudit.read.discover import (
    GENERATION,
    PARTIAL_GENERATION,
    STORE_MANIFEST,
)
from limitaudit.read.frames import by_bucket
from limitaudit.read.settle import left_out
from limitaudit.store.layout import (
    BUCKETS,
    GLOBAL,
    PER_USER,
    ROW_GROUP_ROWS,
    bucket_expr,
    check_target,
)
from limitaudit.store.manifest import new_manifest

# Parts spilled by this process: one count for every spill object in it (the read's
# jobs each carry their own copy to a worker process); itertools.count is atomic.
_PARTS = itertools.count()


class DecisionSpill:
    """Decisions put aside per bucket as they are read (read_files' `spill`), so that
    building a store never holds the dump's decisions: they are settled and sorted one
    bucket at a time when the store is written. Called from several reader threads, and
    sent with the read's jobs to worker processes: each part is named by its writer's pid
    and that process's count of parts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        for b in range(BUCKETS):
            (folder / f"b{b:02d}").mkdir(parents=True)

    def __call__(self, table: pl.DataFrame) -> None:
        part = f"{os.getpid()}-{next(_PARTS):06d}"
        for b, rows in by_bucket(table).items():
            # Arrow IPC, uncompressed: read back once, soon, and the fastest to write and
            # read (Parquet with lz4 took twice as long).
            rows.write_ipc(self.folder / f"b{b:02d}" / f"p{part}.arrow", compression="uncompressed")

    def scan(self, b: int, empty: pl.DataFrame) -> pl.LazyFrame:
        """One bucket's decisions as spilled, repeats and all, in no particular order."""
        paths = sorted((self.folder / f"b{b:02d}").glob("*.arrow"))
        return pl.scan_ipc(paths) if paths else empty.lazy()

    def bucket(self, b: int, empty: pl.DataFrame, dups: pl.DataFrame) -> pl.LazyFrame:
        """One bucket's decisions, repeats left out, in no particular order: a query, read
        filtered, never whole and then again without its repeats."""
        return left_out(self.scan(b, empty), dups)

    def drop(self, b: int) -> None:
        """Delete a bucket's parts once it is written: the disk a spill takes (4 GB at 21
        million lines) goes back a bucket at a time, beside the store being written, and
        not all at once at the end, while the command waits."""
        shutil.rmtree(self.folder / f"b{b:02d}")


class Spilled(Protocol):
    """Decisions waiting on disk a bucket at a time, for write_store to settle and write."""

    def bucket(self, b: int, empty: pl.DataFrame, dups: pl.DataFrame) -> pl.LazyFrame: ...

    def drop(self, b: int) -> None: ...


def write_store(
    dump: Dump,
    directory: str | Path,
    hashes: Mapping[str, str] | None = None,
    spill: Spilled | None = None,
) -> dict[str, int]:
    """Write `dump` (as the read or `merge` made it) as the store's new generation.

    `hashes` gives the sha256 of files already known by name; the others are read.
    With `spill`, the decisions are the spilled ones (the Dump's are what audit keeps).
    Returns the rows of each table in the store.
    """
    if dump.keys is None or dump.ledger_repeats is None or dump.stamps is None:
        raise ValueError("write_store needs a Dump settled with keep=True: it keeps line hashes")
    directory = Path(directory)
    check_target(directory)
    created = _created(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sweep(directory, PARTIAL_GENERATION)
    generation = f"g{_last_generation(directory) + 1:06d}"
    tmp = directory / (owned(PARTIAL_GENERATION) + generation)
    tmp.mkdir()
    # The audit facts, for one-user reads, made with the default options.
    facts = whole_dump_facts(dump, AuditOptions()) if dump.readable else None
    # The spilled decisions are sorted and written on a thread while the other tables are:
    # Polars lets go of the GIL, and neither keeps two cores busy alone. Not beside the
    # facts: a bucket's sort beside them made the peak of 21 million lines 2.46 GiB.
    with ThreadPoolExecutor(1) as pool:
        spilled = pool.submit(_write_spilled, spill, dump, tmp / "decision") if spill else None
        entry = _facts_entry(facts, dump)
        sizes = _write_generation(dump, tmp, spilled, facts)
    data = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in sorted(tmp.rglob("*.parquet"))}
    _fsync_tree(tmp)
    os.rename(tmp, directory / generation)
    _fsync_dir(directory)
    manifest = new_manifest(dump, generation, created, sizes, entry, hashes, data)
    write_atomic(
        directory / STORE_MANIFEST,
        lambda fh: fh.write(json.dumps(manifest, ensure_ascii=False, indent=1)),
        durable=True,
    )
    _fsync_dir(directory)
    _remove_other_generations(directory, generation)
    return sizes


def _created(directory: Path) -> str | None:
    """When the store being replaced was made (none, or its manifest is damaged: now)."""
    try:
        created = json.loads((directory / STORE_MANIFEST).read_text(encoding="utf-8"))["created"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return created if isinstance(created, str) else None


def _write_generation(
    dump: Dump,
    folder: Path,
    spilled: Future[tuple[int, pl.DataFrame]] | None,
    facts: AuditFacts | None,
) -> dict[str, int]:
    """Every table of `dump` as the Parquet files of a generation (but the decisions, when
    `spilled` is writing them: it says how many it wrote, and by which users, once the
    others are written); returns their rows."""
    assert dump.keys is not None and dump.ledger_repeats is not None and dump.stamps is not None
    sizes = {name: t.height for name, t in dump.tables.items()}
    users = [dump.tables[t].select("user_id") for t in ("ledger", "manual_action")]
    for name, time in PER_USER.items():
        if name == "decision" and spilled is not None:
            continue
        _write_buckets(dump.tables[name], folder / name, time)
        if name == "decision":
            users.append(dump.tables[name].select("user_id").unique())
    for name in [*GLOBAL, "engine_error"]:
        _write(dump.tables[name], folder / f"{name}.parquet")
    _write(dump.ledger_repeats, folder / "ledger_repeats.parquet")
    _write(dump.keys, folder / "keys.parquet")
    # Streamed from the read's files on disk, as the keys are: every record's stamp (some
    # 650 MB at 21 million lines) is never held whole.
    _write(dump.stamps, folder / "stamps.parquet")
    _write(dump.rejects, folder / "rejects.parquet")
    if facts is not None:
        _write(facts.offsets, folder / "offsets.parquet")
        _write(facts.silences, folder / "silences.parquet")
    if spilled is not None:
        sizes["decision"], ids = spilled.result()
        users.append(ids)
    _write(pl.concat(users).unique().sort("user_id"), folder / "users.parquet")
    return sizes


def _write_spilled(spill: Spilled, dump: Dump, folder: Path) -> tuple[int, pl.DataFrame]:
    """The spilled decisions as bucket files, one bucket in memory at a time; returns how
    many, and their users."""
    # As settle found them (settle(keep=True) keeps them): not found again from the keys.
    dups = dump.repeats
    if dups is None:
        raise ValueError("the spilled decisions need the Dump's repeats: settle with keep=True")
    time = PER_USER["decision"]
    folder.mkdir()
    # The read kept ACTION_FIELDS alone of the decisions: the spill holds them whole.
    empty = pl.DataFrame(schema=event_schema("decision"))
    rows, users = 0, []
    for b in range(BUCKETS):
        # Read, sorted and written as one query: a third less time and memory than
        # collecting the bucket, sorting it and writing the frame (measured at 21 million
        # lines: 0.7 s a bucket against 1.1-1.3, on 2 cores), the same file.
        path = folder / f"b{b:02d}.parquet"
        _write(spill.bucket(b, empty, dups).sort("user_id", time, *ORIGIN), path)
        spill.drop(b)
        written = pl.scan_parquet(path)
        rows += written.select(pl.len()).collect().item()
        users.append(written.select(pl.col("user_id").unique()).collect())
    return rows, pl.concat(users)


# zstd's level 1: a quarter faster to write than its default here, and no larger.
PARQUET: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "statistics": True,
    "row_group_size": ROW_GROUP_ROWS,
}


def _write(frame: pl.DataFrame | pl.LazyFrame, path: Path) -> None:
    if isinstance(frame, pl.LazyFrame):
        frame.sink_parquet(path, **PARQUET)
    else:
        frame.write_parquet(path, **PARQUET)


def _write_buckets(table: pl.DataFrame, folder: Path, time: str) -> None:
    folder.mkdir()
    marked = table.with_columns(bucket_expr(BUCKETS).cast(pl.UInt8).alias("_bucket")).lazy()
    for b in range(BUCKETS):
        # A query a bucket, as the spilled decisions are written, not the whole table
        # sorted and split: the same files, in 2.2 s against 3.2 for the ledger and
        # notices of 21 million lines, and 6 s against 44 for 8 million decisions in no
        # order (a wide table's sort gathers every row at random).
        rows = marked.filter(pl.col("_bucket") == b).drop("_bucket")
        _write(rows.sort("user_id", time, *ORIGIN), folder / f"b{b:02d}.parquet")


def _facts_entry(facts: AuditFacts | None, dump: Dump) -> dict[str, Any] | None:
    if facts is None:
        return None
    return {
        "tolerance_s": facts.options.tolerance_s,
        "below_yuan": facts.options.below_yuan,
        "data_feed": facts.data_feed,
        "one_user_reads": users_apart(dump),
    }


def _last_generation(directory: Path) -> int:
    numbers = [int(m.group(1)) for p in directory.iterdir() if (m := GENERATION.match(p.name))]
    return max(numbers, default=0)


def _remove_other_generations(directory: Path, keep: str) -> None:
    """Earlier generations and the leftovers of interrupted writes; nothing else (a
    generation another ingest is writing stays)."""
    for path in directory.iterdir():
        if path.name == keep or path.name.startswith(PARTIAL_GENERATION):
            continue
        if path.is_dir() and GENERATION.match(path.name):
            shutil.rmtree(path, ignore_errors=True)
    sweep(directory, PARTIAL_GENERATION)


def _fsync_tree(folder: Path) -> None:
    # The data must be on disk before the manifest that points at it.
    for path in [*folder.rglob("*.parquet"), *(p for p in folder.rglob("*") if p.is_dir())]:
        _fsync_path(path)


def _fsync_dir(directory: Path) -> None:
    # A rename is on disk once its directory is.
    _fsync_path(directory)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
