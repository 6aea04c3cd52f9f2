"""A store: a dump ingested once into Parquet, read back as the very Dump ingest made.

Layout of a store directory:

    manifest.json            what is in the store (below); written last, atomically,
                             and it names the generation in use
    g000001/                 one complete generation of the data
      ledger/b00.parquet     the per-user tables (ledger, decision, manual_action,
      decision/b00.parquet   user_notice) in BUCKETS files each, by user_id; each file
      ...                    sorted by (user_id, time) in small row groups with
                             statistics, so one user's rows are found without reading
                             the rest
      param_change.parquet   the small global tables, whole (also model_deploy,
      ...                    feed_batch, engine_error)
      ledger_repeats.parquet ledger rows that repeat a change_id
      keys.parquet           the hashes of every record line (file_id, line, h1, h2,
                             ignored): later files are deduplicated against them
      stamps.parquet         time, host, event and quoted feed batch of every record
                             (clock offsets and silences need them all)
      rejects.parquet        every rejected line with its reason
      offsets.parquet        audit facts for one-user reads (see AuditFacts)
      silences.parquet
      users.parquet          every user id, to name the nearest ones to a mistyped id

The manifest holds the tool, format and Polars versions, the time zone assumed, and per
source file its name, path, size, sha256, kind, compression, encoding, host, service,
counts and time range, then the findings. A new generation is written in full before the
manifest is replaced to point at it, so a crash leaves the previous store (or none), never
half of one.

Line hashes (Polars' `Series.hash`) are not promised stable across Polars versions: a
store only takes more files from the Polars version that wrote it. Buckets are the user
id's last digits, not a hash, so any version reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from limitaudit import __version__
from limitaudit.commands import audit as audit_command
from limitaudit.commands.audit import (
    AuditFacts,
    AuditOptions,
    users_apart,
    whole_dump_facts,
)
from limitaudit.discover import STORE_FORMAT, STORE_MANIFEST, SourceFile, is_store
from limitaudit.errors import LimitAuditError, UsageError
from limitaudit.ingest import (
    DEFAULT_TZ,
    REJECT_SCHEMA,
    USER_TABLES,
    Dump,
    FileReport,
    Finding,
    Progress,
    RawDump,
    Scope,
    ingest,
    repeats,
    settle,
    without,
)
from limitaudit.schema import EVENTS, ORIGIN
from limitaudit.timefmt import iso_utc

__all__ = [
    "FORMAT_VERSION",
    "DecisionSpill",
    "StoreError",
    "is_store",
    "load",
    "manifest_files",
    "merge",
    "open_store",
    "read_manifest",
    "sha256_of",
    "write_store",
]

FORMAT_VERSION = 2  # 2: stamps.parquet
BUCKETS = 16
# Small row groups: a one-user read decodes only the groups whose user_id range holds it.
ROW_GROUP_ROWS = 8192
# The tables in which every row is one user's: bucketed. The others are small and global
# (engine_error apart: kept whole, but a one-user read filters it).
PER_USER = {name: "changed_at" if name == "ledger" else "ts" for name in USER_TABLES}
GLOBAL = [e for e in EVENTS if e not in PER_USER and e != "engine_error"]
# A bucket is the user id's last digits modulo BUCKETS: stable across Polars versions
# (unlike Series.hash), and ids are handed out in sequence, so the digits spread evenly.
_BUCKET_DIGITS = 9
_GENERATION = re.compile(r"^\.?g(\d{6})(\.tmp)?$")
_UTC = ZoneInfo("UTC")


class StoreError(LimitAuditError):
    """The store cannot be read or added to as asked (exit status 2)."""


def bucket_of(user_id: str, buckets: int = BUCKETS) -> int:
    """The bucket of a user id, as _bucket_expr puts it."""
    tail = user_id[-_BUCKET_DIGITS:]
    # Ids are digit strings, but normalise's \d also lets other scripts' digits through:
    # those go to bucket 0 on both sides.
    return int(tail) % buckets if tail.isascii() and tail.isdigit() else 0


def _bucket_expr(buckets: int) -> pl.Expr:
    tail = pl.col("user_id").str.slice(-_BUCKET_DIGITS).cast(pl.UInt64, strict=False)
    return tail.fill_null(0) % buckets


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# -- the manifest ---------------------------------------------------------------------


def read_manifest(directory: Path) -> dict[str, Any]:
    if not is_store(directory):
        raise StoreError(f"{directory}: not a limitaudit store (no store manifest.json)")
    data: dict[str, Any] = json.loads((directory / STORE_MANIFEST).read_text(encoding="utf-8"))
    if data.get("format_version") != FORMAT_VERSION:
        raise StoreError(
            f"{directory}: store format {data.get('format_version')}, this limitaudit reads "
            f"format {FORMAT_VERSION}: ingest the dump again with --replace"
        )
    return data


def _file_entry(f: FileReport, sha256: str) -> dict[str, Any]:
    s = f.source
    return {
        "name": s.name,
        "path": str(s.path),
        "kind": s.kind,
        "compression": s.compression,
        "size": s.size,
        "sha256": sha256,
        "reason": s.reason,
        "encoding": f.encoding,
        "service": f.service,
        "host": f.host,
        "named_host": f.named_host,
        "counts": f.counts,
        "first": _time_text(f.first),
        "last": _time_text(f.last),
    }


def manifest_files(manifest: Mapping[str, Any]) -> list[FileReport]:
    """The store's FileReports, as ingest made them."""
    return [_file_report(e) for e in manifest["files"]]


