"""Adding files to a store: the store's tables and the new files' reads, settled as one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from limitaudit.model.dump import Dump, Finding
from limitaudit.model.schema import ACTION_FIELDS, EVENTS, ORIGIN
from limitaudit.read.settle import RawDump, left_out, settle
from limitaudit.store.layout import PER_USER
from limitaudit.store.manifest import manifest_files
from limitaudit.store.write import DecisionSpill


class AddedDecisions:
    """The decisions of a store with files added, a bucket at a time (write_store's
    spill): the store's own, read from its bucket files, and the new files' spilled ones,
    each renumbered to the files' merged order. No more of them is in memory than an
    ingest from scratch holds."""

    def __init__(
        self, stored: Path, old_ids: list[int], spill: DecisionSpill, new_ids: list[int]
    ) -> None:
        self.stored, self.old_ids, self.spill, self.new_ids = stored, old_ids, spill, new_ids

    def bucket(self, b: int, empty: pl.DataFrame, dups: pl.DataFrame) -> pl.LazyFrame:
        columns = empty.columns
        old = _renumber(pl.scan_parquet(self.stored / f"b{b:02d}.parquet"), self.old_ids)
        new = _renumber(self.spill.scan(b, empty), self.new_ids)
        return left_out(pl.concat([old.select(columns), new.select(columns)]), dups)

    def drop(self, b: int) -> None:
        # The store's own files go with its generation, once the new one is in place.
        self.spill.drop(b)


def unsettled(directory: Path, manifest: Mapping[str, Any], decisions: pl.Expr) -> RawDump:
    """The store as a read of its files gave it, before its repeats were settled: every
    table a scan of the generation's files, read once merged with the new files' (read
    first, as open_store reads them, the store of 21 million lines took 2 GiB before
    anything was merged). Of the decisions, ACTION_FIELDS of those `decisions` keeps, as
    a read for a store keeps them (all of them wait in their bucket files: AddedDecisions).

    Its event rows found to be repeats stay out: a repeat stays one whatever files are
    added (the copy before it stays before it), and their line hashes are all kept.
    The ledger's repeats come back, to be weighed again against new rows.
    """
    data = directory / manifest["generation"]
    buckets = range(int(manifest["buckets"]))

    def scan(name: str) -> pl.LazyFrame:
        if name in PER_USER:
            return pl.scan_parquet([data / name / f"b{b:02d}.parquet" for b in buckets])
        return pl.scan_parquet(data / f"{name}.parquet")

    tables = {e: scan(e) for e in EVENTS}
    tables["decision"] = tables["decision"].filter(decisions).select(ACTION_FIELDS)
    files = [
        replace(
            f,
            counts={
                **f.counts,
                "records": f.counts["records"] + f.counts["duplicates"],
                "duplicates": 0,
                "ignored": 0,
            },
            first=None,
            last=None,
            host=f.named_host,
        )
        for f in manifest_files(manifest)
    ]
    findings = [Finding.from_data(f) for f in manifest["findings"]]
    return RawDump(
        tables=tables,
        ledger=pl.concat([scan("ledger"), scan("ledger_repeats")]),
        keys=scan("keys"),
        stamps=scan("stamps"),
        files=files,
        rejects=pl.read_parquet(data / "rejects.parquet"),
        findings=[f for f in findings if f.kind != "ledger_conflict"],
        tz=manifest["time_zone"],
    )


def merge(
    old: RawDump, new: RawDump, stored: Path, spill: DecisionSpill
) -> tuple[Dump, AddedDecisions]:
    """A store with newly read files added: what ingesting them all at once gives.

    `old` is the store as `unsettled` gives it; `new` the new files read as an ingest reads
    them, their decisions put aside in `spill`; `stored` the store's folder of decision
    buckets. Returns the Dump, holding ACTION_FIELDS of the decisions an audit reads (as
    an ingest from scratch does), and every decision, to be written a bucket at a time.

    Files take their places in name order, as in one ingest of the whole dump, and every
    repeat is settled again against all line hashes: a line of a new file that repeats an
    old one is a duplicate, and the first of them by that order is kept.
    """
    names = sorted([f.source.name for f in old.files] + [f.source.name for f in new.files])
    if len(set(names)) != len(names):
        raise ValueError("a file is both in the store and among the new ones")
    at = {name: i for i, name in enumerate(names)}
    old_ids = [at[f.source.name] for f in old.files]
    new_ids = [at[f.source.name] for f in new.files]

    def both(a: pl.DataFrame | pl.LazyFrame, b: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
        return pl.concat([_renumber(a.lazy(), old_ids), _renumber(b.lazy(), new_ids)])

    tables = {e: both(old.tables[e], new.tables[e]) for e in EVENTS}
    brief = [t.select(ACTION_FIELDS) for t in (old.tables["decision"], new.tables["decision"])]
    tables["decision"] = both(*brief)
    files = sorted([*old.files, *new.files], key=lambda f: at[f.source.name])
    raw = RawDump(
        tables={e: table.sort(list(ORIGIN)) for e, table in tables.items()},
        ledger=both(old.ledger, new.ledger),
        keys=both(old.keys, new.keys),
        # In no order: what is made of them (each file's time range, clock offsets,
        # silences) does not hang on it, and a sort would hold them all (650 MB at 21
        # million lines).
        stamps=both(old.stamps, new.stamps),
        files=files,
        rejects=both(old.rejects, new.rejects).collect(),
        # Each file's own findings (it was empty, cut off, ...) in file order, as one
        # ingest would list them; ledger conflicts are found again by settle.
        findings=sorted([*old.findings, *new.findings], key=lambda f: at[f.file]),
        tz=old.tz,
        folder=new.folder,
    )
    return settle(raw, keep=True), AddedDecisions(stored, old_ids, spill, new_ids)


def _renumber(frame: pl.LazyFrame, ids: list[int]) -> pl.LazyFrame:
    mapping = pl.Series("ids", ids, dtype=pl.UInt32)
    return frame.with_columns(pl.lit(mapping).gather(pl.col("file_id")).alias("file_id"))
