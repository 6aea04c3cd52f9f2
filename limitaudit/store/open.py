"""Opening a store: the Dump it was made from, whole, for one user, or a share at a time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from limitaudit.atomic import sweep
from limitaudit.errors import UsageError
from limitaudit.model.audit import AuditFacts, AuditOptions
from limitaudit.model.dump import DEFAULT_TZ, REJECT_SCHEMA, Dump, Finding, Progress, Scope
from limitaudit.model.schema import EVENTS, ORIGIN
from limitaudit.read.discover import PARTIAL_GENERATION, is_store
from limitaudit.store.layout import GLOBAL, PER_USER, StoreError, bucket_expr, bucket_of
from limitaudit.store.manifest import (
    damaged,
    facts_serve,
    manifest_files,
    one_user_reads,
    read_manifest,
    verify,
)

# A store's audit reads its users a share of buckets at a time, each share holding about
# this many kept decisions. Smaller than a raw dump's share (analysis.audit.PART_ROWS): a
# store's share is read from its own buckets' files, where a raw dump's is cut from tables
# in memory by a pass over them all, and smaller frames attribute faster (the store of
# 3.2M lines: 5.5 s with 250k a share, 4.9 s with 125k).
STORE_PART_ROWS = 125_000


def open_store(
    directory: str | Path,
    user_id: str | None = None,
    *,
    decisions: pl.Expr | None = None,
    options: AuditOptions | None = None,
) -> Dump:
    """The Dump the store was made from: the same tables, files, rejects and findings.

    With `user_id`, only that user's rows of the per-user tables are read (from its
    bucket), of engine_error the user's and its decisions' traces', the other tables
    whole, and no rejects: what `trace` needs (see Scope).
    `decisions` filters the decisions as read_dump's does. With audit `options` that the
    store's kept audit facts were made with, the Dump carries those facts instead of
    the record stamps they are made from.
    """
    directory = Path(directory)
    sweep(directory, PARTIAL_GENERATION)  # what an ingest killed half-way left
    manifest = read_manifest(directory)
    while True:
        try:
            verify(directory, manifest)
            return _open(directory, manifest, user_id, decisions, options)
        except (StoreError, OSError, pl.exceptions.PolarsError) as exc:
            # An ingest that ended while this read was under way has replaced the generation
            # it was reading: the new one is read instead, as often as that happens.
            latest = read_manifest(directory)
            if latest["generation"] != manifest["generation"]:
                manifest = latest
                continue
            if isinstance(exc, StoreError):
                raise
            raise damaged(directory, str(exc)) from None


def _open(
    directory: Path,
    manifest: Mapping[str, Any],
    user_id: str | None,
    decisions: pl.Expr | None,
    options: AuditOptions | None,
) -> Dump:
    data = directory / manifest["generation"]
    files = manifest_files(manifest)
    findings = [Finding.from_data(f) for f in manifest["findings"]]
    buckets = int(manifest["buckets"])
    facts = None
    if user_id is None and options is not None and facts_serve(manifest, options):
        facts = _read_facts(data, manifest)
    # An audit with the kept facts, of users apart, reads the users a share at a time.
    in_parts = facts is not None and bool(manifest["facts"]["one_user_reads"])
    tables = _tables(data, buckets, user_id, decisions, in_parts)
    rejects = (
        pl.DataFrame(schema=REJECT_SCHEMA)
        if user_id is not None
        else pl.read_parquet(data / "rejects.parquet")
    )
    stamps = None
    if user_id is None and facts is None:
        # Read now, not scanned: an ingest may take this generation away (see open_store).
        stamps = pl.read_parquet(data / "stamps.parquet").lazy()
    dump = Dump(tables, files, rejects, findings, manifest["time_zone"], stamps, facts=facts)
    if in_parts:
        assert facts is not None
        dump.parts = lambda _facts, _apart, _user: _parts(data, buckets, dump, facts, decisions)
    if user_id is not None:
        dump.scope = Scope(user_id, _read_facts(data, manifest), lambda: _user_ids(data))
    return dump


def _tables(
    data: Path, buckets: int, user_id: str | None, decisions: pl.Expr | None, in_parts: bool
) -> dict[str, pl.DataFrame]:
    """The store's tables in the read's order, by (file_id, line): whole, or a user's rows
    of the per-user ones, or those left empty for an audit that reads them in shares."""
    tables: dict[str, pl.DataFrame] = {}
    for name in PER_USER:
        if in_parts:
            scan = pl.scan_parquet([data / name / f"b{b:02d}.parquet" for b in range(buckets)])
            tables[name] = pl.DataFrame(schema=scan.collect_schema())
        elif user_id is None:
            paths = [data / name / f"b{b:02d}.parquet" for b in range(buckets)]
            scan = pl.scan_parquet(paths)
            if name == "decision" and decisions is not None:
                scan = scan.filter(decisions)
            tables[name] = scan.collect()
        else:
            path = data / name / f"b{bucket_of(user_id, buckets):02d}.parquet"
            tables[name] = pl.scan_parquet(path).filter(pl.col("user_id") == user_id).collect()
    for name in GLOBAL:
        tables[name] = pl.read_parquet(data / f"{name}.parquet")
    if user_id is not None:
        # Engine errors can be many (an outage), and a user's audit reads only its own and
        # those of its decisions' traces.
        traces = tables["decision"]["trace_id"].drop_nulls().unique()
        tables["engine_error"] = (
            pl.scan_parquet(data / "engine_error.parquet")
            .filter((pl.col("user_id") == user_id) | pl.col("trace_id").is_in(traces.implode()))
            .collect()
        )
    else:
        tables["engine_error"] = pl.read_parquet(data / "engine_error.parquet")
    # Back in the read's order: (file_id, line). Ties in an audit fall by that order.
    return {
        name: tables[name].sort(list(ORIGIN))
        for name in [*EVENTS, "ledger"]  # the read's order of the tables
    }


def _parts(
    data: Path, buckets: int, dump: Dump, facts: AuditFacts, decisions: pl.Expr | None
) -> Iterator[Dump]:
    """The store's users a share of buckets at a time (about STORE_PART_ROWS kept decisions a
    share), each read from its buckets' files as `Dump.only` would cut it from the whole."""
    try:
        yield from _read_parts(data, buckets, dump, facts, decisions)
    except (OSError, pl.exceptions.PolarsError) as exc:
        # Unlike open_store, a read half done cannot move on to the new generation.
        if data.exists():
            raise damaged(data.parent, str(exc)) from None
        raise StoreError(
            f"{data.parent}: an ingest replaced the store while this audit read it; "
            "run the audit again"
        ) from None