def _file_report(entry: Mapping[str, Any]) -> FileReport:
    source = SourceFile(
        Path(entry["path"]),
        entry["name"],
        entry["kind"],
        entry["compression"],
        entry["size"],
        entry["reason"],
    )
    return FileReport(
        source,
        encoding=entry["encoding"],
        service=entry["service"],
        host=entry["host"],
        counts=dict(entry["counts"]),
        first=_time_value(entry["first"]),
        last=_time_value(entry["last"]),
        named_host=entry["named_host"],
    )


def _time_text(value: object) -> str | None:
    return iso_utc(value) if isinstance(value, datetime) else None


def _time_value(text: str | None) -> datetime | None:
    # As Polars hands them out: aware, in zoneinfo's UTC.
    return None if text is None else datetime.fromisoformat(text).astimezone(_UTC)


# -- writing --------------------------------------------------------------------------


class DecisionSpill:
    """Decisions put aside per bucket as they are read (ingest's `spill`), so that
    building a store never holds the dump's decisions: they are settled and sorted one
    bucket at a time when the store is written. Called from several reader threads."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._parts = 0
        for b in range(BUCKETS):
            (folder / f"b{b:02d}").mkdir(parents=True)

    def __call__(self, table: pl.DataFrame) -> None:
        with self._lock:
            part, self._parts = self._parts, self._parts + 1
        by_bucket = table.with_columns(_bucket_expr(BUCKETS).alias("_bucket")).partition_by(
            "_bucket", as_dict=True, include_key=False
        )
        for (b,), rows in by_bucket.items():
            # lz4: read back once, soon; speed matters more than size here.
            path = self.folder / f"b{b:02d}" / f"p{part:06d}.parquet"
            rows.write_parquet(path, compression="lz4")

    def bucket(self, b: int, empty: pl.DataFrame, dups: pl.DataFrame) -> pl.DataFrame:
        """One bucket's decisions, repeats left out, in no particular order."""
        paths = sorted((self.folder / f"b{b:02d}").glob("*.parquet"))
        rows = pl.read_parquet(paths) if paths else empty
        return without(rows, dups)


