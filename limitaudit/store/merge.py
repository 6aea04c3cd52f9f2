"""Adding files to a store: the store's Dump and the new files' reads, settled as one."""

from __future__ import annotations

from dataclasses import replace

import polars as pl

from limitaudit.model.dump import Dump
from limitaudit.model.schema import EVENTS, ORIGIN
from limitaudit.read.settle import RawDump, settle


def merge(old: Dump, new: RawDump) -> Dump:
    """The store's Dump with newly read files added: what ingesting them all at once gives.

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

    files = sorted([*before.files, *new.files], key=lambda f: at[f.source.name])
    raw = RawDump(
        tables={e: both(before.tables[e], new.tables[e]).sort(list(ORIGIN)) for e in EVENTS},
        ledger=both(before.ledger, new.ledger),
        keys=both(before.keys, new.keys),
        # Sorted once here: a lazy sort would run again for every aggregate of the stamps.
        stamps=both(before.stamps, new.stamps).sort(list(ORIGIN)).collect().lazy(),
        files=files,
        rejects=both(before.rejects, new.rejects).collect(),
        # Each file's own findings (it was empty, cut off, ...) in file order, as one
        # ingest would list them; ledger conflicts are found again by settle.
        findings=sorted([*before.findings, *new.findings], key=lambda f: at[f.file]),
        tz=old.tz,
        folder=new.folder,
    )
    return settle(raw, keep=True)


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
