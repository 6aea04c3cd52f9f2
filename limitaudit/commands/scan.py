"""`limitaudit scan`: what a dump holds, file by file, and what could not be read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from limitaudit.analysis.match import actions, host_offsets
from limitaudit.model.dump import COUNTS, Dump, Finding
from limitaudit.model.format import iso_utc

TOP_REASONS = 3


@dataclass(frozen=True)
class FileSummary:
    path: str
    kind: str
    compression: str
    encoding: str
    host: str | None
    service: str | None
    first: datetime | None
    last: datetime | None
    counts: dict[str, int]
    top_reasons: list[tuple[str, int]]

    def to_data(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "compression": self.compression,
            "encoding": self.encoding or None,
            "host": self.host,
            "service": self.service,
            "first": iso_utc(self.first),
            "last": iso_utc(self.last),
            **self.counts,
            "top_reasons": [{"reason": r, "lines": n} for r, n in self.top_reasons],
        }


@dataclass(frozen=True)
class ScanResult:
    files: list[FileSummary]
    totals: dict[str, int]
    findings: list[Finding]
    # file, line, reason, text: every rejected line.
    rejects: pl.DataFrame
    tz: str
    offsets: pl.DataFrame  # host, offset_ms, evidence

    def to_data(self) -> dict[str, Any]:
        return {
            "files": [f.to_data() for f in self.files],
            "totals": self.totals,
            "findings": [f.to_data() for f in self.findings],
            "time_zone": self.tz,
            "clock_offsets": [
                {"host": h, "offset_ms": o, "evidence": n} for h, o, n in self.offsets.iter_rows()
            ],
        }


def scan(dump: Dump, tolerance_ms: int = 120_000) -> ScanResult:
    """What `dump` holds, file by file, its line accounting, findings and clock offsets."""
    dump.require_readable()
    files, totals, rejects = summaries(dump)
    offsets = host_offsets(dump, actions(dump).with_row_index("act_id"), tolerance_ms)
    return ScanResult(files, totals, dump.findings, rejects, dump.tz, offsets)


def summaries(dump: Dump) -> tuple[list[FileSummary], dict[str, int], pl.DataFrame]:
    """Each file of `dump` summed up, the totals over them, and every rejected line."""
    rejects = reject_table(dump)
    by_file: dict[str, list[tuple[str, int]]] = {}
    for file, reason, n in reject_reasons(rejects, "file").iter_rows():
        by_file.setdefault(file, []).append((reason, n))
    files = [
        FileSummary(
            path=f.source.name,
            kind=f.source.kind,
            compression=f.source.compression,
            encoding=f.encoding,
            host=f.host,
            service=f.service,
            first=f.first,  # type: ignore[arg-type]
            last=f.last,  # type: ignore[arg-type]
            counts=dict(f.counts),
            top_reasons=by_file.get(f.source.name, [])[:TOP_REASONS],
        )
        for f in dump.files
    ]
    totals = {c: sum(f.counts[c] for f in dump.files) for c in COUNTS}
    totals["files"] = len(dump.files)
    return files, totals, rejects


def reject_reasons(rejects: pl.DataFrame, *by: str) -> pl.DataFrame:
    """Rejected lines counted by reason (and `by`), most first; the values a reason quotes
    are left out, so that one reason is one row."""
    return (
        rejects.with_columns(pl.col("reason").str.replace_all(r"'[^']*'", "…").alias("reason"))
        .group_by(*by, "reason")
        .len()
        .sort([*by, "len", "reason"], descending=[False] * len(by) + [True, False])
    )


def reject_table(dump: Dump) -> pl.DataFrame:
    names = dump.file_names()
    return dump.rejects.join(names, on="file_id", how="left").select(
        "file", "line", "reason", "text"
    )