def write_store(
    dump: Dump,
    directory: str | Path,
    hashes: Mapping[str, str] | None = None,
    spill: DecisionSpill | None = None,
) -> dict[str, int]:
    """Write `dump` (as ingest or `merge` made it) as the store's new generation.

    `hashes` gives the sha256 of files already known by name; the others are read.
    With `spill`, the decisions are the spilled ones (the Dump's are what audit keeps).
    Returns the rows of each table in the store.
    """
    if dump.keys is None or dump.ledger_repeats is None or dump.stamps is None:
        raise ValueError("write_store needs a Dump settled with keep=True: it keeps line hashes")
    directory = Path(directory)
    if is_store(directory):
        created = json.loads((directory / STORE_MANIFEST).read_text(encoding="utf-8")).get(
            "created"
        )
    elif directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UsageError(f"{directory}: exists and is not a store: name a new or empty directory")
    else:
        created = None
    directory.mkdir(parents=True, exist_ok=True)
    generation = f"g{_last_generation(directory) + 1:06d}"
    tmp = directory / f".{generation}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    sizes = {name: t.height for name, t in dump.tables.items()}
    users = [dump.tables[t].select("user_id") for t in ("ledger", "manual_action")]
    for name, time in PER_USER.items():
        if name == "decision" and spill is not None:
            sizes[name], ids = _write_spilled(spill, dump, tmp / name, time)
            users.append(ids)
            continue
        _write_buckets(dump.tables[name], tmp / name, time)
        if name == "decision":
            users.append(dump.tables[name].select("user_id").unique())
    for name in [*GLOBAL, "engine_error"]:
        _write(dump.tables[name], tmp / f"{name}.parquet")
    _write(dump.ledger_repeats, tmp / "ledger_repeats.parquet")
    _write(dump.keys, tmp / "keys.parquet")
    _write(dump.stamps.collect(), tmp / "stamps.parquet")
    _write(dump.rejects, tmp / "rejects.parquet")
    facts = _facts(dump)
    if facts is not None:
        _write(facts.offsets, tmp / "offsets.parquet")
        _write(facts.silences, tmp / "silences.parquet")
    _write(pl.concat(users).unique().sort("user_id"), tmp / "users.parquet")
    _fsync_tree(tmp)
    os.rename(tmp, directory / generation)
    _fsync_dir(directory)

    now = iso_utc(datetime.now(UTC))
    known = dict(hashes or {})
    manifest = {
        "format": STORE_FORMAT,
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "polars_version": pl.__version__,
        "time_zone": dump.tz,
        "created": created or now,
        "updated": now,
        "generation": generation,
        "buckets": BUCKETS,
        "bucket_key": f"int(last {_BUCKET_DIGITS} digits of user_id) % buckets, "
        "0 for an id whose last digits are not ASCII",
        "tables": sizes,
        "facts": None if facts is None else _facts_entry(facts, dump),
        "files": [
            _file_entry(f, known.get(f.source.name) or sha256_of(f.source.path)) for f in dump.files
        ],
        "findings": [{"kind": f.kind, "file": f.file, "message": f.message} for f in dump.findings],
    }
    _replace_file(directory / STORE_MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
    _fsync_dir(directory)
    _remove_other_generations(directory, generation)
    return sizes


def _write_spilled(
    spill: DecisionSpill, dump: Dump, folder: Path, time: str
) -> tuple[int, pl.DataFrame]:
    """The spilled decisions as bucket files, one bucket in memory at a time."""
    assert dump.keys is not None
    folder.mkdir()
    dups = repeats(dump.keys)
    empty = dump.tables["decision"].clear()
    rows, users = 0, []
    for b in range(BUCKETS):
        table = spill.bucket(b, empty, dups)
        _write(table.sort("user_id", time, *ORIGIN), folder / f"b{b:02d}.parquet")
        rows += table.height
        users.append(table.select("user_id").unique())
    return rows, pl.concat(users)


def _write(frame: pl.DataFrame, path: Path) -> None:
    frame.write_parquet(path, compression="zstd", statistics=True, row_group_size=ROW_GROUP_ROWS)


def _write_buckets(table: pl.DataFrame, folder: Path, time: str) -> None:
    folder.mkdir()
    parts = (
        table.with_columns(_bucket_expr(BUCKETS).alias("_bucket"))
        .sort("_bucket", "user_id", time, *ORIGIN)
        .partition_by("_bucket", as_dict=True, include_key=False)
    )
    empty = table.clear()
    for b in range(BUCKETS):
        _write(parts.get((b,), empty), folder / f"b{b:02d}.parquet")


def _facts(dump: Dump) -> AuditFacts | None:
    """The audit facts a one-user read needs, made with the default options."""
    if not any(f.source.kind not in ("other", "empty") for f in dump.files):
        return None
    return whole_dump_facts(dump, AuditOptions())


def _facts_entry(facts: AuditFacts, dump: Dump) -> dict[str, Any]:
    return {
        "tolerance_s": facts.options.tolerance_s,
        "below_yuan": facts.options.below_yuan,
        "data_feed": facts.data_feed,
        "one_user_reads": users_apart(dump),
    }


def _last_generation(directory: Path) -> int:
    numbers = [int(m.group(1)) for p in directory.iterdir() if (m := _GENERATION.match(p.name))]
    return max(numbers, default=0)


def _remove_other_generations(directory: Path, keep: str) -> None:
    """Earlier generations and the leftovers of interrupted writes; nothing else."""
    for path in directory.iterdir():
        if path.is_dir() and _GENERATION.match(path.name) and path.name != keep:
            shutil.rmtree(path, ignore_errors=True)


def _replace_file(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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


# -- reading --------------------------------------------------------------------------


def open_store(
    directory: str | Path,
    user_id: str | None = None,
    *,
    keys: bool = False,
    decisions: pl.Expr | None = None,
    options: AuditOptions | None = None,
) -> Dump:
    """The Dump the store was made from: the same tables, files, rejects and findings.

    With `user_id`, only that user's rows of the per-user tables are read (from its
    bucket), of engine_error the user's and its decisions' traces', the other tables
    whole, and no rejects: what `trace` needs (see Scope). With `keys`,
    also the line hashes and the ledger's repeated rows: what adding files needs.
    `decisions` filters the decisions as ingest's does. With audit `options` that the
    store's kept audit facts were made with, the Dump carries those facts instead of
    the record stamps they are made from.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    while True:
        try:
            return _open(directory, manifest, user_id, keys, decisions, options)
        except (OSError, pl.exceptions.PolarsError) as exc:
            # An ingest that ended while this read was under way has replaced the generation
            # it was reading: the new one is read instead, as often as that happens.
            latest = read_manifest(directory)
            if latest["generation"] == manifest["generation"]:
                raise StoreError(
                    f"{directory}: the store is damaged ({exc}); "
                    "ingest the dump again with --replace"
                ) from None
            manifest = latest


def _open(
    directory: Path,
    manifest: Mapping[str, Any],
    user_id: str | None,
    keys: bool,
    decisions: pl.Expr | None,
    options: AuditOptions | None,
) -> Dump:
    data = directory / manifest["generation"]
    files = manifest_files(manifest)
    findings = [Finding(f["kind"], f["file"], f["message"]) for f in manifest["findings"]]
    tables: dict[str, pl.DataFrame] = {}
    buckets = int(manifest["buckets"])
    facts = None
    if user_id is None and options is not None and facts_serve(manifest, options):
        facts = _read_facts(data, manifest)
    # An audit with the kept facts, of users apart, reads the users a share at a time.
    in_parts = facts is not None and not keys and bool(manifest["facts"]["one_user_reads"])
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
    # Back in ingest's order: (file_id, line). Ties in an audit fall by that order.
    tables = {
        name: tables[name].sort(list(ORIGIN))
        for name in [*EVENTS, "ledger"]  # ingest's order of the tables
    }
    rejects = (
        pl.DataFrame(schema=REJECT_SCHEMA)
        if user_id is not None
        else pl.read_parquet(data / "rejects.parquet")
    )
    stamps = None
    if user_id is None and (facts is None or keys):
        # Read now, not scanned: an ingest may take this generation away (see open_store).
        stamps = pl.read_parquet(data / "stamps.parquet").lazy()
    dump = Dump(tables, files, rejects, findings, manifest["time_zone"], stamps, facts=facts)
    if in_parts:
        assert facts is not None
        dump.parts = lambda: _parts(data, buckets, dump, facts, decisions)
    if keys:
        dump.keys = pl.read_parquet(data / "keys.parquet")
        dump.ledger_repeats = pl.read_parquet(data / "ledger_repeats.parquet")
    if user_id is not None:
        dump.scope = Scope(user_id, _read_facts(data, manifest), lambda: _user_ids(data))
    return dump


def _parts(
    data: Path, buckets: int, dump: Dump, facts: AuditFacts, decisions: pl.Expr | None
) -> Iterator[Dump]:
    """The store's users a share of buckets at a time (about STORE_PART_ROWS kept decisions a
    share), each read from its buckets' files as `Dump.only` would cut it from the whole."""
    try:
        yield from _read_parts(data, buckets, dump, facts, decisions)
    except (OSError, pl.exceptions.PolarsError):
        # Unlike open_store, a read half done cannot move on to the new generation.
        if data.exists():
            raise
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
    shares = max(1, min(buckets, -(-kept // audit_command.STORE_PART_ROWS)))
    for part in range(shares):
        mine = [b for b in range(buckets) if b % shares == part]
        tables = dict(dump.tables)
        for name in PER_USER:
            scan = pl.scan_parquet([data / name / f"b{b:02d}.parquet" for b in mine])
            if name == "decision" and decisions is not None:
                scan = scan.filter(decisions)
            tables[name] = scan.collect().sort(list(ORIGIN))
        whole = replace(dump, tables=tables, parts=None)
        yield whole.only(_bucket_expr(buckets).is_in(mine), facts, cut=True)


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


def facts_serve(manifest: Mapping[str, Any], options: AuditOptions) -> bool:
    """Whether the store's kept audit facts were made with `options`."""
    facts = manifest.get("facts")
    return bool(
        facts
        and facts["tolerance_s"] == options.tolerance_s
        and facts["below_yuan"] == options.below_yuan
    )


def one_user_reads(manifest: Mapping[str, Any], options: AuditOptions) -> bool:
    """Whether a one-user read audits that user as the whole store would, with `options`."""
    return facts_serve(manifest, options) and bool(manifest["facts"]["one_user_reads"])


def load(
    paths: Sequence[str | Path],
    tz: str | None = None,
    user_id: str | None = None,
    options: AuditOptions | None = None,
    progress: Progress | None = None,
    decisions: pl.Expr | None = None,
) -> Dump:
    """A dump from the command line: a store (named alone) or files, directories and globs.

    `tz` is the zone for log times without an offset; a store keeps the one it was made
    with. With `user_id` (and the audit `options`), a store reads only that user's rows
    when that gives the same answers. `decisions` says which decisions to keep (see ingest).
    """
    stores = [p for p in paths if is_store(p)]
    if not stores:
        return ingest(paths, tz=tz or DEFAULT_TZ, progress=progress, decisions=decisions)
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
    return open_store(directory, decisions=decisions, options=options)


# -- adding files ---------------------------------------------------------------------


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