def _read_parts(
    data: Path, buckets: int, dump: Dump, facts: AuditFacts, decisions: pl.Expr | None
) -> Iterator[Dump]:
    decision = pl.scan_parquet([data / "decision" / f"b{b:02d}.parquet" for b in range(buckets)])
    if decisions is not None:
        decision = decision.filter(decisions)
    kept = decision.select(pl.len()).collect().item()
    shares = max(1, min(buckets, -(-kept // STORE_PART_ROWS)))
    for part in range(shares):
        mine = [b for b in range(buckets) if b % shares == part]
        tables = dict(dump.tables)
        for name in PER_USER:
            scan = pl.scan_parquet([data / name / f"b{b:02d}.parquet" for b in mine])
            if name == "decision" and decisions is not None:
                scan = scan.filter(decisions)
            tables[name] = scan.collect().sort(list(ORIGIN))
        whole = replace(dump, tables=tables, parts=None)
        yield whole.only(bucket_expr(buckets).is_in(mine), facts, cut=True)


def _read_facts(data: Path, manifest: Mapping[str, Any]) -> AuditFacts:
    entry = manifest["facts"]
    if entry is None:
        raise StoreError(f"{data.parent}: the store holds no log or ledger to read one user from")
    return AuditFacts(
        AuditOptions(below_yuan=entry["below_yuan"], tolerance_s=entry["tolerance_s"]),
        pl.read_parquet(data / "offsets.parquet"),
        pl.read_parquet(data / "silences.parquet"),
        entry["data_feed"],
    )


def _user_ids(data: Path) -> pl.Series:
    try:
        return pl.read_parquet(data / "users.parquet")["user_id"]
    except OSError:  # replaced by an ingest since: no ids to suggest
        return pl.Series("user_id", [], pl.String)


def load(
    paths: Sequence[str | Path],
    tz: str | None = None,
    user_id: str | None = None,
    options: AuditOptions | None = None,
    progress: Progress | None = None,
    decisions: pl.Expr | None = None,
    detail: pl.Expr | None = None,
) -> Dump:
    """A dump from the command line: a store (named alone) or files, directories and globs.

    `tz` is the zone for log times without an offset; a store keeps the one it was made
    with. With `user_id` (and the audit `options`), a store reads only that user's rows
    when that gives the same answers. `decisions` says which decisions to keep, and `detail`
    which of them a read of files keeps whole (see read_dump).
    """
    stores = [p for p in paths if is_store(p)]
    if not stores:
        # Imported here: reading files is not a store's business, and `trace` on a store
        # starts without the readers.
        from limitaudit.read.parallel import read_dump  # noqa: PLC0415

        return read_dump(paths, tz or DEFAULT_TZ, progress, decisions, detail)
    if len(paths) > 1:
        raise UsageError(f"{stores[0]} is a store: name it alone, without other files")
    directory = Path(stores[0])
    manifest = read_manifest(directory)
    if tz is not None and tz != manifest["time_zone"]:
        raise UsageError(
            f"{directory}: the store read log times in {manifest['time_zone']}, not {tz}; "
            "leave out --tz, or ingest the dump again with --tz and --replace"
        )
    if user_id is not None and one_user_reads(manifest, options or AuditOptions()):
        return open_store(directory, user_id)
    # A share holds whole the decisions either filter keeps (the audit's `detail` is among
    # its `decisions`; a what-if's is every decision).
    if decisions is not None and detail is not None:
        decisions = decisions | detail
    return open_store(directory, decisions=decisions, options=options)
