"""Settle what the readers read: the first of every repeated line kept, the rest counted
as duplicates, and each file's time range and host."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING

import polars as pl

from limitaudit.model.dump import BUCKETS, Dump, FileReport, Finding, bucket_expr, bucket_of
from limitaudit.model.schema import ORIGIN

if TYPE_CHECKING:
    from limitaudit.model.audit import AuditFacts


@dataclass
class RawDump:
    """Files read, duplicates not yet settled: every record, each line with its hashes.

    The tables, ledger and stamps are lazy: most of them wait on disk (see read_files),
    and `settle` reads each once, leaving out its repeats as it reads.
    """

    tables: dict[str, pl.LazyFrame]  # event tables, repeats included, stack traces attached
    ledger: pl.LazyFrame  # every ledger row, repeats included
    keys: pl.LazyFrame  # KEYS_SCHEMA, for every record line of a known or unknown event
    stamps: pl.LazyFrame  # STAMP_SCHEMA, for every record line of a known event
    files: list[FileReport]  # counts before duplicates; host as the header or name gives it
    rejects: pl.DataFrame  # REJECT_SCHEMA
    findings: list[Finding]  # each file's, in file order
    tz: str
    # Where the lazy frames' files are; removed once settled.
    folder: TemporaryDirectory[str] | None = None
    # A read for an audit (read_dump's `detail`): the decision table holds ACTION_FIELDS of
    # every decision kept, and the decisions `detail` keeps wait here whole, a frame a
    # bucket of their users, for the audit to read a share at a time (Dump.parts).
    details: list[pl.LazyFrame] | None = None
    detail: pl.Expr | None = None


def settle(raw: RawDump, keep: bool = False) -> Dump:
    """Keep the first of every repeated record line and ledger change; finish the accounting.

    The first is the first by (file_id, line): files are numbered in the dump's order,
    and the tables come in that order (the filters keep it). `keep` keeps the line
    hashes and the ledger's repeats on the Dump, for a store.

    `raw` is used up: the Dump takes its folder on disk, from which the stamps are read.
    """
    files = [replace(f, counts=dict(f.counts)) for f in raw.files]
    findings = list(raw.findings)
    dups = repeats(raw.keys)
    tables = {event: without(table, dups) for event, table in raw.tables.items()}
    stamps = left_out(raw.stamps, dups)
    tables["ledger"], ledger_dups = _dedup_ledger(raw.ledger.collect(), files, findings)
    for file_id, n in (
        pl.concat([dups.select("file_id"), ledger_dups.select("file_id")])
        .group_by("file_id")
        .len()
        .iter_rows()
    ):
        files[file_id].counts["duplicates"] = n
        files[file_id].counts["records"] -= n
    ignored = raw.keys.filter("ignored").join(dups.lazy(), on=list(ORIGIN), how="anti").collect()
    for file_id, n in ignored.group_by("file_id").len().iter_rows():
        files[file_id].counts["ignored"] = n
    _time_ranges(stamps, tables["ledger"], files)
    dump = Dump(
        tables,
        files,
        raw.rejects.sort("file_id", "line"),
        findings,
        raw.tz,
        stamps,
        keys=raw.keys if keep else None,
        ledger_repeats=ledger_dups if keep else None,
        repeats=dups if keep else None,
    )
    if raw.details is not None and raw.detail is not None:
        dump.parts = _shares_of(dump, raw.details, raw.detail, dups)
    if raw.folder is not None:
        # The stamps (and the details) are read from there: it goes when the Dump goes (or
        # the program ends).
        weakref.finalize(dump, raw.folder.cleanup)
    return dump


# A share of a read's users holds about this many kept decisions (its buckets' details are
# read from their files, as a store's share is read from its buckets).
SHARE_ROWS = 125_000


def _shares_of(
    dump: Dump, details: list[pl.LazyFrame], detail: pl.Expr, dups: pl.DataFrame
) -> Callable[[AuditFacts, bool, str | None], Iterator[Dump]]:
    """Dump.parts of a read for an audit: its users a share of buckets at a time, each
    share's decisions whole where `detail` keeps them, ACTION_FIELDS alone (the rest null)
    where not, as a read that kept them all would give them."""

    def parts(facts: AuditFacts, apart: bool, user_id: str | None = None) -> Iterator[Dump]:
        brief = dump.tables["decision"]
        shares = max(1, min(BUCKETS, -(-brief.height // SHARE_ROWS))) if apart else 1
        groups = [[b for b in range(BUCKETS) if b % shares == part] for part in range(shares)]
        if user_id is not None:
            groups = [[bucket_of(user_id)]]
        schema = details[0].collect_schema()
        for mine in groups:
            share = bucket_expr().is_in(mine)
            rest = brief.filter(share & ~detail.fill_null(False))
            whole = without(pl.concat([details[b] for b in mine]), dups)
            widened = rest.select(
                pl.col(c) if c in rest.columns else pl.lit(None, t).alias(c)
                for c, t in schema.items()
            )
            tables = dict(dump.tables)
            tables["decision"] = pl.concat([whole, widened]).sort(list(ORIGIN))
            yield replace(dump, tables=tables, parts=None).only(share, facts)

    return parts


def _dedup_ledger(
    ledger: pl.DataFrame, files: list[FileReport], findings: list[Finding]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row per change_id, the first seen; a repeat with other values is a finding.

    Returns the rows kept and the repeated rows (whole: a store keeps them).
    """
    # The readers hand the rows over in file and line order; a sort would copy them all
    # (250 MB at 21M lines, at the read's peak) for nothing.
    if not ledger.select((_origin_key().diff() > 0).all()).item():
        ledger = ledger.sort(list(ORIGIN))
    first = ledger.select(pl.col("change_id").is_first_distinct()).to_series()
    kept, dups = ledger.filter(first), ledger.filter(~first)
    values = ["user_id", "changed_at", "limit_before", "limit_after"]
    conflicts = dups.join(kept, on="change_id", suffix="_first").filter(
        pl.any_horizontal(pl.col(v) != pl.col(f"{v}_first") for v in values)
    )
    for row in conflicts.iter_rows(named=True):
        here = f"{files[row['file_id']].source.name}:{row['line']}"
        there = f"{files[row['file_id_first']].source.name}:{row['line_first']}"
        findings.append(
            Finding(
                "ledger_conflict",
                files[row["file_id"]].source.name,
                f"{here}: change_id {row['change_id']} repeats {there} with other "
                "values; the first is kept",
            )
        )
    return kept, dups


