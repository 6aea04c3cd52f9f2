"""Adding files to a store: the store's Dump and the new files' reads, settled as one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import polars as pl

from limitaudit.model.dump import Dump
from limitaudit.model.schema import ACTION_FIELDS, EVENTS, ORIGIN
from limitaudit.read.settle import RawDump, left_out, settle
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


def merge(
    old: Dump, new: RawDump, stored: Path, spill: DecisionSpill
) -> tuple[Dump, AddedDecisions]:
    """The store's Dump with newly read files added: what ingesting them all at once gives.

    `old` is the store opened with its keys and the decisions an audit reads; `new` the
    new files read as an ingest reads them, their decisions put aside in `spill`; `stored`
    the store's folder of decision buckets. Returns the Dump, holding ACTION_FIELDS of the
    decisions an audit reads (as an ingest from scratch does), and every decision, to be
    written a bucket at a time.

    Files take their places in name order, as in one ingest of the whole dump, and every
    repeat is settled again against all line hashes: a line of a new file that repeats an
    old one is a duplicate, and the first of them by that order is kept.
    """
    if old.keys is None or old.ledger_repeats is None:
        raise ValueError("merge needs the store read with its keys")
    names = sorted([f.source.name for f in old.files] + [f.source.name for f in new.files])
    if len(set(names)) != len(names):
        raise ValueError("a file is both in the store and among the new ones")
    at = {name: i for i, name in enumerate(names)}
    old_ids = [at[f.source.name] for f in old.files]
    new_ids = [at[f.source.name] for f in new.files]
    before = _unsettled(old)

    def both(a: pl.DataFrame | pl.LazyFrame, b: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
        return pl.concat([_renumber(a.lazy(), old_ids), _renumber(b.lazy(), new_ids)])

    tables = {e: both(before.tables[e], new.tables[e]) for e in EVENTS}
    brief = [
        t.lazy().select(ACTION_FIELDS) for t in (before.tables["decision"], new.tables["decision"])
    ]
    tables["decision"] = both(*brief)
    files = sorted([*before.files, *new.files], key=lambda f: at[f.source.name])
    raw = RawDump(
        tables={e: table.sort(list(ORIGIN)) for e, table in tables.items()},
        ledger=both(before.ledger, new.ledger),
        keys=both(before.keys, new.keys),
        # In no order: what is made of them (each file's time range, clock offsets,
        # silences) does not hang on it, and a sort would hold them all (650 MB at 21
        # million lines).
        stamps=both(before.stamps, new.stamps),
        files=files,
        rejects=both(before.rejects, new.rejects).collect(),
        # Each file's own findings (it was empty, cut off, ...) in file order, as one
        # ingest would list them; ledger conflicts are found again by settle.
        findings=sorted([*before.findings, *new.findings], key=lambda f: at[f.file]),
        tz=old.tz,
        folder=new.folder,
    )
    return settle(raw, keep=True), AddedDecisions(stored, old_ids, spill, new_ids)


def _unsettled(dump: Dump) -> RawDump:
    """A settled Dump taken back to before its repeats were settled.

    Its event rows found to be repeats stay out: a repeat stays one whatever files are
    added (the copy before it stays before it), and their line hashes are all kept.
    The ledger's repeats come back, to be weighed again against new rows.
    """
    assert dump.keys is not None and dump.ledger_repeats is not None and dump.stamps is not None
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
        for f in dump.files
    ]
    return RawDump(
        tables={e: dump.tables[e].lazy() for e in EVENTS},
        ledger=pl.concat([dump.ledger, dump.ledger_repeats]).lazy(),
        keys=dump.keys.lazy(),
        stamps=dump.stamps,
        files=files,
        rejects=dump.rejects,
        findings=[f for f in dump.findings if f.kind != "ledger_conflict"],
        tz=dump.tz,
    )


def _renumber(frame: pl.LazyFrame, ids: list[int]) -> pl.LazyFrame:
    mapping = pl.Series("ids", ids, dtype=pl.UInt32)
    return frame.with_columns(pl.lit(mapping).gather(pl.col("file_id")).alias("file_id"))
