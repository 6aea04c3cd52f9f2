"""The store's manifest: what the store holds, file by file, and the generation in use."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from limitaudit import __version__
from limitaudit.model.audit import AuditOptions
from limitaudit.model.dump import Dump, FileReport, SourceFile
from limitaudit.model.format import iso_utc
from limitaudit.read.discover import STORE_FORMAT, STORE_MANIFEST, is_store
from limitaudit.store.layout import (
    BUCKET_DIGITS,
    BUCKETS,
    FORMAT_VERSION,
    GLOBAL,
    PER_USER,
    StoreError,
    sha256_of,
)

_UTC = ZoneInfo("UTC")


# What every manifest holds; one without them is damaged.
_KEYS = (
    "format_version",
    "tool_version",
    "polars_version",
    "generation",
    "buckets",
    "time_zone",
    "tables",
    "facts",
    "files",
    "findings",
)


def read_manifest(directory: Path) -> dict[str, Any]:
    if not is_store(directory):
        raise StoreError(f"{directory}: not a limitaudit store (no store manifest.json)")
    path = directory / STORE_MANIFEST
    if not path.is_file():
        raise damaged(directory, f"its {STORE_MANIFEST} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise damaged(directory, f"its {STORE_MANIFEST} cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise damaged(directory, f"its {STORE_MANIFEST} is not a manifest")
    if data.get("format_version") != FORMAT_VERSION:
        raise StoreError(
            f"{directory}: store format {data.get('format_version')}, this limitaudit reads "
            f"format {FORMAT_VERSION}: ingest the dump again with --replace"
        )
    if any(k not in data for k in _KEYS):
        raise damaged(directory, f"its {STORE_MANIFEST} is incomplete")
    return data


def damaged(directory: Path, what: str) -> StoreError:
    return StoreError(
        f"{directory}: the store is damaged: {what}; ingest the dump again with --replace"
    )


def verify(directory: Path, manifest: Mapping[str, Any]) -> None:
    """That the files of the store's generation are all there, each the size the manifest
    says (a store written before sizes were kept: that each is there)."""
    data = directory / manifest["generation"]
    sizes = manifest.get("data") or dict.fromkeys(data_files(manifest))
    problems = []
    for name, size in sizes.items():
        try:
            actual = (data / name).stat().st_size
        except OSError:
            problems.append(f"{manifest['generation']}/{name} is missing")
            continue
        if size is not None and actual != size:
            problems.append(f"{manifest['generation']}/{name} holds {actual:,} bytes, not {size:,}")
    if problems:
        more = f" and {len(problems) - 3:,} more" if len(problems) > 3 else ""
        raise damaged(directory, "; ".join(problems[:3]) + more)


def data_files(manifest: Mapping[str, Any]) -> list[str]:
    """The files a generation holds, by their path in it."""
    buckets = int(manifest["buckets"])
    names = [f"{table}/b{b:02d}.parquet" for table in PER_USER for b in range(buckets)]
    names += [f"{table}.parquet" for table in [*GLOBAL, "engine_error"]]
    names += [f"{n}.parquet" for n in ("ledger_repeats", "keys", "stamps", "rejects", "users")]
    if manifest["facts"] is not None:
        names += ["offsets.parquet", "silences.parquet"]
    return names


def file_entry(f: FileReport, sha256: str) -> dict[str, Any]:
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
    """The store's FileReports, as the read made them."""
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


def new_manifest(
    dump: Dump,
    generation: str,
    created: str | None,
    sizes: Mapping[str, int],
    facts: Mapping[str, Any] | None,
    hashes: Mapping[str, str] | None,
    data: Mapping[str, int],
) -> dict[str, Any]:
    """The manifest of a store holding `dump` in `generation`: `hashes` gives the sha256 of
    files already known by name; the others are read."""
    now = iso_utc(datetime.now(UTC))
    known = dict(hashes or {})
    return {
        "format": STORE_FORMAT,
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "polars_version": pl.__version__,
        "time_zone": dump.tz,
        "created": created or now,
        "updated": now,
        "generation": generation,
        "buckets": BUCKETS,
        "bucket_key": f"int(last {BUCKET_DIGITS} digits of user_id) % buckets, "
        "0 for an id whose last digits are not ASCII",
        "tables": dict(sizes),
        "facts": facts,
        # Every file of the generation and its size: what each read checks first.
        "data": dict(data),
        "files": [
            file_entry(f, known.get(f.source.name) or sha256_of(f.source.path)) for f in dump.files
        ],
        "findings": [f.to_data() for f in dump.findings],
    }