def _time_ranges(stamps: pl.LazyFrame, ledger: pl.DataFrame, files: list[FileReport]) -> None:
    """Each file's time range and, where its records agree on one, their host."""
    logs = (
        stamps.group_by("file_id")
        .agg(
            pl.col("ts").min().alias("first"),
            pl.col("ts").max().alias("last"),
            pl.col("host").drop_nulls().unique().alias("hosts"),
        )
        .collect(engine="streaming")
    )
    exports = ledger.group_by("file_id").agg(
        pl.col("changed_at").min().alias("first"),
        pl.col("changed_at").max().alias("last"),
        pl.lit([], pl.List(pl.String)).alias("hosts"),
    )
    for file_id, first, last, hosts in [*logs.iter_rows(), *exports.iter_rows()]:
        report = files[file_id]
        report.first, report.last = first, last
        # A JSON log names its host in every record; the file's name is only a fallback.
        if len(hosts) == 1:
            report.host = hosts[0]


REPEAT_ROWS = 4_000_000


def repeats(keys: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Exact repeats of a record line anywhere in the dump; the first one stays.

    Nearly every line is unique: only those whose first hash repeats are sorted and
    compared on both (a whole-dump sort and struct comparison took half a GiB at 3M lines).
    The repeated first hashes are found by sorting them, a slice of the hash range at a
    time, so that no more than REPEAT_ROWS of them are in memory whatever the dump's
    size (`is_duplicated`'s hash table took 200 MB at 2.6 million lines, the sort 30).
    """
    keys = keys.lazy()
    slices = -(-keys.select(pl.len()).collect().item() // REPEAT_ROWS)
    repeated = [pl.Series("h1", [], pl.UInt64)]
    for part in range(slices):
        h1 = keys.filter(pl.col("h1") % slices == part).select("h1").collect()["h1"].sort()
        repeated.append(h1.filter(h1 == h1.shift(1)).unique())
    maybe = (
        keys.filter(pl.col("h1").is_in(pl.concat(repeated).implode())).collect().sort(list(ORIGIN))
    )
    return maybe.filter(~pl.struct("h1", "h2").is_first_distinct()).select(list(ORIGIN))


def _origin_key() -> pl.Expr:
    return pl.col("file_id").cast(pl.UInt64) * (1 << 32) + pl.col("line")


def without(frame: pl.DataFrame | pl.LazyFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """`frame` without the rows at `rows`' (file_id, line): a filter, cheaper than an
    anti-join here (the rows are few, the frame large). A lazy frame is read filtered,
    never whole and then again without its repeats."""
    return left_out(frame, rows).collect()


def left_out(frame: pl.DataFrame | pl.LazyFrame, rows: pl.DataFrame) -> pl.LazyFrame:
    """`without`, as a query: for a frame to be read filtered by a larger query."""
    if rows.height == 0:
        return frame.lazy()
    keys = rows.select(_origin_key()).to_series().implode()
    return frame.lazy().filter(~_origin_key().is_in(keys))
